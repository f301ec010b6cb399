"""Atomic file writes: a temporary name in the target's folder, flushed to disk, then ``os.replace``.

A crash or a failed write never leaves a half file where a good one stood, and the finished file
gets ordinary permissions (``mkstemp`` makes it private). Standard library only: the add-on, the
engine and the scripts all write through here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[Path], None], overwrite: bool = True) -> Path:
    """Call ``write(temporary_path)`` in ``path``'s folder, then move the result onto ``path``.

    The temporary file is ``.<name>.<random>.tmp``: a writer must not choose its format by suffix.
    With ``overwrite=False`` an existing ``path`` is a ``FileExistsError`` and stays untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str, overwrite: bool = True) -> Path:
    return write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite=overwrite)


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = True) -> Path:
    return write_atomic(path, lambda temporary: temporary.write_bytes(data), overwrite=overwrite)


class WriteCheckError(ValueError):
    """An output that cannot be written; the message names it and says why."""


def replace_folder(staging: Path, target: Path) -> None:
    """Put the finished folder ``staging`` where ``target`` is (same parent folder): the old target is renamed
    aside first and comes back if the swap fails, so a crash leaves either the old folder or the new one."""
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.previous-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def check_writable_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) if needed and prove a file can be written in it, before any work.

    Failures are a :class:`WriteCheckError` saying "cannot write <folder>: <reason>" (permission denied,
    a file in the way), so a command fails at once, named, instead of with a traceback after its work.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteCheckError(f"cannot write {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".fieldwork-write-check.", suffix=".tmp", dir=folder)
    except FileExistsError as error:
        raise WriteCheckError(f"cannot write {folder}: {error.filename or folder} is a file, not a folder") from error
    except NotADirectoryError as error:
        raise WriteCheckError(f"cannot write {folder}: a part of the path is a file, not a folder") from error
    except PermissionError as error:  # EACCES and EPERM alike
        raise WriteCheckError(f"cannot write {folder}: permission denied") from error
    except OSError as error:
        raise WriteCheckError(f"cannot write {folder}: {(error.strerror or str(error)).lower()}") from error
    os.close(descriptor)
    os.unlink(probe)
    return folder


def check_writable_file(path: Path, overwrite: bool = True) -> Path:
    """``path`` can be written (its folder is created if needed): not a folder, its folder writable, and
    (with ``overwrite=False``) not already there. Errors say "cannot write <path>: <reason>"."""
    path = Path(path)
    if path.is_dir():
        raise WriteCheckError(f"cannot write {path}: it is a folder; give a file name")
    if not overwrite and path.exists():
        raise WriteCheckError(f"cannot write {path}: it already exists; choose another name or allow overwriting")
    if path.parent.exists() and not path.parent.is_dir():
        raise WriteCheckError(f"cannot write {path}: {path.parent} is a file, not a folder")
    try:
        check_writable_folder(path.parent)
    except WriteCheckError as error:
        raise WriteCheckError(f"cannot write {path}: {str(error).split(': ', 1)[-1]}") from error
    return path
