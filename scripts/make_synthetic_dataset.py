"""A NeRF-synthetic-layout dataset rendered with Cycles, as a dataset made outside Fieldwork comes.

    .venv/bin/python scripts/make_synthetic_dataset.py --out DIR [--cameras 100] [--size 100] [--radius 4]
        [--object-size 2] [--shape suzanne] [--samples 16] [--holdout-every 8] [--no-check]

The textured demo object (scripts/scenes.py), scaled so its largest side is ``--object-size`` and centred
on the world origin, is rendered from ``--cameras`` cameras evenly over a sphere of ``--radius`` around the
origin, all looking at it (NeRF synthetic's 50 mm lens on a 36 mm sensor: camera_angle_x 0.6911), with a
transparent background. DIR gets what the NeRF synthetic scenes hold and no more: ``train/``, ``val/``,
``test/`` folders of ``r_<index>.png`` RGBA images and ``transforms_{train,val,test}.json`` with
``camera_angle_x`` and per frame ``file_path`` (no extension), ``rotation`` and ``transform_matrix``; no
``w``/``h``, no ``aabb``, no ``fieldwork`` block. Every ``--holdout-every``-th view is held out, those
alternately in val and test. ``object_bounds.json`` and ``object_mesh.ply`` beside them hold the object's
true world bounds and triangles for benchmarks (no dataset reader looks at them).

Then (unless ``--no-check``) it prints the scene box the engine chooses for the dataset
(engine.data.bounds, from the training views as the engine loads them) against the object's bounds padded
as the engine pads a hull (HULL_PAD_FRACTION of the largest side on every side), the error on each axis as
a fraction of the padded size (the issue's target: below 10%), and how long reading the alpha and choosing
took.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402
import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

from engine.atomic import write_text_atomic  # noqa: E402
from engine.data.bounds import HULL_PAD_FRACTION, choose_for_transforms  # noqa: E402
from engine.data.transforms import read_transforms  # noqa: E402
from scripts.scenes import SHAPES, build_object_scene, save_ground_truth_mesh  # noqa: E402

BOUNDS_NAME = "object_bounds.json"
MESH_NAME = "object_mesh.ply"
TARGET_FRACTION = 0.10


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; must not hold a dataset)")
    parser.add_argument("--cameras", type=int, default=100, help="views on the sphere")
    parser.add_argument("--size", type=int, default=100, help="image width and height in pixels")
    parser.add_argument("--radius", type=float, default=4.0, help="distance of every camera from the origin")
    parser.add_argument("--object-size", type=float, default=2.0, help="the object's largest side, world units")
    parser.add_argument("--shape", choices=SHAPES, default="suzanne")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument("--holdout-every", type=int, default=8, help="every n-th view goes to val/test")
    parser.add_argument("--no-check", action="store_true", help="do not print the engine's chosen scene box")
    args = parser.parse_args(argv)
    for name in ("cameras", "size", "samples", "holdout_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("radius", "object_size"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if any((args.out / f"transforms_{split}.json").exists() for split in ("train", "val", "test")):
        parser.error(f"{args.out} already holds a dataset; pick an empty folder")
    return args


def render_dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Render and write the dataset; returns the object's true world bounds (min, max), (3,) each."""
    # Built once to measure the object, then again at the scale that gives it the asked-for size.
    probe = build_object_scene(camera_count=1, resolution=args.size, shape=args.shape, samples=args.samples)
    factor = args.object_size / float(np.max(np.asarray(probe.bounds_max) - np.asarray(probe.bounds_min)))
    offset = -factor * (np.asarray(probe.bounds_min) + np.asarray(probe.bounds_max)) / 2  # centre on the origin
    info = build_object_scene(
        camera_count=args.cameras,
        resolution=args.size,
        shape=args.shape,
        samples=args.samples,
        object_scale=(factor, factor, factor),
        object_location=tuple(float(v) for v in offset),  # type: ignore[arg-type]
    )
    scene = info.scene
    origin = Vector((0.0, 0.0, 0.0))
    splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    held_out = 0
    started = time.perf_counter()
    for index, camera in enumerate(info.cameras):
        # scenes.py puts the cameras where the object fills the view; NeRF synthetic puts them on a sphere.
        direction = (camera.matrix_world.translation - Vector(info.center)).normalized()
        location = direction * args.radius
        camera.matrix_world = (
            Matrix.Translation(location) @ (origin - location).to_track_quat("-Z", "Y").to_matrix().to_4x4()
        )
        camera.data.clip_start = 0.05
        camera.data.clip_end = 4.0 * args.radius
        if index % args.holdout_every == 0:
            split = "val" if held_out % 2 == 0 else "test"
            held_out += 1
        else:
            split = "train"
        scene.camera = camera
        scene.render.filepath = str((args.out / split / f"r_{index}.png").resolve())
        bpy.ops.render.render(write_still=True)
        splits[split].append(
            {
                "file_path": f"./{split}/r_{index}",
                "rotation": 0.0,
                "transform_matrix": [list(row) for row in camera.matrix_world],
            }
        )
        print(f"rendered {index + 1}/{args.cameras} ({time.perf_counter() - started:.0f} s)", flush=True)
    camera_angle_x = 2.0 * math.atan(info.cameras[0].data.sensor_width / 2 / info.cameras[0].data.lens)
    for split, frames in splits.items():
        document = {"camera_angle_x": camera_angle_x, "frames": frames}
        write_text_atomic(args.out / f"transforms_{split}.json", json.dumps(document, indent=2) + "\n")
    bounds_min, bounds_max = np.asarray(info.bounds_min), np.asarray(info.bounds_max)
    bounds = {"min": bounds_min.tolist(), "max": bounds_max.tolist(), "shape": args.shape}
    write_text_atomic(args.out / BOUNDS_NAME, json.dumps(bounds, indent=2) + "\n")
    save_ground_truth_mesh(info, args.out / MESH_NAME)
    return bounds_min, bounds_max


