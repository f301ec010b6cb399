"""``python -m engine <command>``: everything the add-on can do, a script can do."""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from pathlib import Path

from .commands import EXIT_MISSING_DEPENDENCY

# Each command is a module in engine/commands/ with HELP, add_arguments(parser) and run(args) -> int.
# Command modules import torch and numpy inside run(), so building the parser (and `info`) works without them.
COMMANDS = ("info", "methods", "serve", "extract", "texture", "train", "render", "eval", "sample", "render-layout")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="python -m engine", description="Fieldwork neural-field engine")
    parser.add_argument("--version", action="version", version=f"fieldwork-engine {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name.replace('-', '_')}", __package__)
        except ImportError as exc:
            # A command whose packages this interpreter lacks must not take the others down with it:
            # `info` and `serve` have to run there to say what is missing.
            sub = subparsers.add_parser(name, help=f"unavailable here: {exc}")
            sub.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            sub.set_defaults(_run=functools.partial(_unavailable, name, exc))
            continue
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _unavailable(name: str, error: ImportError, _args: argparse.Namespace) -> int:
    requirements = Path(__file__).resolve().parent / "requirements.txt"
    print(
        f"'{name}' cannot run: {error}. Install the engine's packages for {sys.executable}: "
        f"{sys.executable} -m pip install -r {requirements}",
        file=sys.stderr,
    )
    return EXIT_MISSING_DEPENDENCY


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
