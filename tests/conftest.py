"""Shared fixtures: the repository, the engine interpreter, the Blender legs, the built extension."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BLENDER52_PYTHON_ENV = "FIELDWORK_BLENDER52_PYTHON"


def blender52_python() -> Path | None:
    candidate = os.environ.get(BLENDER52_PYTHON_ENV) or str(REPO / ".venv-blender52" / "bin" / "python")
    return Path(candidate) if Path(candidate).is_file() else None


def blender_leg_pythons() -> dict[str, Path | None]:
    """Interpreters that import bpy: 5.0 (this one, Python 3.11) and 5.2 LTS (Python 3.13)."""
    return {"blender-5.0": Path(sys.executable), "blender-5.2": blender52_python()}


def require_leg(name: str) -> Path:
    python = blender_leg_pythons()[name]
    if python is None:
        message = (
            f"{name} leg NOT RUN: no interpreter with bpy 5.2.3 (Python 3.13). Run scripts/setup.sh with Python "
            f"3.13 available, or set {BLENDER52_PYTHON_ENV}."
        )
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def engine_python() -> Path:
    """The interpreter the add-on starts the engine with in tests: this one (it has torch)."""
    return Path(sys.executable)


@pytest.fixture(scope="session")
def built_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension zip, built and validated by Blender's own tool."""
    output_dir = tmp_path_factory.mktemp("dist")
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir", str(output_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (zip_path,) = output_dir.glob("fieldwork-*.zip")
    return zip_path


RunBlender = Callable[..., dict]


@pytest.fixture
def run_blender_script(tmp_path: Path) -> RunBlender:
    """Run a script from tests/blender_scripts in a fresh Blender process with private user folders.

    The script prints ``FIELDWORK_REPORT <json>``; the parsed JSON is returned.
    """

    def run(python: Path, script: str, *args: str, timeout: float = 300) -> dict:
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"), PYTHONUNBUFFERED="1")
        completed = subprocess.run(
            [str(python), str(REPO / "tests" / "blender_scripts" / script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        reports = [line for line in completed.stdout.splitlines() if line.startswith("FIELDWORK_REPORT ")]
        assert reports, output
        return json.loads(reports[-1].removeprefix("FIELDWORK_REPORT "))

    return run
