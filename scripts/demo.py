"""The main job on a built-in demo scene, end to end (``bash scripts/demo.sh``, which sets up first).

Builds a textured Suzanne with lights and a ring of cameras in Blender (bpy), renders the
views with Cycles, trains the default field through the add-on's engine session (the
client in background mode, what the Train button runs) while previews stream to files,
extracts a coloured mesh, imports it into the scene's "Fieldwork" collection, where the
source object is, and writes into the output folder (default ``out/demo``):

    demo.blend        the scene with the source object and the imported mesh
    preview.png       the last preview streamed during training (all of them in previews/)
    mesh.ply          the extracted coloured mesh, Blender world units
    ground_truth.ply  the source object's triangles, for comparison
    comparison.png    a held-out camera: ground-truth render (left) | field render (right)
    report.json       settings, timings, PSNR/SSIM on held-out views, Chamfer-L1/F-score, device

    .venv/bin/python scripts/demo.py [--quick] [--output DIR] [--minutes M] [--steps N]

``--quick`` shrinks everything (8 cameras at 32 px, a few steps) to check the pipeline in
well under a minute. Also runs inside Blender: ``blender -b --python scripts/demo.py -- --quick``
(Chamfer/F-score need scipy, which Blender's Python lacks: they are then left out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from scripts import pipeline  # noqa: E402
from scripts.scenes import SceneInfo, build_object_scene, save_ground_truth_mesh  # noqa: E402

# F-score threshold: 1% of the ground-truth bounding box diagonal (as the mesh benchmark uses).
F_SCORE_FRACTION = 0.01


@dataclass(frozen=True)
class DemoScene:
    """The demo scene's size: cameras on a ring around the object, square renders."""

    camera_count: int
    resolution: int
    samples: int


# 64 px views and 512-ray steps: on 2 CPU cores with one torch thread (engine_threads) the demo trained
# 3000 steps in 256 s (about 6,000 rays/s, 2026-11-21), so the step cap ends training inside the budget.
FULL_SCENE = DemoScene(camera_count=40, resolution=64, samples=16)
QUICK_SCENE = DemoScene(camera_count=8, resolution=32, samples=4)
# The full run fits in 10 minutes on 2 CPU cores: training gets a time budget, the step count caps it on a GPU.
# No torch.compile by default: on a CPU its warm-up takes minutes of that budget (--compile auto to allow it).
# Previews take at most 5% of the engine's time (PreviewScheduler), so one every 15 s may take 0.75 s;
# asked for more often, they shrink to stay within that share.
FULL_SETTINGS = pipeline.PipelineSettings(
    steps=3000,
    minutes=6.0,
    batch_rays=512,
    warmup_steps=20,
    mesh_resolution=128,
    compile="off",
    preview_every_s=15.0,
    preview_max_side=64,
)
# Quick: a few steps of a small field. Its density is still far below the automatic surface level, so the
# mesh level is set low (see tests/scripts/test_reconstruct.py): a pipeline check, not a reconstruction.
QUICK_SETTINGS = pipeline.PipelineSettings(
    steps=20,
    batch_rays=256,
    warmup_steps=3,
    compile="off",
    mesh_resolution=32,
    mesh_level=0.25,
    preview_every_s=0.5,
    preview_max_side=32,
)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo.py", description="Fieldwork end to end on a built-in demo scene")
    parser.add_argument("--quick", action="store_true", help="tiny scene and a few steps: checks the pipeline fast")
    parser.add_argument("--output", type=Path, default=REPO / "out" / "demo", help="output folder (default: out/demo)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (caps the time budget)")
    parser.add_argument("--minutes", type=float, default=None, help="training time budget in minutes")
    parser.add_argument(
        "--method",
        "--field",
        dest="method",
        default=None,
        help="image method to train (default: ngp)",
    )
    parser.add_argument("--engine-python", default="", help="interpreter with torch (default: this checkout's .venv)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument(
        "--compile", choices=("auto", "on", "off"), default=None, help="torch.compile the field (default: off)"
    )
    parser.add_argument(
        "--texture",
        type=int,
        default=0,
        help="bake a UV texture this many texels square (256-8192, power of two; 0: vertex colours)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads of the engine (default: 1 when other processes already fill the cores, else torch's)",
    )
    return parser.parse_args(argv)


