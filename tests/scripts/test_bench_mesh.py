"""scripts/bench_mesh.py keeps working: its analytic part, small, as a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_analytic_part_prints_and_saves_mise_against_dense(tmp_path: Path) -> None:
    script = REPO / "scripts" / "bench_mesh.py"
    completed = subprocess.run(
        [sys.executable, str(script), "--analytic-only", "--resolutions", "64", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "analytic torus at 64^3: MISE asks" in completed.stdout
    rows = {row["method"]: row for row in json.loads((tmp_path / "bench_mesh.json").read_text())["rows"]}
    assert rows["dense"]["queries"] == 65**3
    assert rows["mise"]["queries"] * 3 < rows["dense"]["queries"]
    assert rows["mise"]["faces"] == rows["dense"]["faces"]
