"""``python -m engine <command>``: everything the add-on can do, a script can do."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each command is a module in engine/commands/ with HELP, add_arguments(parser) and run(args) -> int.
# Modules are imported only when their command runs, so `info` works without torch.
COMMANDS = ("info", "serve", "extract")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="python -m engine", description="Fieldwork neural-field engine")
    parser.add_argument("--version", action="version", version=f"fieldwork-engine {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name}", __package__)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
