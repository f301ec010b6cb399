"""``python -m engine render RUN_DIR --camera 3``: render a trained run from a camera.

The camera is a frame index of the run's dataset, or a JSON file holding ``camera_to_world`` (or
``transform_matrix``; 4x4, Blender world, camera looks down -Z) and pinhole ``fl_x fl_y cx cy w h``.
Writes NAME_rgb.png (8 bit, in the dataset's colour space), NAME_opacity.png (8 bit),
NAME_depth.npy (float32 depth along the viewing axis, world units) and NAME_depth.png (16 bit, depth
scaled so the farthest hit is white; 0 where nothing was hit). Files are written atomically and never
replace existing ones unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import EXIT_BAD_INPUT

if TYPE_CHECKING:
    import numpy as np

HELP = "render colour, depth and opacity images of a trained run from a dataset frame or a JSON camera"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run folder (with its checkpoint)")
    parser.add_argument(
        "--camera", required=True, help="a frame index of the run's dataset, or a camera JSON file (see --help)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/renders)")
    parser.add_argument("--name", help="file name stem (default: frame_N or the JSON file's stem)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--overwrite", action="store_true", help="replace existing images of the same name")


def read_camera_json(path: Path) -> tuple[np.ndarray, Any]:
    """(4, 4) camera_to_world and Intrinsics from a camera JSON file; errors name the file and key."""
    import numpy as np

    from ..data.transforms import Intrinsics, check_camera_to_world

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable camera JSON file: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    key = "camera_to_world" if "camera_to_world" in document else "transform_matrix"
    if key not in document:
        raise ValueError(f"{path}: missing camera_to_world (or transform_matrix)")
    check_camera_to_world(document[key], str(path), key)
    matrix = np.asarray(document[key], dtype=np.float64)
    missing = [name for name in ("fl_x", "w", "h") if name not in document]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    width, height = _whole_pixels(document, "w", path), _whole_pixels(document, "h", path)
    fl_x = _pixels(document, "fl_x", path)
    try:
        intrinsics = Intrinsics(
            fl_x=fl_x,
            fl_y=_pixels(document, "fl_y", path) if "fl_y" in document else fl_x,
            cx=_pixels(document, "cx", path) if "cx" in document else width / 2,
            cy=_pixels(document, "cy", path) if "cy" in document else height / 2,
            width=width,
            height=height,
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return matrix, intrinsics


def _pixels(document: dict[str, Any], key: str, path: Path) -> float:
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: '{key}' must be a finite number of pixels, got {value!r}")
    return float(value)


def _whole_pixels(document: dict[str, Any], key: str, path: Path) -> int:
    value = _pixels(document, key, path)
    if value != int(value) or value < 1:
        raise ValueError(f"{path}: '{key}' must be a whole number of pixels >= 1, got {document[key]!r}")
    return int(value)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..atomic import check_writable_folder, write_atomic
    from ..train.run_folder import check_readable_run
    from ..train.trainer import Trainer

    run_dir: Path = args.run_dir.expanduser()
    out_dir: Path = (args.out or run_dir / "renders").expanduser()
    try:
        check_readable_run(run_dir)
        camera_path = None if args.camera.lstrip("-").isdigit() else Path(args.camera).expanduser()
        json_camera = read_camera_json(camera_path) if camera_path is not None else None
        name = args.name or (camera_path.stem if camera_path is not None else f"frame_{int(args.camera)}")
        targets = {kind: out_dir / f"{name}_{kind}" for kind in ("rgb.png", "opacity.png", "depth.png", "depth.npy")}
        existing = [str(path) for path in targets.values() if path.exists()]
        if existing and not args.overwrite:
            raise ValueError(f"{', '.join(existing)} already exist; pass --overwrite or another --name/--out")
        check_writable_folder(out_dir)  # before the model is loaded and the view rendered
        trainer = Trainer.from_run(run_dir, args.device)
        if json_camera is None:
            index = int(args.camera)
            dataset = trainer.dataset
            if not 0 <= index < len(dataset.frames):
                raise ValueError(f"--camera {index}: the dataset has frames 0..{len(dataset.frames) - 1}")
            camera_to_world = dataset.cameras.camera_to_world[index].cpu().numpy()
            intrinsics = dataset.intrinsics[index]
        else:
            camera_to_world, intrinsics = json_camera
        rendered = trainer.render(camera_to_world, intrinsics)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    hit_depth = rendered.depth[rendered.opacity > 0.5]
    far = float(hit_depth.max()) if hit_depth.size else 1.0
    depth_image = np.where(rendered.opacity > 0.5, np.clip(rendered.depth / max(far, 1e-12), 0, 1), 0.0)
    try:
        write_atomic(targets["rgb.png"], lambda path: _png(path, rendered.rgb, 255, np.uint8))
        write_atomic(targets["opacity.png"], lambda path: _png(path, rendered.opacity, 255, np.uint8))
        write_atomic(targets["depth.png"], lambda path: _png(path, depth_image, 65535, np.uint16))
        write_atomic(targets["depth.npy"], lambda path: _npy(path, rendered.depth))
    except OSError as error:  # the folder changed under us (disk full, permissions) after the check
        print(f"error: cannot write {error.filename or out_dir}: {error.strerror or error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps({name: str(path) for name, path in targets.items()}))
    return 0


def _png(path: Path, image: np.ndarray, scale: int, dtype: type) -> None:
    import imageio.v3 as iio
    import numpy as np

    iio.imwrite(path, (np.clip(image, 0.0, 1.0) * scale + 0.5).astype(dtype), extension=".png")


def _npy(path: Path, array: np.ndarray) -> None:
    import numpy as np

    with path.open("wb") as stream:  # a path would get ".npy" appended to the temporary name
        np.save(stream, array)
