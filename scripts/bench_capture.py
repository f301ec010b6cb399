"""Capture benchmark: reprojection error of exported cameras against Cycles renders, per camera setting.

    .venv/bin/python scripts/bench_capture.py [--scales 1 4] [--samples 16] [--out DIR]

Every case of scripts/capture_probe.py (shift, each sensor fit, portrait and landscape, resolution
percentage, non-square pixels, a camera's own resolution) is rendered with Cycles through the
add-on's ``export_dataset`` at its test size times each scale; the markers are projected with the
exported intrinsics and pose and compared with the blobs found in the image. Prints, per case and
scale: image size, mean and max error in pixels, and the export's wall time (render included).
Writes ``bench_capture.json`` in ``--out``. Times depend on the machine and its load.
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

import bpy  # noqa: E402

from addon import camera_math, capture  # noqa: E402
from engine.data.transforms import read_transforms  # noqa: E402
from scripts.capture_probe import (  # noqa: E402
    MARKERS,
    REPROJECTION_CASES,
    build_marker_scene,
    detect_markers,
    marker_errors,
    set_up_probe,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4], help="image size multipliers")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument("--out", type=Path, default=None, help="folder for datasets and bench_capture.json")
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-capture-"))
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    print(f"{'case':34} {'size':>9} {'mean px':>8} {'max px':>8} {'export s':>9}")
    for scale in args.scales:
        for name, case in REPROJECTION_CASES.items():
            bpy.ops.wm.read_homefile(use_empty=True)
            scene = bpy.context.scene
            build_marker_scene(scene, samples=args.samples)
            camera = set_up_probe(scene, case, scale=scale)
            folder = out / f"x{scale}" / name.replace(" ", "_").replace("'", "").replace(":", "-")
            started = time.perf_counter()
            path = capture.export_dataset(scene, folder, cameras=[camera], overwrite=True)
            seconds = time.perf_counter() - started
            transforms = read_transforms(path)
            (frame,) = transforms.frames
            projected = camera_math.project_points(frame.intrinsics, frame.camera_to_world, MARKERS)
            detected = detect_markers(transforms.image_path(frame))
            if len(detected) != len(MARKERS):
                print(f"{name}: found {len(detected)} blobs for {len(MARKERS)} markers", file=sys.stderr)
                return 1
            errors = marker_errors(detected, projected)
            size = f"{frame.intrinsics.width}x{frame.intrinsics.height}"
            rows.append(
                {
                    "case": name,
                    "scale": scale,
                    "size": size,
                    "mean_px": float(errors.mean()),
                    "max_px": float(errors.max()),
                    "export_s": seconds,
                }
            )
            print(f"{name:34} {size:>9} {errors.mean():8.3f} {errors.max():8.3f} {seconds:9.2f}", flush=True)
    report = {
        "samples": args.samples,
        "machine": platform.platform(),
        "blender": bpy.app.version_string,
        "rows": rows,
    }
    (out / "bench_capture.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out / 'bench_capture.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
