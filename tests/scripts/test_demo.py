"""The README's main job, shrunk by --quick: every output file appears (real bpy, Cycles, engine process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("bpy", reason="the demo builds its scene with Blender as a module (bpy)")

OUTPUTS = ("demo.blend", "preview.png", "mesh.ply", "ground_truth.ply", "comparison.png", "report.json")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_quick_demo_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # One torch thread: OpenMP threads spinning against other processes slow a loaded 2-core machine to a crawl.
    env = dict(
        os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"
    )
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--quick", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=400, check=False,
    )  # fmt: skip
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, f"{name} missing\n{log}"
    assert sorted(out.glob(".*")) == [], "no temporary files left behind"
    assert list((out / "previews").glob("preview-*.png")), "previews were streamed to files"

    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok"
    assert report["settings"]["method"] == "ngp"
    assert report["engine"]["device"] == "cpu"
    for figure in ("psnr", "ssim", "chamfer_l1", "f_score"):
        assert isinstance(report["metrics"][figure], float), figure
    assert 0.0 <= report["metrics"]["f_score"] <= 1.0
    assert report["timings_s"]["total"] >= report["timings_s"]["train"] > 0
    # Ground truth | 4 px gap | field render of the held-out camera, both at the 32 px render size.
    assert png_size(out / "comparison.png") == (32 + 4 + 32, 32)
    assert report["comparison"]["camera"] == "Camera 000"
    assert "step 20/20" in completed.stderr, "the progress bar reached the last step"
