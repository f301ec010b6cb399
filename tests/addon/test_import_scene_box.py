"""A dataset without a scene box imported into Blender: its box empty is the box the engine chooses."""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.data.dataset import load_dataset
from engine.data.transforms import Frame, Intrinsics, Transforms, write_transforms
from tests.conftest import addon_module
from tests.engine.sphere_dataset import SPHERE_RADIUS, look_at, render_sphere


def off_centre_sphere_dataset(folder: Path, n_views: int = 12, size: int = 24) -> Path:
    """The analytic sphere seen by cameras that look 0.3 above its centre, so it sits low in every image
    (an image read upside down would carve it away), RGBA, no scene box."""
    (folder / "images").mkdir(parents=True)
    focal = 0.5 * size / math.tan(math.radians(50.0) / 2)
    intrinsics = Intrinsics(fl_x=focal, fl_y=focal, cx=size / 2, cy=size / 2, width=size, height=size)
    frames = []
    for index in range(n_views):
        azimuth, z = 2 * math.pi * index / n_views, 0.6 * math.sin(index)
        position = 2.2 * np.array(
            [math.cos(azimuth) * math.sqrt(1 - z * z), math.sin(azimuth) * math.sqrt(1 - z * z), z]
        )
        camera_to_world = look_at(position, np.array([0.0, 0.0, 0.3]))
        rgba = render_sphere(camera_to_world, intrinsics)
        iio.imwrite(folder / f"images/{index}.png", (rgba * 255 + 0.5).astype(np.uint8))
        frames.append(Frame(f"images/{index}.png", camera_to_world.tolist(), intrinsics))
    return write_transforms(folder, Transforms(frames, folder, scene_box=None, has_alpha=True))


def test_a_dataset_without_a_box_comes_in_with_the_engines_box(empty_scene, tmp_path: Path) -> None:
    import bpy

    capture = addon_module("capture")
    dataset = off_centre_sphere_dataset(tmp_path / "sphere")
    capture.import_dataset(empty_scene, dataset)

    empty = bpy.data.objects["sphere scene box"]
    assert empty[capture.BOX_RULE_PROPERTY] == "visual_hull"
    assert "silhouettes" in empty[capture.BOX_REASON_PROPERTY]
    engine_box = load_dataset(dataset).scene_box  # the engine's own path: torch, imageio
    # The cube empty spans -1..1 before scale: location is the centre, scale the half sides (float32).
    assert np.array(empty.location) == pytest.approx(engine_box.center, abs=1e-6)
    assert np.array(empty.scale) * 2 == pytest.approx(engine_box.size, abs=1e-6)
    # The hull's box around the sphere: neither clipped nor the camera box (cameras 2.2 away).
    assert all(lo < -SPHERE_RADIUS for lo in engine_box.minimum)
    assert all(SPHERE_RADIUS < hi < 1.0 for hi in engine_box.maximum)
