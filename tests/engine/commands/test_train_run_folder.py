"""``python -m engine train`` and the run-folder rules (issue 17), as a user meets them: real engine
subprocesses on a tiny sphere dataset, CPU, a few steps each.

These need train.py/trainer.py to call engine/train/run_folder.py (the lead wires it): until then they
are strict expected failures, so the first run after the wiring that passes them says to drop the mark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.train.checkpoint import load_checkpoint
from engine.train.run_folder import LOCK_FILE_NAME
from tests.conftest import REPO
from tests.engine.sphere_dataset import make_sphere_dataset

TINY = [
    "--method",
    "ngp",
    "--set",
    "log2_table_size=14",
    "--compile",
    "off",
    "--batch-rays",
    "64",
    "--device",
    "cpu",
    "--quiet",
]
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def train(dataset: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "train", str(dataset), "--out", str(out), *TINY, *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env=ENVIRONMENT,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sphere_dataset(tmp_path_factory.mktemp("sphere") / "dataset", n_views=4, size=8)


def test_the_users_folder_with_a_config_json_is_refused_and_untouched(dataset: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}\n')
    (mine / "NOTES.txt").write_text("mine\n")
    before = snapshot(mine)
    completed = train(dataset, mine, "--steps", "2")
    assert completed.returncode == 2, completed.stderr
    assert f"{mine / 'config.json'} is not a Fieldwork run's config" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert snapshot(mine) == before


def test_a_checkpoint_without_its_config_is_refused_not_restarted(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(dataset, run_dir, "--steps", "3").returncode == 0
    (run_dir / "config.json").unlink()
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()
    completed = train(dataset, run_dir, "--steps", "2")
    assert completed.returncode == 2 and f"{run_dir / 'checkpoint.pt'} has no config.json" in completed.stderr
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint


def test_resuming_on_another_dataset_names_both_unless_allowed(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(dataset, run_dir, "--steps", "3").returncode == 0
    other = make_sphere_dataset(tmp_path / "other", n_views=5, size=8)
    completed = train(other, run_dir, "--steps", "5")
    assert completed.returncode == 2
    assert f"was trained on {dataset.resolve()}, not on {other.resolve()}" in completed.stderr
    allowed = train(other, run_dir, "--steps", "5", "--resume-other-dataset")
    assert allowed.returncode == 0, allowed.stderr
    # config.json names the dataset the run now trains on, which eval/render/extract read
    assert Path(json.loads((run_dir / "config.json").read_text())["dataset"]).resolve() == other.resolve()


def test_another_method_does_not_resume_a_run_silently(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert train(dataset, run_dir, "--steps", "2").returncode == 0
    kept = ("checkpoint.pt", "config.json", "metrics.jsonl")
    before = [(run_dir / name).read_bytes() for name in kept]
    completed = train(dataset, run_dir, "--steps", "3", "--method", "neus")  # the last --method wins
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert f"{run_dir} holds a ngp run; it cannot resume as neus (pass --method ngp" in completed.stderr
    assert [(run_dir / name).read_bytes() for name in kept] == before


def test_an_out_that_is_a_file_is_a_message(dataset: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    completed = train(dataset, notes, "--steps", "2")
    assert completed.returncode == 2 and f"cannot write {notes}: it is a file, not a folder" in completed.stderr
    assert notes.read_text() == "mine"


@pytest.mark.parametrize(("option", "value"), [("--batch-rays", "0"), ("--minutes", "nan"), ("--minutes", "inf")])
def test_numbers_that_mean_nothing_are_refused(dataset: Path, tmp_path: Path, option: str, value: str) -> None:
    completed = train(dataset, tmp_path / "run", option, value, "--steps", "2")  # a bug must not train long
    key = option.removeprefix("--").replace("-", "_")
    assert completed.returncode == 2 and (key in completed.stderr or option in completed.stderr), completed.stderr
    assert not (tmp_path / "run" / "config.json").exists()


def test_an_image_outside_the_dataset_needs_allow_outside_paths(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    document = json.loads(dataset.read_text())
    for frame in document["frames"]:
        frame["file_path"] = str(dataset.parent / frame["file_path"])  # absolute: outside "copy"
    (copy / "transforms.json").write_text(json.dumps(document))
    refused = train(copy, tmp_path / "run", "--steps", "2")
    assert refused.returncode == 2 and "frame 0" in refused.stderr and "leaves the dataset" in refused.stderr
    assert train(copy, tmp_path / "run", "--steps", "2", "--allow-outside-paths").returncode == 0


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_loadable_checkpoint_at_the_step_reached_and_a_rival_is_refused(
    dataset: Path, tmp_path: Path, signal_number: int
) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "train", str(dataset), "--out", str(run_dir), *TINY, "--minutes", "10"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENVIRONMENT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run_dir / "config.json").exists():  # training has begun
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.2)
        assert (run_dir / LOCK_FILE_NAME).read_text() == f"pid {process.pid}"
        rival = train(dataset, run_dir, "--steps", "2")
        assert rival.returncode == 2 and f"in use by engine pid {process.pid}" in rival.stderr
        time.sleep(3)  # some steps
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in stderr, stderr
    assert process.returncode in (0, 128 + signal_number), stderr
    payload = load_checkpoint(run_dir / "checkpoint.pt", torch.device("cpu"))
    assert payload["step"] >= 1
