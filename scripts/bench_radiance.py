"""Radiance-field benchmark: held-out PSNR against training wall time for ngp and nerf on one CPU budget.

    .venv/bin/python scripts/bench_radiance.py [--out DIR] [--threads 2] [--ngp-minutes 10]
                                               [--nerf-factor 10] [--nerf-max-minutes 15] [--device cpu]

The scene: a subdivided, textured Suzanne (scripts/scenes.py) rendered with Cycles from 100 cameras on a
sphere at 100x100 pixels with a transparent background, exported with the add-on's capture; every 8th
view (0, 8, ..., 96: 13 views) is held out. The dataset is rendered once into ``--out/dataset`` and
reused by later runs.

ngp trains for ``--ngp-minutes`` and is evaluated on all held-out views every ``--eval-every`` seconds of
training. nerf then trains for ``--nerf-factor`` times ngp's time to 25 dB (at most
``--nerf-max-minutes``), evaluated on ``--nerf-views`` held-out views only (one nerf render of a view
costs as much as hundreds of training steps). Time to 25 dB is compared on those same views for both
fields. Wall time counts training only (the clock stops while evaluating), compilation included.
Beside each figure: training rays per second over the interval and the process's peak memory.
Prints a table and writes ``bench_radiance.json``. The figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from engine.train.config import TrainConfig  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

TARGET_DB = 25.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/fieldwork-bench-radiance"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--ngp-minutes", type=float, default=10.0)
    parser.add_argument("--eval-every", type=float, default=30.0, help="seconds of ngp training between evaluations")
    parser.add_argument("--nerf-factor", type=float, default=10.0)
    parser.add_argument("--nerf-max-minutes", type=float, default=15.0)
    parser.add_argument("--nerf-views", type=int, default=2, help="held-out views nerf is evaluated on")
    parser.add_argument("--nerf-evals", type=int, default=3, help="evaluations spread over nerf's budget")
    parser.add_argument("--skip-nerf", action="store_true")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--ngp-batch-rays", type=int, default=1024, help="rays per ngp step")
    parser.add_argument("--nerf-batch-rays", type=int, default=1024, help="rays per nerf step (the paper's 1024)")
    return parser.parse_args()


def build_dataset(args: argparse.Namespace) -> Path:
    dataset = args.out / "dataset" / "transforms.json"
    if dataset.is_file():
        print(f"reusing {dataset}", flush=True)
        return dataset
    import bpy  # noqa: F401  (Blender as a module: the scene and its renders are real)

    from addon import capture
    from scripts.scenes import build_object_scene

    started = time.perf_counter()
    info = build_object_scene(camera_count=args.views, resolution=args.image_size, shape="suzanne")
    path = capture.export_dataset(info.scene, args.out / "dataset", holdout_every=8, overwrite=True)
    print(f"rendered {args.views} views in {time.perf_counter() - started:.0f} s: {path}", flush=True)
    return Path(path)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train_and_measure(
    trainer: Trainer, budget_seconds: float, eval_times: list[float], views: list[int] | None
) -> list[dict[str, Any]]:
    """Train until budget_seconds of training time, evaluating at each of eval_times (and at the end)."""
    rows = []
    pending = [*sorted(time for time in eval_times if time < budget_seconds), budget_seconds]
    rays_since, seconds_since = 0, 0.0
    for checkpoint in pending:
        while trainer.train_seconds < checkpoint:
            stats = trainer.train_step()
            rays_since += stats.rays
            seconds_since += stats.seconds
        result = trainer.evaluate(views)
        row = {
            "train_seconds": round(trainer.train_seconds, 1),
            "step": trainer.step,
            "psnr": result["psnr"],
            "ssim": result["ssim"],
            "views": {view["frame"]: view["psnr"] for view in result["views"]},
            "rays_per_second": rays_since / max(seconds_since, 1e-9),
            "peak_memory_mib": peak_memory_mib(trainer.device),
        }
        rays_since, seconds_since = 0, 0.0
        rows.append(row)
        print(
            f"  {trainer.config.method:4s} {row['train_seconds']:7.1f} s  step {row['step']:6d}  "
            f"PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f}  {row['rays_per_second']:8.0f} rays/s  "
            f"peak {row['peak_memory_mib']:.0f} MiB",
            flush=True,
        )
    return rows


def first_time_at(rows: list[dict[str, Any]], views: list[int], target: float) -> float | None:
    for row in rows:
        if sum(row["views"][view] for view in views) / len(views) >= target:
            return float(row["train_seconds"])
    return None


def main() -> int:
    args = parse_arguments()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(args)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}", flush=True)
    report: dict[str, Any] = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": args.threads,
        "device": args.device,
        "dataset": str(dataset),
    }

    ngp_config = TrainConfig(
        method="ngp",
        steps=10**9,
        minutes=args.ngp_minutes,
        device=args.device,
        compile=args.compile,
        batch_rays=args.ngp_batch_rays,
        log_every=100,
    )
    ngp = Trainer.create(dataset, args.out / "ngp", ngp_config)
    holdout = ngp.dataset.holdout_indices
    nerf_views = holdout[: args.nerf_views]
    print(f"ngp: {len(ngp.dataset.train_indices)} training views, held out {holdout}", flush=True)
    budget = args.ngp_minutes * 60.0
    eval_times = [args.eval_every * k for k in range(1, int(budget / args.eval_every) + 1)]
    ngp_rows = train_and_measure(ngp, budget, eval_times, None)
    ngp_target_time = first_time_at(ngp_rows, nerf_views, TARGET_DB)
    report["ngp"] = {"rows": ngp_rows, "seconds_to_25db_on_nerf_views": ngp_target_time}
    report["ngp"]["final_psnr_all_heldout"] = ngp_rows[-1]["psnr"]

    if not args.skip_nerf:
        reference = ngp_target_time if ngp_target_time is not None else budget
        nerf_budget = min(args.nerf_factor * reference, args.nerf_max_minutes * 60.0)
        nerf_config = TrainConfig(
            method="nerf",
            steps=10**9,
            minutes=nerf_budget / 60.0,
            device=args.device,
            batch_rays=args.nerf_batch_rays,
            log_every=10,
        )
        nerf = Trainer.create(dataset, args.out / "nerf", nerf_config)
        print(f"nerf: budget {nerf_budget:.0f} s, evaluated on views {nerf_views}", flush=True)
        nerf_eval_times = [nerf_budget * k / args.nerf_evals for k in range(1, args.nerf_evals)]
        nerf_rows = train_and_measure(nerf, nerf_budget, nerf_eval_times, nerf_views)
        nerf_target_time = first_time_at(nerf_rows, nerf_views, TARGET_DB)
        report["nerf"] = {"rows": nerf_rows, "budget_seconds": nerf_budget, "seconds_to_25db": nerf_target_time}
        if ngp_target_time is not None:
            if nerf_target_time is not None:
                report["speedup_to_25db"] = nerf_target_time / ngp_target_time
            else:
                report["speedup_to_25db_at_least"] = nerf_budget / ngp_target_time

    summary = {key: value for key, value in report.items() if key not in ("ngp", "nerf")}
    print("\nsummary:")
    final_psnr = report["ngp"]["final_psnr_all_heldout"]
    print(f"  ngp held-out PSNR after {args.ngp_minutes:g} min: {final_psnr:.2f} dB (target 28)")
    print(f"  ngp time to {TARGET_DB:g} dB on views {nerf_views}: {ngp_target_time}")
    if "nerf" in report:
        nerf_report = report["nerf"]
        budget_text = f"budget {nerf_report['budget_seconds']:.0f} s"
        print(f"  nerf time to {TARGET_DB:g} dB: {nerf_report['seconds_to_25db']} ({budget_text})")
    print(f"  {json.dumps(summary)}")
    (args.out / "bench_radiance.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
