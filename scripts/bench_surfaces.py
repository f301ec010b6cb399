"""Surface benchmark: ngp, neus and unisurf on the same Cycles-rendered views and the same CPU time budget.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_surfaces.py [--scenes demo cup] [--methods ngp neus unisurf]
        [--normals-only]   (only time neus's analytic / autograd / finite-difference gradients)
        [--minutes 4] [--resolution 128] [--out DIR] [--set neus.key=value ...]

Scenes: ``demo`` is the demo's own (scripts/demo.py: a subdivided, textured Suzanne, 40 cameras on a ring,
64 px); ``cup`` has thin parts and a concavity (an open spherical bowl with a thin wall and a thin ring
handle, built as a mesh from an analytic SDF, same cameras); ``synthetic`` is a dataset as other tools
write it (scripts/make_synthetic_dataset.py: NeRF-synthetic layout, 100 cameras on a sphere, 100 px,
``camera_angle_x`` only, no scene box). Each method trains for ``--minutes`` (512-ray steps, as the demo;
``--defaults``: as ``python -m engine train`` does, the sample budget's rays and its warm-up), a mesh is
extracted with MISE at ``--resolution`` (ngp with and without filling unseen space; the surface methods
never fill) and compared with the scene's own triangles: Chamfer-L1 and F-score at 1% of the scene box
diagonal (engine/mesh/metrics.py, as bench_mesh.py), normal consistency,
connected components (floaters), and held-out PSNR. Rows are appended to ``bench_surfaces.json`` in
``--out`` as they finish. Figures depend on the machine and its load: say which when quoting them.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from engine.mesh.cleanup import face_components  # noqa: E402
from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer  # noqa: E402
from engine.mesh.io import read_ply, write_mesh  # noqa: E402
from engine.mesh.metrics import normal_consistency, surface_distances  # noqa: E402
from engine.mesh.surface import EmptySurfaceError  # noqa: E402
from engine.mesh.triangle_mesh import TriangleMesh  # noqa: E402

GROUND_TRUTH = "ground_truth.ply"
DEMO_CAMERAS, DEMO_RESOLUTION, DEMO_SAMPLES = 40, 64, 16  # scripts/demo.py FULL_SCENE


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["demo", "cup"], choices=("demo", "cup", "synthetic"))
    parser.add_argument("--methods", nargs="+", default=["ngp", "neus", "unisurf"])
    parser.add_argument("--minutes", type=float, default=4.0, help="training time budget per method")
    parser.add_argument("--steps", type=int, default=100_000, help="step cap (the time budget ends training first)")
    parser.add_argument(
        "--batch-rays", type=int, default=512, help="rays per step (the demo's 512; 0: the engine's sample budget)"
    )
    parser.add_argument(
        "--defaults", action="store_true", help="train as `python -m engine train` does: --batch-rays 0, its warm-up"
    )
    parser.add_argument("--resolution", type=int, default=128, help="MISE resolution of the meshes")
    parser.add_argument("--eval-views", type=int, default=5, help="held-out views for PSNR")
    parser.add_argument("--points", type=int, default=100_000, help="surface samples per mesh for the metrics")
    parser.add_argument("--set", action="append", default=[], help="METHOD.key=value, a method setting")
    parser.add_argument("--out", type=Path, help="folder for datasets, runs and results (default: a temp folder)")
    parser.add_argument(
        "--normals-only", action="store_true", help="only time neus's three ways of taking the SDF gradient"
    )
    return parser.parse_args(argv)


def time_normals(n_points: int = 18_000, repeats: int = 5) -> None:
    """Seconds per training-step-sized pass (SDF, gradient, eikonal loss, backward) of neus's default field
    (8 levels, finest resolution 128) with each normals setting, interleaved so load changes hit all three."""
    import torch

    from engine.fields.neus import SurfaceField, eikonal_loss
    from engine.methods.neus import NORMAL_MODES, NeusConfig

    points = torch.rand(n_points, 3, generator=torch.Generator().manual_seed(0))
    fields = {mode: SurfaceField(NeusConfig(normals=mode), finest_resolution=128) for mode in NORMAL_MODES}
    seconds: dict[str, list[float]] = {mode: [] for mode in NORMAL_MODES}
    for _ in range(repeats):
        for mode, field in fields.items():
            started = time.perf_counter()
            geometry = field.geometry(points, gradient=True, create_graph=True)
            assert geometry.gradient is not None
            (eikonal_loss(geometry.gradient) + geometry.scalar.sum() + geometry.features.sum()).backward()
            seconds[mode].append(time.perf_counter() - started)
    for mode, values in seconds.items():
        median = sorted(values)[len(values) // 2]
        print(f"normals={mode:<9} {n_points} samples: median {median:.3f} s, best {min(values):.3f} s")


# ---------------------------------------------------------------------------- scenes


def cup_sdf(points: np.ndarray) -> np.ndarray:
    """An open bowl (spherical shell, radii 0.72..0.86, cut open above z = 0.35) with a thin ring handle
    (a torus of tube radius 0.07) on its side: thin parts and a concavity. (n, 3) -> (n,) signed distance."""
    radius = np.linalg.norm(points, axis=1)
    shell = np.abs(radius - 0.79) - 0.07
    cut = points[:, 2] - 0.35  # keep z < 0.35
    bowl = np.maximum(shell, cut)
    # torus in the xz plane centred at x = 1.0, z = 0: ring radius 0.3, tube 0.07
    local = points - np.array([1.0, 0.0, 0.0])
    ring = np.hypot(local[:, 0], local[:, 2]) - 0.3
    handle = np.hypot(ring, local[:, 1]) - 0.07
    return np.minimum(bowl, handle)


def cup_mesh(resolution: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of cup_sdf: vertices (n, 3), triangles (m, 3), watertight, facing outwards."""
    import mcubes

    axis = np.linspace(-1.5, 1.5, resolution + 1)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    values = -cup_sdf(grid).reshape((resolution + 1,) * 3)
    vertices, faces = mcubes.marching_cubes(values, 0.0)
    return -1.5 + vertices * (3.0 / resolution), faces.astype(np.int64)


