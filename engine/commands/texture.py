"""``python -m engine texture RUN --mesh NEW.ply --image VIEW.png --size 1024 --out OUT.glb``: the texture of a
new shape from one image of it, by a trained conditional texture field, baked into a UV texture.

The mesh (PLY or OBJ, world units) is encoded with the run's shape encoder and the image (PNG or JPEG, RGBA
with the object's alpha, or RGB of the object filling the frame) with its image encoder; t(p) is baked at every
texel of an xatlas UV atlas (engine/mesh/bake.py). The output keeps the mesh where it stands; its texture is a
PNG beside it (OBJ also gets an MTL, GLB embeds it), as ``extract --texture`` writes. With ``--json`` the last
line of stdout is the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import EXIT_BAD_INPUT

HELP = "bake the texture a trained conditional texture field predicts for a new mesh from one image of it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a conditional_texture_field run folder")
    parser.add_argument("--mesh", type=Path, required=True, help="the shape to texture: .ply or .obj, world units")
    parser.add_argument("--image", type=Path, required=True, help="one view of the object: PNG/JPEG (RGBA best)")
    parser.add_argument("--out", type=Path, required=True, help="textured mesh file, .ply/.obj/.glb")
    parser.add_argument("--size", type=int, default=1024, help="texture side in texels (power of two, 256-8192)")
    parser.add_argument(
        "--progress", action="store_true", help="print 'PROGRESS <fraction> <stage>' lines on stdout (the add-on)"
    )
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--overwrite", action="store_true", help="replace --out (and its texture) if they exist")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..atomic import check_writable_file
    from ..data.textured_source import (
        ShapeFrame,
        check_textured_mesh,
        condition_tensor,
        encoder_points,
        read_rgba,
    )
    from ..fields.conditional_texture_field import ConditionalTextureFieldModel, texture_colour_function
    from ..mesh.bake import BakeSettings, bake_texture, check_texture_size, texture_path_for
    from ..mesh.io import SUFFIXES, MeshFileError, read_mesh, write_mesh, write_png
    from ..train.run_folder import check_readable_run
    from ..train.trainer import Trainer

    def report(stage: str, fraction: float) -> None:
        if args.progress:
            print(f"PROGRESS {fraction:.3f} {stage}", flush=True)

    started = time.perf_counter()
    run_dir: Path = args.run_dir.expanduser()
    mesh_path: Path = args.mesh.expanduser()
    image_path: Path = args.image.expanduser()
    out: Path = args.out.expanduser()
    try:
        check_texture_size(args.size)
        if out.suffix.lower() not in SUFFIXES:
            raise ValueError(f"--out {out}: the suffix must be one of {', '.join(SUFFIXES)}")
        companions = [out, texture_path_for(out)] + ([out.with_suffix(".mtl")] if out.suffix.lower() == ".obj" else [])
        for path in companions if not args.overwrite else []:
            if path.exists():
                raise ValueError(f"{path} already exists; pass --overwrite to replace it or choose another --out")
        check_writable_file(out)
        if not mesh_path.is_file():
            raise ValueError(f"--mesh {mesh_path}: no such file")
        try:
            mesh = read_mesh(mesh_path)
        except MeshFileError as error:
            raise ValueError(f"--mesh {mesh_path}: {error}") from error
        check_textured_mesh(mesh, f"--mesh {mesh_path}")
        rgba = read_rgba(image_path)
        if not (rgba[..., 3] > 127).any():
            raise ValueError(f"--image {image_path}: the image is fully transparent (no object to take a texture from)")
        check_readable_run(run_dir)
        report("loading the run", 0.0)
        trainer = Trainer.from_run(run_dir, device=args.device)
        model = trainer.model
        if not isinstance(model, ConditionalTextureFieldModel):
            raise ValueError(
                f"{run_dir} is a {trainer.config.method} run; texture needs a conditional_texture_field run"
            )
        frame = ShapeFrame.of_vertices(mesh.vertices, f"--mesh {mesh_path}")
        points = encoder_points(mesh, frame, model.config.encoder_points, seed=0, where=f"--mesh {mesh_path}")
        encoder_input = torch.from_numpy(points).to(trainer.device)
        condition = condition_tensor(torch.from_numpy(rgba), model.image_size).to(trainer.device)
        colour = texture_colour_function(model, frame, encoder_input, condition)
        baked = bake_texture(
            mesh,
            colour,
            BakeSettings(size=args.size),
            progress=lambda stage, fraction: report(f"texture: {stage}", 0.1 + 0.85 * fraction),
        )
        report("writing", 0.95)
        texture_path = write_png(texture_path_for(out), baked.image, overwrite=True)
        path = write_mesh(baked.mesh, out, overwrite=True, texture=texture_path)
    except (ValueError, FileNotFoundError) as error:
        print(f"fieldwork texture: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"fieldwork texture: error: cannot write {out}: {error.strerror or error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report("done", 1.0)
    covered = baked.image[baked.coverage]
    summary = {
        "path": str(path),
        "texture_path": str(texture_path),
        "texture_size": args.size,
        "vertex_count": baked.mesh.n_vertices,
        "face_count": baked.mesh.n_faces,
        "mean_colour_srgb": [
            round(float(v), 4) for v in (covered.mean(axis=0) / 255.0 if len(covered) else np.zeros(3))
        ],
        "bake_seconds": round(baked.total_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"wrote {path}: {summary['vertex_count']} vertices, {summary['face_count']} faces, texture "
            f"{texture_path} ({args.size}^2, baked in {baked.total_seconds:.1f} s)"
        )
    return 0
