"""DVR against NeuS and instant-NGP on the same time budget: Chamfer-L1 / F-score of their meshes, held-out PSNR.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_dvr.py [--minutes 3] [--cameras 32] [--image-size 64]
                                                            [--resolution 128] [--methods dvr neus ngp] [--out DIR]

The demo scene of scripts/bench_mesh.py (a subdivided, textured Suzanne rendered with Cycles from
cameras on a sphere, exported with the add-on's capture, RGBA so DVR has its masks); each method
trains for ``--minutes`` of training time with its default settings, then its mesh is extracted with
MISE at the method's own level (density for ngp, occupancy 0.5 for dvr, signed distance 0 for neus) and
compared with Suzanne's triangles (F-score at 1% of the scene box diagonal), and the held-out views are
rendered for PSNR/SSIM. Prints a table and writes ``bench_dvr.json``. Figures depend on the machine and
its load: say which when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer  # noqa: E402
from engine.mesh.io import write_mesh  # noqa: E402
from engine.mesh.metrics import surface_distances  # noqa: E402
from engine.mesh.surface import EmptySurfaceError  # noqa: E402
from engine.mesh.triangle_mesh import TriangleMesh  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_dvr.py", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per method")
    parser.add_argument("--methods", nargs="+", default=["dvr", "neus", "ngp"])
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=128, help="MISE's finest lattice")
    parser.add_argument("--eval-views", type=int, default=4, help="held-out views rendered for PSNR")
    parser.add_argument("--points", type=int, default=100_000, help="surface samples per mesh for the metrics")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_dvr-"))
    out.mkdir(parents=True, exist_ok=True)
    import bpy  # noqa: F401  (Blender as a module: the scene and its renders are real)
    import torch

    from addon import capture
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer
    from scripts.scenes import build_object_scene

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    info = build_object_scene(
        camera_count=args.cameras,
        resolution=args.image_size,
        shape="suzanne",
        object_location=(0.7, -0.4, 0.3),
        object_rotation_euler=(0.3, 0.0, 0.8),
        object_scale=(1.3, 1.3, 1.3),
    )
    truth = TriangleMesh(vertices=info.vertices, faces=info.triangles.astype(np.int64))
    dataset = capture.export_dataset(info.scene, out / "dataset", overwrite=True)
    print(f"scene rendered and exported in {time.perf_counter() - started:.0f} s", flush=True)

    loads = {"start": _load()}
    rows = []
    for method in args.methods:
        config = TrainConfig(method=method, steps=10**7, minutes=args.minutes, compile="off", eval_views=0)
        trainer = Trainer.create(dataset, out / method, config)
        while not trainer.is_done():
            trainer.train_step()
        trainer.save_checkpoint()
        evaluation = trainer.evaluate(limit=args.eval_views)
        box = trainer.scene_box
        threshold = 0.01 * float(np.linalg.norm(np.subtract(box.maximum, box.minimum)))
        row = {
            "method": method,
            "steps": trainer.step,
            "train_seconds": trainer.train_seconds,
            "psnr": evaluation["psnr"],
            "ssim": evaluation["ssim"],
        }
        try:
            result = extract_mesh_from_trainer(trainer, ExtractSettings(resolution=args.resolution, colour=False))
            write_mesh(result.mesh, out / f"mesh-{method}.ply", overwrite=True)
            distances = surface_distances(result.mesh, truth, threshold, n_points=args.points)
            row.update(
                faces=result.face_count,
                chamfer_l1=distances.chamfer_l1,
                f_score=distances.f_score,
                precision=distances.precision,
                recall=distances.recall,
                level=result.level.describe() if result.level else "",
            )
        except EmptySurfaceError as exc:
            print(f"{method}: no surface ({exc})")
        rows.append(row)
        loads[method] = _load()
        print(f"  {method}: done, {trainer.step} steps (load {loads[method]})", flush=True)

    print(
        f"\n{args.minutes:g} min each, {args.cameras} cameras at {args.image_size}px, MISE {args.resolution}, "
        f"{args.threads} thread(s), {platform.processor() or platform.machine()}"
    )
    header = ("method", "steps", "PSNR dB", "SSIM", "faces", "chamfer", "F@1%", "prec", "rec")
    print(
        f"{header[0]:<8} "
        + " ".join(f"{name:>{width}}" for name, width in zip(header[1:], (7, 8, 6, 8, 9, 6, 6, 6), strict=True))
    )
    for row in rows:

        def metric(key: str, spec: str, row: dict = row) -> str:
            return format(row[key], spec) if row.get(key) is not None else "-"

        print(
            f"{row['method']:<8} {row['steps']:>7} {metric('psnr', '.2f'):>8} {metric('ssim', '.3f'):>6} "
            f"{metric('faces', 'd'):>8} {metric('chamfer_l1', '.5f'):>9} {metric('f_score', '.3f'):>6} "
            f"{metric('precision', '.3f'):>6} {metric('recall', '.3f'):>6}"
        )
    print("load average (1/5/15 min) after: " + "; ".join(f"{stage} {value}" for stage, value in loads.items()))
    (out / "bench_dvr.json").write_text(
        json.dumps({"rows": rows, "load_average": loads, "args": vars(args)}, default=str, indent=2)
    )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
