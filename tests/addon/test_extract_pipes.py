"""The modal Extract's child handling: pipes drained (a chatty engine never blocks), progress parsed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.conftest import addon_module

# 1 MiB on stderr (16 times a Linux pipe buffer), progress lines on stdout, then the JSON summary.
CHATTY_CHILD = """
import json, sys
for i in range(1024):
    sys.stderr.write("x" * 1023 + "\\n")
print("PROGRESS 0.500 texture: colouring texels", flush=True)
open(sys.argv[1], "w").write("mesh")
print(json.dumps({"vertex_count": 3, "face_count": 1}))
"""


def test_an_engine_child_writing_a_mebibyte_to_stderr_does_not_hang_the_modal_extract(
    fieldwork_addon: str, tmp_path: Path
) -> None:
    extract_mesh = addon_module("operators.extract_mesh")
    out_path = tmp_path / "mesh.ply"
    job = extract_mesh.ExtractJob(tmp_path, out_path, [sys.executable, "-c", CHATTY_CHILD, str(out_path)])
    child = extract_mesh.DrainedChild(job.command)
    deadline = time.monotonic() + 60
    summary = None
    while summary is None:  # what the operator's timer ticks do, without the GUI
        assert time.monotonic() < deadline, "the child blocked on a full pipe"
        summary = extract_mesh.poll_child(job, child)
        time.sleep(0.05)
    assert summary == {"vertex_count": 3, "face_count": 1}
    assert child.progress == (0.5, "texture: colouring texels")
    assert "50% texture: colouring texels" in extract_mesh.status_text(child, 64)
    assert len(child.stderr_lines) == extract_mesh.KEPT_LINES  # only the tail is kept


def test_a_failing_child_reports_its_last_stderr_line(fieldwork_addon: str, tmp_path: Path) -> None:
    extract_mesh = addon_module("operators.extract_mesh")
    message = "fieldwork extract: error: no checkpoint in RUN"
    script = f"import sys; sys.stderr.write('y' * 200000 + '\\n{message}\\n'); sys.exit(2)"
    job = extract_mesh.ExtractJob(tmp_path, tmp_path / "mesh.ply", [sys.executable, "-c", script])
    child = extract_mesh.DrainedChild(job.command)
    deadline = time.monotonic() + 60
    while child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(extract_mesh.ExtractError, match=r"^error: no checkpoint in RUN$"):
        extract_mesh.poll_child(job, child)
