"""Write tiny .blend files for the end-to-end tests, in a fresh Blender (bpy module).

    python make_tiny_blends.py FOLDER NAME[:broken] ...

NAME: a textured object and a ring of 8 cameras, 32 px, 2 Cycles samples.
NAME:broken: the same scene with every camera deleted (reconstruction must fail on it).
Prints ``FIELDWORK_REPORT {"NAME": {"object": ..., "cameras": n}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bpy

from scripts.scenes import build_object_scene


def main(folder: Path, specs: list[str]) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for spec in specs:
        name, _, kind = spec.partition(":")
        info = build_object_scene(camera_count=8, resolution=32, layout="ring", samples=2)
        if kind == "broken":
            for camera in info.cameras:
                bpy.data.objects.remove(camera)
        bpy.ops.wm.save_as_mainfile(filepath=str(folder / f"{name}.blend"))
        made[name] = {"object": info.object_name, "cameras": sum(o.type == "CAMERA" for o in bpy.data.objects)}
    return made


if __name__ == "__main__":
    print("FIELDWORK_REPORT " + json.dumps(main(Path(sys.argv[1]), sys.argv[2:])))
