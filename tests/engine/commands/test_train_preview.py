"""``train --preview-view``: a shape method's surface, shaded, in RUN/preview.png while it trains, from a
view file that is read again when it changes; bad view files and methods without a picture are named."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.train.config import TrainConfig
from engine.train.preview_file import PreviewFile, read_view
from engine.train.trainer import Trainer
from tests.engine.shape_fixtures import write_ellipsoids
from tests.engine.train.test_shape_methods import TINY

REPO = Path(__file__).resolve().parents[3]
BLOB_CENTRE = (1.0, -0.5, 0.25)  # write_ellipsoids' first shape


def write_view(path: Path, eye: tuple[float, float, float], size: int = 48) -> Path:
    """A set_view header: a camera at ``eye`` looking down -Z (Blender's camera convention)."""
    camera_to_world = np.eye(4)
    camera_to_world[:3, 3] = eye
    header = {
        "type": "set_view",
        "camera_to_world": camera_to_world.tolist(),
        "fl_x": 0.9 * size,
        "fl_y": 0.9 * size,
        "cx": size / 2,
        "cy": size / 2,
        "width": size,
        "height": size,
    }
    path.write_text(json.dumps(header))
    return path


def above_blob(path: Path, size: int = 48) -> Path:
    return write_view(path, (BLOB_CENTRE[0], BLOB_CENTRE[1], BLOB_CENTRE[2] + 3.0), size)


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ellipsoids(tmp_path_factory.mktemp("blob") / "shapes", count=1)


def test_the_preview_follows_the_view_file(blob: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = TrainConfig(method="igr", steps=20, warmup_steps=0, compile="off", settings=TINY["igr"])
    trainer = Trainer.create(blob, tmp_path / "run", config)
    for _ in range(20):
        trainer.train_step()
    view = above_blob(tmp_path / "view.json")
    preview = PreviewFile(view, tmp_path / "run" / "preview.png", min_interval_s=0.0, max_side=48)
    assert preview.maybe_write(trainer)
    picture = iio.imread(tmp_path / "run" / "preview.png")
    assert picture.shape == (48, 48, 4)  # the first preview at the first side, min(64, max_side)
    middle = picture.shape[0] // 2
    assert picture[middle, middle, 3] == 255 and picture[middle, middle, 0] > 40  # the surface, lit
    assert picture[0, 0, 3] == 0 and picture[-1, -1, 3] == 0  # nothing in the corners
    # the view file rewritten to look away from the shape: the next preview is empty
    write_view(view, (BLOB_CENTRE[0] + 30.0, BLOB_CENTRE[1], BLOB_CENTRE[2]))
    assert _written_within(preview, trainer, seconds=10.0)  # a changed view is due once the last render's time passed
    assert iio.imread(tmp_path / "run" / "preview.png")[..., 3].max() == 0
    # a rewrite that does not parse keeps the last good view, with a warning naming the file
    view.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert preview.maybe_write(trainer, final=True)
    assert str(view) in caplog.text
    assert preview.view.camera_to_world[0, 3] == pytest.approx(BLOB_CENTRE[0] + 30.0)


def _written_within(preview: PreviewFile, trainer: Trainer, seconds: float) -> bool:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if preview.maybe_write(trainer):
            return True
        time.sleep(0.02)
    return False


def test_a_view_file_that_is_not_a_view_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "view.json"
    bad.write_text(json.dumps({"type": "stop"}))
    with pytest.raises(ValueError, match=r"view\.json.*not set_view"):
        read_view(bad)
    with pytest.raises(ValueError, match="cannot read the preview view"):
        read_view(tmp_path / "missing.json")
    write_view(bad, (0.0, 0.0, 1.0))
    header = json.loads(bad.read_text())
    header["width"] = 0
    bad.write_text(json.dumps(header))
    with pytest.raises(ValueError, match="must be positive"):
        read_view(bad)


def _train(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "train", *arguments, "--quiet", "--no-eval", "--device", "cpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )


def test_train_writes_a_preview_of_the_surface(blob: Path, tmp_path: Path) -> None:
    view = above_blob(tmp_path / "view.json", size=32)
    settings = [argument for key, value in TINY["igr"].items() for argument in ("--set", f"{key}={value}")]
    done = _train(
        str(blob), "--method", "igr", "--steps", "10", "--out", str(tmp_path / "run"), *settings,
        "--preview-view", str(view), "--preview-every", "0", "--preview-size", "32",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    picture = iio.imread(tmp_path / "run" / "preview.png")
    assert picture.shape == (32, 32, 4) and picture[16, 16, 3] == 255  # the final preview, at full size
    # a missing view file is named before anything trains
    missing = _train(
        str(blob), "--method", "igr", "--steps", "1", "--out", str(tmp_path / "other"),
        "--preview-view", str(tmp_path / "nowhere.json"),
    )  # fmt: skip
    assert missing.returncode == 2 and "nowhere.json" in missing.stderr
    assert not (tmp_path / "other" / "checkpoint.pt").exists()
