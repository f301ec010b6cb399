"""``python -m engine render-layout RUN_DIR layout.json [--camera CAMERA_JSON] --out IMG``: render a layout.

The camera JSON is ``{"camera_to_world": 4x4 (Blender matrix_world), "fl_x", "fl_y", "cx", "cy", "w", "h"}``
(or a layout file, whose camera is used); without ``--camera`` the layout's own camera renders it.
``--alphas`` also writes one greyscale PNG per object (IMG's name + ``.alpha.NAME.png``) and ``--depth`` a
float32 .npy of depth along the viewing axis in world units.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import EXIT_BAD_INPUT

HELP = "render a layout (colour, per-object alpha, depth) from its camera or any other"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the training run the layout came from")
    parser.add_argument("layout", type=Path, metavar="LAYOUT_JSON", help="a layout file (from `sample`)")
    parser.add_argument(
        "--camera", type=Path, metavar="CAMERA_JSON", help="camera to render from (default: the layout's)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="IMG", help="colour image to write (PNG)")
    parser.add_argument("--alphas", action="store_true", help="also write each object's alpha as a PNG")
    parser.add_argument("--depth", type=Path, metavar="NPY", help="also write the depth map (.npy, world units)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto...")


def run(args: argparse.Namespace) -> int:
    import imageio.v3 as iio
    import numpy as np

    from ..atomic import write_atomic
    from ..data.transforms import Intrinsics
    from ..layouts import LayoutError, read_camera, read_layout
    from .sample import load_layout_model

    try:
        layout = read_layout(args.layout.expanduser())
        camera = read_camera(args.camera.expanduser()) if args.camera is not None else layout.camera
        model = load_layout_model(args.run_dir.expanduser(), args.device)
        intrinsics = Intrinsics(camera.fl_x, camera.fl_y, camera.cx, camera.cy, camera.w, camera.h)
        rendered = model.render_layout(layout, np.asarray(camera.camera_to_world), intrinsics)
    except (ValueError, FileNotFoundError, LayoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out.expanduser()
    written = {"colour": str(_write_png(out, rendered.colour, iio, write_atomic))}
    if args.alphas:
        written["alphas"] = [
            str(_write_png(out.with_name(f"{out.stem}.alpha.{obj.name}.png"), alpha, iio, write_atomic))
            for obj, alpha in zip(layout.objects, rendered.alphas, strict=True)
        ]
    if args.depth is not None:
        depth_path = args.depth.expanduser()
        write_atomic(depth_path, lambda temporary: _save_npy(temporary, rendered.depth))
        written["depth"] = str(depth_path)
    print(json.dumps(written))
    return 0


def _save_npy(path: Path, values: Any) -> None:
    import numpy as np

    with open(path, "wb") as stream:
        np.save(stream, values)


def _write_png(path: Path, pixels: Any, iio: Any, write_atomic: Any) -> Path:
    import numpy as np

    values = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return write_atomic(path, lambda temporary: iio.imwrite(temporary, values, extension=".png"))
