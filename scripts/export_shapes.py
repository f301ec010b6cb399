"""Export Blender objects as a shape dataset (shapes.json + one .npz per object), without the UI.

In Blender:      blender -b scene.blend --python-exit-code 1 --python scripts/export_shapes.py -- --out DIR
With bpy module: python scripts/export_shapes.py -- --blend scene.blend --out DIR

Options after ``--``: --objects NAME... | --collection NAME (default: the selected objects),
--overwrite, --scene NAME. Geometry is evaluated (modifiers applied) and in world space. Prints the
shapes.json path; exits 1 with a message naming the object or folder on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The add-on's modules are imported from this checkout as the package "addon"; its relative
# imports of the engine go through the addon/engine link, so its errors are addon.engine.* classes.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402

from addon import shapes  # noqa: E402
from addon.engine.data.shapes import ShapeError  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="export_shapes.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="shape dataset folder to write")
    parser.add_argument("--blend", type=Path, help="open this .blend first (needed with the bpy module)")
    parser.add_argument("--scene", help="scene name (default: the file's active scene)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--objects", nargs="+", metavar="NAME", help="objects to export, one shape each")
    which.add_argument(
        "--collection", help="export every object in this collection (a shape collection; 'Scene Collection': all)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a shape dataset already in --out")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    if args.blend is not None:
        if not args.blend.is_file():
            print(f"error: {args.blend}: no such .blend file", file=sys.stderr)
            return 1
        bpy.ops.wm.open_mainfile(filepath=str(args.blend))
    scene = bpy.data.scenes.get(args.scene) if args.scene else bpy.context.scene
    if scene is None:
        print(f"error: no scene named {args.scene!r}", file=sys.stderr)
        return 1
    try:
        objects = collection = None
        if args.objects:
            missing = [name for name in args.objects if bpy.data.objects.get(name) is None]
            if missing:
                raise ShapeError(f"no object named {', '.join(repr(name) for name in missing)} for --objects")
            objects = [bpy.data.objects[name] for name in args.objects]
        elif args.collection:
            collection = bpy.data.collections.get(args.collection)
            if collection is None and args.collection == scene.collection.name:
                collection = scene.collection  # "Scene Collection" is no bpy.data collection
            if collection is None:
                raise ShapeError(f"no collection named {args.collection!r}")
        path, notes = shapes.export_shapes(
            args.out.resolve(),
            objects=objects,
            collection=collection,
            view_layer=scene.view_layers[0] if args.scene else bpy.context.view_layer,
            overwrite=args.overwrite,
        )
    except ShapeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]))
