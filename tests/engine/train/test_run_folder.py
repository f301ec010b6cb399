"""The run-folder rules: each refusal names the file, pid or dataset at fault and leaves the user's files
byte-identical. Real folders, a real second process holding the lock, real signals."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from engine.atomic import WriteCheckError, check_writable_file, check_writable_folder
from engine.data.transforms import read_transforms
from engine.train.run_folder import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    LOCK_FILE_NAME,
    MARKER_NAME,
    CheckpointSchedule,
    DatasetIdentity,
    RunFolderError,
    RunFolderLock,
    StopSignals,
    check_readable_run,
    claim_run_folder,
    is_fieldwork_run,
)
from tests.conftest import REPO
from tests.engine.sphere_dataset import make_sphere_dataset


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, by relative path, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sphere_dataset(tmp_path_factory.mktemp("sphere") / "dataset", n_views=4, size=8)


def identity(path: Path) -> DatasetIdentity:
    return DatasetIdentity.of(read_transforms(path), path)


def trained_run(run_dir: Path, dataset: Path) -> Path:
    """A folder as a finished run leaves it: claimed, then the trainer's config.json and a checkpoint."""
    with claim_run_folder(run_dir, identity(dataset)):
        (run_dir / CONFIG_NAME).write_text(json.dumps({"engine_version": "0", "dataset": str(dataset), "config": {}}))
        (run_dir / CHECKPOINT_NAME).write_bytes(b"step 20")
    return run_dir


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process may not create files in: a read-only one, or (as root, who may write anything
    chmod forbids) sysfs, which refuses new files to everyone."""
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


def test_a_new_folder_is_claimed_marked_and_locked(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "new"
    with claim_run_folder(run_dir, identity(dataset)) as run:
        assert not run.resuming and run.previous_dataset is None
        marker = json.loads((run_dir / MARKER_NAME).read_text())
        assert marker["dataset"] == identity(dataset).to_dict()
        assert is_fieldwork_run(run_dir)
        assert (run_dir / LOCK_FILE_NAME).read_text() == f"pid {os.getpid()}"
    # released: the next claim (a resume, since there is a config and checkpoint now) succeeds
    trained_run(run_dir, dataset)
    with claim_run_folder(run_dir, identity(dataset)) as run:
        assert run.resuming


def test_the_users_own_folder_with_a_config_json_is_refused_and_untouched(dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my-project"
    (folder / "extra").mkdir(parents=True)
    (folder / CONFIG_NAME).write_text('{"learning_rate": 3, "notes": "mine"}\n')
    (folder / "NOTES.txt").write_text("do not lose\n")
    (folder / "extra" / "data.bin").write_bytes(bytes(range(256)))
    before = snapshot(folder)
    with pytest.raises(RunFolderError, match=rf"{folder / CONFIG_NAME} is not a Fieldwork run's config"):
        claim_run_folder(folder, identity(dataset))
    assert snapshot(folder) == before
    assert sorted(path.name for path in folder.iterdir()) == sorted([CONFIG_NAME, "NOTES.txt", "extra"])


def test_a_checkpoint_without_its_config_is_refused_not_restarted(dataset: Path, tmp_path: Path) -> None:
    run_dir = trained_run(tmp_path / "run", dataset)
    (run_dir / CONFIG_NAME).unlink()
    before = snapshot(run_dir)
    with pytest.raises(RunFolderError, match=rf"{run_dir / CHECKPOINT_NAME} has no config.json beside it"):
        claim_run_folder(run_dir, identity(dataset))
    assert snapshot(run_dir) == before
    assert (run_dir / CHECKPOINT_NAME).read_bytes() == b"step 20"


def test_a_second_trainer_is_refused_naming_the_holders_pid(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(REPO)!r})
            from engine.train.run_folder import RunFolderLock
            lock = RunFolderLock({str(run_dir)!r})
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=rf"run folder {run_dir} is in use by engine pid {holder.pid}"):
            claim_run_folder(run_dir, identity(dataset))
        assert not (run_dir / MARKER_NAME).exists()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # the system drops a dead holder's lock: no stale lock
    RunFolderLock(run_dir).release()


def test_resuming_on_another_dataset_is_refused_naming_both_unless_allowed(dataset: Path, tmp_path: Path) -> None:
    run_dir = trained_run(tmp_path / "run", dataset)
    other = make_sphere_dataset(tmp_path / "other", n_views=5, size=8)
    before = snapshot(run_dir)
    named = f"was trained on {dataset.resolve()}, not on {other.resolve()} (4 frames, now 5)"
    with pytest.raises(RunFolderError, match=re.escape(named)):
        claim_run_folder(run_dir, identity(other))
    assert snapshot(run_dir) == before

    with claim_run_folder(run_dir, identity(other), allow_other_dataset=True) as run:
        assert run.resuming and run.previous_dataset == identity(dataset)
    assert json.loads((run_dir / MARKER_NAME).read_text())["dataset"]["path"] == str(other.resolve())


def test_the_same_frames_in_a_moved_folder_resume_but_a_changed_image_does_not(dataset: Path, tmp_path: Path) -> None:
    run_dir = trained_run(tmp_path / "run", dataset)
    moved = tmp_path / "moved"
    shutil.copytree(dataset.parent, moved)  # the same frames, images and cameras in another folder
    assert identity(moved / "transforms.json").fingerprint == identity(dataset).fingerprint
    claim_run_folder(run_dir, identity(moved / "transforms.json")).release()

    first_image = moved / read_transforms(moved).frames[0].file_path
    first_image.write_bytes(first_image.read_bytes() + b"\0")
    with pytest.raises(RunFolderError, match="the same number of frames, but their images or cameras differ"):
        claim_run_folder(run_dir, identity(moved / "transforms.json"))


def test_an_older_run_without_a_marker_is_compared_by_path(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    (run_dir / CONFIG_NAME).write_text(json.dumps({"engine_version": "0", "dataset": str(dataset), "config": {}}))
    (run_dir / CHECKPOINT_NAME).write_bytes(b"old")
    claim_run_folder(run_dir, identity(dataset.parent)).release()  # the folder or its transforms.json: same
    (run_dir / MARKER_NAME).unlink()
    other = make_sphere_dataset(tmp_path / "other", n_views=4, size=8)
    with pytest.raises(RunFolderError, match="this older run has no fingerprint to compare"):
        claim_run_folder(run_dir, identity(other))


def test_an_out_that_is_a_file_or_unwritable_is_refused_before_any_work(dataset: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(WriteCheckError, match=rf"cannot write {a_file}: it is a file, not a folder"):
        claim_run_folder(a_file, identity(dataset))
    with pytest.raises(WriteCheckError, match=rf"cannot write {a_file / 'run'}: a part of the path is a file"):
        check_writable_folder(a_file / "run")
    assert a_file.read_text() == "mine"

    locked = unwritable_folder(tmp_path)
    with pytest.raises(WriteCheckError, match=rf"cannot write {locked / 'run'}: permission denied"):
        claim_run_folder(locked / "run", identity(dataset))
    with pytest.raises(WriteCheckError, match=rf"cannot write {locked / 'mesh.ply'}: permission denied"):
        check_writable_file(locked / "mesh.ply")
    with pytest.raises(WriteCheckError, match=rf"cannot write {tmp_path}: it is a folder"):
        check_writable_file(tmp_path)
    with pytest.raises(WriteCheckError, match=rf"cannot write {a_file}: it already exists"):
        check_writable_file(a_file, overwrite=False)


def test_render_extract_and_eval_need_a_run_with_config_and_checkpoint(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match=rf"{tmp_path / 'nothing'}: no such run folder"):
        check_readable_run(tmp_path / "nothing")
    run_dir = tmp_path / "run"
    claim_run_folder(run_dir, identity(dataset)).release()
    with pytest.raises(RunFolderError, match=rf"{run_dir} has no config.json"):
        check_readable_run(run_dir)
    (run_dir / CONFIG_NAME).write_text(json.dumps({"engine_version": "0", "config": {}}))
    with pytest.raises(RunFolderError, match=rf"{run_dir} has no checkpoint.pt yet"):
        check_readable_run(run_dir)


def test_sigint_and_sigterm_set_the_stop_flag_and_the_handlers_come_back() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    for number in (signal.SIGINT, signal.SIGTERM):
        with StopSignals() as stop:
            assert not stop.requested
            os.kill(os.getpid(), number)
            deadline = time.monotonic() + 5
            while not stop.requested and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stop.requested and stop.signal_name == signal.Signals(number).name
            with pytest.raises(KeyboardInterrupt, match="again: stopping without a checkpoint"):
                os.kill(os.getpid(), number)
                time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_checkpoint_is_due_by_steps_or_by_training_time() -> None:
    schedule = CheckpointSchedule(every_steps=500, every_seconds=300.0)
    schedule.start(step=20, train_seconds=10.0)  # a resumed run counts from where it was
    assert not schedule.due(519, 309.0)
    assert schedule.due(520, 11.0)  # 500 steps on
    assert schedule.due(100, 310.0)  # five minutes of training on
    schedule.saved(100, 310.0)
    assert not schedule.due(101, 311.0)
    assert not CheckpointSchedule(every_steps=0, every_seconds=0).due(10**9, 1e9)
    with pytest.raises(ValueError, match="every_seconds must be a finite number >= 0 .* got nan"):
        CheckpointSchedule(every_seconds=float("nan"))


def test_a_folder_dataset_keeps_its_identity_when_the_engine_fills_its_cache(tmp_path: Path) -> None:
    # shape samples and ray hits are cached in <dataset>/cache/ on the first run: resuming must still match
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "mesh.ply").write_bytes(b"0123")
    before = DatasetIdentity.of_folder(tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "shape-abc.npz").write_bytes(b"cached")
    assert DatasetIdentity.of_folder(tmp_path) == before
    (tmp_path / "shapes" / "mesh.ply").write_bytes(b"01234")
    assert DatasetIdentity.of_folder(tmp_path).fingerprint != before.fingerprint
