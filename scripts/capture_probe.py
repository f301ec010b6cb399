"""Reprojection probe: emissive markers at known 3D places, Blender cameras in many settings, detection.

Used by tests/addon/test_capture.py (tiny renders, must stay within 0.5 px) and
scripts/bench_capture.py (the same cases, larger, with timings). Needs ``bpy``::

    scene = bpy.context.scene
    build_marker_scene(scene)
    camera = set_up_probe(scene, REPROJECTION_CASES["pixel aspect 2:1"])
    # render/export it, then compare detect_markers(image) with the markers projected by the dataset
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import imageio.v3 as iio
import numpy as np

if TYPE_CHECKING:  # bpy is imported where it is used, so the case table loads without Blender
    import bpy

# Small emissive spheres at known places on a black world; the cameras look at the origin from about 2.5 units,
# from directions where every marker is inside the image and apart from the others.
MARKERS = [(0.0, 0.0, 0.0), (0.5, 0.2, 0.3), (-0.45, 0.35, -0.2), (0.25, -0.5, -0.4), (-0.3, -0.25, 0.5)]
MARKER_RADIUS = 0.05


def look_at(eye: tuple[float, float, float], roll: float = 0.0) -> list[list[float]]:
    """Camera-to-world for a camera at ``eye`` looking at the origin, +Z up, rolled by ``roll`` radians."""
    eye_vec = np.asarray(eye, dtype=np.float64)
    forward = -eye_vec / np.linalg.norm(eye_vec)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    right, up = (
        math.cos(roll) * right + math.sin(roll) * up,
        -math.sin(roll) * right + math.cos(roll) * up,
    )
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye_vec
    return pose.tolist()


def add_camera(scene: bpy.types.Scene, name: str, pose: list[list[float]], **settings: object) -> bpy.types.Object:
    """A camera object at ``pose`` with these camera data settings, linked to the scene."""
    import bpy
    from mathutils import Matrix

    data = bpy.data.cameras.new(name)
    for key, value in settings.items():
        setattr(data, key, value)
    camera = bpy.data.objects.new(name, data)
    camera.matrix_world = Matrix(pose)
    scene.collection.objects.link(camera)
    return camera


def build_marker_scene(scene: bpy.types.Scene, samples: int = 16) -> None:
    """The markers, emission-shaded on a black background, rendered plainly with Cycles on the CPU."""
    import bpy

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 0
    scene.view_settings.view_transform = "Standard"  # emission 1.0 stays 1.0: no tone curve on the markers
    scene.world = None  # no world: a black background
    material = bpy.data.materials.new("Marker")
    if material.node_tree is None:  # Blender before 5.0 makes node trees on request
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    for index, position in enumerate(MARKERS):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=MARKER_RADIUS, segments=16, ring_count=8, location=position)
        marker = bpy.context.active_object
        marker.name = f"Marker {index}"
        marker.data.materials.append(material)


def detect_markers(image_path: Path) -> np.ndarray:
    """(n_blobs, 2) intensity-weighted centroids in pixels (x right, y down, pixel centres at +0.5)."""
    encoded = iio.imread(image_path)[..., :3].astype(np.float64).mean(axis=-1) / 255.0
    # Weights in linear light: coverage mixes linearly; the sRGB curve would pull centroids to the brighter pixel.
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    lit = linear > 0.01
    seen = np.zeros_like(lit)
    centroids = []
    for start in zip(*np.nonzero(lit), strict=True):
        if seen[start]:
            continue
        stack, pixels = [start], []
        seen[start] = True
        while stack:
            row, column = stack.pop()
            pixels.append((row, column))
            for d_row in (-1, 0, 1):
                for d_column in (-1, 0, 1):
                    near = (row + d_row, column + d_column)
                    if 0 <= near[0] < lit.shape[0] and 0 <= near[1] < lit.shape[1] and lit[near] and not seen[near]:
                        seen[near] = True
                        stack.append(near)
        rows, columns = np.array(pixels).T
        weights = linear[rows, columns]
        total = weights.sum()
        centroids.append((np.sum(weights * (columns + 0.5)) / total, np.sum(weights * (rows + 0.5)) / total))
    return np.array(centroids)


@dataclass(frozen=True)
class ProbeCase:
    """One camera setting to check against a render."""

    render: dict  # scene.render settings over 64x48 at 100%, square pixels
    camera: dict  # camera data settings over a 35 mm lens, 36x24 mm sensor, AUTO fit
    eye: tuple[float, float, float]  # the camera looks from here at the origin
    roll: float = 0.0
    own_resolution: tuple[int, int] | None = None  # the camera's fieldwork_resolution


PORTRAIT = dict(resolution_x=48, resolution_y=64)
REPROJECTION_CASES = {
    "landscape AUTO shift": ProbeCase({}, dict(shift_x=0.08, shift_y=-0.06), (1.1, 2.1, 0.6)),
    "portrait AUTO shift": ProbeCase(PORTRAIT, dict(shift_x=-0.07, shift_y=0.09), (1.0, 2.3, 0.3), roll=0.2),
    "landscape HORIZONTAL": ProbeCase({}, dict(sensor_fit="HORIZONTAL", shift_x=0.05, shift_y=0.05), (-0.7, -2.3, 0.6)),
    "portrait HORIZONTAL": ProbeCase(PORTRAIT, dict(sensor_fit="HORIZONTAL", lens=28.0), (-1.1, -2.1, 0.8), roll=-0.3),
    "landscape VERTICAL": ProbeCase({}, dict(sensor_fit="VERTICAL", lens=30.0), (-0.7, -2.4, 0.7)),
    "portrait VERTICAL shift": ProbeCase(
        PORTRAIT, dict(sensor_fit="VERTICAL", sensor_height=30.0, shift_x=0.06, shift_y=-0.04), (0.9, 2.3, 0.3)
    ),
    "50% of 128x96": ProbeCase(
        dict(resolution_x=128, resolution_y=96, resolution_percentage=50),
        dict(shift_x=0.05, shift_y=0.03),
        (-0.4, -2.5, -0.2),
        roll=0.1,
    ),
    "pixel aspect 2:1": ProbeCase(dict(pixel_aspect_x=2.0), dict(shift_x=0.04), (0.4, 2.7, -0.2)),
    "pixel aspect 1:1.5 VERTICAL": ProbeCase(
        dict(resolution_x=48, resolution_y=48, pixel_aspect_y=1.5),
        dict(sensor_fit="VERTICAL", shift_y=0.05),
        (-0.4, -2.6, 0.3),
    ),
    "camera's own resolution 40x56": ProbeCase({}, dict(shift_x=-0.05), (-0.7, -2.3, 0.8), own_resolution=(40, 56)),
}


def set_up_probe(scene: bpy.types.Scene, case: ProbeCase, scale: int = 1) -> bpy.types.Object:
    """Apply a case's render settings (resolutions times ``scale``) and add its camera, "Probe"."""
    scene.render.resolution_x, scene.render.resolution_y = 64 * scale, 48 * scale
    for key, value in case.render.items():
        setattr(scene.render, key, value * scale if key in ("resolution_x", "resolution_y") else value)
    camera = add_camera(scene, "Probe", look_at(case.eye, case.roll), **{"lens": 35.0, **case.camera})
    if case.own_resolution is not None:
        camera.data["fieldwork_resolution"] = [side * scale for side in case.own_resolution]
    return camera


def marker_errors(detected: np.ndarray, projected: np.ndarray) -> np.ndarray:
    """(n_markers,) distance in pixels from each projected marker to the nearest detected blob."""
    return np.linalg.norm(detected[:, None] - projected[None], axis=-1).min(axis=0)
