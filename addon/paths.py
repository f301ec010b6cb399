"""Where Fieldwork writes: the scene's Output Folder and the dataset and run folders inside it."""

from __future__ import annotations

from pathlib import Path

import bpy

DATASET_FOLDER = "dataset"  # <Output Folder>/dataset: the Export and Train buttons' render of the cameras
RUN_FOLDER = "run"  # <Output Folder>/run: where Train writes and Extract reads by default


class BlendRelativePathError(ValueError):
    """A '//' path in a .blend that is not saved yet, so it has no folder to be relative to."""


def absolute_path(raw: str, what: str) -> Path:
    """``raw`` as an absolute path; '//' is the .blend's folder, which needs a saved file."""
    if raw.startswith("//") and not bpy.data.filepath:
        raise BlendRelativePathError(
            f"{what} {raw!r} is relative to the .blend file, which is not saved yet: "
            "save the file or choose an absolute folder"
        )
    return Path(bpy.path.abspath(raw))


def output_folder(scene: bpy.types.Scene) -> Path:
    return absolute_path(scene.fieldwork.output_dir, "Output Folder")  # type: ignore[attr-defined]