def build_scene(name: str, folder: Path) -> tuple[Path, TriangleMesh]:
    """Render the scene's views with Cycles and export them (capture, as the add-on does); the ground truth."""
    import bpy

    from addon import capture
    from scripts.scenes import _evaluated_world_geometry, build_object_scene, save_ground_truth_mesh

    dataset = folder / "dataset"
    if name == "synthetic":
        from scripts import make_synthetic_dataset

        if not (dataset / make_synthetic_dataset.MESH_NAME).is_file():
            make_synthetic_dataset.main(["--out", str(dataset), "--no-check"])
        return dataset, read_ply(dataset / make_synthetic_dataset.MESH_NAME)
    if (dataset / "transforms.json").is_file() and (folder / GROUND_TRUTH).is_file():
        return dataset, read_ply(folder / GROUND_TRUTH)
    info = build_object_scene(
        camera_count=DEMO_CAMERAS,
        resolution=DEMO_RESOLUTION,
        layout="ring",
        samples=DEMO_SAMPLES,
        shape="suzanne" if name == "demo" else "cube",
    )
    if name == "cup":
        vertices, faces = cup_mesh()
        mesh = bpy.data.meshes.new("Fieldwork cup")
        mesh.from_pydata(vertices.tolist(), [], faces.tolist())
        mesh.update()
        for polygon in mesh.polygons:
            polygon.use_smooth = True
        mesh_object = info.object
        mesh.materials.append(mesh_object.data.materials[0])
        mesh_object.data = mesh
        view_layer = info.scene.view_layers[0]
        view_layer.update()
        world_vertices, triangles = _evaluated_world_geometry(mesh_object, view_layer.depsgraph)
        info = dataclasses.replace(
            info,
            vertices=world_vertices,
            triangles=triangles,
            bounds_min=tuple(float(v) for v in world_vertices.min(axis=0)),
            bounds_max=tuple(float(v) for v in world_vertices.max(axis=0)),
        )
    save_ground_truth_mesh(info, folder / GROUND_TRUTH)
    capture.export_dataset(info.scene, dataset, overwrite=True)
    return dataset, TriangleMesh(vertices=info.vertices, faces=info.triangles.astype(np.int64))


# ---------------------------------------------------------------------------- one method on one scene


def method_settings(method: str, assignments: list[str]) -> dict:
    from engine import methods

    spec = methods.get(method)
    values = {}
    for assignment in assignments:
        target, _, rest = assignment.partition(".")
        if target == method:
            key, value = methods.parse_setting(spec.config, rest)
            values[key] = value
    return values


