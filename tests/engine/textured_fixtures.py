"""A tiny textured collection in the format scripts/make_textured_collection.py writes, drawn without Blender:
ellipsoids whose upper half is one colour and lower half another (per shape), seen by cameras around them, the
pixels found by the engine's ray caster."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from engine.data.textured_collection import FORMAT, FORMAT_VERSION, INDEX_NAME, SHAPES_FOLDER, shape_name
from engine.data.textured_source import pixel_rays_of
from engine.data.transforms import Frame, Intrinsics, Transforms, write_transforms
from engine.mesh.io import write_mesh
from engine.mesh.raycast import MeshRaycaster
from engine.mesh.triangle_mesh import TriangleMesh
from tests.engine.sphere_dataset import look_at

# (upper, lower) sRGB colours of the shapes, in turn
COLOURS = (((0.9, 0.1, 0.1), (0.1, 0.1, 0.9)), ((0.1, 0.8, 0.2), (0.9, 0.9, 0.1)), ((0.9, 0.5, 0.1), (0.2, 0.7, 0.9)))


def ellipsoid(
    radii: tuple[float, float, float], center: np.ndarray, rings: int = 8, segments: int = 16
) -> TriangleMesh:
    """A latitude-longitude ellipsoid with a vertex at each pole, triangles facing out (none degenerate: xatlas
    charts them all)."""
    polar = np.linspace(0.0, math.pi, rings + 1)[1:-1]
    azimuth = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    ring_points = np.stack(
        [
            np.outer(np.sin(polar), np.cos(azimuth)),
            np.outer(np.sin(polar), np.sin(azimuth)),
            np.outer(np.cos(polar), np.ones(segments)),
        ],
        axis=-1,
    ).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 0.0, 1.0]], ring_points, [[0.0, 0.0, -1.0]]])
    faces = []
    following = (np.arange(segments) + 1) % segments
    for j in range(segments):
        faces.append([0, 1 + j, 1 + following[j]])
    for ring in range(rings - 2):
        top, bottom = 1 + ring * segments, 1 + (ring + 1) * segments
        for j in range(segments):
            faces += [
                [top + j, bottom + j, bottom + following[j]],
                [top + j, bottom + following[j], top + following[j]],
            ]
    last, base = len(unit) - 1, 1 + (rings - 2) * segments
    for j in range(segments):
        faces.append([last, base + following[j], base + j])
    return TriangleMesh(vertices=unit * np.asarray(radii) + center, faces=np.asarray(faces, dtype=np.int64))


def shape_colour(index: int, points: np.ndarray, center_z: float) -> np.ndarray:
    upper, lower = COLOURS[index % len(COLOURS)]
    return np.where((points[:, 2] > center_z)[:, None], np.asarray(upper), np.asarray(lower))


def write_textured_collection(folder: Path, count: int = 3, views: int = 4, size: int = 16) -> Path:
    """The collection folder; shape i is an ellipsoid of its own proportions at its own place."""
    folder = Path(folder)
    focal = size * 1.2
    intrinsics = Intrinsics(fl_x=focal, fl_y=focal, cx=size / 2, cy=size / 2, width=size, height=size)
    for index in range(count):
        center = np.array([0.5 * index, -0.25, 0.1])
        geometry = ellipsoid((0.5 + 0.1 * index, 0.4, 0.35 + 0.05 * index), center)
        shape_folder = folder / SHAPES_FOLDER / shape_name(index)
        (shape_folder / "images").mkdir(parents=True, exist_ok=True)
        write_mesh(geometry, shape_folder / "mesh.ply", overwrite=True)
        caster = MeshRaycaster(torch.as_tensor(geometry.vertices, dtype=torch.float32), torch.as_tensor(geometry.faces))
        frames = []
        for view in range(views):
            angle = 2 * math.pi * (view + 0.3 * index) / views
            eye = center + 2.2 * np.array([math.cos(angle), math.sin(angle), 0.6 if view % 2 else -0.4])
            matrix = look_at(eye, center)
            frame = Frame(f"images/{view:03d}.png", matrix.tolist(), intrinsics)
            rows, columns = np.divmod(np.arange(size * size), size)
            origins, directions = pixel_rays_of(frame, columns.astype(float), rows.astype(float))
            hits = caster.intersect(torch.as_tensor(origins).float(), torch.as_tensor(directions).float())
            hit = hits.hit.numpy()
            points = origins[hit] + directions[hit] * hits.t.numpy()[hit, None]
            image = np.zeros((size * size, 4), dtype=np.uint8)
            image[hit, :3] = np.round(shape_colour(index, points, center[2]) * 255)
            image[hit, 3] = 255
            iio.imwrite(shape_folder / frame.file_path, image.reshape(size, size, 4))
            frames.append(frame)
        write_transforms(shape_folder, Transforms(frames, shape_folder, color_space="srgb", has_alpha=True))
    index_document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "complete": True,
        "views": views,
        "size": size,
        "color_space": "srgb",
        "shapes": [shape_name(index) for index in range(count)],
    }
    (folder / INDEX_NAME).write_text(json.dumps(index_document), encoding="utf-8")
    return folder


def train_tiny_run(folder: Path, settings: dict) -> tuple[Path, Path]:
    """A tiny textured collection in ``folder`` and a conditional texture field trained on it for 2 steps on
    one thread: (collection, run)."""
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer

    collection = write_textured_collection(folder / "collection")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = TrainConfig(method="conditional_texture_field", steps=2, compile="off", settings=settings)
        Trainer.create(collection, folder / "run", config).fit(progress=False)
    finally:
        torch.set_num_threads(threads)
    return collection, folder / "run"
