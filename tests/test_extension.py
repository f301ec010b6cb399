"""The built extension installs, enables, works and disables in real Blender, on both legs."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest

import engine
from tests.conftest import REPO, RunBlender, require_leg


def test_zip_holds_manifest_addon_and_engine(built_extension: Path) -> None:
    names = set(zipfile.ZipFile(built_extension).namelist())
    assert {"blender_manifest.toml", "__init__.py", "engine/__main__.py", "engine/protocol.py"} <= names
    assert not any("__pycache__" in name for name in names)


def test_manifest_and_engine_versions_agree() -> None:
    with open(REPO / "blender_manifest.toml", "rb") as handle:
        manifest = tomllib.load(handle)
    assert manifest["version"] == engine.__version__
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"files", "network"}


@pytest.mark.parametrize("leg", ["blender-5.0", "blender-5.2"])
def test_install_enable_check_disable(
    leg: str, built_extension: Path, engine_python: Path, run_blender_script: RunBlender
) -> None:
    python = require_leg(leg)
    report = run_blender_script(python, "extension_lifecycle.py", str(built_extension), str(engine_python))
    assert report["blender"].startswith(leg.removeprefix("blender-")), report
    assert report["install"] == ["FINISHED"]
    assert not any(report["before_enable"].values()), report["before_enable"]
    assert report["enabled"]
    assert all(report["after_enable"].values()), report["after_enable"]
    # "Check engine" really ran `python -m engine info` in a subprocess and parsed its JSON.
    assert report["check_engine"] == ["FINISHED"]
    assert "torch 2." in report["check_engine_text"]
    assert report["disabled"]
    assert not any(report["after_disable"].values()), report["after_disable"]
