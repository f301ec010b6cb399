"""FIELDWORK_OT_save_layout: the scene's layout as the engine's layout JSON (engine/layouts.py)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from .. import camera_math, layouts
from ..engine import layouts as layout_format


class FIELDWORK_OT_save_layout(bpy.types.Operator):
    """Write the layout as it is now (poses, codes, background, camera) as a layout JSON file"""

    bl_idname = "fieldwork.save_layout"
    bl_label = "Save Layout"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and layouts.layout_collection(context.scene) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        assert scene is not None
        path = Path(bpy.path.abspath(self.filepath or scene.fieldwork.layouts.layout_file))  # type: ignore[attr-defined]
        try:
            written = layouts.save_layout(scene, path)
        except (layouts.LayoutError, layout_format.LayoutError, camera_math.CameraError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved the layout to {written}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_save_layout,)
