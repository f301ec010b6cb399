"""Benchmark the conditional texture field: held-out shapes' textures predicted from one view, against a baseline.

    OMP_NUM_THREADS=1 python scripts/bench_texture_fields.py --data /tmp/tf_bench --run /tmp/tf_run --minutes 6

Steps, each skipped when its output is already there: (1) a textured collection rendered in Blender with
scripts/make_textured_collection.py (``--shapes`` x ``--views`` at ``--size``, ``--textures`` shapes per
geometry), (2) ``python -m engine train DATA --method conditional_texture_field --minutes M`` with the last
``--holdout`` shapes by name held out and CPU_SETTINGS (a run with a checkpoint is evaluated as it is; pass a new
--run to train again), (3) for every held-out
shape, conditioned on each of its views in turn (``--condition-views all``; or on the views given, e.g. ``0``
as the run's own evaluation does): its other views predicted at the pixels where their rays meet the mesh
(the engine's ray caster), and PSNR/SSIM masked to those pixels, for the model and for the baseline that
colours the whole shape with the mean colour of the conditioning view's object pixels. Every view conditions
because the collection's view 0 looks almost straight down, the least a user's photo would show.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.data.textured_collection import index_path  # noqa: E402
from engine.data.textured_source import ALPHA_THRESHOLD, TexturedSource  # noqa: E402
from engine.fields.conditional_texture_field import (  # noqa: E402
    ConditionalTextureFieldModel,
    predict_shape_views,
    view_quality,
)
from engine.train.trainer import Trainer  # noqa: E402

# A model a CPU trains ~1,200 steps of in 6 minutes (about 0.3 s a step on a busy core; the defaults are sized
# for a GPU and take 2.7 s): 16 shapes of 256 target pixels and 256 encoder points a step, narrower encoders,
# 6 blocks (what the figures in the README were measured with).
CPU_SETTINGS = (
    "encoder_points=256",
    "shapes_per_batch=16",
    "points_per_shape=256",
    "encoder_width=64",
    "shape_code_size=128",
    "image_code_size=128",
    "image_channels=16",
    "blocks=6",
)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_texture_fields.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="textured collection (made here if missing)")
    parser.add_argument("--run", type=Path, required=True, help="run folder (trained here if it has no checkpoint)")
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--textures", type=int, default=4, help="textures per geometry (the maker's --textures)")
    parser.add_argument(
        "--holdout", type=int, default=20, help="held-out shapes, the last by name (a multiple of --textures)"
    )
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget")
    parser.add_argument(
        "--condition-views",
        nargs="+",
        default=["all"],
        help="the views that condition each held-out shape, one at a time (all: every view)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a method setting (after CPU_SETTINGS)"
    )
    return parser.parse_args(argv)


def run_step(command: list[str], what: str) -> None:
    started = time.perf_counter()
    print(f"{what}: {' '.join(command)}", flush=True)
    completed = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{what} failed (exit {completed.returncode})")
    print(f"{what}: {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(1)
    if not index_path(args.data).is_file():
        script = REPO / "scripts" / "make_textured_collection.py"
        options = ["--out", str(args.data), "--shapes", str(args.shapes), "--views", str(args.views)]
        options += ["--textures", str(args.textures)]
        run_step([sys.executable, str(script), "--", *options, "--size", str(args.size), "--threads", "1"], "render")
    if not (args.run / "checkpoint.pt").is_file():
        command = [sys.executable, "-m", "engine", "train", str(args.data), "--method", "conditional_texture_field"]
        command += ["--out", str(args.run), "--minutes", str(args.minutes), "--no-eval", "--quiet"]
        settings = [f"holdout_shapes={args.holdout}", *CPU_SETTINGS, *args.set]
        command += [part for item in settings for part in ("--set", item)]
        run_step(command, "train")
    trainer = Trainer.from_run(args.run, device="cpu")
    model = trainer.model
    if not isinstance(model, ConditionalTextureFieldModel):
        raise SystemExit(f"{args.run} is a {trainer.config.method} run, not conditional_texture_field")
    source = trainer.source
    assert isinstance(source, TexturedSource)
    names = source.names()
    held_out = [names.index(name) for name in model.holdout]
    print(
        f"run {args.run}: step {trainer.step}, {trainer.train_seconds:.0f} s of training, "
        f"{len(source.train)} training shapes, {len(held_out)} held out; conditioned on views "
        f"{' '.join(args.condition_views)}"
    )
    rows = []
    print(f"{'shape':<12} {'pattern':<9} {'model PSNR':>10} {'SSIM':>6}   {'baseline PSNR':>13} {'SSIM':>6}")
    for index in held_out:
        shape = source.shapes[index]
        views = len(shape.view_start) - 1
        conditions = range(views) if args.condition_views == ["all"] else [int(view) for view in args.condition_views]
        ours, base = [], []
        for condition_view in conditions:
            predictions = predict_shape_views(model, shape, condition_view, torch.device("cpu"))
            condition = shape.images[condition_view].reshape(-1, 4)
            mean_colour = condition[condition[:, 3] > ALPHA_THRESHOLD * 255, :3].mean(axis=0) / 255.0
            ours += [view_quality(shape, view, colours) for view, colours in predictions.items()]
            base += [
                view_quality(shape, view, np.broadcast_to(mean_colour, colours.shape))
                for view, colours in predictions.items()
            ]
        row = {
            "model_psnr": np.mean([q["psnr"] for q in ours]),
            "model_ssim": np.mean([q["ssim"] for q in ours]),
            "base_psnr": np.mean([q["psnr"] for q in base]),
            "base_ssim": np.mean([q["ssim"] for q in base]),
        }
        rows.append(row)
        pattern = _pattern(args.data, shape.name)
        print(
            f"{shape.name:<12} {pattern:<9} {row['model_psnr']:>10.2f} {row['model_ssim']:>6.3f}   "
            f"{row['base_psnr']:>13.2f} {row['base_ssim']:>6.3f}"
        )
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    print(
        f"{'mean':<12} {'':<9} {means['model_psnr']:>10.2f} {means['model_ssim']:>6.3f}   "
        f"{means['base_psnr']:>13.2f} {means['base_ssim']:>6.3f}"
    )
    print(
        f"held-out PSNR {means['model_psnr']:.2f} dB vs the mean-colour baseline's {means['base_psnr']:.2f} dB; "
        f"SSIM {means['model_ssim']:.3f} vs {means['base_ssim']:.3f} (masked to the object's pixels)"
    )
    return 0


def _pattern(data: Path, name: str) -> str:
    """The shape's true texture pattern, from the maker's texture.json (evaluation only)."""
    import json

    path = index_path(data).parent / "shapes" / name / "texture.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["texture"]["pattern"])
    except (OSError, ValueError, KeyError):
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
