"""A tiny analytic dataset for radiance-field tests: a coloured sphere ray-cast with numpy, cameras on a
sphere around it looking at its centre, RGBA images (transparent background), written with
engine.data.transforms.write_transforms."""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from engine.data.transforms import Frame, Intrinsics, SceneBox, Transforms, write_transforms

SPHERE_RADIUS = 0.5
CAMERA_DISTANCE = 2.2


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Blender-style camera_to_world (camera looks down -Z, +Y up) at position, looking at target."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    up_hint = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.99 else np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up_hint)
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, up, -forward, position
    return matrix


def sphere_colour(points: np.ndarray) -> np.ndarray:
    """(n, 3) surface points -> (n, 3) colours: smooth bands, so views differ but stay learnable."""
    return np.stack(
        [0.5 + 0.4 * points[:, 0] / SPHERE_RADIUS, 0.5 + 0.4 * points[:, 1] / SPHERE_RADIUS, 0.3 + 0.0 * points[:, 2]],
        axis=-1,
    )


def render_sphere(camera_to_world: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(h, w, 4) float RGBA of the sphere at the origin, pixel centres at +0.5."""
    columns, rows = np.meshgrid(np.arange(intrinsics.width) + 0.5, np.arange(intrinsics.height) + 0.5)
    camera_directions = np.stack(
        [(columns - intrinsics.cx) / intrinsics.fl_x, -(rows - intrinsics.cy) / intrinsics.fl_y, -np.ones_like(rows)],
        axis=-1,
    ).reshape(-1, 3)
    directions = camera_directions @ camera_to_world[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origin = camera_to_world[:3, 3]
    # |o + t d|^2 = r^2 -> t^2 + 2 (o.d) t + |o|^2 - r^2 = 0
    half_b = directions @ origin
    discriminant = half_b**2 - (origin @ origin - SPHERE_RADIUS**2)
    hit = discriminant > 0
    t = -half_b - np.sqrt(np.maximum(discriminant, 0.0))
    points = origin + directions * t[:, None]
    rgba = np.zeros((directions.shape[0], 4))
    rgba[hit, :3] = sphere_colour(points[hit])
    rgba[hit, 3] = 1.0
    return rgba.reshape(intrinsics.height, intrinsics.width, 4)


def make_sphere_dataset(folder: Path, n_views: int = 24, size: int = 16) -> Path:
    """Write the dataset into folder; returns the transforms.json path. Views 4, 12, 20, ... are held out
    (inside the spiral, so they are seen around by training views)."""
    folder.mkdir(parents=True, exist_ok=True)
    focal = 0.5 * size / math.tan(math.radians(40.0) / 2)
    intrinsics = Intrinsics(fl_x=focal, fl_y=focal, cx=size / 2, cy=size / 2, width=size, height=size)
    frames = []
    golden = math.pi * (3.0 - math.sqrt(5.0))
    for index in range(n_views):
        # a Fibonacci spiral over the upper two thirds of the sphere of cameras
        z = 0.9 - 1.4 * (index + 0.5) / n_views
        radius = math.sqrt(1.0 - z * z)
        position = CAMERA_DISTANCE * np.array([radius * math.cos(golden * index), radius * math.sin(golden * index), z])
        camera_to_world = look_at(position, np.zeros(3))
        image = render_sphere(camera_to_world, intrinsics)
        file_path = f"images/view_{index:03d}.png"
        (folder / "images").mkdir(exist_ok=True)
        iio.imwrite(folder / file_path, (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
        frames.append(
            Frame(
                file_path=file_path,
                camera_to_world=camera_to_world.tolist(),
                intrinsics=intrinsics,
                name=f"view_{index:03d}",
                split="test" if index % 8 == 4 else "train",
            )
        )
    box = SceneBox(minimum=(-0.6, -0.6, -0.6), maximum=(0.6, 0.6, 0.6))
    transforms = Transforms(frames=frames, root=folder, scene_box=box, color_space="srgb", has_alpha=True)
    return write_transforms(folder, transforms)


def icosphere(subdivisions: int = 3, radius: float = SPHERE_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """An icosahedron subdivided ``subdivisions`` times onto the sphere at the origin: vertices (n, 3), faces
    (m, 3) counter-clockwise seen from outside (20 * 4^subdivisions faces)."""
    golden = (1.0 + math.sqrt(5.0)) / 2.0
    vertices = [
        (-1, golden, 0), (1, golden, 0), (-1, -golden, 0), (1, -golden, 0),
        (0, -1, golden), (0, 1, golden), (0, -1, -golden), (0, 1, -golden),
        (golden, 0, -1), (golden, 0, 1), (-golden, 0, -1), (-golden, 0, 1),
    ]  # fmt: skip
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
        (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
        (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]  # fmt: skip
    points = [np.asarray(vertex, dtype=np.float64) / np.linalg.norm(vertex) for vertex in vertices]
    for _ in range(subdivisions):
        midpoints: dict[tuple[int, int], int] = {}

        def midpoint(a: int, b: int, midpoints: dict[tuple[int, int], int] = midpoints) -> int:
            key = (min(a, b), max(a, b))
            if key not in midpoints:
                middle = points[a] + points[b]
                points.append(middle / np.linalg.norm(middle))
                midpoints[key] = len(points) - 1
            return midpoints[key]

        finer = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            finer += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = finer
    return radius * np.asarray(points), np.asarray(faces, dtype=np.int64)
