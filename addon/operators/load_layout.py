"""FIELDWORK_OT_load_layout: a layout JSON file (engine/layouts.py) into the "Fieldwork Layout" collection."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from .. import camera_math, layouts
from ..engine import layouts as layout_format


class FIELDWORK_OT_load_layout(bpy.types.Operator):
    """Replace the generated layout with one from a layout JSON file (each object gets its box as proxy)"""

    bl_idname = "fieldwork.load_layout"
    bl_label = "Load Layout"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        assert scene is not None
        settings = scene.fieldwork.layouts  # type: ignore[attr-defined]
        path = Path(bpy.path.abspath(self.filepath or settings.layout_file))
        state = layouts.state_for(scene)
        try:
            layouts.load_layout(scene, path, facts=state.facts or None, run_dir=state.opened)
        except (layouts.LayoutError, layout_format.LayoutError, camera_math.CameraError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Loaded {len(layouts.layout_objects(scene))} objects from {path}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_load_layout,)
