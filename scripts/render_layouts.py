"""Render a batch of generated layouts of a GIRAFFE run through the Fieldwork add-on, headless.

    blender -b scene.blend --python scripts/render_layouts.py -- RUN --samples 100 --out DIR
    python scripts/render_layouts.py -- RUN --samples 100 --out DIR          # Blender as a module (bpy)

For seeds FIRST .. FIRST + SAMPLES - 1 it runs what the Layouts panel runs (Generate Layout, which renders in
background mode, then Save Layout) and writes ``DIR/image_SEED.png`` (colour, from the layout's camera),
``DIR/alpha_SEED.png`` (each object's alpha in its own colour) and ``DIR/layout_SEED.json`` (the engine's
layout format), then ``DIR/summary.json`` and a printed summary: layouts, objects, seconds per layout,
layouts with warnings (outside the prior). Only the "Fieldwork Layout" collection of the open file changes.

The Fieldwork extension must be enabled in that Blender, or given with ``--extension ZIP`` (installed into
the user repository). The engine interpreter is the add-on's preference, ``--engine-python``, or
``$FIELDWORK_ENGINE_PYTHON``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="render_layouts.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a trained GIRAFFE run folder")
    parser.add_argument("--samples", type=int, default=100, help="layouts to render (default 100)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--objects", type=int, default=-1, help="objects per layout (-1: drawn from the prior)")
    parser.add_argument("--size", type=int, default=64, help="longest image side in pixels (default 64)")
    parser.add_argument("--proxy-resolution", type=int, default=0, help="proxy meshes' cells a side (0: boxes)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine-python", default="", help="interpreter with torch that runs the engine")
    parser.add_argument("--extension", type=Path, help="the Fieldwork extension zip, installed when not enabled")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    return args


def script_arguments() -> list[str]:
    """What follows ``--`` (blender -b ... --python this -- ARGS, or python this -- ARGS)."""
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


def enable_addon(extension: Path | None) -> str:
    """The module name of the enabled Fieldwork add-on, installing ``extension`` first when it is not."""
    import bpy

    addon_utils = importlib.import_module("addon_utils")
    for name in bpy.context.preferences.addons.keys():  # noqa: SIM118 - a bpy collection iterates its items
        if name == "fieldwork" or name.endswith(".fieldwork"):
            return name
    module_name = "bl_ext.user_default.fieldwork"
    if extension is not None:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(extension.resolve()), repo="user_default", enable_on_install=False
        )
        if result != {"FINISHED"}:
            raise SystemExit(f"could not install {extension}: {result}")
    try:
        addon_utils.enable(module_name, default_set=True, handle_error=_raise)
    except Exception as error:  # any failure to enable is reported the same way
        raise SystemExit(
            f"the Fieldwork extension is not installed in this Blender ({error}); pass --extension ZIP "
            "(python scripts/build_extension.py builds one)"
        ) from error
    return module_name


def _raise(error: BaseException) -> None:
    raise error


def main() -> int:
    args = parse(script_arguments())
    import bpy

    module_name = enable_addon(args.extension)
    if args.engine_python:
        bpy.context.preferences.addons[module_name].preferences.engine_python = args.engine_python
    layouts = importlib.import_module(f"{module_name}.layouts")
    client = importlib.import_module(f"{module_name}.client")
    scene = bpy.context.scene
    settings = scene.fieldwork.layouts
    settings.run_dir = str(args.run.resolve())
    settings.preview_size = args.size
    settings.proxy_resolution = args.proxy_resolution
    settings.live = False  # each layout is rendered once, by Generate
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    started = time.perf_counter()
    try:
        for seed in range(args.first_seed, args.first_seed + args.samples):
            began = time.perf_counter()
            result = bpy.ops.fieldwork.generate_layout(seed=seed, object_count=args.objects)
            if result != {"FINISHED"}:
                raise SystemExit(f"seed {seed}: Generate Layout returned {result}")
            rendered = layouts.state_for(scene).last
            layouts.write_png(args.out / f"image_{seed:06d}.png", rendered.colour)
            layouts.write_png(args.out / f"alpha_{seed:06d}.png", layouts.alpha_composite(rendered.alphas)[..., :3])
            layouts.save_layout(scene, args.out / f"layout_{seed:06d}.json")
            warnings = list(layouts.state_for(scene).warnings)
            records.append(
                {
                    "seed": seed,
                    "objects": len(rendered.names),
                    "seconds": time.perf_counter() - began,
                    "render_seconds": rendered.seconds,
                    "warnings": warnings,
                }
            )
    finally:
        client.close_all()
    total = time.perf_counter() - started
    summary = {
        "run": str(args.run.resolve()),
        "layouts": len(records),
        "objects": sum(r["objects"] for r in records),
        "seconds": total,
        "seconds_per_layout": total / len(records),
        "size": args.size,
        "with_warnings": sum(bool(r["warnings"]) for r in records),
        "records": records,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"{summary['layouts']} layouts ({summary['objects']} objects) of {args.run} in {total:.1f} s, "
        f"{summary['seconds_per_layout']:.2f} s a layout at {args.size} px; {summary['with_warnings']} with "
        f"warnings; written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
