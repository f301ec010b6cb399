"""Layouts in Blender, measured through the add-on (Blender as a module, real engine child process).

    python scripts/bench_layouts.py [RUN] [--frames 8] [--viewport 192x108] [--moves 12]

RUN: a trained GIRAFFE run; without one, a 2-step run on a numpy-drawn 32x32 collection is trained first
(geometry, not learning: what is measured here does not need a good model). Prints:

- time from Generate Layout to a rendered frame: cold (engine start, run load, sample, proxies, render) and
  warm (the engine already has the run open);
- frames/s of live re-rendering at 32^2, 64^2 and a viewport-like size: an empty is moved with bpy, the
  depsgraph handler sends the layout, the answer is drained as the timer would (one request in flight);
- controllability through Blender: an empty moved by d with bpy, the rendered alpha's centroid against the
  camera's projection of d, in pixels at 32^2 and 64^2 (targets of the engine issue: <= 1 px, <= 2 px).

The engine runs with OMP_NUM_THREADS=1 unless set (the machine this was written on has 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def tiny_run(root: Path) -> Path:
    from tests.layout_runs import train_giraffe

    return train_giraffe(root)


def install_addon(user_dir: Path) -> str:
    """Build the extension and enable it in this process's Blender, with private user folders."""
    os.environ["BLENDER_USER_RESOURCES"] = str(user_dir)
    dist = user_dir / "dist"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir", str(dist)], check=True
    )
    import importlib

    import bpy

    (zip_path,) = dist.glob("fieldwork-*.zip")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=False)
    module = "bl_ext.user_default.fieldwork"
    importlib.import_module("addon_utils").enable(module, default_set=True)
    bpy.context.preferences.addons[module].preferences.engine_python = sys.executable
    return module


def centroid(alpha: np.ndarray) -> np.ndarray:
    rows, columns = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]]
    total = alpha.sum()
    return np.array([(alpha * (columns + 0.5)).sum() / total, (alpha * (rows + 0.5)).sum() / total])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=8, help="live frames timed at each size")
    parser.add_argument("--viewport", default="192x108", help="the viewport-like size, WxH (default 192x108)")
    parser.add_argument("--moves", type=int, default=12, help="empty moves in the controllability check")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="fieldwork-bench-layouts-"))
    run = args.run.resolve() if args.run else tiny_run(work / "giraffe")
    module = install_addon(work / "blender-user")
    import importlib

    import bpy

    layouts = importlib.import_module(f"{module}.layouts")
    client = importlib.import_module(f"{module}.client")
    camera_math = importlib.import_module(f"{module}.camera_math")
    scene = bpy.context.scene
    settings = scene.fieldwork.layouts
    settings.run_dir, settings.object_count, settings.proxy_resolution, settings.preview_size = str(run), 2, 16, 32
    print(f"run {run}; torch threads OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")

    started = time.perf_counter()
    assert bpy.ops.fieldwork.generate_layout(seed=1) == {"FINISHED"}
    cold = time.perf_counter() - started
    started = time.perf_counter()
    assert bpy.ops.fieldwork.generate_layout(seed=2) == {"FINISHED"}
    warm = time.perf_counter() - started
    print(f"Generate -> rendered frame (2 objects, 16^3 proxies, 32^2): cold {cold:.2f} s, warm {warm:.2f} s")

    state = layouts.state_for(scene)
    empty = layouts.layout_objects(scene)[0]
    width, height = (int(v) for v in args.viewport.lower().split("x"))
    camera = scene.camera
    for label, side, resolution in (("32^2", 32, (32, 32)), ("64^2", 64, (32, 32)), (args.viewport, 0, None)):
        if resolution is None:  # the viewport-like size: the camera renders at that size itself
            camera.data[layouts.capture.RESOLUTION_PROPERTY] = [width, height]
            settings.preview_size = max(width, height)
        else:
            camera.data[layouts.capture.RESOLUTION_PROPERTY] = list(resolution)
            settings.preview_size = side
        layouts.render_now(scene)  # the first frame at this size (warm-up)
        began, done = time.perf_counter(), state.completed
        for frame in range(args.frames):
            empty.location.x += 0.02 if frame % 2 == 0 else -0.02
            bpy.context.view_layer.update()  # the live handler sends it
            layouts.wait_for(scene, lambda: state.in_flight is None and state.pending is None, "live frame")
        seconds = time.perf_counter() - began
        frames = state.completed - done
        print(
            f"live re-rendering at {label}: {frames / seconds:.2f} frames/s ({seconds / frames * 1000:.0f} ms a frame)"
        )

    camera.data[layouts.capture.RESOLUTION_PROPERTY] = [32, 32]
    rng = np.random.default_rng(0)
    for side, target in ((32, 1.0), (64, 2.0)):
        settings.preview_size = side
        errors, relative = [], []
        for move in range(args.moves):
            assert bpy.ops.fieldwork.generate_layout(seed=100 + move, object_count=1) == {"FINISHED"}
            obj = layouts.layout_objects(scene)[0]
            before = layouts.render_now(scene)
            start = np.array(obj.matrix_world.translation)
            d = np.array([*rng.uniform(-1.0, 1.0, 2), 0.0])
            obj.location = tuple(start + d)
            after = layouts.render_now(scene)
            alpha_a, alpha_b = before.alphas[0], after.alphas[0]
            if alpha_a.sum() < 1.0 or alpha_b.sum() < 1.0:
                continue  # the object is out of view: no centroid
            request = after.request
            intrinsics = camera_math.Intrinsics(
                request.fl_x, request.fl_y, request.cx, request.cy, request.width, request.height
            )
            projected = camera_math.project_points(intrinsics, request.camera_to_world, [start, start + d])
            expected = projected[1] - projected[0]
            error = float(np.linalg.norm(centroid(alpha_b) - centroid(alpha_a) - expected))
            errors.append(error)
            relative.append(error / max(float(np.linalg.norm(expected)), 1e-9))
        errors_array = np.array(errors)
        print(
            f"controllability at {side}^2 ({len(errors)} moves of up to 1 unit in x and y): centroid error "
            f"mean {errors_array.mean():.2f} px, median {np.median(errors_array):.2f} px, "
            f"max {errors_array.max():.2f} px "
            f"(target <= {target:.0f} px); {100 * np.mean(relative):.0f}% of the projected move"
        )
    client.close_all()
    print(json.dumps({"run": str(run), "cold_s": cold, "warm_s": warm}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
