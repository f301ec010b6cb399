"""``python -m engine methods [--json]``: every method the engine trains, from the registry."""

from __future__ import annotations

import argparse
import json

HELP = "list the methods (name, label, data family, surface kind, config fields with defaults)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--family", help="only the methods learning from this data family")


def run(args: argparse.Namespace) -> int:
    from .. import methods

    specs = methods.specs(args.family)
    if args.json:
        print(json.dumps([spec.to_dict() for spec in specs], indent=2))
        return 0
    for spec in specs:
        print(f"{spec.name:10s} {spec.label}  [{spec.family}; surface: {spec.surface}]")
        print(f"{'':10s} {spec.description}")
        settings = ", ".join(f"{row['name']}={row['default']}" for row in spec.config_fields())
        print(f"{'':10s} settings (--set key=value): {settings}\n")
    return 0
