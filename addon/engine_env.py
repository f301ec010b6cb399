"""Where the engine lives and which interpreter runs it. No bpy here, so it is unit-testable.

The engine package ships inside the extension (``<extension>/engine``), so the engine a
session launches is always the one this add-on version was built with. It runs in an
interpreter of its own (torch never enters Blender's Python): the one set in the
preferences, else ``$FIELDWORK_ENGINE_PYTHON``, else the virtual environment that
"Set up engine" created in the extension's user folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ENGINE_PYTHON_ENV = "FIELDWORK_ENGINE_PYTHON"
PACKAGE_DIR = Path(__file__).resolve().parent
# The directory that holds the ``engine`` package; it goes on the child's PYTHONPATH.
ENGINE_PARENT = (PACKAGE_DIR / "engine").resolve().parent


class EngineSetupError(RuntimeError):
    """The engine interpreter is missing, broken or lacks a dependency. The message says what to do."""


def venv_python(venv_dir: Path) -> Path:
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def resolve_engine_python(preference_path: str = "", user_dir: Path | None = None) -> Path:
    """The interpreter to start the engine with, or a clear error naming what was tried."""
    tried: list[str] = []
    candidates: list[tuple[str, str]] = []
    if preference_path:
        candidates.append(("the add-on preferences", preference_path))
    if os.environ.get(ENGINE_PYTHON_ENV):
        candidates.append((f"${ENGINE_PYTHON_ENV}", os.environ[ENGINE_PYTHON_ENV]))
    if user_dir is not None:
        candidates.append(("the engine set up by Fieldwork", str(venv_python(user_dir / "engine-venv"))))
    for source, raw in candidates:
        path = Path(os.path.expanduser(raw))
        if path.is_file() and os.access(path, os.X_OK):
            return path
        tried.append(f"{raw} (from {source}): not an executable file")
    detail = "; ".join(tried) if tried else "no interpreter is configured"
    raise EngineSetupError(
        f"No engine Python found ({detail}). Set 'Engine Python' in Preferences > Add-ons > Fieldwork, "
        f"press 'Set up engine', or set {ENGINE_PYTHON_ENV} for headless runs."
    )


def engine_environment() -> dict[str, str]:
    """Environment for the engine child: its own package first on the path, no Blender leftovers."""
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONNOUSERSITE"):
        env.pop(key, None)
    env["PYTHONPATH"] = str(ENGINE_PARENT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def engine_command(python: Path, *args: str) -> list[str]:
    return [str(python), "-m", "engine", *args]


def query_engine_info(python: Path, timeout_s: float = 120.0) -> dict[str, Any]:
    """Run ``python -m engine info --json`` in a subprocess and return its parsed JSON.

    Raises :class:`EngineSetupError` with an actionable message when the interpreter
    cannot run, times out, prints no JSON, or reports missing packages (torch above all).
    """
    command = engine_command(python, "info", "--json")
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=engine_environment(), check=False
        )
    except OSError as exc:
        raise EngineSetupError(f"Cannot start the engine interpreter {python}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise EngineSetupError(f"'{' '.join(command)}' did not answer within {timeout_s:.0f} s") from exc
    try:
        info: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-10:])
        raise EngineSetupError(
            f"The engine interpreter {python} could not run the engine (exit {completed.returncode}): {tail}"
        ) from exc
    if info.get("problems"):
        raise EngineSetupError("; ".join(info["problems"]))
    return info
