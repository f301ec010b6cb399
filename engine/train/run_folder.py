"""What a run folder is, in one place: its marker, its lock, its dataset identity, and the rules that keep
a user's files and a run's work from being lost or mixed up.

A run folder is Fieldwork's when it holds the marker ``fieldwork-run.json`` (written when a run claims the
folder; it records the dataset the run trains on), or, for runs made before the marker existed, a
``config.json`` shaped like the trainer's (``engine_version`` and ``config`` keys). Each rule is one function
whose error names the file or value at fault:

- :func:`check_writable_folder`: the folder can be created and written ("cannot write X: permission denied"),
  and is not a file;
- :func:`check_not_foreign`: a ``config.json`` that Fieldwork did not write (the user's own folder) is never
  overwritten;
- :func:`check_no_orphan_checkpoint`: a ``checkpoint.pt`` without its ``config.json`` is refused, not silently
  replaced by a new run;
- :class:`RunFolderLock`: one trainer per folder, CLI and ``serve`` alike (the same lock file);
- :func:`check_same_dataset`: a run resumes only on the dataset it was trained on (a fingerprint of the frames'
  paths, image file sizes and cameras), unless the caller allows another.

:func:`claim_run_folder` applies them in that order and holds the lock. :class:`StopSignals` turns SIGINT and
SIGTERM into a flag a training loop polls (save a checkpoint, then exit); :class:`CheckpointSchedule` says
when a checkpoint is due by steps and by training time.

Standard library only (no torch): ``serve`` takes the lock before it imports torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ..atomic import check_writable_folder, write_text_atomic
from ..data.transforms import TRANSFORMS_NAME, Transforms, read_transforms

MARKER_NAME = "fieldwork-run.json"
MARKER_FORMAT = 1
LOCK_FILE_NAME = ".fieldwork-engine.lock"
# The trainer's file names (engine/train/trainer.py and checkpoint.py); repeated here so this module, which
# serve imports before torch, does not import the trainer.
CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"
# Keys every config.json the trainer writes has (RunInfo.to_dict): how a run made before the marker is known.
_RUN_CONFIG_KEYS = ("engine_version", "config")

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "LOCK_FILE_NAME",
    "MARKER_NAME",
    "CheckpointSchedule",
    "DatasetIdentity",
    "RunFolder",
    "RunFolderError",
    "RunFolderLock",
    "StopSignals",
    "check_no_orphan_checkpoint",
    "check_not_foreign",
    "check_readable_run",
    "check_same_dataset",
    "check_writable_folder",
    "claim_run_folder",
    "is_fieldwork_run",
]


class RunFolderError(ValueError):
    """A run folder that must not be used as asked; the message names the file, pid or dataset."""


# --------------------------------------------------------------------------- dataset identity


@dataclass(frozen=True)
class DatasetIdentity:
    """The dataset a run trains on: its path and a fingerprint of its frames.

    The fingerprint hashes each frame's ``file_path``, the size in bytes of its image file, its
    camera_to_world and intrinsics, and the frame's split: cheap (no image is read) and it changes when
    frames are added, removed, re-posed or replaced by other images. A dataset moved to another folder
    keeps its fingerprint.
    """

    path: str
    fingerprint: str
    frame_count: int

    @classmethod
    def of(cls, transforms: Transforms, path: Path) -> DatasetIdentity:
        digest = hashlib.sha256()
        for frame in transforms.frames:
            image = transforms.image_path(frame)
            try:
                size = image.stat().st_size
            except OSError:
                size = -1  # a missing image fails later, named, when the images are read
            intrinsics = frame.intrinsics
            record = [
                frame.file_path,
                size,
                frame.split,
                [[float(value) for value in row] for row in frame.camera_to_world],
                [intrinsics.fl_x, intrinsics.fl_y, intrinsics.cx, intrinsics.cy, intrinsics.width, intrinsics.height],
            ]
            digest.update(json.dumps(record).encode("utf-8") + b"\n")
        return cls(path=str(Path(path).resolve()), fingerprint=digest.hexdigest(), frame_count=len(transforms.frames))

    @classmethod
    def of_folder(cls, path: Path) -> DatasetIdentity:
        """The data of another family (a shape dataset, an image collection): its files' names and sizes, but not
        those of its top-level ``cache/`` folder, which the engine fills itself on the first run (shape samples,
        ray hits): a run resumes on the dataset it made the cache of."""
        path = Path(path)
        files = (
            sorted(item for item in path.rglob("*") if item.is_file() and item.relative_to(path).parts[0] != "cache")
            if path.is_dir()
            else [path]
        )
        digest = hashlib.sha256()
        for item in files:
            digest.update(
                json.dumps([str(item.relative_to(path)) if path.is_dir() else item.name, item.stat().st_size]).encode(
                    "utf-8"
                )
                + b"\n"
            )
        return cls(path=str(path.resolve()), fingerprint=digest.hexdigest(), frame_count=len(files))

    @classmethod
    def of_data(cls, family: str, path: Path, allow_outside_paths: bool = False) -> DatasetIdentity:
        """The identity of a method family's data: a transforms.json dataset's frames (read here, so a bad
        dataset fails named before the run folder is touched), or another family's files."""
        if family == "images":
            return cls.of(read_transforms(path, allow_outside_paths=allow_outside_paths), path)
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such dataset")
        return cls.of_folder(path)

    @classmethod
    def from_dict(cls, values: Any, where: Path) -> DatasetIdentity:
        try:
            return cls(
                path=str(values["path"]), fingerprint=str(values["fingerprint"]), frame_count=int(values["frames"])
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RunFolderError(f"{where}: 'dataset' must hold path, fingerprint and frames ({error})") from error

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "fingerprint": self.fingerprint, "frames": self.frame_count}


