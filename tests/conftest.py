"""Shared fixtures: the repository, the engine interpreter, the Blender legs, the built extension."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Blender reads its user folders when bpy is first imported: point them at a private folder
# before any test imports bpy, so installing the extension never touches the real user's Blender.
_BLENDER_USER = Path(tempfile.mkdtemp(prefix="fieldwork-blender-user-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_BLENDER_USER)
atexit.register(shutil.rmtree, _BLENDER_USER, ignore_errors=True)
ADDON_MODULE = "bl_ext.user_default.fieldwork"

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


@pytest.fixture(scope="session")
def fieldwork_addon(built_extension: Path, engine_python: Path) -> str:
    """The built extension installed into this process's Blender (bpy module) and enabled.

    Returns the add-on's module name; import its parts with :func:`addon_module`.
    The engine preference points at this interpreter.
    """
    import importlib

    import bpy

    # addon_utils lives in Blender's scripts folder, which importing bpy puts on sys.path.
    addon_utils = importlib.import_module("addon_utils")

    if ADDON_MODULE not in bpy.context.preferences.addons:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(built_extension), repo="user_default", enable_on_install=False
        )
        assert result == {"FINISHED"}
        addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=_raise)
    bpy.context.preferences.addons[ADDON_MODULE].preferences.engine_python = str(engine_python)
    return ADDON_MODULE


def _raise(exc: BaseException) -> None:
    raise exc


def addon_module(name: str) -> ModuleType:
    """A submodule of the installed add-on, e.g. ``addon_module("capture")``."""
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture
def empty_scene(fieldwork_addon: str):  # type: ignore[no-untyped-def]
    """A new empty Blender file with the add-on still enabled; yields ``bpy.context.scene``."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    yield bpy.context.scene


@pytest.fixture(scope="session")
def tiny_dataset(fieldwork_addon: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Cycles-rendered dataset, cached for the test session: the demo object, 8 cameras, 32 px, 4 samples.

    Built with scripts/scenes.py and exported by the add-on's capture; the current file is
    replaced by an empty one afterwards, so tests start from a clean scene.
    """
    import bpy

    from scripts.scenes import build_object_scene

    info = build_object_scene(camera_count=8, resolution=32, samples=4)
    out_dir = tmp_path_factory.mktemp("tiny-dataset") / "dataset"
    addon_module("capture").export_dataset(info.scene, out_dir)
    bpy.ops.wm.read_homefile(use_empty=True)
    return out_dir