def read_alpha(path: Path) -> np.ndarray:
    """(h, w) alpha 0..1 of an RGBA PNG, as the engine reads it (imageio, integers scaled by their maximum)."""
    image = iio.imread(path)
    return image[..., -1].astype(np.float32) / float(np.iinfo(image.dtype).max)


def check_box(folder: Path, bounds_min: np.ndarray, bounds_max: np.ndarray) -> bool:
    """Print the engine's chosen box against the padded true bounds; True when every axis is within target."""
    transforms = read_transforms(folder)
    started = time.perf_counter()
    alpha: dict[Path, np.ndarray] = {}

    def cached(path: Path) -> np.ndarray:
        alpha[path] = read_alpha(path)
        return alpha[path]

    choose_for_transforms(transforms, cached)  # reads every training alpha once
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    choice = choose_for_transforms(transforms, lambda path: alpha[path])
    choose_seconds = time.perf_counter() - started
    pad = HULL_PAD_FRACTION * float(np.max(bounds_max - bounds_min))
    padded_min, padded_max = bounds_min - pad, bounds_max + pad
    chosen_min, chosen_max = np.asarray(choice.box.minimum), np.asarray(choice.box.maximum)
    errors = np.maximum(np.abs(chosen_min - padded_min), np.abs(chosen_max - padded_max)) / (padded_max - padded_min)
    print(f"rule: {choice.rule}: {choice.reason}")
    for axis, values in zip(
        "xyz", zip(padded_min, padded_max, chosen_min, chosen_max, errors, strict=True), strict=True
    ):
        lo, hi, got_lo, got_hi, error = values
        print(f"  {axis}: padded object {lo:+.3f}..{hi:+.3f}  chosen {got_lo:+.3f}..{got_hi:+.3f}  error {error:.1%}")
    within = bool((errors < TARGET_FRACTION).all())
    verdict = "met" if within else "MISSED"
    print(f"largest error {errors.max():.1%} of the padded size (target < {TARGET_FRACTION:.0%}): {verdict}")
    print(f"training views: {len(alpha)}; reading alpha {read_seconds:.2f} s; choosing the box {choose_seconds:.2f} s")
    return within


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bounds_min, bounds_max = render_dataset(args)
    print(f"wrote {args.out} ({args.cameras} views of {args.size}x{args.size}, radius {args.radius})")
    if not args.no_check:
        check_box(args.out, bounds_min, bounds_max)
    return 0


if __name__ == "__main__":
    sys.exit(main())
