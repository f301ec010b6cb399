"""Textured vs vertex-coloured meshes: Cycles renders of held-out cameras against the ground truth.

    .venv/bin/python scripts/bench_texture.py [--steps 600] [--batch-rays 4096] [--cameras 40] [--image-size 64]
                                              [--resolution 128] [--sizes 1024 2048] [--out DIR]

A textured Suzanne (scripts/scenes.py) is rendered with Cycles from cameras on a sphere, every
``--holdout-every``-th camera held out; a field is trained on the rest (a short budget), then
meshes are extracted: (a) vertex colours, full and decimated to ``--fraction`` of the faces;
(b) baked textures at each ``--sizes``, full; (c) the largest texture after decimation; (d) with
``--texture-field-steps``, a texture field (engine/fields/texture_field.py) trained on the full
mesh from the same views, baked at the largest size, full and decimated. Each mesh
is imported with the add-on's importer and rendered with Cycles from the held-out cameras with
its colour as emission (a bake holds the radiance the cameras saw, lighting included, so it must
not be lit again); PSNR and SSIM against the ground-truth renders of the original object, masked
to the object (pixels where the truth is opaque; SSIM over the object's bounding box, both over
black). Bake time is the bake alone (atlas, rasterise, colour, pad). Prints a table and writes
``bench_texture.json`` in ``--out``. Figures depend on the machine and its load.
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

from engine.mesh.cleanup import CleanupConfig  # noqa: E402
from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer, write_result  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_texture.py", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps (a short budget)")
    parser.add_argument("--field", default="ngp")
    parser.add_argument("--batch-rays", type=int, default=4096, help="rays per training step")
    parser.add_argument("--cameras", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=64, help="training and evaluation image side, pixels")
    parser.add_argument("--holdout-every", type=int, default=8, help="hold out cameras 0, N, 2N, ...")
    parser.add_argument("--resolution", type=int, default=128, help="extraction lattice")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="texture sizes to bake")
    parser.add_argument("--fraction", type=float, default=0.1, help="decimate to this fraction of the faces")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument(
        "--texture-field-steps", type=int, default=300, help="train a texture field on the full mesh (0: skip it)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    return parser.parse_args(argv)


def _emission_material(obj: object) -> None:
    """Replace the imported material's BSDF by an emission of the same colour input (unlit)."""
    material = obj.data.materials[0]  # type: ignore[attr-defined]
    tree = material.node_tree
    principled = next(node for node in tree.nodes if node.type == "BSDF_PRINCIPLED")
    (link,) = principled.inputs["Base Color"].links
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    tree.links.new(link.from_socket, emission.inputs["Color"])
    output = next(node for node in tree.nodes if node.type == "OUTPUT_MATERIAL")
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])


def _render(scene: object, camera: object, path: Path) -> np.ndarray:
    """(h, w, 4) float RGBA in [0, 1] of a Cycles render from ``camera``, written to ``path``."""
    import bpy
    import imageio.v3 as iio

    scene.camera = camera  # type: ignore[attr-defined]
    scene.render.filepath = str(path)  # type: ignore[attr-defined]
    bpy.ops.render.render(write_still=True, scene=scene.name)  # type: ignore[attr-defined]
    return iio.imread(path).astype(np.float64) / 255.0


