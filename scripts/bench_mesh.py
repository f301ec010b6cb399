"""Mesh extraction benchmark: MISE vs dense queries and time, Chamfer-L1 and F-score against ground truth.

    .venv/bin/python scripts/bench_mesh.py [--steps 2000] [--field ngp] [--cameras 48] [--image-size 96]
                                           [--resolutions 128 256] [--out DIR]

Part 1, analytic: a torus as a signed distance field, MISE vs dense at each resolution (no
training; shows the query saving on its own). Part 2, trained: a subdivided, textured Suzanne
rendered with Cycles from cameras on a sphere (scripts/scenes.py), exported with the add-on's
capture, a field trained on it, then meshes extracted with MISE and dense at each resolution
and compared with Suzanne's own triangles. F-score at 1% of the scene box diagonal. A MISE row
without filling unseen space (``unfilled``) shows what the inner wall of a hollow field costs.
``--reuse`` extracts again from the run and ground truth a previous run left in ``--out``.
Prints a table and writes ``bench_mesh.json`` in ``--out``. Figures depend on the machine and
its load: say which when quoting them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from engine.mesh.dense import sample_dense  # noqa: E402
from engine.mesh.extract import ExtractSettings, SamplingMethod, extract_mesh_from_trainer  # noqa: E402
from engine.mesh.grid import Grid  # noqa: E402
from engine.mesh.io import read_ply, write_mesh  # noqa: E402
from engine.mesh.levels import FieldKind, SurfaceLevel  # noqa: E402
from engine.mesh.metrics import surface_distances  # noqa: E402
from engine.mesh.mise import initial_resolution_for, sample_mise  # noqa: E402
from engine.mesh.surface import EmptySurfaceError, marching_cubes  # noqa: E402
from engine.mesh.triangle_mesh import TriangleMesh  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", default="ngp", choices=("ngp", "nerf"))
    parser.add_argument("--steps", type=int, default=2000, help="training steps")
    parser.add_argument("--cameras", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=96, help="rendered views are this many pixels square")
    parser.add_argument("--minutes", type=float, default=0.0, help="training time budget (0: steps only)")
    parser.add_argument("--batch-rays", type=int, default=4096, help="rays per training step")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help="torch.compile the field")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default; 1 is faster on a busy machine)"
    )
    parser.add_argument("--level", type=float, help="density level per world unit (default: the engine's)")
    parser.add_argument("--points", type=int, default=200_000, help="surface samples per mesh for the metrics")
    parser.add_argument("--analytic-only", action="store_true", help="skip rendering and training")
    parser.add_argument(
        "--reuse", action="store_true", help="extract from the run and ground truth already in --out (no training)"
    )
    parser.add_argument("--out", type=Path, help="folder for the dataset, run and results (default: a temp folder)")
    return parser.parse_args(argv)


def analytic_rows(resolutions: list[int]) -> list[dict]:
    """A torus (major 0.6, minor 0.2) in the box [-1, 1]^3, as a signed distance field."""

    def torus_inside(points: np.ndarray) -> np.ndarray:
        ring = np.hypot(points[:, 0], points[:, 1]) - 0.6
        return SurfaceLevel(FieldKind.SDF, 0.0).inside(np.hypot(ring, points[:, 2]) - 0.2)

    rows = []
    for resolution in resolutions:
        initial = initial_resolution_for(resolution)
        for method in ("mise", "dense"):
            multiple = resolution // initial if method == "mise" else 1
            grid = Grid.covering_box(np.full(3, -1.0), np.full(3, 1.0), resolution, multiple_of=multiple)
            started = time.perf_counter()
            if method == "mise":
                sampled = sample_mise(torus_inside, grid, initial, 1 << 17)
            else:
                sampled = sample_dense(torus_inside, grid, 1 << 17)
            mesh = marching_cubes(sampled)
            rows.append(
                {
                    "part": "analytic torus",
                    "resolution": resolution,
                    "method": method,
                    "queries": sampled.n_queries,
                    "seconds": time.perf_counter() - started,
                    "faces": mesh.n_faces,
                }
            )
    return rows


GROUND_TRUTH = "ground_truth.ply"


def build_and_train(args: argparse.Namespace, out: Path) -> tuple[object, TriangleMesh, dict]:
    import bpy  # noqa: F401  (Blender as a module: the scene and its renders are real)

    from addon import capture
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer
    from scripts.scenes import build_object_scene, save_ground_truth_mesh

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
    save_ground_truth_mesh(info, out / GROUND_TRUTH)
    dataset = capture.export_dataset(info.scene, out / "dataset", overwrite=True)
    render_seconds = time.perf_counter() - started

    started = time.perf_counter()
    config = TrainConfig(
        method=args.field, steps=args.steps, minutes=args.minutes, batch_rays=args.batch_rays, compile=args.compile
    )
    trainer = Trainer.create(dataset, out / "run", config)
    while not trainer.is_done():
        trainer.train_step()
    trainer.save_checkpoint()
    train_seconds = time.perf_counter() - started
    timings = {"render_and_export_seconds": render_seconds, "train_seconds": train_seconds, "steps": trainer.step}
    return trainer, truth, timings


def trained_rows(trainer: object, truth: TriangleMesh, args: argparse.Namespace) -> list[dict]:
    box = trainer.scene_box  # type: ignore[attr-defined]
    threshold = 0.01 * float(np.linalg.norm(np.subtract(box.maximum, box.minimum)))
    rows = []
    variants = [("mise", SamplingMethod.MISE, True), ("dense", SamplingMethod.DENSE, True)]
    variants.append(("unfilled", SamplingMethod.MISE, False))
    for resolution in args.resolutions:
        for name, method, fill in variants:
            settings = ExtractSettings(
                resolution=resolution, method=method, level=args.level, colour=False, fill_unseen=fill
            )
            try:
                result = extract_mesh_from_trainer(trainer, settings)
            except EmptySurfaceError as exc:
                print(f"{name} at {resolution}: {exc}")
                continue
            write_mesh(result.mesh, args.out / f"mesh-{name}-{resolution}.ply", overwrite=True)
            distances = surface_distances(result.mesh, truth, threshold, n_points=args.points)
            rows.append(
                {
                    "part": f"trained {args.field}",
                    "resolution": resolution,
                    "method": name,
                    "queries": result.n_queries,
                    "seconds": result.sampling_seconds,  # finding the surface: what MISE and dense differ in
                    "total_seconds": result.total_seconds,  # with filling, marching cubes and clean-up
                    "faces": result.face_count,
                    "unseen_points_filled": result.unseen_points_filled,
                    "chamfer_l1": distances.chamfer_l1,
                    "f_score": distances.f_score,
                    "precision": distances.precision,
                    "recall": distances.recall,
                    "threshold": threshold,
                    "level": result.level.describe(),
                }
            )
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        f"{'part':<16} {'res':>4} {'method':<8} {'queries':>11} {'seconds':>8} {'faces':>8} {'chamfer':>9} "
        f"{'F@1%':>6} {'prec':>6} {'recall':>6}"
    )
    for row in rows:
        chamfer = f"{row['chamfer_l1']:.5f}" if "chamfer_l1" in row else "-"
        scores = [f"{row[key]:.3f}" if key in row else "-" for key in ("f_score", "precision", "recall")]
        print(
            f"{row['part']:<16} {row['resolution']:>4} {row['method']:<8} {row['queries']:>11,} "
            f"{row['seconds']:>8.2f} {row['faces']:>8,} {chamfer:>9} {scores[0]:>6} {scores[1]:>6} {scores[2]:>6}"
        )
    by_key = {(row["part"], row["resolution"], row["method"]): row for row in rows}
    for part, resolution, _ in sorted({key for key in by_key if key[2] == "mise"}):
        if (part, resolution, "dense") not in by_key:
            continue
        mise, dense = by_key[(part, resolution, "mise")], by_key[(part, resolution, "dense")]
        line = (
            f"{part} at {resolution}^3: MISE asks {dense['queries'] / mise['queries']:.1f}x fewer points, "
            f"{dense['seconds'] / mise['seconds']:.1f}x faster"
        )
        if "chamfer_l1" in mise:
            change = (mise["chamfer_l1"] - dense["chamfer_l1"]) / dense["chamfer_l1"]
            line += f"; Chamfer-L1 {100 * change:+.2f}% vs dense"
        print(line)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    args.out = out = args.out or Path(tempfile.mkdtemp(prefix="fieldwork-bench-mesh-"))
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
        },
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "settings": {key: str(value) for key, value in vars(args).items()},
    }
    rows = analytic_rows(args.resolutions)
    if args.reuse:
        from engine.train.trainer import Trainer

        trainer, truth = Trainer.from_run(out / "run"), read_ply(out / GROUND_TRUTH)
        print(f"reusing {out / 'run'} at step {trainer.step}")
        rows += trained_rows(trainer, truth, args)
    elif not args.analytic_only:
        trainer, truth, timings = build_and_train(args, out)
        report["timings"] = timings
        rendered, trained = timings["render_and_export_seconds"], timings["train_seconds"]
        print(f"rendered and exported in {rendered:.0f} s, trained {timings['steps']} steps in {trained:.0f} s")
        rows += trained_rows(trainer, truth, args)
    report["rows"] = rows
    print_table(rows)
    (out / "bench_mesh.json").write_text(json.dumps(report, indent=2))
    print(f"results: {out / 'bench_mesh.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
