"""The trainer on a tiny analytic scene (16x16 renders of a coloured sphere), on CPU, without torch.compile
(its first compilation alone would take longer than these tests)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.transforms import Intrinsics
from engine.fields.base import MethodContext
from engine.fields.nerf import NerfModel
from engine.mesh.cleanup import face_components
from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer
from engine.methods.nerf import NerfConfig
from engine.methods.ngp import NgpConfig
from engine.train.config import TrainConfig
from engine.train.trainer import Trainer
from tests.engine.sphere_dataset import look_at, make_sphere_dataset

# A small hash table (2^14 rows) keeps the optimiser step cheap; the scene needs no more.
TINY_NGP = NgpConfig(log2_table_size=14)
TINY_NERF = NerfConfig(hidden_width=32, coarse_samples=16, fine_samples=16)


TINY_SETTINGS = {"ngp": TINY_NGP, "nerf": TINY_NERF}
CPU = MethodContext(device=torch.device("cpu"), finest_resolution=64)


def tiny_config(**changes: object) -> TrainConfig:
    values: dict = {"steps": 150, "batch_rays": 256, "warmup_steps": 20, "compile": "off", "log_every": 10}
    values.update(changes)
    method = str(values.get("method", "ngp"))
    values.setdefault("settings", TINY_SETTINGS.get(method))
    return TrainConfig(**values)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sphere_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sphere_dataset(tmp_path_factory.mktemp("sphere"))


def test_ngp_training_raises_held_out_psnr_above_a_floor(sphere_dataset: Path, tmp_path: Path) -> None:
    trainer = Trainer.create(sphere_dataset, tmp_path / "run", tiny_config())
    before = trainer.evaluate()["psnr"]
    while not trainer.is_done():
        stats = trainer.train_step()
    assert trainer.step == 150 and stats.figures["rays_per_second"] > 0
    after = trainer.evaluate()
    # untrained: a grey haze over white, about 10 dB. 150 steps on 21 views of 16x16 pixels fit the training
    # views far better (about 27 dB) than they generalise, but the held-out views must clearly improve.
    assert after["psnr"] > 18.0, after
    assert after["psnr"] > before + 6.0
    assert [view["frame"] for view in after["views"]] == [4, 12, 20]  # the dataset's "test" split
    assert all(0.0 < view["ssim"] <= 1.0 for view in after["views"])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["event"] for record in records].count("train") == 15
    assert records[-1]["event"] == "eval" and records[-1]["step"] == 150

    # world-space queries: dense inside the sphere (radius 0.5), nothing outside the box's cube
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    density = trainer.query_density(points)
    assert density[0] > 10.0 and density[1] == 0.0
    with_colour, colour = trainer.query_radiance(points, np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -2.0]]))
    np.testing.assert_allclose(with_colour, density, rtol=1e-5)
    assert colour.shape == (2, 3) and np.all((colour >= 0) & (colour <= 1))

    # depth comes back in world units along the viewing axis: the sphere's front is 2.2 - 0.5 = 1.7 away, its
    # centre 2.2 (after so few steps the density is still spread through the sphere's inside)
    intrinsics = Intrinsics(fl_x=20.0, fl_y=20.0, cx=4.0, cy=4.0, width=8, height=8)
    rendered = trainer.render(look_at(np.array([0.0, -2.2, 0.0]), np.zeros(3)), intrinsics)
    assert rendered.opacity[4, 4] > 0.9
    assert 1.6 < rendered.depth[4, 4] < 2.2


def test_a_run_extracts_a_solid_mesh_and_still_extracts_without_its_dataset(
    sphere_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = Trainer.create(sphere_dataset, tmp_path / "run", tiny_config())
    while not trainer.is_done():
        trainer.train_step()
    trainer.save_checkpoint()
    reloaded = Trainer.from_run(tmp_path / "run")
    frames = reloaded.training_frames()
    assert len(frames) == 21 and all(frame.split == "train" for frame in frames)
    assert reloaded._dataset is None, "the cameras are read without the images"

    settings = ExtractSettings(resolution=32, colour=False)
    result = extract_mesh_from_trainer(reloaded, settings)
    # The surface around the sphere of radius 0.5 is nearly all of the mesh (150 steps leave a few specks).
    sizes = np.bincount(face_components(result.mesh))
    main = result.mesh.submesh(face_components(result.mesh) == sizes.argmax())
    assert sizes.max() > 0.9 * sizes.sum()
    radii = np.linalg.norm(main.vertices, axis=1)
    assert 0.3 < np.median(radii) < 0.7

    assert result.unseen_points_filled > 0
    # The CLI's --keep-unseen leaves the field as it is.
    options = ["--resolution", "32", "--no-colour", "--keep-unseen", "--json", "--out", str(tmp_path / "kept.ply")]
    completed = subprocess.run(
        [sys.executable, "-m", "engine", "extract", str(tmp_path / "run"), *options],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1])["unseen_points_filled"] == 0

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["dataset"] = str(tmp_path / "moved-away")
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="engine.mesh.extract"):
        unfilled = extract_mesh_from_trainer(Trainer.from_run(tmp_path / "run"), settings)
    assert "unseen space is not filled" in caplog.text and str(tmp_path / "moved-away") in caplog.text
    assert unfilled.unseen_points_filled == 0 and unfilled.mesh.n_faces > 0


def test_resume_gives_the_same_parameters(sphere_dataset: Path, tmp_path: Path) -> None:
    straight = Trainer.create(sphere_dataset, tmp_path / "straight", tiny_config(steps=6))
    while not straight.is_done():
        straight.train_step()

    first = Trainer.create(sphere_dataset, tmp_path / "resumed", tiny_config(steps=3))
    while not first.is_done():
        first.train_step()
    checkpoint = first.save_checkpoint()
    assert checkpoint.name == "checkpoint.pt" and not list(checkpoint.parent.glob("*.tmp"))
    resumed = Trainer.create(sphere_dataset, tmp_path / "resumed", tiny_config(steps=6))
    assert resumed.step == 3
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    while not resumed.is_done():
        resumed.train_step()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name

    resumed.save_checkpoint()
    reloaded = Trainer.from_run(tmp_path / "resumed")
    assert reloaded.step == 6
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, reloaded.model.state_dict()[name]), name


@pytest.mark.parametrize("method", ["ngp", "nerf"])
def test_a_camera_that_sees_nothing_of_the_box_renders_background(
    method: str, sphere_dataset: Path, tmp_path: Path
) -> None:
    trainer = Trainer.create(sphere_dataset, tmp_path / method, tiny_config(method=method, steps=2))
    while not trainer.is_done():
        stats = trainer.train_step()
    assert np.isfinite(stats.loss)
    # outside the box, looking away from it
    camera_to_world = look_at(np.array([0.0, 3.0, 0.0]), np.array([0.0, 6.0, 0.0]))
    rendered = trainer.render(camera_to_world, Intrinsics(8.0, 8.0, 4.0, 4.0, 8, 8))
    for image in (rendered.rgb, rendered.depth, rendered.opacity):
        assert np.isfinite(image).all()
    assert np.array_equal(rendered.rgb, np.ones((8, 8, 3), np.float32))  # the white evaluation background
    assert np.array_equal(rendered.opacity, np.zeros((8, 8), np.float32))


def test_nerf_is_the_papers_network() -> None:
    model = NerfModel(NerfConfig(), CPU)
    trunk = model.coarse.trunk
    # gamma(x) with L=10: 3 + 3 * 2 * 10 = 63 inputs; gamma(d) with L=4: 27
    assert len(trunk) == 8 and trunk[0].in_features == 63
    assert all(layer.out_features == 256 for layer in trunk)
    # the input is concatenated again after the fifth layer
    assert [layer.in_features for layer in trunk[1:]] == [256, 256, 256, 256, 256 + 63, 256, 256]
    assert model.coarse.colour_layer.in_features == 256 + 27 and model.coarse.colour_layer.out_features == 128
    assert model.coarse is not model.fine
    # A skip after the last layer would leave nothing to take the wider input.
    with pytest.raises(ValueError, match="skip_layer < hidden_layers - 1, got skip_layer 2"):
        NerfModel(NerfConfig(hidden_layers=3, skip_layer=2), CPU)


def test_bad_config_values_are_named() -> None:
    with pytest.raises(ValueError, match="unknown method 'nerff'; choose one of ngp, nerf"):
        TrainConfig(method="nerff")
    with pytest.raises(ValueError, match="batch_rays must be >= 0 .*, got -5"):
        TrainConfig(batch_rays=-5)
    with pytest.raises(ValueError, match="minutes must be a finite number >= 0 .*, got nan"):
        TrainConfig(minutes=float("nan"))
    with pytest.raises(ValueError, match="unknown train config key 'stepz'"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="ngp setting 'levels' must be a whole number, got '16'"):
        TrainConfig.from_dict({"method": "ngp", "settings": {"levels": "16"}})
    with pytest.raises(ValueError, match="train config key 'seed' must be a whole number, got 'abc'"):
        TrainConfig.from_dict({"seed": "abc"})


def test_learning_rate_warms_up_then_decays_to_the_final_rate(sphere_dataset: Path, tmp_path: Path) -> None:
    trainer = Trainer.create(sphere_dataset, tmp_path / "run", tiny_config(steps=110, warmup_steps=10))
    assert trainer.learning_rate(1e-2, 1e-4) == pytest.approx(1e-3)  # step 0: 1/10 of the way up
    trainer.step = 10
    assert trainer.learning_rate(1e-2, 1e-4) == pytest.approx(1e-2)
    trainer.step = 60  # half way through the decay: the geometric mean of the two rates
    assert trainer.learning_rate(1e-2, 1e-4) == pytest.approx(1e-3)
    trainer.step = 110
    assert trainer.learning_rate(1e-2, 1e-4) == pytest.approx(1e-4)
