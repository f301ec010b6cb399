"""``train --method giraffe|graf``, ``sample`` and ``render-layout`` as a user runs them: real engine
subprocesses on a tiny numpy-drawn collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import REPO
from tests.engine.tiny_collection import write_tiny_collection


def run_engine(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env=environment,
    )  # fmt: skip


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_collection(tmp_path_factory.mktemp("collection") / "tiny", count=8)


@pytest.mark.parametrize("method", ["giraffe", "graf"])
def test_two_steps_resume_and_sample_grids(collection: Path, tmp_path: Path, method: str) -> None:
    run_dir = tmp_path / "run"
    common = [
        "--method",
        method,
        "--out",
        str(run_dir),
        "--quiet",
        "--set",
        "batch_size=4",
        "--set",
        "sample_every=2",
        "--set",
        "sample_grid=4",
    ]
    trained = run_engine("train", str(collection), "--steps", "2", *common)
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["step"] == 2
    grid = iio.imread(run_dir / "samples" / "step_0000002.png")
    assert grid.shape == (2 * 33 - 1, 2 * 33 - 1, 3)  # 4 images of 32^2 with 1-pixel gaps
    config = json.loads((run_dir / "config.json").read_text())
    assert config["family"] == "collections" and config["data"]["width"] == 32
    assert config["data"]["prior"]["object_count"] == {"min": 1, "max": 2}
    # resume: the checkpoint (both optimisers, the EMA generator) carries on to step 3
    resumed = run_engine("train", str(collection), "--steps", "3", *common)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["step"] == 3
    assert "resumed" in (run_dir / "engine.log").read_text()
    import torch

    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert set(payload["optimizers"]) == {"discriminator", "generator"}
    assert any(key.startswith("generator_ema.") for key in payload["model"])


def test_sample_and_render_layout(collection: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trained = run_engine(
        "train", str(collection), "--method", "giraffe", "--steps", "1", "--out", str(run_dir), "--quiet",
        "--set", "batch_size=2", "--set", "sample_every=0",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    layout_path = tmp_path / "layout.json"
    sampled = run_engine("sample", str(run_dir), "--out", str(layout_path), "--seed", "4", "--objects", "2")
    assert sampled.returncode == 0, sampled.stderr
    layout = json.loads(layout_path.read_text())
    assert [obj["name"] for obj in layout["objects"]] == ["object_0", "object_1"]
    assert all(-1.5 <= obj["translation"][0] <= 1.5 for obj in layout["objects"])
    # another camera: the layout's, twice the resolution (the colour is resampled, alphas rendered at 64^2)
    camera = {**layout["camera"], "w": 64, "h": 64, "fl_x": layout["camera"]["fl_x"] * 2,
              "fl_y": layout["camera"]["fl_y"] * 2, "cx": 32.0, "cy": 32.0}  # fmt: skip
    (tmp_path / "camera.json").write_text(json.dumps(camera))
    image = tmp_path / "view.png"
    rendered = run_engine(
        "render-layout", str(run_dir), str(layout_path), "--camera", str(tmp_path / "camera.json"), "--out", str(image),
        "--alphas", "--depth", str(tmp_path / "depth.npy"),
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert iio.imread(image).shape == (64, 64, 3)
    alphas = json.loads(rendered.stdout)["alphas"]
    assert len(alphas) == 2 and iio.imread(alphas[0]).shape == (64, 64)
    depth = np.load(tmp_path / "depth.npy")
    assert depth.shape == (64, 64) and np.isfinite(depth).all()
    # a broken layout is one line naming the field
    layout["objects"][1]["scale"] = "big"
    (tmp_path / "bad.json").write_text(json.dumps(layout))
    refused = run_engine("render-layout", str(run_dir), str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.png"))
    assert refused.returncode == 2
    assert "objects[1].scale" in refused.stderr and not (tmp_path / "x.png").exists()