def run_method(scene: str, method: str, dataset: Path, truth: TriangleMesh, args: argparse.Namespace) -> list[dict]:
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer

    run_dir = args.out / scene / f"run-{method}"
    settings = method_settings(method, args.set)
    tuned = {} if args.defaults else {"batch_rays": args.batch_rays, "warmup_steps": 20}
    config = TrainConfig(
        method=method,
        steps=args.steps,
        minutes=args.minutes,
        **tuned,
        compile="off",
        eval_views=args.eval_views,
        settings=settings,
    )
    started = time.perf_counter()
    trainer = Trainer.create(dataset, run_dir, config)
    while not trainer.is_done():
        stats = trainer.train_step()
        if stats.step % 50 == 0:
            shown = ", ".join(f"{name} {value:.4g}" for name, value in stats.figures.items())
            print(f"{scene} {method} step {stats.step} ({trainer.train_seconds:.0f} s): {shown}", flush=True)
    trainer.save_checkpoint()
    wall_seconds = time.perf_counter() - started
    evaluation = trainer.evaluate(limit=args.eval_views)
    box = trainer.scene_box
    threshold = 0.01 * float(np.linalg.norm(np.subtract(box.maximum, box.minimum)))
    fills = (True, False) if trainer.spec.surface == "density" else (False,)
    rows = []
    for fill in fills:
        row: dict = {
            "scene": scene,
            "method": method,
            "fill_unseen": fill,
            "steps": trainer.step,
            "train_seconds": round(trainer.train_seconds, 1),
            "wall_seconds": round(wall_seconds, 1),
            "heldout_psnr": evaluation["psnr"],
            "settings": settings,
        }
        try:
            result = extract_mesh_from_trainer(
                trainer, ExtractSettings(resolution=args.resolution, colour=False, fill_unseen=fill)
            )
        except EmptySurfaceError as error:
            row["error"] = str(error)
            rows.append(row)
            continue
        suffix = "-unfilled" if trainer.spec.surface == "density" and not fill else ""
        write_mesh(result.mesh, run_dir / f"mesh-{args.resolution}{suffix}.ply", overwrite=True)
        distances = surface_distances(result.mesh, truth, threshold, n_points=args.points)
        row.update(
            chamfer_l1=distances.chamfer_l1,
            f_score=distances.f_score,
            precision=distances.precision,
            recall=distances.recall,
            normal_consistency=normal_consistency(result.mesh, truth, n_points=args.points),
            components=int(face_components(result.mesh).max() + 1),
            faces=result.face_count,
            level=result.level.describe(),
        )
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        f"{'scene':<6} {'method':<8} {'fill':<5} {'steps':>6} {'train s':>8} {'PSNR':>6} {'chamfer':>8} {'F@1%':>6} "
        f"{'NC':>6} {'parts':>5}"
    )
    for row in rows:
        psnr = f"{row['heldout_psnr']:.2f}" if row.get("heldout_psnr") is not None else "-"
        if "chamfer_l1" not in row:
            print(f"{row['scene']:<6} {row['method']:<8} {row['fill_unseen']!s:<5} no mesh: {row.get('error')}")
            continue
        print(
            f"{row['scene']:<6} {row['method']:<8} {row['fill_unseen']!s:<5} {row['steps']:>6} "
            f"{row['train_seconds']:>8.0f} {psnr:>6} {row['chamfer_l1']:>8.5f} {row['f_score']:>6.3f} "
            f"{row['normal_consistency']:>6.3f} {row['components']:>5}"
        )


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    if args.normals_only:
        time_normals()
        return 0
    args.out = out = args.out or Path(tempfile.mkdtemp(prefix="fieldwork-bench-surfaces-"))
    out.mkdir(parents=True, exist_ok=True)
    import torch

    report_path = out / "bench_surfaces.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"rows": []}
    report["machine"] = {
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": os.getloadavg(),
    }
    for scene in args.scenes:
        dataset, truth = build_scene(scene, out / scene)
        for method in args.methods:
            rows = run_method(scene, method, dataset, truth, args)
            print_table(rows)
            report["rows"] = [row for row in report["rows"] if (row["scene"], row["method"]) != (scene, method)] + rows
            report_path.write_text(json.dumps(report, indent=2))
    print()
    print_table(report["rows"])
    print(f"results: {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
