"""Issue 11's benchmark: a dataset Fieldwork did not write trains as fast as Fieldwork's own, with defaults.

    .venv/bin/python scripts/bench_foreign_dataset.py [--dataset DIR] [--stages 2 5 10] [--threads 2] [--out DIR]

The dataset is in the NeRF-synthetic layout (scripts/make_synthetic_dataset.py renders it with Cycles when
--dataset is not given: 100 cameras on a radius-4 sphere, 100x100 RGBA, ``camera_angle_x`` only, no box,
every 8th view held out). Its twin is the same images and cameras written as Fieldwork's exporter writes
them: ``transforms.json`` with pinhole intrinsics and the object's bounds as the scene box. Both are trained
with ``python -m engine train DATASET --minutes M --out RUN`` and no other flag, resumed from one stage to
the next (2, 5 and 10 minutes of training), so each stage's evaluation gives the held-out PSNR at that time.

Printed: the box the engine chose against the object's true bounds (per axis, as a share of the padded
bounds), rays/s and held-out PSNR per stage for both, and every command's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.data.transforms import SceneBox, Transforms, read_transforms, write_transforms  # noqa: E402


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="a NeRF-synthetic-layout dataset (default: render one)")
    parser.add_argument("--stages", type=float, nargs="+", default=[2.0, 5.0, 10.0], help="minutes of training")
    parser.add_argument("--threads", type=int, default=2, help="OMP/torch threads of the engine")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_foreign")
    parser.add_argument(
        "--parallel", action="store_true", help="train both at once, one thread each (equal load, half the wall time)"
    )
    return parser.parse_args()


def fieldwork_twin(dataset: Path, folder: Path) -> Path:
    """The same frames as Fieldwork's exporter writes them: one transforms.json, the object's bounds as box."""
    bounds = json.loads((dataset / "object_bounds.json").read_text())
    source = read_transforms(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):  # the images stay where they are, inside the twin's folder
        link = folder / split
        if not link.exists():
            link.symlink_to((dataset / split).resolve(), target_is_directory=True)
    twin = Transforms(
        frames=source.frames,
        root=folder,
        scene_box=SceneBox(minimum=tuple(bounds["min"]), maximum=tuple(bounds["max"])),
        color_space=source.color_space,
        has_alpha=source.has_alpha,
    )
    return write_transforms(folder, twin, split_files=True)


def train_stage(dataset: Path, run: Path, minutes: float, threads: int) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "engine", "train", str(dataset), "--minutes", str(minutes), "--out", str(run)]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [record for record in records if record["event"] == "train"]
    recent = [record for record in train if record["train_seconds"] > result["train_seconds"] - 60.0] or train[-1:]
    rays = sum(record["rays"] for record in recent)
    seconds = sum(record["seconds"] for record in recent)
    return {
        "minutes": minutes,
        "step": result["step"],
        "psnr": result["psnr"],
        "views": len(result["views"]),
        "views_skipped": result.get("views_skipped", 0),
        "eval_seconds": round(result.get("eval_seconds", 0.0), 1),
        # logged steps of the last minute (the trainer logs every 50th step)
        "rays_per_second": rays / max(seconds, 1e-9),
        "command_seconds": round(wall, 1),
    }


def main() -> int:
    args = parse_arguments()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = args.dataset
    if dataset is None:
        dataset = args.out / "synthetic"
        if not (dataset / "transforms_train.json").is_file():
            script = REPO / "scripts" / "make_synthetic_dataset.py"
            subprocess.run([sys.executable, str(script), "--out", str(dataset)], cwd=REPO, check=True)
    twin = fieldwork_twin(dataset, args.out / "fieldwork_export")
    report: dict = {"load_average": os.getloadavg()[0], "threads": args.threads, "runs": {}}
    datasets = {"foreign": dataset, "fieldwork": twin}
    for name in datasets:
        if (args.out / f"run_{name}").exists():
            raise SystemExit(f"{args.out / f'run_{name}'} exists: remove it or pick another --out")

    def stages(name: str) -> list[dict]:
        return [train_stage(datasets[name], args.out / f"run_{name}", minutes, args.threads) for minutes in args.stages]

    if args.parallel:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = dict(zip(datasets, pool.map(stages, datasets), strict=True))
    else:
        results = {name: stages(name) for name in datasets}
    for name, rows in results.items():
        run = args.out / f"run_{name}"
        config = json.loads((run / "config.json").read_text())
        report["runs"][name] = {"rows": rows, "scene_box": config["scene_box"], "rule": config["scene_box_rule"]}
        for row in rows:
            print(
                f"{name:9s} {row['minutes']:4.0f} min  step {row['step']:6d}  {row['rays_per_second']:7.0f} rays/s  "
                f"PSNR {row['psnr']:.2f} dB ({row['views']} views, {row['eval_seconds']} s)  "
                f"command {row['command_seconds']:.0f} s",
                flush=True,
            )
    bounds = json.loads((dataset / "object_bounds.json").read_text())
    chosen = report["runs"]["foreign"]["scene_box"]
    size = [high - low for low, high in zip(bounds["min"], bounds["max"], strict=True)]
    pad = 0.05 * max(size)
    errors = [
        max(
            abs(chosen["min"][axis] - (bounds["min"][axis] - pad)),
            abs(chosen["max"][axis] - (bounds["max"][axis] + pad)),
        )
        / (size[axis] + 2 * pad)
        for axis in range(3)
    ]
    print(f"chosen box {chosen['min']}..{chosen['max']} by {report['runs']['foreign']['rule']}")
    print(f"  error per axis against the object's bounds padded 5%: {[f'{e:.1%}' for e in errors]} (target < 10%)")
    foreign, own = report["runs"]["foreign"]["rows"][-1], report["runs"]["fieldwork"]["rows"][-1]
    print(
        f"at {foreign['minutes']:g} min: rays/s ratio {own['rays_per_second'] / foreign['rays_per_second']:.2f} "
        f"(target <= 1.5), PSNR gap {own['psnr'] - foreign['psnr']:.2f} dB (target <= 1)"
    )
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
