"""Extract passes a density level only to runs whose field is a density: surface methods use their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import addon_module

pytest.importorskip("bpy", reason="the add-on's operators need Blender as a module (bpy)")


@pytest.mark.parametrize(("method", "passes_level"), [("ngp", True), ("neus", False), ("unisurf", False)])
def test_the_density_level_applies_to_density_runs_only(
    fieldwork_addon: str, tmp_path: Path, method: str, passes_level: bool
) -> None:
    extract_mesh = addon_module("operators.extract_mesh")
    (tmp_path / "config.json").write_text(json.dumps({"method": method}))
    job = extract_mesh.extract_job(Path("/usr/bin/python3"), tmp_path, 64, level=0.25)
    assert ("--level" in job.command) is passes_level
    assert extract_mesh.run_surface_kind(tmp_path) == {"ngp": "density", "neus": "sdf", "unisurf": "occupancy"}[method]