def engine_threads(requested: int) -> int | None:
    """OpenMP threads for the engine child, or None for torch's default (one per core).

    On a machine whose cores are already busy, OpenMP threads spin-wait against the other processes:
    measured here (2 cores, load average 3), 512-ray ngp steps took 0.1 s with one thread and over 2 s
    with two. So a busy machine gets one thread; an idle one gets them all.
    """
    if requested:
        return requested
    if not hasattr(os, "getloadavg"):  # Windows has no load average: leave torch its default
        return None
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    return 1 if busy else None


def demo_settings(args: argparse.Namespace) -> pipeline.PipelineSettings:
    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS
    settings = replace(settings, engine_python=args.engine_python, device=args.device)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    if args.minutes is not None:
        settings = replace(settings, minutes=args.minutes)
    if args.method is not None:
        settings = replace(settings, method=args.method)
    if args.compile is not None:
        settings = replace(settings, compile=args.compile)
    if args.texture:
        settings = replace(settings, texture=args.texture)
    return settings


def surface_figures(info: SceneInfo, mesh_object_name: str) -> dict[str, float]:
    """Chamfer-L1 and F-score between the imported object (as it sits in Blender) and the source object."""
    from engine.mesh.metrics import surface_distances
    from engine.mesh.triangle_mesh import TriangleMesh
    from scripts.scenes import _evaluated_world_geometry

    mesh_object = bpy.data.objects[mesh_object_name]
    view_layer = info.scene.view_layers[0]
    view_layer.update()
    vertices, triangles = _evaluated_world_geometry(mesh_object, view_layer.depsgraph)
    diagonal = float(np.linalg.norm(np.subtract(info.bounds_max, info.bounds_min)))
    distances = surface_distances(
        TriangleMesh(vertices, triangles),
        TriangleMesh(info.vertices, info.triangles),
        threshold=F_SCORE_FRACTION * diagonal,
    )
    return {
        "chamfer_l1": distances.chamfer_l1,
        "chamfer_l1_per_diagonal": distances.chamfer_l1 / diagonal,
        "f_score": distances.f_score,
        "precision": distances.precision,
        "recall": distances.recall,
        "f_score_threshold": distances.threshold,
    }


