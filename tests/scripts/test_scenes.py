"""The scene builder everyone's tests and benchmarks use: real bpy, one tiny real Cycles render."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="scene builders need Blender as a module (bpy)")

from scripts.scenes import build_object_scene, save_ground_truth_mesh  # noqa: E402


def test_transformed_cube_lands_where_asked_and_every_camera_looks_at_it() -> None:
    info = build_object_scene(
        camera_count=8,
        resolution=16,
        layout="sphere",
        shape="cube",
        object_location=(1.0, 2.0, 0.5),
        object_scale=(0.5, 0.5, 0.5),
    )
    # The cube is 2 units across, scaled by 0.5 around (1, 2, 0.5).
    np.testing.assert_allclose(info.bounds_min, (0.5, 1.5, 0.0), atol=1e-6)
    np.testing.assert_allclose(info.bounds_max, (1.5, 2.5, 1.0), atol=1e-6)
    assert info.vertices.shape == (8, 3)
    assert info.triangles.shape == (12, 3)
    assert len(info.cameras) == 8
    center = np.array(info.center)
    for camera in info.cameras:
        camera_to_world = np.array(camera.matrix_world)
        position = camera_to_world[:3, 3]
        looking = -camera_to_world[:3, 2]  # cameras look down their local -Z
        towards_object = (center - position) / np.linalg.norm(center - position)
        assert np.dot(looking, towards_object) == pytest.approx(1.0, abs=1e-5), camera.name
        assert np.linalg.norm(center - position) == pytest.approx(info.camera_distance, rel=1e-5)


def test_ring_layout_renders_the_object_in_transparent_rgba(tmp_path: Path) -> None:
    info = build_object_scene(camera_count=3, resolution=16, layout="ring", samples=2)
    elevations = sorted(
        math.degrees(math.asin((camera.matrix_world.translation.z - info.center[2]) / info.camera_distance))
        for camera in info.cameras
    )
    np.testing.assert_allclose(elevations, (10.0, 30.0, 50.0), atol=1e-3)
    scene = info.scene
    assert scene.render.film_transparent
    assert scene.view_settings.view_transform == "Standard"
    scene.render.filepath = str(tmp_path / "view.png")
    bpy.ops.render.render(write_still=True)
    import imageio.v3 as iio

    pixels = iio.imread(tmp_path / "view.png")
    assert pixels.shape == (16, 16, 4)
    assert pixels[0, 0, 3] == 0, "the corner is background: transparent"
    assert pixels[8, 8, 3] == 255, "the centre is the object: opaque"


def test_ground_truth_mesh_written_as_binary_ply(tmp_path: Path) -> None:
    info = build_object_scene(camera_count=1, resolution=8, shape="cube")
    path = save_ground_truth_mesh(info, tmp_path / "truth.ply")
    data = path.read_bytes()
    header, body = data.split(b"end_header\n", 1)
    assert b"element vertex 8" in header and b"element face 12" in header
    vertices = np.frombuffer(body[: 8 * 12], dtype="<f4").reshape(8, 3)
    np.testing.assert_allclose(vertices, info.vertices, atol=1e-6)
    assert len(body) == 8 * 12 + 12 * 13
    with pytest.raises(ValueError, match="truth.stl"):
        save_ground_truth_mesh(info, tmp_path / "truth.stl")


def test_the_fine_checker_scene_shows_both_of_its_colours(tmp_path: Path) -> None:
    info = build_object_scene(camera_count=1, resolution=32, layout="ring", samples=2, texture="checker")
    assert info.object.data.materials[0].name.startswith("Fieldwork Fine Checker")
    info.scene.render.filepath = str(tmp_path / "view.png")
    bpy.ops.render.render(write_still=True)
    import imageio.v3 as iio

    pixels = iio.imread(tmp_path / "view.png").astype(np.int64)
    opaque = pixels[pixels[..., 3] == 255]
    orange = (opaque[:, 0] > opaque[:, 2]).mean()
    blue = (opaque[:, 2] > opaque[:, 0]).mean()
    assert len(opaque) > 100 and orange > 0.2 and blue > 0.2, (len(opaque), orange, blue)
    with pytest.raises(ValueError, match="texture must be one of"):
        build_object_scene(camera_count=1, resolution=8, texture="plaid")  # type: ignore[arg-type]
