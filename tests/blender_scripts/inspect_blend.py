"""Open a .blend in a fresh Blender and describe what matters to the end-to-end tests.

    python inspect_blend.py FILE.blend

Prints ``FIELDWORK_REPORT {"objects": {name: {"type", "collections", "faces", "color_attributes"}},
"collections": [...], "resolution": [x, y, percentage]}``.
"""

from __future__ import annotations

import json
import sys

import bpy


def main(path: str) -> dict:
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    objects = {}
    for obj in bpy.data.objects:
        objects[obj.name] = {
            "type": obj.type,
            "collections": [collection.name for collection in obj.users_collection],
            "faces": len(obj.data.polygons) if obj.type == "MESH" else 0,
            "color_attributes": [a.name for a in obj.data.color_attributes] if obj.type == "MESH" else [],
        }
    render = bpy.context.scene.render
    return {
        "objects": objects,
        "collections": [collection.name for collection in bpy.data.collections],
        "resolution": [render.resolution_x, render.resolution_y, render.resolution_percentage],
    }


if __name__ == "__main__":
    print("FIELDWORK_REPORT " + json.dumps(main(sys.argv[1])))
