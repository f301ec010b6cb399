"""FIELDWORK_OT_copy_layout_codes: the active layout object's codes onto the other selected ones."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty

from .. import layouts


class FIELDWORK_OT_copy_layout_codes(bpy.types.Operator):
    """Copy the active layout object's shape and/or appearance code to the other selected layout objects"""

    bl_idname = "fieldwork.copy_layout_codes"
    bl_label = "Copy Codes to Selected"
    bl_options = {"REGISTER", "UNDO"}

    which: EnumProperty(  # type: ignore[valid-type]
        name="Codes",
        items=[
            ("both", "Both", "Shape and appearance"),
            ("shape", "Shape", "The shape code only"),
            ("appearance", "Appearance", "The appearance code only"),
        ],
        default="both",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        return obj is not None and obj.get(layouts.ROLE_KEY) == "object"

    def execute(self, context: bpy.types.Context) -> set[str]:
        source = context.active_object
        assert source is not None
        targets = [obj for obj in context.selected_objects if obj != source]
        copied = layouts.copy_codes(source, targets, self.which)
        if not copied:
            self.report({"WARNING"}, "select other layout objects as well: the codes go from the active one to them")
            return {"CANCELLED"}
        for target in targets:
            target.update_tag()
        self.report({"INFO"}, f"Copied {self.which} codes of {source.name} to {copied} objects")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_copy_layout_codes,)