# --------------------------------------------------------------------------- the rules


def is_fieldwork_run(run_dir: Path) -> bool:
    """The folder holds the marker, or a config.json the trainer wrote (a run made before the marker)."""
    run_dir = Path(run_dir)
    if (run_dir / MARKER_NAME).is_file():
        return True
    document = _read_json_object(run_dir / CONFIG_NAME)
    return document is not None and all(key in document for key in _RUN_CONFIG_KEYS)


def check_not_foreign(run_dir: Path) -> None:
    """A config.json that is not a Fieldwork run's (the user's own folder) must never be overwritten."""
    run_dir = Path(run_dir)
    config = run_dir / CONFIG_NAME
    if config.exists() and not is_fieldwork_run(run_dir):
        raise RunFolderError(
            f"{config} is not a Fieldwork run's config (no {MARKER_NAME} beside it, and it lacks "
            f"{' and '.join(_RUN_CONFIG_KEYS)}): {run_dir} looks like a folder of your own; "
            "choose a new or empty run folder"
        )


def check_no_orphan_checkpoint(run_dir: Path) -> None:
    """A checkpoint without its config.json cannot be resumed, and starting over would replace it."""
    run_dir = Path(run_dir)
    checkpoint, config = run_dir / CHECKPOINT_NAME, run_dir / CONFIG_NAME
    if checkpoint.exists() and not config.is_file():
        raise RunFolderError(
            f"{checkpoint} has no {CONFIG_NAME} beside it, so the run cannot be resumed, and starting a new run "
            f"would replace the checkpoint: restore {config}, or move {checkpoint.name} away to start over"
        )


def check_readable_run(run_dir: Path) -> None:
    """For render, extract and eval: a Fieldwork run folder with its config and checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder" if not run_dir.exists() else f"{run_dir} is not a folder")
    config, checkpoint = run_dir / CONFIG_NAME, run_dir / CHECKPOINT_NAME
    if not config.is_file():
        raise RunFolderError(f"{run_dir} has no {CONFIG_NAME}: not a Fieldwork run folder")
    check_not_foreign(run_dir)
    if not checkpoint.is_file():
        raise RunFolderError(
            f"{run_dir} has no {CHECKPOINT_NAME} yet: train it first (or wait for its first checkpoint)"
        )


def recorded_dataset(run_dir: Path) -> DatasetIdentity | None:
    """The dataset a run was trained on: the marker's identity, else (an older run) config.json's path with
    no fingerprint (``fingerprint == ""``); None for a folder without either."""
    run_dir = Path(run_dir)
    marker = run_dir / MARKER_NAME
    if marker.is_file():
        document = _read_json_object(marker)
        if document is None:
            raise RunFolderError(f"{marker}: not readable JSON; restore it or remove the run folder")
        if "dataset" in document:
            return DatasetIdentity.from_dict(document["dataset"], marker)
    config = _read_json_object(run_dir / CONFIG_NAME)
    if config is not None and isinstance(config.get("dataset"), str):
        return DatasetIdentity(path=str(config["dataset"]), fingerprint="", frame_count=0)
    return None


def check_same_dataset(
    run_dir: Path, dataset: DatasetIdentity, allow_other_dataset: bool = False, allow_changed_in_place: bool = False
) -> None:
    """Resuming on another dataset would train on it while config.json names the first one (which eval,
    render and extract then read): refused, both named, unless ``allow_other_dataset``.

    The same frames in a moved folder are the same dataset. An older run without a fingerprint is compared
    by path. ``allow_changed_in_place``: the dataset folder the run was trained on, with changed frames, may
    be resumed (the add-on renders its dataset again, into the same folder, before each Train)."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_NAME).is_file():
        return  # nothing to resume: the run starts on this dataset
    recorded = recorded_dataset(run_dir)
    if recorded is None or allow_other_dataset or _same_dataset(recorded, dataset):
        return
    if allow_changed_in_place and _dataset_folder(recorded.path) == _dataset_folder(dataset.path):
        return
    if recorded.fingerprint:
        difference = (
            f"{recorded.frame_count} frames, now {dataset.frame_count}"
            if recorded.frame_count != dataset.frame_count
            else "the same number of frames, but their images or cameras differ"
        )
    else:
        difference = "another path, and this older run has no fingerprint to compare"
    raise RunFolderError(
        f"{run_dir} was trained on {recorded.path}, not on {dataset.path} ({difference}); resume it with its own "
        "dataset, train into a new run folder, or allow resuming on another dataset (--resume-other-dataset)"
    )