def held_out_comparison(report: pipeline.Report, out_path: Path, python: Path, device: str) -> dict[str, object]:
    """Ground truth beside the field's render of the first held-out camera, both over white (as evaluated)."""
    from engine.data.transforms import read_transforms

    transforms = read_transforms(Path(report.outputs["dataset"]))
    held_out = transforms.frames_in("test")
    if not held_out:
        raise pipeline.PipelineError("the dataset has no held-out frame to compare")
    frame = held_out[0]
    run_dir = Path(report.outputs["run"])
    rendered = pipeline.render_camera(python, run_dir, transforms.frames.index(frame), run_dir / "held_out", device)
    truth = pipeline.read_rgba(transforms.image_path(frame))
    field = pipeline.read_rgba(rendered)
    pipeline.write_png(out_path, pipeline.side_by_side(truth, field))
    return {"camera": frame.name, "ground_truth": str(transforms.image_path(frame)), "field_render": str(rendered)}


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out_dir = args.output.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(args)
    scene_size = QUICK_SCENE if args.quick else FULL_SCENE
    threads = engine_threads(args.threads)
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the engine child inherits the environment
    bar = pipeline.ProgressBar()
    started = time.perf_counter()

    bar(pipeline.StageProgress("scene", f"building the demo scene ({scene_size.camera_count} cameras)"))
    info = build_object_scene(
        camera_count=scene_size.camera_count,
        resolution=scene_size.resolution,
        layout="ring",
        samples=scene_size.samples,
    )
    ground_truth = save_ground_truth_mesh(info, out_dir / "ground_truth.ply")
    scene_seconds = time.perf_counter() - started

    preview_dir = out_dir / "previews"
    shutil.rmtree(preview_dir, ignore_errors=True)
    report = pipeline.reconstruct_open_file(
        settings, out_dir, blend_target=out_dir / "demo.blend", progress=bar, preview_dir=preview_dir
    )
    report.timings_s["scene"] = scene_seconds
    report.outputs["ground_truth"] = str(ground_truth)
    report.extra["demo_scene"] = {
        "object": info.object_name,
        "shape": "suzanne",
        "cameras": len(info.camera_names),
        "layout": "ring",
        "resolution": scene_size.resolution,
        "cycles_samples": scene_size.samples,
        "quick": args.quick,
    }
    report.engine["threads"] = threads if threads is not None else "torch default"
    if report.status == "ok":
        try:
            report.outputs.update(copy_named_outputs(report, out_dir))
            stage_started = time.perf_counter()
            bar(pipeline.StageProgress("compare", "rendering a held-out camera from the field"))
            python = Path(report.engine["python"])  # the interpreter the run used
            report.extra["comparison"] = held_out_comparison(
                report, out_dir / "comparison.png", python, settings.device
            )
            report.outputs["comparison"] = str(out_dir / "comparison.png")
            report.timings_s["compare"] = time.perf_counter() - stage_started
            stage_started = time.perf_counter()
            try:
                report.metrics.update(surface_figures(info, report.mesh["object"]))
            except ImportError as error:  # Blender's own Python has no scipy
                report.extra["surface_metrics_skipped"] = f"needs scipy: {error}"
            report.timings_s["surface_metrics"] = time.perf_counter() - stage_started
        except (pipeline.PipelineError, OSError, ValueError, subprocess.SubprocessError) as error:
            report.status, report.failed_stage, report.error = "failed", "compare", str(error)
    report.timings_s["total"] = time.perf_counter() - started
    pipeline.write_json_atomic(out_dir / pipeline.REPORT_NAME, report.to_json())
    bar.close()

    if report.status != "ok":
        print(f"demo: failed during {report.failed_stage}: {report.error}", file=sys.stderr)
        print(f"demo: details in {out_dir / pipeline.REPORT_NAME}", file=sys.stderr)
        return 1
    print_summary(report, out_dir)
    return 0


def copy_named_outputs(report: pipeline.Report, out_dir: Path) -> dict[str, str]:
    """The mesh and the last preview under the demo's own names (the run folder keeps the originals)."""
    copies = {"mesh": out_dir / "mesh.ply"}
    if "preview" in report.outputs:
        copies["preview"] = out_dir / "preview.png"
    for key, target in copies.items():
        temporary = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(report.outputs[key], temporary)
        temporary.replace(target)
    return {key: str(path) for key, path in copies.items()}


def print_summary(report: pipeline.Report, out_dir: Path) -> None:
    metrics = report.metrics
    lines = [
        f"Fieldwork demo finished in {report.timings_s['total']:.0f} s on {report.engine.get('device', '?')}",
        f"  held-out PSNR {metrics.get('psnr', float('nan')):.2f} dB, SSIM {metrics.get('ssim', float('nan')):.3f}",
        (
            f"  Chamfer-L1 {metrics['chamfer_l1']:.4f} (world units), F-score@1% {metrics['f_score']:.3f}"
            if "chamfer_l1" in metrics
            else f"  Chamfer-L1 and F-score not measured ({report.extra.get('surface_metrics_skipped', '')})"
        ),
        f"  outputs in {out_dir}:",
    ]
    for name in ("demo.blend", "preview.png", "mesh.ply", "comparison.png", "report.json"):
        lines.append(f"    {name}")
    print("\n".join(lines), flush=True)
    print(json.dumps({"report": str(out_dir / pipeline.REPORT_NAME)}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]))
