"""``python -m engine extract RUN_DIR --resolution 256 --out mesh.ply``: a trained field to a mesh file.

The add-on's "Extract Mesh" runs this as a child process, so a mesh can be made from any run
folder without a live session. With ``--json`` the last line of stdout is the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..atomic import check_writable_file
from . import EXIT_BAD_INPUT

HELP = "extract a coloured mesh (PLY, OBJ or GLB, world units) from a trained run with MISE and marching cubes"

# Exit statuses the add-on tells apart: bad input (EXIT_BAD_INPUT) vs a field with no surface at the level.
EXIT_EMPTY_SURFACE = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run folder (with its checkpoint)")
    parser.add_argument("--out", type=Path, help="mesh file, .ply/.obj/.glb (default: RUN_DIR/mesh-RESOLUTION.ply)")
    parser.add_argument("--resolution", type=int, default=256, help="finest cells along the box's longest side")
    parser.add_argument("--method", choices=("mise", "dense"), default="mise", help="MISE (default) or every point")
    parser.add_argument("--initial-resolution", type=int, default=0, help="MISE's first lattice (0: automatic)")
    parser.add_argument("--level", type=float, help="density threshold per world unit (default: from the box size)")
    parser.add_argument("--no-colour", action="store_true", help="skip vertex colours")
    parser.add_argument(
        "--colour-from",
        choices=("auto", "field", "views"),
        default="auto",
        help="colours (vertex colours or --texture texels) from the field along each normal, or from the "
        "training images that see each point (the field where none does); auto (default): the images for a "
        "texture, the field for vertex colours",
    )
    parser.add_argument(
        "--keep-unseen",
        action="store_true",
        help="leave the space behind surfaces, which no training camera sees, as the field has it (by default it "
        "is made solid: a trained field is hollow there, and the hollow's wall would be a second surface inside)",
    )
    parser.add_argument("--keep-largest", type=int, default=0, help="keep the N largest components (0: all)")
    parser.add_argument(
        "--min-component-size", type=float, default=0.0, help="drop parts smaller than this fraction of the box"
    )
    parser.add_argument(
        "--target-faces", type=int, default=0, help="quadric decimation to at most this many faces (0: off)"
    )
    parser.add_argument(
        "--texture",
        type=int,
        default=0,
        metavar="SIZE",
        help="bake a SIZE x SIZE UV texture (power of two, 256-8192) instead of vertex colours, after decimation; "
        "written as a PNG beside --out, which names it (OBJ also gets an MTL, GLB embeds it)",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="print 'PROGRESS <fraction> <stage>' lines on stdout as extraction goes (the add-on reads them)",
    )
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    shapes = parser.add_argument_group("shape runs (igr, onet, deepsdf)")
    shapes.add_argument("--shape", metavar="NAME", help="the run's shape to mesh (default: its first)")
    shapes.add_argument(
        "--sample", type=int, metavar="SEED", help="a new shape from the prior (variational onet, deepsdf)"
    )
    shapes.add_argument("--blend", nargs=2, metavar=("A", "B"), help="the shape between two shapes' codes, at --t")
    shapes.add_argument("--t", type=float, default=0.5, help="where between --blend A (0) and B (1)")
    shapes.add_argument(
        "--complete", type=Path, metavar="SHAPES_DIR", help="fit a code to a (partial) shape of this dataset (deepsdf)"
    )


def run(args: argparse.Namespace) -> int:
    from ..mesh.bake import check_texture_size, texture_path_for
    from ..mesh.cleanup import CleanupConfig
    from ..mesh.extract import ColourSource, ExtractSettings, SamplingMethod, extract_mesh_from_trainer, write_result
    from ..mesh.io import SUFFIXES
    from ..mesh.surface import EmptySurfaceError
    from ..train.run_folder import check_readable_run

    run_dir: Path = args.run_dir.expanduser()
    out: Path = (args.out or run_dir / f"mesh-{args.resolution}.ply").expanduser()
    try:
        if args.texture:  # option values first: they need no run to be wrong
            check_texture_size(args.texture)
        check_readable_run(run_dir)
        check_writable_file(out)  # before minutes of extraction, not after
        if out.suffix.lower() not in SUFFIXES:
            raise ValueError(f"--out {out}: the suffix must be one of {', '.join(SUFFIXES)}")
        if out.exists() and not args.overwrite:
            raise ValueError(f"--out {out} already exists; pass --overwrite to replace it or choose another name")
        companions = [texture_path_for(out)] + ([out.with_suffix(".mtl")] if out.suffix.lower() == ".obj" else [])
        for companion in companions if args.texture and not args.overwrite else []:
            if companion.exists():
                raise ValueError(f"{companion} (beside --out) already exists; pass --overwrite or choose another --out")
        settings = ExtractSettings(
            resolution=args.resolution,
            method=SamplingMethod(args.method),
            initial_resolution=args.initial_resolution,
            level=args.level,
            colour=not args.no_colour,
            colour_from=ColourSource(args.colour_from),
            fill_unseen=not args.keep_unseen,
            cleanup=CleanupConfig(
                keep_largest_components=args.keep_largest,
                min_component_size=args.min_component_size,
                target_faces=args.target_faces,
            ),
            texture_size=args.texture,
        )
        from ..train.trainer import Trainer

        trainer = Trainer.from_run(run_dir, device=args.device)
        if trainer.spec.family == "shapes":
            settings = _condition_shape(trainer, args, settings)
        result = extract_mesh_from_trainer(trainer, settings, progress=print_progress if args.progress else None)
    except EmptySurfaceError as exc:
        print(f"fieldwork extract: no surface in {run_dir}: {exc}", file=sys.stderr)
        return EXIT_EMPTY_SURFACE
    except (ValueError, FileNotFoundError) as exc:
        print(f"fieldwork extract: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.progress:
        print_progress("writing", 1.0)
    try:
        result = write_result(result, out, overwrite=args.overwrite)
    except OSError as exc:  # the folder changed after the check (disk full, permissions)
        print(f"fieldwork extract: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = result.summary()
    path = result.path
    if args.json:
        print(json.dumps(summary))
    else:
        sampled = (
            f"{summary['n_queries']} field queries on a {'x'.join(map(str, summary['grid_cells']))} lattice "
            f"({args.method}), level {summary['level']}"
            if summary["grid_cells"]
            else "the texture field's own mesh"
        )
        print(
            f"wrote {path}: {summary['vertex_count']} vertices, {summary['face_count']} faces; "
            f"{sampled}, {summary['total_seconds']:.1f} s"
            + (
                f"; texture {summary['texture_path']} ({args.texture}^2, baked in {summary['bake_seconds']:.1f} s)"
                if summary["texture_path"]
                else ""
            )
        )
    return 0


def print_progress(stage: str, fraction: float) -> None:
    """One ``PROGRESS <fraction> <stage>`` line, flushed so a parent reading the pipe sees it now."""
    print(f"PROGRESS {fraction:.3f} {stage}", flush=True)


def _condition_shape(trainer: Any, args: argparse.Namespace, settings: Any) -> Any:
    """Show the shape the options ask for (engine/fields/shape_model.py); shape fields have no colours."""
    import dataclasses

    from ..fields import shape_model

    chosen = [name for name in ("sample", "blend", "complete") if getattr(args, name) is not None]
    if len(chosen) > 1:
        raise ValueError(f"give one of --sample, --blend, --complete, not {' and '.join('--' + n for n in chosen)}")
    if args.sample is not None:
        condition = shape_model.sample_condition(trainer, args.sample)
    elif args.blend is not None:
        condition = shape_model.blend_condition(trainer, args.blend[0], args.blend[1], args.t)
    elif args.complete is not None:
        condition = shape_model.completion_condition(trainer, args.complete.expanduser(), args.shape)
    else:
        condition = shape_model.shape_condition(trainer, args.shape)
    shape_model.apply_condition(trainer, condition)
    return dataclasses.replace(settings, colour=False)
