"""``python -m engine eval RUN_DIR``: PSNR and SSIM of a trained run on its held-out views, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import EXIT_BAD_INPUT

HELP = "evaluate a trained run: PSNR/SSIM per held-out view and their mean, as JSON on stdout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run folder (with its checkpoint)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--frames", type=int, nargs="+", help="evaluate these frame indices instead of the held-out")
    parser.add_argument("--views", type=int, default=-1, help="at most this many views, spread over them (-1: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..train.inference import evaluation_bar
    from ..train.run_folder import check_readable_run
    from ..train.trainer import Trainer

    try:
        check_readable_run(args.run_dir.expanduser())
        trainer = Trainer.from_run(args.run_dir.expanduser(), args.device)
        if trainer.spec.family == "images":
            result = trainer.evaluate(args.frames, limit=args.views, on_view=None if args.quiet else evaluation_bar)
        else:
            result = trainer.evaluate_run()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(result, indent=2))
    return 0