def _masked_scores(render: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    import torch

    from engine.train.metrics import ssim

    mask = truth[..., 3] > 0.5
    prediction = render[..., :3] * render[..., 3:4]
    target = truth[..., :3] * truth[..., 3:4]
    mse = float(((prediction - target)[mask] ** 2).mean())
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    score = ssim(torch.from_numpy(prediction[crop]), torch.from_numpy(target[crop]))
    return -10.0 * np.log10(max(mse, 1e-12)), score


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_texture-"))
    out.mkdir(parents=True, exist_ok=True)
    import bpy  # noqa: F401  (Blender as a module: scene, renders and imports are real)

    from addon import capture, importers
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer
    from scripts.scenes import build_object_scene

    started = time.perf_counter()
    info = build_object_scene(
        camera_count=args.cameras, resolution=args.image_size, shape="suzanne", samples=args.samples
    )
    scene = info.scene
    dataset = capture.export_dataset(scene, out / "dataset", holdout_every=args.holdout_every, overwrite=True)
    held_out = sorted(info.cameras, key=lambda camera: camera.name)[:: args.holdout_every]
    truths = [_render(scene, camera, out / "truth" / f"{camera.name}.png") for camera in held_out]
    render_seconds = time.perf_counter() - started

    started = time.perf_counter()
    trainer = Trainer.create(
        dataset,
        out / "run",
        TrainConfig(method=args.field, steps=args.steps, batch_rays=args.batch_rays, compile="off"),
    )
    while not trainer.is_done():
        trainer.train_step()
    trainer.save_checkpoint()
    train_seconds = time.perf_counter() - started

    full = extract_mesh_from_trainer(trainer, ExtractSettings(resolution=args.resolution))
    target_faces = max(1, int(args.fraction * full.face_count))
    percent = f"{100 * args.fraction:g}%"
    variants: list[tuple[str, int, int, object]] = [
        ("vertex colours", 0, 0, trainer),
        (f"vertex colours, {percent} faces", 0, target_faces, trainer),
    ]
    variants += [(f"texture {size}", size, 0, trainer) for size in args.sizes]
    variants.append((f"texture {max(args.sizes)}, {percent} faces", max(args.sizes), target_faces, trainer))
    texture_field_seconds = 0.0
    if args.texture_field_steps:
        from engine.mesh.io import write_mesh

        given = write_mesh(full.mesh, out / "given.ply", overwrite=True)
        started = time.perf_counter()
        texture_field = Trainer.create(
            dataset,
            out / "run-texture-field",
            TrainConfig(
                method="texture_field",
                steps=args.texture_field_steps,
                batch_rays=args.batch_rays,
                compile="off",
                settings={"mesh": str(given)},
            ),
        )
        while not texture_field.is_done():
            texture_field.train_step()
        texture_field.save_checkpoint()
        texture_field_seconds = time.perf_counter() - started
        size = max(args.sizes)
        variants.append((f"texture field {size}", size, 0, texture_field))
        variants.append((f"texture field {size}, {percent} faces", size, target_faces, texture_field))
    source = info.object
    source.hide_render = True
    rows = []
    for name, size, faces, source_run in variants:
        settings = ExtractSettings(
            resolution=args.resolution, texture_size=size, cleanup=CleanupConfig(target_faces=faces)
        )
        result = full if (size, faces) == (0, 0) else extract_mesh_from_trainer(source_run, settings)  # type: ignore[arg-type]
        slug = name.replace(" ", "_").replace(",", "").replace("%", "pc")
        written = write_result(result, out / "meshes" / f"{slug}.ply", overwrite=True)
        obj = importers.import_mesh_file(scene, written.path)
        _emission_material(obj)
        scores = [
            _masked_scores(_render(scene, camera, out / "renders" / slug / f"{camera.name}.png"), truth)
            for camera, truth in zip(held_out, truths, strict=True)
        ]
        importers.remove_objects([obj])
        rows.append(
            {
                "variant": name,
                "faces": result.face_count,
                "psnr": float(np.mean([score[0] for score in scores])),
                "ssim": float(np.mean([score[1] for score in scores])),
                "bake_seconds": None if result.texture is None else result.texture.total_seconds,
                "extract_seconds": result.total_seconds,
            }
        )
        print(f"  {name}: done", flush=True)

    print(
        f"\n{args.field}, {trainer.step} steps ({train_seconds:.0f} s), {args.cameras} cameras at {args.image_size}px, "
        f"{len(held_out)} held out; lattice {args.resolution}; scene render + export {render_seconds:.0f} s; "
        f"{platform.processor() or platform.machine()}"
        + (
            f"; texture field {args.texture_field_steps} steps ({texture_field_seconds:.0f} s)"
            if args.texture_field_steps
            else ""
        )
    )
    print(f"{'variant':<34} {'faces':>8} {'PSNR dB':>8} {'SSIM':>6} {'bake s':>7} {'extract s':>9}")
    for row in rows:
        bake = "" if row["bake_seconds"] is None else f"{row['bake_seconds']:.1f}"
        print(
            f"{row['variant']:<34} {row['faces']:>8} {row['psnr']:>8.2f} {row['ssim']:>6.3f} {bake:>7} "
            f"{row['extract_seconds']:>9.1f}"
        )
    (out / "bench_texture.json").write_text(
        json.dumps(
            {"rows": rows, "train_seconds": train_seconds, "steps": trainer.step, "args": vars(args)}, default=str
        )
    )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