def _same_dataset(recorded: DatasetIdentity, dataset: DatasetIdentity) -> bool:
    if recorded.fingerprint:
        return recorded.fingerprint == dataset.fingerprint
    return _dataset_folder(recorded.path) == _dataset_folder(dataset.path)


def _dataset_folder(path: str) -> Path:
    """A dataset named by its folder or by the transforms.json in it is the same dataset."""
    resolved = Path(path).resolve()
    return resolved.parent if resolved.name == TRANSFORMS_NAME else resolved


# --------------------------------------------------------------------------- the lock


class RunFolderLock:
    """One trainer per run folder (``serve`` sessions and CLI runs alike): an exclusive, non-blocking lock on
    ``LOCK_FILE_NAME`` in the folder, held until :meth:`release` or the process ends (the system drops it
    then, so a crashed trainer never leaves a stale lock). The file holds the holder's pid."""

    def __init__(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        self.path = run_dir / LOCK_FILE_NAME
        try:
            self._file = open(self.path, "a+")  # noqa: SIM115 - held for the whole run
        except OSError as error:
            raise RunFolderError(f"cannot write {self.path}: {error.strerror or error}") from error
        try:
            _lock_file(self._file.fileno())
        except OSError as exc:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunFolderError(
                f"the run folder {run_dir} is in use by engine {holder} (its lock {self.path} is held); "
                "stop that run first, or train into another folder"
            ) from exc
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _lock_file(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


# --------------------------------------------------------------------------- claiming a folder


@dataclass
class RunFolder:
    """A run folder claimed for training: locked, checked, marked. ``resuming``: it holds a checkpoint to
    resume. ``previous_dataset``: the dataset it was trained on when that differs from this one (only with
    ``allow_other_dataset``), so the caller can log it."""

    path: Path
    lock: RunFolderLock
    dataset: DatasetIdentity
    resuming: bool
    previous_dataset: DatasetIdentity | None = None

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def claim_run_folder(
    run_dir: Path, dataset: DatasetIdentity, allow_other_dataset: bool = False, allow_changed_in_place: bool = False
) -> RunFolder:
    """Check every rule, in an order that changes nothing of a refused folder's files, take the lock and
    write the marker. Call before anything is written into ``run_dir``; release the returned folder (or use
    it as a context manager) when training ends. The two ``allow_`` options are check_same_dataset's."""
    run_dir = Path(run_dir)
    check_writable_folder(run_dir)
    check_not_foreign(run_dir)
    check_no_orphan_checkpoint(run_dir)
    lock = RunFolderLock(run_dir)
    try:
        check_same_dataset(run_dir, dataset, allow_other_dataset, allow_changed_in_place)
        resuming = (run_dir / CHECKPOINT_NAME).is_file()
        previous = recorded_dataset(run_dir) if resuming else None
        if previous is not None and _same_dataset(previous, dataset):
            previous = None
        write_text_atomic(
            run_dir / MARKER_NAME,
            json.dumps({"format": MARKER_FORMAT, "dataset": dataset.to_dict()}, indent=2) + "\n",
        )
    except BaseException:
        lock.release()
        raise
    return RunFolder(path=run_dir, lock=lock, dataset=dataset, resuming=resuming, previous_dataset=previous)


# --------------------------------------------------------------------------- interrupts and checkpoints


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM set :attr:`requested` instead of ending the process, so a training loop
    can save a checkpoint and exit as ``serve``'s Stop does. A second signal of either kind ends the process
    the ordinary way (KeyboardInterrupt), for a loop that no longer polls. Use as a context manager; the
    previous handlers come back on exit. Off the main thread (where Python cannot set handlers) it does
    nothing."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt(f"{signal.Signals(number).name} again: stopping without a checkpoint")
        self.requested = True
        self.signal_name = signal.Signals(number).name


@dataclass
class CheckpointSchedule:
    """A checkpoint is due every ``every_steps`` steps and every ``every_seconds`` of training time, whichever
    comes first (0 turns either off). Times are the trainer's training seconds, so pauses do not count."""

    every_steps: int = 500
    every_seconds: float = 300.0
    _last_step: int = 0
    _last_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError(f"checkpoint every_steps must be >= 0 (0: off), got {self.every_steps}")
        if not math.isfinite(self.every_seconds) or self.every_seconds < 0:
            raise ValueError(
                f"checkpoint every_seconds must be a finite number >= 0 (0: off), got {self.every_seconds}"
            )

    def start(self, step: int, train_seconds: float) -> None:
        """Count from here (a resumed run's step and time)."""
        self._last_step, self._last_seconds = step, train_seconds

    def due(self, step: int, train_seconds: float) -> bool:
        by_steps = self.every_steps > 0 and step - self._last_step >= self.every_steps
        by_time = self.every_seconds > 0 and train_seconds - self._last_seconds >= self.every_seconds
        return by_steps or by_time

    def saved(self, step: int, train_seconds: float) -> None:
        """A checkpoint was written at this step and time."""
        self.start(step, train_seconds)


# --------------------------------------------------------------------------- helpers


def _read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
