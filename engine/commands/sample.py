"""``python -m engine sample RUN_DIR --out layout.json [--seed S --objects N]``: a layout drawn from a run.

The layout (engine/layouts.py) holds each object's shape and appearance codes and its pose in Blender world
units, the background's codes and a camera from the collection's prior; render it with ``render-layout``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from . import EXIT_BAD_INPUT

HELP = "sample a layout of generated objects (codes, poses in world units, camera) from a trained run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run folder of a layout method")
    parser.add_argument("--out", type=Path, required=True, metavar="LAYOUT_JSON", help="layout file to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the codes, poses and camera")
    parser.add_argument("--objects", type=int, help="number of objects (default: a count from the prior)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto...")


def run(args: argparse.Namespace) -> int:
    from ..layouts import LayoutError, write_layout

    try:
        model = load_layout_model(args.run_dir.expanduser(), args.device)
        layout = model.sample_layout(args.seed, args.objects)
        layout = dataclasses.replace(layout, extra={**layout.extra, "run": str(args.run_dir.resolve())})
        path = write_layout(args.out.expanduser(), layout)
    except (ValueError, FileNotFoundError, LayoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps({"layout": str(path), "objects": [obj.name for obj in layout.objects]}))
    return 0


def load_layout_model(run_dir: Path, device: str) -> Any:
    """The model of a trained run whose method makes layouts; an error naming the method otherwise."""
    from ..train.trainer import Trainer

    trainer = Trainer.from_run(run_dir, device)
    if not trainer.spec.layouts:
        raise ValueError(f"{run_dir}: method {trainer.config.method!r} does not make layouts (giraffe does)")
    return trainer.model
