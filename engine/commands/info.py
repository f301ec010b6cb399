"""``python -m engine info``: versions, device and threads, as text or JSON.

The add-on's "Check engine" runs this with the user's interpreter and parses the JSON,
so it must work (and say what is missing) even where torch is not installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from typing import Any

from . import EXIT_MISSING_DEPENDENCY

HELP = "print engine, Python and torch versions, the compute device and thread count"

# Exit status when the interpreter lacks a required package: the add-on shows the message.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _module_version(name: str) -> str | None:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown"))


def collect_info() -> dict[str, Any]:
    from .. import __version__
    from ..protocol import PROTOCOL_VERSION

    info: dict[str, Any] = {
        "engine_version": __version__,
        "protocol_version": PROTOCOL_VERSION,
        "python": sys.executable,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _module_version(name) for name in ("numpy", "mcubes", "imageio")},
        "torch_version": None,
        "device": None,
        "device_name": None,
        "threads": os.cpu_count(),
        "problems": [],
    }
    try:
        import torch
    except ImportError:
        requirements = os.path.join(os.path.dirname(os.path.dirname(__file__)), "requirements.txt")
        info["problems"].append(
            f"torch is not installed for {sys.executable}. In Blender use Preferences > Add-ons > Fieldwork > "
            f"Set up engine, or run: {sys.executable} -m pip install -r {requirements}"
        )
    else:
        from ..device import pick_device

        device = pick_device("auto")
        info["torch_version"] = torch.__version__
        info["device"] = device.type
        info["threads"] = torch.get_num_threads()
        if device.type == "cuda":
            info["device_name"] = torch.cuda.get_device_name(device)
        else:
            info["device_name"] = platform.processor() or platform.machine()
    for name, version in info["packages"].items():
        if version is None:
            info["problems"].append(f"{name} is not installed for {sys.executable}")
    return info


def run(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"Fieldwork engine {info['engine_version']} (protocol {info['protocol_version']})")
        print(f"Python  {info['python_version']}  {info['python']}")
        print(f"torch   {info['torch_version'] or 'NOT INSTALLED'}")
        print(f"device  {info['device'] or '-'}  {info['device_name'] or ''}".rstrip())
        print(f"threads {info['threads']}")
        for name, version in info["packages"].items():
            print(f"{name:<7} {version or 'NOT INSTALLED'}")
        for problem in info["problems"]:
            print(f"problem: {problem}", file=sys.stderr)
    return EXIT_MISSING_DEPENDENCY if info["problems"] else 0
