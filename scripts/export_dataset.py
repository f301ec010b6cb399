"""Export a Blender scene's cameras and images as a transforms.json dataset, without the UI.

In Blender:      blender -b scene.blend --python-exit-code 1 --python scripts/export_dataset.py -- --out DIR
With bpy module: python scripts/export_dataset.py -- --blend scene.blend --out DIR

Options after ``--``: --cameras NAME... | --collection NAME (default: every perspective camera in the
view layer), --image-source render|background|folder, --image-folder DIR, --scene-box OBJECT,
--holdout N, --split-files, --overwrite, --scene NAME. Prints the transforms.json path; exits 1 with
a message naming the camera or file on bad input.
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

from addon import capture  # noqa: E402
from addon.camera_math import CameraError  # noqa: E402
from addon.engine.atomic import WriteCheckError, check_writable_folder  # noqa: E402
from addon.engine.data.transforms import TransformsError  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="export_dataset.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--blend", type=Path, help="open this .blend first (needed with the bpy module)")
    parser.add_argument("--scene", help="scene name (default: the file's active scene)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--cameras", nargs="+", metavar="NAME", help="camera objects to export")
    which.add_argument("--collection", help="export the cameras in this collection")
    parser.add_argument("--image-source", choices=capture.IMAGE_SOURCES, default="render")
    parser.add_argument("--image-folder", type=Path, help="with --image-source folder: <camera name>.png etc.")
    parser.add_argument("--scene-box", metavar="OBJECT", help="object whose bounds are the scene box")
    parser.add_argument("--holdout", type=int, default=0, metavar="N", help="hold out every N-th frame as test")
    parser.add_argument("--split-files", action="store_true", help="also write transforms_{train,val,test}.json")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    return parser.parse_args(argv)


def _object(name: str, what: str) -> bpy.types.Object:
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise capture.CaptureError(f"no object named {name!r} for {what}")
    return obj


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
    out_dir = args.out.resolve()
    try:
        # The dataset is built beside --out and renamed into place: that folder must take new files,
        # which is known now rather than after every view has rendered.
        check_writable_folder(out_dir.parent)
        cameras = None
        if args.cameras:
            cameras = [_object(name, "--cameras") for name in args.cameras]
        elif args.collection:
            collection = bpy.data.collections.get(args.collection)
            if collection is None:
                raise capture.CaptureError(f"no collection named {args.collection!r}")
            cameras = sorted((obj for obj in collection.all_objects if obj.type == "CAMERA"), key=lambda o: o.name)
        path = capture.export_dataset(
            scene,
            out_dir,
            cameras=cameras,
            image_source=args.image_source,
            image_folder=args.image_folder,
            scene_box_object=_object(args.scene_box, "--scene-box") if args.scene_box else None,
            holdout_every=args.holdout,
            progress=lambda done, total: print(f"frames {done}/{total}", flush=True),
            split_files=args.split_files,
            overwrite=args.overwrite,
            view_layer=scene.view_layers[0] if args.scene else None,
        )
    except (capture.CaptureError, CameraError, TransformsError, WriteCheckError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the disk filled or permissions changed while exporting
        print(f"error: cannot write {error.filename or out_dir}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]))
