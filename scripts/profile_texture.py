"""Where a texture benchmark's decibels go: profiles a finished ``scripts/bench_texture.py`` run folder.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/profile_texture.py --out DIR [--size 2048] [--fraction 0.1]

Reads the run folder that bench_texture wrote (``--out`` there), rebuilds its scene (nothing is rendered
for training) and measures, masked to the object as the benchmark does, against its ground-truth renders:

- the texture field's own renders of the held-out cameras (its mesh ray-cast, t(p) plus the view-dependent
  residual): what its training reached, before any bake (one ray a pixel centre: no antialiasing, unlike
  Cycles' renders of the bakes, so a little below them where the texture has edges);
- the same without the residual (t(p) alone: what a bake can hold);
- its bake at ``--size`` onto the mesh decimated to ``--fraction``, with each texel's point projected onto
  the field's own mesh (the bake's default) and without (t(p) read where the decimated surface lies);
  compare them with bench_texture's full-faces row;
- with ``--field-views N``, the radiance field's own renders of N held-out cameras (slow on a CPU).

Prints a table (PSNR, SSIM) and writes ``profile_texture.json`` in the folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="profile_texture.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a bench_texture.py output folder")
    parser.add_argument("--size", type=int, default=2048, help="texture size of the decimated bakes")
    parser.add_argument("--fraction", type=float, default=0.1, help="decimate to this fraction of the faces")
    parser.add_argument("--field-views", type=int, default=0, help="held-out views the radiance field renders")
    return parser.parse_args(argv)


def _premultiplied_rgba(rendered: object, background: np.ndarray) -> np.ndarray:
    """(h, w, 4) premultiplied colour over black and an alpha of one, from a render over ``background``."""
    rgb, opacity = rendered.rgb, rendered.opacity  # type: ignore[attr-defined]
    premultiplied = np.clip(rgb - (1.0 - opacity[..., None]) * background, 0.0, 1.0)
    return np.concatenate([premultiplied, np.ones_like(opacity[..., None])], axis=-1).astype(np.float64)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out: Path = args.out
    bench = json.loads((out / "bench_texture.json").read_text())
    settings = bench["args"]
    import bpy  # noqa: F401
    import imageio.v3 as iio
    import torch

    from addon import importers
    from engine.fields import texture_field as texture_field_module
    from engine.mesh.cleanup import CleanupConfig
    from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer, write_result
    from engine.train.trainer import Trainer
    from scripts.bench_texture import _emission_material, _masked_scores, _render
    from scripts.scenes import build_object_scene

    info = build_object_scene(
        camera_count=int(settings["cameras"]),
        resolution=int(settings["image_size"]),
        layout="ring",
        shape="suzanne",
        samples=int(settings["samples"]),
        texture=settings["scene"],
    )
    scene = info.scene
    info.object.hide_render = True
    held_out = sorted(info.cameras, key=lambda camera: camera.name)[:: int(settings["holdout_every"])]
    truths = [iio.imread(out / "truth" / f"{camera.name}.png").astype(np.float64) / 255.0 for camera in held_out]
    rows: list[dict] = []

    def record(name: str, scores: list[tuple[float, float]]) -> None:
        rows.append(
            {
                "variant": name,
                "psnr": float(np.mean([s[0] for s in scores])),
                "ssim": float(np.mean([s[1] for s in scores])),
            }
        )
        print(f"  {name}: {rows[-1]['psnr']:.2f} dB", flush=True)

    texture_field = Trainer.from_run(out / "run-texture-field", device="cpu")
    dataset = texture_field.dataset
    background = texture_field._evaluation_background().cpu().numpy()
    # the capture names frames after their cameras (spaces may become underscores in file names)
    frames = {frame.name.replace("_", " "): index for index, frame in enumerate(dataset.frames)}
    indices = [frames[camera.name] for camera in held_out]

    def field_scores(trainer: Trainer, count: int) -> list[tuple[float, float]]:
        scores = []
        for index, truth in list(zip(indices, truths, strict=True))[:count]:
            rendered = trainer.render(dataset.cameras.camera_to_world[index].cpu().numpy(), dataset.intrinsics[index])
            scores.append(_masked_scores(_premultiplied_rgba(rendered, background), truth))
        return scores

    record("texture field render, t(p) + residual", field_scores(texture_field, len(indices)))
    head = texture_field.model.field.residual_head
    texture_field.model.field.residual_head = None
    record("texture field render, t(p) alone", field_scores(texture_field, len(indices)))
    texture_field.model.field.residual_head = head

    faces = int(texture_field.model.surface_mesh()[1].shape[0])
    decimated = ExtractSettings(
        texture_size=args.size, cleanup=CleanupConfig(target_faces=max(1, int(args.fraction * faces)))
    )
    projection = texture_field_module.PROJECTION_DISTANCE
    name = f"bake {args.size}, {args.fraction:g} of the faces"
    for label, distance in (("projected", projection), ("not projected", 0.0)):
        texture_field_module.PROJECTION_DISTANCE = distance
        result = extract_mesh_from_trainer(texture_field, decimated)
        slug = f"profile_{name}_{label}".replace(" ", "_").replace(",", "")
        written = write_result(result, out / "meshes" / f"{slug}.ply", overwrite=True)
        obj = importers.import_mesh_file(scene, written.path)
        _emission_material(obj)
        scores = [
            _masked_scores(_render(scene, camera, out / "renders" / slug / f"{camera.name}.png"), truth)
            for camera, truth in zip(held_out, truths, strict=True)
        ]
        importers.remove_objects([obj])
        record(f"texture field {name}, {label}", scores)
    texture_field_module.PROJECTION_DISTANCE = projection

    if args.field_views:
        torch.set_num_threads(1)
        field = Trainer.from_run(out / "run", device="cpu")
        record(f"radiance field render ({args.field_views} views)", field_scores(field, args.field_views))

    print(f"\n{'variant':<52} {'PSNR dB':>8} {'SSIM':>6}")
    for row in rows:
        print(f"{row['variant']:<52} {row['psnr']:>8.2f} {row['ssim']:>6.3f}")
    (out / "profile_texture.json").write_text(json.dumps({"rows": rows, "args": vars(args)}, default=str, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
