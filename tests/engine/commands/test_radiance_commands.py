"""``python -m engine train|render|eval`` as a user runs them: real engine subprocesses on a tiny scene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tests.conftest import REPO
from tests.engine.sphere_dataset import look_at, make_sphere_dataset


def run_engine(*args: str) -> subprocess.CompletedProcess[str]:
    # one thread: on a shared 2-core machine two threads fighting other processes run many times slower
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )


def train_tiny_ngp(tmp_path: Path, steps: int) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A 10-view 12 px sphere and an ngp run of ``steps`` on it: (dataset, run folder, the train command's result)."""
    dataset = make_sphere_dataset(tmp_path / "sphere", n_views=10, size=12)
    run_dir = tmp_path / "run"
    trained = run_engine(
        "train",
        str(dataset),
        "--method",
        "ngp",
        "--steps",
        str(steps),
        "--out",
        str(run_dir),
        "--compile",
        "off",
        "--quiet",
    )
    assert trained.returncode == 0, trained.stderr
    return dataset, run_dir, trained


def test_train_render_eval(tmp_path: Path) -> None:
    _, run_dir, trained = train_tiny_ngp(tmp_path, steps=30)
    result = json.loads(trained.stdout)
    assert result["step"] == 30 and [view["frame"] for view in result["views"]] == [4]
    assert {"config.json", "checkpoint.pt", "metrics.jsonl", "engine.log"} <= {p.name for p in run_dir.iterdir()}
    assert "new ngp run" in (run_dir / "engine.log").read_text()

    evaluated = run_engine("eval", str(run_dir), "--device", "cpu")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["psnr"] == result["psnr"]

    rendered = run_engine("render", str(run_dir), "--camera", "3", "--out", str(tmp_path / "renders"))
    assert rendered.returncode == 0, rendered.stderr
    rgb = iio.imread(tmp_path / "renders" / "frame_3_rgb.png")
    assert rgb.shape == (12, 12, 3)
    depth = np.load(tmp_path / "renders" / "frame_3_depth.npy")
    assert depth.shape == (12, 12) and np.isfinite(depth).all()
    again = run_engine("render", str(run_dir), "--camera", "3", "--out", str(tmp_path / "renders"))
    assert again.returncode == 2 and "already exist" in again.stderr  # never overwrites silently

    camera = {"camera_to_world": look_at(np.array([0.0, -2.0, 0.5]), np.zeros(3)).tolist(), "fl_x": 8, "w": 6, "h": 4}
    (tmp_path / "side.json").write_text(json.dumps(camera))
    from_json = run_engine("render", str(run_dir), "--camera", str(tmp_path / "side.json"), "--out", str(tmp_path))
    assert from_json.returncode == 0, from_json.stderr
    assert iio.imread(tmp_path / "side_opacity.png").shape == (4, 6)


def test_bad_dataset_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))
    completed = run_engine("train", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "1")
    assert completed.returncode == 2
    assert "transforms.json" in completed.stderr and "frames" in completed.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_texture_is_coloured_from_the_images_and_from_the_field_once_they_are_gone(tmp_path: Path) -> None:
    dataset, run_dir, _ = train_tiny_ngp(tmp_path, steps=40)

    def texture(name: str, *options: str) -> tuple[np.ndarray, str]:
        out = tmp_path / f"{name}.ply"
        completed = run_engine(
            "extract",
            str(run_dir),
            "--resolution",
            "32",
            "--level",
            "1",
            "--texture",
            "256",
            "--out",
            str(out),
            *options,
        )
        assert completed.returncode == 0, completed.stderr
        return iio.imread(out.with_suffix(".png")), completed.stderr

    automatic, _ = texture("auto")
    from_views, _ = texture("views", "--colour-from", "views")
    from_field, _ = texture("field", "--colour-from", "field")
    assert np.array_equal(automatic, from_views), "a texture comes from the training images by default"
    assert not np.array_equal(from_views, from_field)
    dataset.parent.rename(tmp_path / "moved")  # the images are gone: the field colours the texture, and says so
    fallback, stderr = texture("fallback")
    # (the mesh is not as before either: without the cameras unseen space is not filled)
    assert np.array_equal(fallback, texture("field-without-images", "--colour-from", "field")[0])
    assert "training images cannot be read" in stderr + (run_dir / "engine.log").read_text()
