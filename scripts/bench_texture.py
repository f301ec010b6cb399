"""Textured vs vertex-coloured meshes: Cycles renders of held-out cameras against the ground truth.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_texture.py [--scene demo|checker|synthetic]
        [--field ngp|neus|...] [--minutes 6] [--texture-field-minutes 3] [--image-size 256]
        [--resolution 128] [--sizes 1024 2048] [--baked-sizes 1024] [--fraction 0.1]
        [--kinds baked "from views" "texture field"] [--dataset DIR] [--out DIR]

``--scene demo`` is the demo's scene (scripts/demo.py: a subdivided Suzanne with the noise/Voronoi checker of
scripts/scenes.py, 40 cameras on a ring); ``--scene checker`` the same object and cameras with a fine
two-colour checker (cells 0.1 units, about 8 pixels at 256 px): detail that vertex colours of a decimated
mesh cannot hold. Both are rendered with Cycles at ``--image-size`` pixels, every ``--holdout-every``-th
camera held out. ``--scene synthetic`` is a dataset as another tool writes it: the NeRF-synthetic layout of
scripts/make_synthetic_dataset.py (100 views on a sphere, ``camera_angle_x`` only, no box; or ``--dataset``),
its cameras imported by the add-on's dataset importer, its val and test frames the held-out truth as they
lie on disk (no object, so no source-material rows). Training and held-out views have the same size: a
field can only learn the detail its views show, so evaluating at a larger size than it trained on would
score upsampling, not the texture. At 256 px the object covers about 12,000 pixels of a held-out view,
which a 1k texture already oversamples (its roughly 600,000 chart texels, a good share of them in view: over
ten to a pixel), so 1k and 2k can only differ in views of 1024 px and more, trained at that size too.

A radiance field (``--field``, its method's default settings, the sample-budget batch, a ``--minutes``
budget: what ``python -m engine train --minutes M`` gives) is trained on the rest, then meshes are
extracted at lattice ``--resolution``: vertex colours, full and decimated to ``--fraction`` of the faces;
textures baked from the field at each ``--baked-sizes`` (default ``--sizes``; that bake volume-renders 16
field samples a texel, minutes a 2k texture on a CPU), full, and the largest after decimation; textures
from the training images (``from views``: what Extract gives by default, engine/mesh/view_colours.py) at
each size, full and the largest after decimation. With
``--texture-field-minutes``, a texture field (engine/fields/texture_field.py, its defaults) is trained on
the full mesh from the same views and baked at each size, full, and the largest after decimation. Each
mesh is imported with the add-on's importer and rendered with Cycles from the held-out cameras with its
colour as emission (a bake holds the radiance the cameras saw, lighting included, so it must not be lit
again); the vertex-coloured meshes are also rendered lit with the object's own material (its procedural
texture in object coordinates): what the extracted geometry alone costs, the true texture where the mesh
lies (not a ceiling: a misplaced sharp texture can score below blurred colours). PSNR and
SSIM against the ground-truth renders of the original object, masked to the object
(pixels where the truth is opaque; SSIM over the object's bounding box, both over black). Bake time is
the bake alone (atlas, rasterise, colour, pad). ``--kinds`` scores only some of them; with an ``--out`` that
holds the runs of an earlier call with the same budgets, both trainings are resumed, already done, so
only the meshes are made and scored again. Prints a table, the issue's two targets (textured at 10%
faces within 0.5 dB of textured at full faces, and 3 dB above vertex colours at 10% faces), the load
average, and writes ``bench_texture.json`` in ``--out``. Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
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

from engine.mesh.cleanup import CleanupConfig  # noqa: E402
from engine.mesh.extract import ColourSource, ExtractSettings, extract_mesh_from_trainer, write_result  # noqa: E402

SCENES = ("demo", "checker", "synthetic")
# What a mesh's colour comes from: the field along the normal (baked), the training images (from views), or a
# texture field trained on the mesh.
KINDS = ("baked", "from views", "texture field")
# The held-out frames of a NeRF-synthetic dataset, as the engine holds them out.
HELD_OUT_SPLITS = ("val", "test")
# With only a time budget the step budget must not end the run first (as `python -m engine train --minutes`).
UNLIMITED_STEPS = 10**9


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_texture.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scene",
        choices=SCENES,
        default="demo",
        help="the demo's texture, a fine checker, or a NeRF-synthetic dataset (--dataset, or made)",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="--scene synthetic: a NeRF-synthetic-layout folder (default: scripts/make_synthetic_dataset.py "
        "writes one of --cameras views at --image-size into OUT/synthetic)",
    )
    parser.add_argument("--field", default="ngp", help="radiance field method (its default settings)")
    parser.add_argument("--minutes", type=float, default=6.0, help="radiance field training budget")
    parser.add_argument(
        "--texture-field-minutes", type=float, default=3.0, help="texture field training budget (0: skip it)"
    )
    parser.add_argument("--steps", type=int, default=0, help="cap the steps of both trainings (0: time alone)")
    parser.add_argument(
        "--cameras", type=int, default=None, help="cameras on the demo's ring (40), or on the synthetic sphere (100)"
    )
    parser.add_argument("--image-size", type=int, default=256, help="training and held-out image side, pixels")
    parser.add_argument("--holdout-every", type=int, default=8, help="hold out cameras 0, N, 2N, ...")
    parser.add_argument("--resolution", type=int, default=128, help="extraction lattice")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="texture sizes to bake")
    parser.add_argument(
        "--baked-sizes",
        type=int,
        nargs="+",
        default=None,
        help="sizes baked from the radiance field (default: --sizes); its bake volume-renders 16 samples a texel",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="which meshes to score (vertex colours always: the targets compare with them)",
    )
    parser.add_argument("--fraction", type=float, default=0.1, help="decimate to this fraction of the faces")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    return parser.parse_args(argv)


def _train(trainer: object) -> float:
    """Train to the end of the budget; training seconds."""
    while not trainer.is_done():  # type: ignore[attr-defined]
        trainer.train_step()  # type: ignore[attr-defined]
    trainer.save_checkpoint()  # type: ignore[attr-defined]
    return float(trainer.train_seconds)  # type: ignore[attr-defined]


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


def _synthetic_scene(args: argparse.Namespace, out: Path) -> tuple[object, Path, list, list[np.ndarray]]:
    """A NeRF-synthetic-layout dataset as another tool writes it (made by scripts/make_synthetic_dataset.py when
    --dataset is not given): its cameras imported into an empty scene by the add-on's dataset importer (which
    is what a user does with it), rendered as scripts/scenes.py renders; the held-out frames (val, test) are
    the truth as they lie on disk. (scene, dataset, held-out cameras, truths)."""
    import subprocess

    import bpy
    import imageio.v3 as iio

    from addon import capture
    from scripts.scenes import configure_render

    dataset = args.dataset
    if dataset is None:
        dataset = out / "synthetic"
        if not (dataset / "transforms_train.json").is_file():
            command = [sys.executable, str(REPO / "scripts" / "make_synthetic_dataset.py"), "--out", str(dataset)]
            command += ["--cameras", str(args.cameras or 100), "--size", str(args.image_size), "--no-check"]
            command += ["--samples", str(args.samples), "--holdout-every", str(args.holdout_every)]
            subprocess.run(command, check=True, cwd=REPO)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    cameras = capture.import_dataset(scene, dataset)
    first = cameras[0].data.background_images[0].image
    configure_render(scene, resolution=int(first.size[0]), samples=args.samples, seed=0, engine="CYCLES")
    held_out = [camera for camera in cameras if camera[capture.SPLIT_PROPERTY] in HELD_OUT_SPLITS]
    if not held_out:
        raise SystemExit(f"{dataset}: no val or test frames to score against")
    truths = [
        iio.imread(bpy.path.abspath(camera.data.background_images[0].image.filepath)).astype(np.float64) / 255.0
        for camera in held_out
    ]
    return scene, dataset, held_out, truths


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_texture-"))
    out.mkdir(parents=True, exist_ok=True)
    import bpy  # noqa: F401  (Blender as a module: scene, renders and imports are real)

    from addon import capture, importers
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer
    from scripts.scenes import build_object_scene

    loads = {"start": _load()}
    steps = args.steps or UNLIMITED_STEPS
    started = time.perf_counter()
    if args.scene == "synthetic":
        scene, dataset, held_out, truths = _synthetic_scene(args, out)
        source = None
    else:
        info = build_object_scene(
            camera_count=args.cameras or 40,
            resolution=args.image_size,
            layout="ring",
            shape="suzanne",
            samples=args.samples,
            texture=args.scene,
        )
        scene, source = info.scene, info.object
        dataset = capture.export_dataset(scene, out / "dataset", holdout_every=args.holdout_every, overwrite=True)
        held_out = sorted(info.cameras, key=lambda camera: camera.name)[:: args.holdout_every]
        truths = [_render(scene, camera, out / "truth" / f"{camera.name}.png") for camera in held_out]
    render_seconds = time.perf_counter() - started
    object_pixels = float(np.mean([(truth[..., 3] > 0.5).sum() for truth in truths]))
    print(f"scene {args.scene} rendered and exported in {render_seconds:.0f} s (load {_load()})", flush=True)

    trainer = Trainer.create(
        dataset, out / "run", TrainConfig(method=args.field, steps=steps, minutes=args.minutes, eval_views=0)
    )
    train_seconds = _train(trainer)
    loads["after field"] = _load()
    print(f"{args.field}: {trainer.step} steps in {train_seconds:.0f} s (load {_load()})", flush=True)

    full = extract_mesh_from_trainer(trainer, ExtractSettings(resolution=args.resolution))
    target_faces = max(1, int(args.fraction * full.face_count))
    percent = f"{100 * args.fraction:g}%"
    largest = max(args.sizes)
    # (name, kind, texture size, target faces, run): kind groups the rows the targets compare
    variants: list[tuple[str, str, int, int, object]] = [
        ("vertex colours", "vertex", 0, 0, trainer),
        (f"vertex colours, {percent} faces", "vertex", 0, target_faces, trainer),
    ]
    baked_sizes = args.baked_sizes or args.sizes
    if "baked" in args.kinds:
        variants += [(f"baked {size}", "baked", size, 0, trainer) for size in baked_sizes]
        variants.append(
            (f"baked {max(baked_sizes)}, {percent} faces", "baked", max(baked_sizes), target_faces, trainer)
        )
    if "from views" in args.kinds:
        # Extract > Texture with Colours From: Training Images: the images' colours where they see a texel
        variants += [(f"from views {size}", "from views", size, 0, trainer) for size in args.sizes]
        variants.append((f"from views {largest}, {percent} faces", "from views", largest, target_faces, trainer))
    texture_field_seconds = 0.0
    texture_field_steps = 0
    if args.texture_field_minutes and "texture field" in args.kinds:
        from engine.mesh.io import write_mesh

        given = write_mesh(full.mesh, out / "given.ply", overwrite=True)
        texture_field = Trainer.create(
            dataset,
            out / "run-texture-field",
            TrainConfig(
                method="texture_field",
                steps=steps,
                minutes=args.texture_field_minutes,
                eval_views=0,
                settings={"mesh": str(given)},
            ),
        )
        texture_field_seconds = _train(texture_field)
        texture_field_steps = texture_field.step
        loads["after texture field"] = _load()
        print(f"texture_field: {texture_field_steps} steps in {texture_field_seconds:.0f} s (load {_load()})")
        variants += [(f"texture field {size}", "texture field", size, 0, texture_field) for size in args.sizes]
        variants.append(
            (f"texture field {largest}, {percent} faces", "texture field", largest, target_faces, texture_field)
        )
    if source is not None:
        source.hide_render = True
    rows = []

    def scores_of(obj: object, slug: str) -> tuple[float, float]:
        scores = [
            _masked_scores(_render(scene, camera, out / "renders" / slug / f"{camera.name}.png"), truth)
            for camera, truth in zip(held_out, truths, strict=True)
        ]
        return float(np.mean([score[0] for score in scores])), float(np.mean([score[1] for score in scores]))

    for name, kind, size, faces, source_run in variants:
        settings = ExtractSettings(
            resolution=args.resolution,
            texture_size=size,
            cleanup=CleanupConfig(target_faces=faces),
            colour_from=ColourSource.VIEWS if kind == "from views" else ColourSource.FIELD,
        )
        result = full if (size, faces) == (0, 0) else extract_mesh_from_trainer(source_run, settings)  # type: ignore[arg-type]
        slug = name.replace(" ", "_").replace(",", "").replace("%", "pc")
        written = write_result(result, out / "meshes" / f"{slug}.ply", overwrite=True)
        obj = importers.import_mesh_file(scene, written.path)
        _emission_material(obj)
        psnr, ssim = scores_of(obj, slug)
        row = {"variant": name, "kind": kind, "size": size, "decimated": bool(faces), "faces": result.face_count}
        rows.append(
            row
            | {
                "psnr": psnr,
                "ssim": ssim,
                "bake_seconds": None if result.texture is None else result.texture.total_seconds,
                "extract_seconds": result.total_seconds,
            }
        )
        print(f"  {name}: {psnr:.2f} dB (load {_load()})", flush=True)
        if kind == "vertex" and source is not None:
            # What the geometry alone costs: the object's own material (object coordinates, lit as the truth
            # was) on the extracted mesh, the true texture wherever the mesh lies.
            obj.data.materials[0] = source.data.materials[0]  # type: ignore[attr-defined]
            psnr, ssim = scores_of(obj, f"{slug}_source_material")
            name = f"source material{name.removeprefix('vertex colours')}"
            rows.append(row | {"variant": name, "kind": "source material", "psnr": psnr, "ssim": ssim})
            rows[-1] |= {"bake_seconds": None, "extract_seconds": 0.0}
            print(f"  {name}: {psnr:.2f} dB", flush=True)
        importers.remove_objects([obj])
    loads["end"] = _load()

    print(
        f"\nscene {args.scene}: {args.field}, {trainer.step} steps ({train_seconds:.0f} s), "
        f"{len(truths)} held-out views at {args.image_size}px ({object_pixels:.0f} object pixels each); "
        f"lattice {args.resolution}; scene render + export {render_seconds:.0f} s; "
        f"{platform.processor() or platform.machine()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"
        + (
            f"; texture field {texture_field_steps} steps ({texture_field_seconds:.0f} s)"
            if args.texture_field_minutes
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
    targets = target_gaps(rows)
    for line in targets["lines"]:
        print(line)
    print("load average (1/5/15 min): " + "; ".join(f"{stage} {value}" for stage, value in loads.items()))
    (out / "bench_texture.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "targets": targets["gaps"],
                "train_seconds": train_seconds,
                "steps": trainer.step,
                "texture_field_seconds": texture_field_seconds,
                "texture_field_steps": texture_field_steps,
                "object_pixels": object_pixels,
                "load_average": loads,
                "args": vars(args),
            },
            default=str,
            indent=2,
        )
    )
    print(f"written to {out}")
    return 0


def target_gaps(rows: list[dict]) -> dict:
    """The issue's targets for each textured kind at the size it was decimated with: decimated within 0.5 dB
    of full faces, and 3 dB above vertex colours at the same decimation."""

    def find(kind: str, decimated: bool, texture_size: int) -> dict | None:
        return next(
            (row for row in rows if (row["kind"], row["decimated"], row["size"]) == (kind, decimated, texture_size)),
            None,
        )

    vertex = find("vertex", True, 0)
    gaps, lines = {}, []
    for kind in ("baked", "from views", "texture field"):
        size = next((row["size"] for row in rows if row["kind"] == kind and row["decimated"]), 0)
        decimated, whole = find(kind, True, size), find(kind, False, size)
        if decimated is None or whole is None or vertex is None:
            continue
        loss, gain = whole["psnr"] - decimated["psnr"], decimated["psnr"] - vertex["psnr"]
        gaps[kind] = {"size": size, "decimation_loss_db": loss, "gain_over_vertex_db": gain}
        lines.append(
            f"{kind} {size}: decimation costs {loss:.2f} dB (target <= 0.5: {'met' if loss <= 0.5 else 'missed'}); "
            f"{gain:+.2f} dB over vertex colours at the same faces (target >= 3: {'met' if gain >= 3 else 'missed'})"
        )
    return {"gaps": gaps, "lines": lines}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
