"""Finding and checking the engine interpreter (addon/engine_env.py, no bpy needed)."""

from __future__ import annotations

import importlib.util
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

# Load engine_env.py directly: importing the add-on package would need bpy, this module does not.
_spec = importlib.util.spec_from_file_location("fieldwork_engine_env", REPO / "addon" / "engine_env.py")
assert _spec is not None and _spec.loader is not None
engine_env = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = engine_env
_spec.loader.exec_module(engine_env)


def test_query_engine_info_with_torch() -> None:
    info = engine_env.query_engine_info(Path(sys.executable))
    assert info["torch_version"].startswith("2.")


def test_interpreter_without_torch_gets_actionable_message(tmp_path: Path) -> None:
    venv.create(tmp_path / "bare", with_pip=False)
    with pytest.raises(engine_env.EngineSetupError, match="torch is not installed.*Set up engine"):
        engine_env.query_engine_info(engine_env.venv_python(tmp_path / "bare"))


def test_missing_interpreter_names_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine_env.ENGINE_PYTHON_ENV, raising=False)
    missing = tmp_path / "nope" / "python"
    with pytest.raises(engine_env.EngineSetupError, match=r"nope/python \(from the add-on preferences\)"):
        engine_env.resolve_engine_python(str(missing), tmp_path)


def test_environment_variable_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine_env.ENGINE_PYTHON_ENV, sys.executable)
    assert engine_env.resolve_engine_python("", tmp_path) == Path(sys.executable)


def test_broken_interpreter_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'segfault in interpreter' >&2\nexit 139\n")
    fake.chmod(0o755)
    with pytest.raises(engine_env.EngineSetupError, match="exit 139.*segfault in interpreter"):
        engine_env.query_engine_info(fake)
