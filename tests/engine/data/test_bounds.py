"""The scene box of datasets without one: the visual hull of the silhouettes, the viewing axes' convergence,
the camera box; how loading and ``python -m engine train --scene-box`` use them."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.bounds import (
    HULL_GRID,
    HULL_PAD_FRACTION,
    BoxChoice,
    EmptyHullError,
    camera_box,
    choose_scene_box,
    project,
    scene_box_from_values,
    visual_hull_box,
)
from engine.data.dataset import Cameras, load_dataset, project_points
from engine.data.transforms import Intrinsics, SceneBox, read_transforms, write_transforms
from engine.train.trainer import RunInfo
from tests.engine.commands.test_radiance_commands import run_engine
from tests.engine.sphere_dataset import SPHERE_RADIUS, look_at, make_sphere_dataset, render_sphere


def sphere_views(count: int, size: int, distance: float = 2.2, seed: int = 0) -> tuple[np.ndarray, Intrinsics]:
    """(count, 4, 4) cameras at random directions around the origin looking at it, 40 degree field of view."""
    focal = 0.5 * size / math.tan(math.radians(40.0) / 2)
    intrinsics = Intrinsics(fl_x=focal, fl_y=focal, cx=size / 2, cy=size / 2, width=size, height=size)
    directions = np.random.default_rng(seed).normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return np.stack([look_at(distance * direction, np.zeros(3)) for direction in directions]), intrinsics


def without_box(transforms_path: Path) -> Path:
    """Rewrite a dataset with no scene box, as a dataset made elsewhere would come."""
    transforms = read_transforms(transforms_path)
    transforms.scene_box = None
    return write_transforms(transforms_path.parent, transforms)


def test_projection_matches_the_torch_one() -> None:
    matrices, intrinsics = sphere_views(3, 20)
    intrinsics = Intrinsics(18.0, 21.0, 9.0, 11.5, 20, 24)  # off-centre principal point, non-square pixels
    points = np.random.default_rng(1).uniform(-0.7, 0.7, size=(50, 3))
    cameras = Cameras.from_intrinsics(torch.from_numpy(matrices), [intrinsics] * 3)
    for index in range(3):
        x, y, depth = project_points(cameras, index, torch.from_numpy(points).float())
        expected = torch.stack([x, y, depth], dim=-1).numpy()
        assert project(matrices[index], intrinsics, points) == pytest.approx(expected, abs=1e-4)


def test_visual_hull_box_of_a_sphere_is_within_a_cell_of_its_box() -> None:
    matrices, intrinsics = sphere_views(20, 64)
    alpha = [render_sphere(matrix, intrinsics)[..., 3] for matrix in matrices]
    choice = choose_scene_box(matrices, [intrinsics] * 20, alpha)
    assert choice.rule == "visual_hull" and "20 silhouettes" in choice.reason
    low, high = np.array(choice.box.minimum), np.array(choice.box.maximum)
    # The carving is conservative: the sphere is never clipped.
    assert (low < -SPHERE_RADIUS).all() and (high > SPHERE_RADIUS).all()
    # The padding (5% of the hull's largest side) comes off; then every face is within one cell of the
    # coarse grid over the cameras' region (cameras at 2.2: a region about 4.4 wide) of the sphere's face.
    pad = HULL_PAD_FRACTION * (2 * SPHERE_RADIUS) / (1 + 2 * HULL_PAD_FRACTION)
    coarse_cell = max(camera_box(matrices).size) / HULL_GRID
    assert np.abs(low + pad + SPHERE_RADIUS).max() < coarse_cell
    assert np.abs(high - pad - SPHERE_RADIUS).max() < coarse_cell


def test_silhouettes_that_never_overlap_fall_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    matrices, intrinsics = sphere_views(20, 32)
    # Each view sees a sphere somewhere else: its camera moved, so the sphere sits 1.5 from the origin.
    offsets = 1.5 * np.random.default_rng(2).normal(size=(20, 3))
    alpha = []
    for matrix, offset in zip(matrices, offsets, strict=True):
        moved = matrix.copy()
        moved[:3, 3] -= offset
        alpha.append(render_sphere(moved, intrinsics)[..., 3])
    with pytest.raises(EmptyHullError, match="never overlap"):
        visual_hull_box(matrices, [intrinsics] * 20, [a > 0.05 for a in alpha], camera_box(matrices))
    with caplog.at_level(logging.WARNING, logger="engine.data.bounds"):
        choice = choose_scene_box(matrices, [intrinsics] * 20, alpha)
    assert choice.rule == "view_convergence" and "never overlap" in choice.reason
    assert any("never overlap" in r.message and "falling back" in r.message for r in caplog.records)


def test_viewing_axes_converge_on_an_off_centre_point() -> None:
    target = np.array([1.5, -0.75, 0.4])
    directions = np.random.default_rng(3).normal(size=(12, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    distances = np.linspace(2.0, 4.0, 12)
    matrices = np.stack(
        [look_at(target + d * direction, target) for d, direction in zip(distances, directions, strict=True)]
    )
    intrinsics = Intrinsics(fl_x=50.0, fl_y=50.0, cx=40.0, cy=30.0, width=80, height=60)
    choice = choose_scene_box(matrices, [intrinsics] * 12, alpha=None)
    assert choice.rule == "view_convergence" and "no alpha" in choice.reason
    assert np.array(choice.box.center) == pytest.approx(target, abs=1e-9)
    # Half side: the median over views of the wider half width (40 px / 50 px focal) at the view's depth.
    assert choice.box.size[0] / 2 == pytest.approx(np.median(distances) * 40.0 / 50.0, rel=1e-9)


def test_parallel_axes_and_opaque_alpha_fall_back_to_the_camera_box() -> None:
    # A row of cameras all looking down -Y: the axes never meet.
    matrices = np.stack([look_at(np.array([x, 0.0, 0.0]), np.array([x, -5.0, 0.0])) for x in (-1.0, 0.0, 1.0)])
    intrinsics = Intrinsics(10.0, 10.0, 5.0, 5.0, 10, 10)
    choice = choose_scene_box(matrices, [intrinsics] * 3, alpha=[np.ones((10, 10))] * 3)
    assert choice.rule == "camera_box"
    assert "no background pixel" in choice.reason and "nearly parallel" in choice.reason
    assert choice.box == camera_box(matrices)


def test_scene_box_values_are_checked() -> None:
    assert scene_box_from_values([-1, -2, -3, 1, 2, 3]) == SceneBox((-1.0, -2.0, -3.0), (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="--scene-box: miny must be a finite number, got nan"):
        scene_box_from_values([0, math.nan, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="--scene-box: minz 2 must be below maxz 1"):
        scene_box_from_values([0, 0, 2, 1, 1, 1])
    with pytest.raises(ValueError, match="6 numbers"):
        scene_box_from_values([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="rule must be one of"):
        BoxChoice(SceneBox((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), "guess", "")


def test_loading_keeps_a_box_chooses_one_or_takes_an_override(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with_box = make_sphere_dataset(tmp_path / "sphere", n_views=10, size=16)
    assert load_dataset(with_box).scene_box_rule == "dataset"
    bare = without_box(with_box)
    with caplog.at_level(logging.INFO, logger="engine.data.dataset"):
        chosen = load_dataset(bare)
    assert chosen.scene_box_rule == "visual_hull"
    assert any("by rule visual_hull" in record.message for record in caplog.records)
    assert all(lo < -SPHERE_RADIUS for lo in chosen.scene_box.minimum)
    assert all(hi < 1.0 for hi in chosen.scene_box.maximum)  # not the camera box (cameras at 2.2)
    override = SceneBox((-1.0, -1.0, -1.0), (1.0, 1.0, 2.0))
    given = load_dataset(bare, scene_box=override)
    assert given.scene_box == override and given.scene_box_rule == "override"
    assert given.normalization.size == 3.0


def test_train_cli_scene_box_overrides_and_is_saved(tmp_path: Path) -> None:
    dataset = without_box(make_sphere_dataset(tmp_path / "sphere", n_views=6, size=8))
    run_dir = tmp_path / "run"
    common = ["--field", "ngp", "--steps", "2", "--compile", "off", "--quiet", "--batch-rays", "64"]
    flipped_y = ["0", "0", "0", "1", "-1", "1"]
    bad = run_engine("train", str(dataset), "--out", str(run_dir), *common, "--scene-box", *flipped_y)
    assert bad.returncode == 2 and "--scene-box: miny 0 must be below maxy -1" in bad.stderr
    assert not run_dir.exists()

    box = ["-0.7", "-0.8", "-0.9", "0.7", "0.8", "0.9"]
    trained = run_engine("train", str(dataset), "--out", str(run_dir), *common, "--scene-box", *box)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["scene_box"] == {"min": [-0.7, -0.8, -0.9], "max": [0.7, 0.8, 0.9]}
    assert config["scene_box_rule"] == "override"
    assert "by rule override" in (run_dir / "engine.log").read_text()

    # Old configs have no rule: they still read.
    del config["scene_box_rule"], config["scene_box_reason"]
    (tmp_path / "old.json").write_text(json.dumps(config))
    info, _ = RunInfo.read(tmp_path / "old.json")
    assert info.scene_box_rule == "unrecorded" and info.scene_box.maximum == (0.7, 0.8, 0.9)
