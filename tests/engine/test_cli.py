"""``python -m engine``: info as text and JSON, --help everywhere, no torch in the protocol."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from engine.__main__ import COMMANDS
from tests.conftest import REPO


def run_engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_info_json_reports_versions_device_threads() -> None:
    completed = run_engine("info", "--json")
    assert completed.returncode == 0, completed.stderr
    info = json.loads(completed.stdout)
    assert info["torch_version"].startswith("2.")
    assert info["device"] in {"cpu", "cuda", "mps"}
    assert info["threads"] >= 1
    assert info["problems"] == []


def test_info_text() -> None:
    completed = run_engine("info")
    assert completed.returncode == 0
    assert "torch   2." in completed.stdout and "device " in completed.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str) -> None:
    completed = run_engine(command, "--help")
    assert completed.returncode == 0, completed.stderr
    assert "usage: python -m engine " + command in completed.stdout
    # The command's own help, not the stand-in a command gets when its module fails to import.
    module = importlib.import_module(f"engine.commands.{command.replace('-', '_')}")
    assert module.HELP[:40] in " ".join(completed.stdout.split())


def test_protocol_imports_without_torch() -> None:
    # Blender's Python has no torch: block it and import what the add-on imports.
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['bpy'] = None\n"
        "import engine, engine.protocol\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.stdout.strip() == "ok", completed.stderr
