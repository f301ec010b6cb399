"""render/extract/eval: bad camera files and unwritable outputs fail at once, naming the file and key,
before a model is loaded or a view rendered; nothing of the user's is touched."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.commands import EXIT_BAD_INPUT
from engine.commands.render import read_camera_json

ZERO_ROTATION = [[0.0, 0.0, 0.0, 0.0]] * 3 + [[0.0, 0.0, 0.0, 1.0]]
POSE = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, -3.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def camera_file(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "camera.json"
    path.write_text(json.dumps({"camera_to_world": POSE, "fl_x": 8, "w": 6, "h": 4, **changes}))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"w": None}, "'w' must be a finite number of pixels, got None"),
        ({"w": "abc"}, "'w' must be a finite number of pixels, got 'abc'"),
        ({"w": 2.5}, "'w' must be a whole number of pixels >= 1, got 2.5"),
        ({"h": 0}, "'h' must be a whole number of pixels >= 1, got 0"),
        ({"fl_x": 1e308}, "fl_x must be at most 1e\\+08 pixels"),
        ({"cx": True}, "'cx' must be a finite number of pixels, got True"),
        ({"camera_to_world": ZERO_ROTATION}, "'camera_to_world' has a zero rotation"),
        ({"camera_to_world": [[1.0, 0.0], [0.0, 1.0]]}, "'camera_to_world' must be a 4x4 list"),
    ],
)
def test_a_bad_camera_json_value_names_the_file_and_the_key(tmp_path: Path, changes: dict, message: str) -> None:
    path = camera_file(tmp_path, **changes)
    with pytest.raises(ValueError, match=rf"{path}: .*{message}"):
        read_camera_json(path)


def test_w_1e400_is_an_error_not_an_overflow(tmp_path: Path) -> None:
    path = tmp_path / "camera.json"
    path.write_text(json.dumps({"camera_to_world": POSE, "fl_x": 8, "h": 4}).replace("{", '{"w": 1e400, ', 1))
    with pytest.raises(ValueError, match=rf"{path}: 'w' must be a finite number of pixels, got inf"):
        read_camera_json(path)


def test_a_good_camera_json_reads(tmp_path: Path) -> None:
    matrix, intrinsics = read_camera_json(camera_file(tmp_path, cy=1.5))
    assert matrix.shape == (4, 4) and (intrinsics.width, intrinsics.height, intrinsics.cx, intrinsics.cy) == (
        6, 4, 3.0, 1.5,
    )  # fmt: skip


def unwritable_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        os.close(tempfile.mkstemp(dir="/sys")[0])
    except PermissionError:
        return Path("/sys")
    pytest.skip("running as root and /sys accepts new files: no folder here refuses writes")


def fake_run(tmp_path: Path) -> Path:
    """A folder shaped like a run whose checkpoint is not loadable: a command that got as far as loading
    it would fail with a checkpoint error, so an output error proves the output was checked first."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"engine_version": "0", "config": {}}))
    (run_dir / "checkpoint.pt").write_bytes(b"not loaded yet")
    return run_dir


@pytest.mark.parametrize("command", ["render", "extract"])
def test_an_unwritable_output_fails_before_any_work(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = fake_run(tmp_path)
    locked = unwritable_folder(tmp_path)
    out = locked / "renders" if command == "render" else locked / "mesh.ply"
    extra = ["--camera", str(camera_file(tmp_path))] if command == "render" else []
    assert main([command, str(run_dir), *extra, "--out", str(out), "--device", "cpu"]) == EXIT_BAD_INPUT
    assert f"cannot write {out}: permission denied" in capsys.readouterr().err


def test_extract_to_a_folder_or_under_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = fake_run(tmp_path)
    assert main(["extract", str(run_dir), "--out", str(tmp_path), "--device", "cpu"]) == EXIT_BAD_INPUT
    assert f"cannot write {tmp_path}: it is a folder" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["extract", str(run_dir), "--out", str(notes / "mesh.ply"), "--device", "cpu"]) == EXIT_BAD_INPUT
    assert f"cannot write {notes / 'mesh.ply'}: {notes} is a file, not a folder" in capsys.readouterr().err
    assert notes.read_text() == "mine"


@pytest.mark.parametrize("command", ["render", "extract", "eval"])
def test_a_folder_that_is_no_run_is_named(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--camera", "0"] if command == "render" else []
    assert main([command, str(tmp_path / "nothing"), *extra, "--device", "cpu"]) == EXIT_BAD_INPUT
    assert f"{tmp_path / 'nothing'}: no such run folder" in capsys.readouterr().err
