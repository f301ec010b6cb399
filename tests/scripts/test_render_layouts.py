"""scripts/render_layouts.py in a fresh Blender (bpy module) process: a batch of seeds of a 2-step GIRAFFE
run through the installed extension, images and layouts written, a summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.layout_runs import train_giraffe

pytest.importorskip("bpy", reason="the script runs the add-on in Blender as a module (bpy)")


def test_a_batch_of_seeds_writes_images_layouts_and_a_summary(built_extension: Path, tmp_path: Path) -> None:
    run = train_giraffe(tmp_path / "giraffe")
    out = tmp_path / "out"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"), OMP_NUM_THREADS="1")
    command = [sys.executable, str(REPO / "scripts" / "render_layouts.py"), "--", str(run), "--samples", "2"]
    command += ["--first-seed", "7", "--size", "32", "--out", str(out), "--extension", str(built_extension)]
    command += ["--engine-python", sys.executable]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 layouts" in completed.stdout
    for seed in (7, 8):
        assert (out / f"image_{seed:06d}.png").stat().st_size > 0
        assert (out / f"alpha_{seed:06d}.png").stat().st_size > 0
        layout = json.loads((out / f"layout_{seed:06d}.json").read_text())
        assert layout["format"] == "fieldwork-layout" and layout["extra"]["seed"] == seed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layouts"] == 2 and [r["seed"] for r in summary["records"]] == [7, 8]
    assert summary["objects"] == sum(
        len(json.loads((out / f"layout_{s:06d}.json").read_text())["objects"]) for s in (7, 8)
    )
