"""Where the add-on reads and writes: the Output Folder's run and dataset folders, '//' in an unsaved file."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest

from tests.conftest import addon_module


def test_extract_without_a_run_folder_reads_the_run_train_writes(empty_scene: bpy.types.Scene, tmp_path: Path) -> None:
    empty_scene.fieldwork.output_dir = str(tmp_path)  # type: ignore[attr-defined]
    expected = (tmp_path / addon_module("paths").RUN_FOLDER).resolve()
    with pytest.raises(RuntimeError, match=f"Run folder {expected} does not exist: train first"):
        bpy.ops.fieldwork.extract_mesh(run_dir="", resolution=32)


def test_a_blend_relative_folder_in_an_unsaved_file_is_refused_by_name(empty_scene: bpy.types.Scene) -> None:
    assert not bpy.data.filepath
    empty_scene.fieldwork.output_dir = "//fieldwork"  # type: ignore[attr-defined]
    message = r"Output Folder '//fieldwork' is relative to the \.blend file, which is not saved yet"
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.fieldwork.extract_mesh(run_dir="", resolution=32)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.fieldwork.export_dataset(directory="")
    with pytest.raises(RuntimeError, match=r"Run Folder '//run' is relative to the \.blend file"):
        bpy.ops.fieldwork.extract_mesh(run_dir="//run", resolution=32)
