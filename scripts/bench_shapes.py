"""Shapes from geometry, measured: export and sampling, IGR on clean and scan-like input, single-shape and
conditional Occupancy Networks, DeepSDF on held-out shapes, MISE against dense. Prints the figures.

Ground truth is built with the bpy module: a watertight subdivided Suzanne (voxel-remeshed, then
subdivided), a torus knot (a bevelled curve), a scan-like point cloud of each (points seen from one side,
with noise and holes), and a procedural family of vases (revolved random profiles) split into trained and
held-out shapes.

OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_shapes.py [--only igr onet conditional deepsdf mise export]
    [--igr-seconds 60] [--onet-seconds 120] [--family-seconds 240 | --family-steps N] [--vases 60] [--device cpu]
    [--onet-settings key=value,...] [--conditional-settings key=value,...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from addon import shapes  # noqa: E402
from addon.engine.data.shapes import ShapeSampleConfig, read_shape_dataset, shape_samples  # noqa: E402

SECTIONS = ("export", "igr", "onet", "conditional", "deepsdf", "mise", "preview")


# ---------------------------------------------------------------------------- ground truth in Blender


def suzanne(levels: int = 2) -> bpy.types.Object:
    """A watertight Suzanne: voxel remesh (the primitive has open eyes and seams), then subdivision."""
    bpy.ops.mesh.primitive_monkey_add(location=(2.0, -1.0, 0.5), rotation=(0.4, 0.0, 1.2))
    monkey = bpy.context.active_object
    monkey.name = "Suzanne"
    remesh = monkey.modifiers.new("Remesh", "REMESH")
    remesh.mode, remesh.voxel_size = "VOXEL", 0.04
    monkey.modifiers.new("Subdivision", "SUBSURF").levels = levels
    return monkey


def torus_knot(p: int = 2, q: int = 3, points: int = 256) -> bpy.types.Object:
    """A (p, q) torus knot: a cyclic poly curve with a round bevel, a closed tube."""
    curve = bpy.data.curves.new("TorusKnot", "CURVE")
    curve.dimensions, curve.bevel_depth, curve.bevel_resolution = "3D", 0.25, 4
    curve.fill_mode = "FULL"
    spline = curve.splines.new("POLY")
    spline.points.add(points - 1)
    for index in range(points):
        angle = 2 * math.pi * index / points
        radius = 2.0 + math.cos(q * angle)
        spline.points[index].co = (radius * math.cos(p * angle), radius * math.sin(p * angle), -math.sin(q * angle), 1)
    spline.use_cyclic_u = True
    knot = bpy.data.objects.new("TorusKnot", curve)
    bpy.context.scene.collection.objects.link(knot)
    knot.location = (-4.0, 2.0, 1.0)
    return knot


def scan_of(geometry: Any, name: str, seed: int = 0) -> bpy.types.Object:
    """A scan-like point cloud of a clean shape: surface points facing one direction (one side seen), with
    Gaussian noise of 0.5% of the size and five holes; a vertex-only mesh object (no normals)."""
    from addon.engine.data.shapes import sample_surface

    rng = np.random.default_rng(seed)
    points, normals = sample_surface(geometry.vertices, geometry.faces, 60_000, rng, name)
    view = np.array([0.3, -1.0, 0.4]) / np.linalg.norm([0.3, -1.0, 0.4])
    seen = normals @ view > 0.05
    points = points[seen]
    size = float(np.max(geometry.vertices.max(0) - geometry.vertices.min(0)))
    for centre in points[rng.choice(len(points), 5, replace=False)]:
        points = points[np.linalg.norm(points - centre, axis=1) > 0.06 * size]
    points = points + rng.normal(scale=0.005 * size, size=points.shape)
    points = points[rng.choice(len(points), min(len(points), 20_000), replace=False)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(point) for point in points], [], [])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def vase_family(count: int, seed: int = 0) -> bpy.types.Collection:
    """``count`` vases (revolved random profiles, capped: watertight) in a collection, side by side."""
    rng = np.random.default_rng(seed)
    collection = bpy.data.collections.new("Vases")
    bpy.context.scene.collection.children.link(collection)
    segments, rings = 32, 24
    for index in range(count):
        height = rng.uniform(1.0, 2.0)
        base, bulge, neck, frequency = (
            rng.uniform(0.25, 0.5),
            rng.uniform(0.05, 0.35),
            rng.uniform(0.1, 0.3),
            rng.uniform(1, 3),
        )
        heights = np.linspace(0.0, 1.0, rings)
        radii = base + bulge * np.sin(np.pi * frequency * heights) * (1 - heights) + neck * heights**2
        angles = 2 * np.pi * np.arange(segments) / segments
        ring_points = [
            (radius * math.cos(angle), radius * math.sin(angle), h * height)
            for h, radius in zip(heights, radii, strict=True)
            for angle in angles
        ]
        vertices = [*ring_points, (0.0, 0.0, 0.0), (0.0, 0.0, height)]
        bottom, top = len(ring_points), len(ring_points) + 1
        faces = []
        for ring in range(rings - 1):
            for segment in range(segments):
                a = ring * segments + segment
                b = ring * segments + (segment + 1) % segments
                faces.append((a, b, b + segments, a + segments))  # counter-clockwise seen from outside
        for segment in range(segments):
            faces.append((bottom, (segment + 1) % segments, segment))
            last = (rings - 1) * segments
            faces.append((top, last + segment, last + (segment + 1) % segments))
        mesh = bpy.data.meshes.new(f"Vase.{index:03d}")
        mesh.from_pydata(vertices, [], faces)
        obj = bpy.data.objects.new(f"Vase.{index:03d}", mesh)
        obj.location = (3.0 * (index % 10), 3.0 * (index // 10), 0.0)
        collection.objects.link(obj)
    return collection


# ---------------------------------------------------------------------------- measuring


def mesh_of(trainer: Any, resolution: int) -> Any:
    from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer

    return extract_mesh_from_trainer(trainer, ExtractSettings(resolution=resolution, colour=False)).mesh


def against(mesh: Any, truth: Any) -> dict[str, float]:
    """Chamfer-L1 (world units, and relative to the truth's longest side) and F@1% of the longest side."""
    from engine.mesh.metrics import surface_distances

    longest = float(np.max(truth.vertices.max(0) - truth.vertices.min(0)))
    distances = surface_distances(mesh, truth, 0.01 * longest, n_points=50_000)
    return {
        "chamfer_l1": distances.chamfer_l1,
        "chamfer_relative": distances.chamfer_l1 / longest,
        "f1": distances.f_score,
    }


def train_until(
    dataset: Path,
    run: Path,
    method: str,
    settings: dict,
    seconds: float,
    checks: int,
    device: str,
    truth: Any = None,
    resolution: int = 128,
    target_f: float = 0.98,
    steps: int = 0,
) -> tuple[Any, list[dict]]:
    """Train in ``checks`` slices of the time budget (or of ``steps``, when given: on a shared machine a
    step budget compares settings fairly); after each, mesh and measure against ``truth``."""
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer

    config = TrainConfig(
        method=method,
        steps=steps or 10**9,
        minutes=0.0 if steps else seconds / 60.0,
        device=device,
        compile="off",
        warmup_steps=0,
        eval_views=0,
        log_every=100,
        checkpoint_every=10**8,
        checkpoint_minutes=0.0,
        settings=settings,
    )
    shutil.rmtree(run, ignore_errors=True)  # a fresh run, never a resumed one
    started = time.perf_counter()
    trainer = Trainer.create(dataset, run, config)
    opened = time.perf_counter() - started
    history = []
    cpu_started = time.process_time()
    for check in range(1, checks + 1):
        # steps until this slice of the budget: the learning-rate schedule follows the whole budget
        while (trainer.step < steps * check / checks) if steps else (trainer.train_seconds < seconds * check / checks):
            trainer.train_step()
        row: dict[str, Any] = {
            "train_seconds": round(trainer.train_seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "steps": trainer.step,
        }
        if truth is not None:
            row.update(against(mesh_of(trainer, resolution), truth))
        history.append(row)
        print(f"    {method}: {json.dumps(row)}", flush=True)
        if truth is not None and row["f1"] >= target_f:
            break
    trainer.save_checkpoint()
    trainer.config.eval_views = -1  # evaluate_run measures what the method reports
    print(f"    (opening the data, sampling included: {opened:.1f} s)")
    return trainer, history


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world (Blender: the camera looks down -Z, +Y up) at ``eye`` looking at ``target``."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, np.cross(right, forward), -forward, eye
    return matrix


def bench_preview(dataset: Path, folder: Path, method: str, settings: dict, seconds: float, device: str) -> None:
    """Fit Surface's live preview: ``seconds`` of training with previews as the operator asks for them (every
    4 s, at most 128 px, a tenth of the time) from a 3/4 view of a 640x480 viewport; their count, cost and
    size, and what the final full-size one costs."""
    from addon.surface_preview import PREVIEW_EVERY_S, PREVIEW_SIZE
    from engine.train.preview_file import PreviewFile

    geometry = read_shape_dataset(dataset).geometry(read_shape_dataset(dataset).shapes[0])
    centre = 0.5 * (geometry.box[0] + geometry.box[1])
    size = float(np.max(geometry.box[1] - geometry.box[0]))
    header = {
        "type": "set_view",
        "camera_to_world": look_at(centre + size * np.array([1.2, -1.6, 0.9]), centre).tolist(),
        "fl_x": 700.0, "fl_y": 700.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480,
    }  # fmt: skip
    view = folder / f"preview-view-{method}.json"
    view.write_text(json.dumps(header))
    trainer, _ = train_until(dataset, folder / f"preview-{method}", method, settings, seconds, 0, device)
    preview = PreviewFile(view, folder / f"preview-{method}.png", PREVIEW_EVERY_S, PREVIEW_SIZE)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        trainer.train_step()
        preview.maybe_write(trainer)
    written, spent, side = preview.written, preview.seconds, preview.last_side
    final_started = time.perf_counter()
    preview.maybe_write(trainer, final=True)
    print(
        f"  => {method} ({settings or 'defaults'}): {written} previews in {seconds:.0f} s of wall clock "
        f"({trainer.step} steps), {spent / max(1, written):.2f} s each, {100 * spent / seconds:.1f}% of the time, "
        f"the last at {side} px; the final one at {preview.last_side} px: {time.perf_counter() - final_started:.2f} s"
    )


def trained_iou(trainer: Any, count: int) -> float:
    """Mean IoU on the uniform samples of the first ``count`` trained shapes (no meshing): against the
    held-out IoU, it tells under-fitting from over-fitting."""
    import torch

    from engine.fields.shape_model import shape_condition

    model, source = trainer.model, trainer.source
    model.eval()
    ious = []
    for index in source.train_indices[:count]:
        shape = source.shapes[index]
        code = shape_condition(trainer, shape.name).code
        with torch.no_grad():
            predicted = model.inside(model.field(shape.points[: shape.uniform_count], code))
        truth = shape.occupancy[: shape.uniform_count] > 0.5
        ious.append(float((predicted & truth).sum() / (predicted | truth).sum().clamp(min=1)))
    return float(np.mean(ious))


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def settings_of(text: str) -> dict[str, Any]:
    """'key=value,key=value' (values as JSON) -> a dict of method settings."""
    return {key: json.loads(value) for key, value in (item.split("=") for item in text.split(",") if item)}


def clean_truth(dataset_dir: Path) -> Any:
    from engine.mesh.triangle_mesh import TriangleMesh

    dataset = read_shape_dataset(dataset_dir)
    geometry = dataset.geometry(dataset.shapes[0])
    return TriangleMesh(geometry.vertices, geometry.faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--levels", type=int, default=1, help="subdivision levels of the Suzanne")
    parser.add_argument("--igr-seconds", type=float, default=60.0)
    parser.add_argument("--onet-seconds", type=float, default=120.0)
    parser.add_argument("--family-seconds", type=float, default=240.0)
    parser.add_argument("--family-steps", type=int, default=0, help="a step budget instead (conditional onet)")
    parser.add_argument("--vases", type=int, default=60)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--eval-shapes", type=int, default=6, help="held-out shapes evaluated (meshed)")
    parser.add_argument("--igr-settings", default="", help="extra igr settings, key=value,key=value")
    parser.add_argument("--onet-settings", default="", help="extra single-shape onet settings, key=value,...")
    parser.add_argument("--conditional-settings", default="", help="extra conditional onet settings, key=value,...")
    parser.add_argument("--igr-shapes", type=int, default=2, help="1: the Suzanne only")
    parser.add_argument("--igr-clean-only", action="store_true", help="no scan-like input")
    parser.add_argument("--preview-seconds", type=float, default=60.0, help="wall clock per preview measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=Path, help="keep the datasets and runs here")
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-shapes-"))
    folder.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    monkey = suzanne(args.levels)
    knot = torus_knot()
    started = time.perf_counter()
    suzanne_dir = shapes.export_shapes(folder / "suzanne", objects=[monkey], overwrite=True)[0].parent
    export_seconds = time.perf_counter() - started
    knot_dir = shapes.export_shapes(folder / "knot", objects=[knot], overwrite=True)[0].parent
    clean = {"Suzanne": clean_truth(suzanne_dir), "TorusKnot": clean_truth(knot_dir)}
    for name, truth in clean.items():
        from addon.engine.data.shapes import is_watertight

        print(f"{name}: {truth.n_faces} triangles, watertight {is_watertight(truth.faces)}")

    if "export" in args.only:
        dataset = read_shape_dataset(suzanne_dir)
        (entry,) = dataset.shapes
        config = ShapeSampleConfig()
        started = time.perf_counter()
        samples = shape_samples(dataset, entry, config)
        sample_seconds = time.perf_counter() - started
        started = time.perf_counter()
        shape_samples(dataset, entry, config)
        cached_seconds = time.perf_counter() - started
        assert samples.occupancy is not None
        print(f"export: {export_seconds:.2f} s")
        print(
            f"samples ({config.surface_points} surface, {config.uniform_points} uniform, "
            f"{config.near_surface_points} near-surface, with signed distances): {sample_seconds:.2f} s; "
            f"from the cache: {cached_seconds:.3f} s"
        )
        print(f"inside fraction of the uniform points: {samples.occupancy[: samples.uniform_count].mean():.3f}")

    trained_igr = None
    if "igr" in args.only or "mise" in args.only:
        igr_settings = settings_of(args.igr_settings)
        print(f"\nIGR, {args.igr_seconds:.0f} s budget each, mesh at 128 (settings {igr_settings or 'defaults'})")
        for name, dataset_dir in (("Suzanne", suzanne_dir), ("TorusKnot", knot_dir))[: args.igr_shapes]:
            geometry = read_shape_dataset(dataset_dir).geometry(read_shape_dataset(dataset_dir).shapes[0])
            scan = scan_of(geometry, f"{name}Scan")
            scan_dir = shapes.export_shapes(folder / f"{name}-scan", objects=[scan], overwrite=True)[0].parent
            inputs = (("clean mesh", dataset_dir), ("scan: one side, noise, holes", scan_dir))
            for label, source in inputs if "igr" in args.only and not args.igr_clean_only else inputs[:1]:
                print(f"  {name}, {label}:")
                trainer, history = train_until(
                    source,
                    folder / f"igr-{name}-{label[:4]}",
                    "igr",
                    igr_settings,
                    args.igr_seconds,
                    4,
                    args.device,
                    clean[name],
                )
                reached = next((row["train_seconds"] for row in history if row["f1"] >= 0.98), None)
                last = history[-1]
                print(
                    f"  => {name} {label}: Chamfer-L1 {last['chamfer_l1']:.5f} ({100 * last['chamfer_relative']:.3f}% "
                    f"of its size), F@1% {last['f1']:.3f} after {last['train_seconds']} s; F >= 0.98 "
                    f"{'at ' + str(reached) + ' s' if reached is not None else 'not reached'}"
                )
                if trained_igr is None:
                    trained_igr = trainer
            if "igr" not in args.only:
                break

    if "onet" in args.only:
        print(f"\nOccupancy Network, one shape (Suzanne), {args.onet_seconds:.0f} s budget")
        trainer, _ = train_until(
            suzanne_dir,
            folder / "onet-single",
            "onet",
            {"eval_resolution": 128, "eval_shapes": 1, **settings_of(args.onet_settings)},
            args.onet_seconds,
            1,
            args.device,
        )
        result = trainer.evaluate_run()
        print(
            f"  => IoU {result['iou']:.3f} (uniform samples), Chamfer-L1 {result['chamfer_l1']:.5f}, "
            f"F@1% {result['f_score']:.3f}, normal consistency {result['normal_consistency']:.3f}, "
            f"{trainer.step} steps; {load()}"
        )

    family_dir = None
    if "conditional" in args.only or "deepsdf" in args.only:
        family = vase_family(args.vases)
        started = time.perf_counter()
        family_dir = shapes.export_shapes(folder / "vases", collection=family, overwrite=True)[0].parent
        print(
            f"\nvase family: {args.vases} shapes ({args.held_out} held out), "
            f"exported in {time.perf_counter() - started:.1f} s"
        )
    family_settings = {
        "holdout_shapes": args.held_out,
        "eval_shapes": args.eval_shapes,
        "labelled_samples": 20_000,
        "surface_samples": 5_000,
    }
    if "conditional" in args.only and family_dir is not None:
        conditional_settings = {**family_settings, "encoder": "pointnet", **settings_of(args.conditional_settings)}
        budget = f"{args.family_steps} steps" if args.family_steps else f"{args.family_seconds:.0f} s"
        print(f"Conditional Occupancy Network from 300 points, {budget} budget (settings {conditional_settings})")
        trainer, _ = train_until(
            family_dir,
            folder / "onet-conditional",
            "onet",
            conditional_settings,
            args.family_seconds,
            1,
            args.device,
            steps=args.family_steps,
        )
        result = trainer.evaluate_run()
        print(
            f"  => held-out IoU {result['iou']:.3f} over {len(result['shapes'])} shapes, Chamfer-L1 "
            f"{result['chamfer_l1']:.5f}, F@1% {result['f_score']:.3f}, {trainer.step} steps; IoU of "
            f"{args.eval_shapes} trained shapes {trained_iou(trainer, args.eval_shapes):.3f}; {load()}"
        )
    if "deepsdf" in args.only and family_dir is not None:
        print(f"DeepSDF, {args.family_seconds:.0f} s budget, codes of held-out shapes fitted from their SDF samples")
        trainer, _ = train_until(
            family_dir, folder / "deepsdf", "deepsdf", family_settings, args.family_seconds, 1, args.device
        )
        started = time.perf_counter()
        result = trainer.evaluate_run()
        print(
            f"  => held-out Chamfer-L1 {result['chamfer_l1']:.5f}, F@1% {result['f_score']:.3f}, IoU "
            f"{result['iou']:.3f}, normal consistency {result['normal_consistency']:.3f} over {len(result['shapes'])} "
            f"shapes ({time.perf_counter() - started:.0f} s with code fitting), {trainer.step} steps"
        )

    if "preview" in args.only:
        print(f"\nFit Surface's live preview of the Suzanne, {args.preview_seconds:.0f} s each")
        for method, settings in (("igr", {}), ("onet", {})):
            bench_preview(suzanne_dir, folder, method, settings, args.preview_seconds, args.device)

    if "mise" in args.only and trained_igr is not None:
        from engine.mesh.extract import ExtractSettings, SamplingMethod, extract_mesh_from_trainer

        print("\nMISE against dense at 256^3 (the IGR Suzanne field)")
        started = time.perf_counter()
        mise = extract_mesh_from_trainer(trained_igr, ExtractSettings(resolution=256, colour=False))
        mise_seconds = time.perf_counter() - started
        started = time.perf_counter()
        dense = extract_mesh_from_trainer(
            trained_igr, ExtractSettings(resolution=64, method=SamplingMethod.DENSE, colour=False)
        )
        rate = dense.n_queries / (time.perf_counter() - started)
        print(
            f"  MISE: {mise.n_queries} queries, {mise_seconds:.1f} s; dense: {257**3} queries "
            f"({257**3 / mise.n_queries:.1f}x), about {257**3 / rate:.0f} s at the {rate:.0f} queries/s measured "
            f"densely at 64^3"
        )
        print(
            f"  MISE mesh at 256: {mise.face_count} faces; against the clean Suzanne: "
            f"{against(mise.mesh, clean['Suzanne'])}"
        )
    print(f"\nfolder: {folder}")


if __name__ == "__main__":
    main()
