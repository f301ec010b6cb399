"""FIELDWORK_OT_resample_codes: new shape or appearance code for the active layout object."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty

from .. import layouts


class FIELDWORK_OT_resample_codes(bpy.types.Operator):
    """Draw a new shape or appearance code for the active layout object (or the backdrop's background)"""

    bl_idname = "fieldwork.resample_codes"
    bl_label = "Resample"
    bl_options = {"REGISTER", "UNDO"}

    which: EnumProperty(  # type: ignore[valid-type]
        name="Code",
        items=[("shape", "Shape", "The object's shape code"), ("appearance", "Appearance", "Its appearance code")],
        default="shape",
    )
    seed: IntProperty(name="Seed", default=-1, min=-1)  # type: ignore[valid-type]  # -1: a random one

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        return obj is not None and str(obj.get(layouts.ROLE_KEY, "")) in ("object", "backdrop")

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object
        assert obj is not None and context.scene is not None
        try:
            seed = layouts.resample(obj, self.which, self.seed if self.seed >= 0 else None)
        except layouts.LayoutError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        obj.update_tag()  # a custom property is no depsgraph change by itself: the live render must see it
        self.report({"INFO"}, f"{obj.name}: new {self.which} code (seed {seed})")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_resample_codes,)
