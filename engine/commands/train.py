"""``python -m engine train DATASET --method ngp --steps N --out RUN_DIR``: train a method.

Resumes when RUN_DIR already holds a checkpoint. Progress goes to stderr, the log to RUN_DIR/engine.log,
and the final evaluation (PSNR/SSIM on held-out views for image methods, the family's own figures
otherwise) to stdout as JSON. Ctrl-C or SIGTERM saves the checkpoint and exits with 128 + the signal.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import EXIT_BAD_INPUT

if TYPE_CHECKING:
    from ..train.preview_file import PreviewFile
    from ..train.trainer import Trainer

HELP = "train a method (see `methods`) on its data; resumes a run folder's checkpoint"

# With only a time budget the step budget must not end the run first.
UNLIMITED_STEPS = 10**9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .. import methods
    from ..train.config import BACKGROUNDS

    parser.add_argument(
        "dataset",
        type=Path,
        metavar="DATASET",
        help="the method's data: transforms.json (or its folder), a shape dataset, an image collection",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder (created or resumed)")
    parser.add_argument(
        "--method",
        "--field",
        dest="method",
        choices=methods.names(),
        default="ngp",
        help="what to train (`python -m engine methods` describes them; --field is the old name)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the method's config (repeatable), e.g. --set levels=8",
    )
    parser.add_argument("--steps", type=int, help="step budget (default 2000, or unlimited when --minutes is given)")
    parser.add_argument("--minutes", type=float, default=0.0, help="time budget in minutes of training (0: none)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--downscale", type=int, default=1, help="load images downscaled by this whole factor")
    parser.add_argument("--background", choices=BACKGROUNDS, default="random", help="behind transparent pixels")
    parser.add_argument("--batch-rays", type=int, help="fixed rays per step (default: as many as the sample budget)")
    parser.add_argument(
        "--samples-per-step", type=int, default=0, help="field samples per step the ray count adapts to (0: device's)"
    )
    parser.add_argument("--eval-views", type=int, default=-1, help="held-out views evaluated at the end (-1: all)")
    parser.add_argument("--no-eval", action="store_true", help="no evaluation at the end")
    parser.add_argument("--seed", type=int, default=0, help="random seed (runs with a step budget repeat exactly)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="torch.compile the field")
    parser.add_argument(
        "--scene-box",
        type=float,
        nargs=6,
        metavar=("MINX", "MINY", "MINZ", "MAXX", "MAXY", "MAXZ"),
        help="scene box in world units, overriding the dataset's (or the one chosen from its views)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS", help="checkpoint every N steps")
    parser.add_argument(
        "--checkpoint-minutes", type=float, default=5.0, help="and every M minutes of training (0: by steps only)"
    )
    parser.add_argument(
        "--resume-other-dataset", action="store_true", help="resume RUN_DIR on a dataset other than its own"
    )
    parser.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="read images a frame names outside the dataset's folder (absolute or ../ paths): trusted datasets only",
    )
    parser.add_argument(
        "--preview-view",
        type=Path,
        metavar="VIEW_JSON",
        help="render the run from this view (a set_view message as JSON, read again when it changes) into "
        "RUN_DIR/preview.png while it trains: a volume render, or a shape method's shaded surface",
    )
    parser.add_argument(
        "--preview-every", type=float, default=1.0, metavar="SECONDS", help="at most one preview this often"
    )
    parser.add_argument("--preview-size", type=int, default=256, help="the preview's longest side at most, pixels")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .. import methods
    from ..data.bounds import scene_box_from_values
    from ..train.config import TrainConfig
    from ..train.run_folder import DatasetIdentity, StopSignals, claim_run_folder
    from ..train.trainer import LOG_NAME, Trainer

    steps = args.steps if args.steps is not None else (UNLIMITED_STEPS if args.minutes > 0 else TrainConfig.steps)
    dataset: Path = args.dataset.expanduser()
    out_dir: Path = args.out.expanduser()
    try:
        if args.batch_rays is not None and args.batch_rays < 1:
            raise ValueError(f"--batch-rays must be >= 1, got {args.batch_rays} (leave it out for the sample budget)")
        spec = methods.get(args.method)
        settings = dict(methods.parse_setting(spec.config, assignment) for assignment in args.settings)
        scene_box = scene_box_from_values(args.scene_box) if args.scene_box is not None else None
        config = TrainConfig(
            method=args.method,
            steps=steps,
            minutes=args.minutes,
            device=args.device,
            seed=args.seed,
            downscale=args.downscale,
            background=args.background,
            compile=args.compile,
            batch_rays=args.batch_rays or 0,
            samples_per_step=args.samples_per_step,
            eval_views=0 if args.no_eval else args.eval_views,
            checkpoint_every=args.checkpoint_every,
            checkpoint_minutes=args.checkpoint_minutes,
            allow_outside_paths=args.allow_outside_paths,
            settings=spec.make_config(settings),
        )
        identity = DatasetIdentity.of_data(spec.family, dataset, args.allow_outside_paths)
        run_folder = claim_run_folder(out_dir, identity, allow_other_dataset=args.resume_other_dataset)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with run_folder:
        _log_to(out_dir / LOG_NAME)
        if run_folder.previous_dataset is not None:
            logging.getLogger(__name__).warning(
                "resuming %s on %s; it was trained on %s until now", out_dir, dataset, run_folder.previous_dataset.path
            )
        try:
            trainer = Trainer.create(dataset, out_dir, config, scene_box=scene_box)
            preview = _preview_file(args, trainer, out_dir)
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        with StopSignals() as stop:
            result = trainer.fit(progress=not args.quiet, stop=stop, preview=preview)
    print(json.dumps(result, indent=2))
    if stop.requested:
        # stopped by a signal with the checkpoint saved: the shell's convention, so scripts can tell
        return 128 + int(getattr(signal, stop.signal_name or "SIGINT"))
    return 0


def _preview_file(args: argparse.Namespace, trainer: Trainer, out_dir: Path) -> PreviewFile | None:
    """The --preview-view writer, or None; a ValueError names a bad view file or a method with no picture."""
    from .. import methods
    from ..train.preview_file import PREVIEW_FILE_NAME, PreviewFile

    if args.preview_view is None:
        return None
    if not args.preview_every >= 0.0:
        raise ValueError(f"--preview-every must be >= 0 seconds, got {args.preview_every}")
    if not 16 <= args.preview_size <= 4096:
        raise ValueError(f"--preview-size must be between 16 and 4096 pixels, got {args.preview_size}")
    if not trainer.spec.renders and trainer.spec.surface == methods.NO_SURFACE:
        raise ValueError(f"method {args.method!r} has no picture from a view (neither rays nor a surface)")
    return PreviewFile(
        args.preview_view.expanduser(), out_dir / PREVIEW_FILE_NAME, args.preview_every, args.preview_size
    )


def _log_to(path: Path) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in (logging.FileHandler(path, encoding="utf-8"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        root.addHandler(handler)
