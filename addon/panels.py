"""The "Fieldwork" tab in the 3D viewport's sidebar (N panel)."""

from __future__ import annotations

import bpy


class VIEW3D_PT_fieldwork(bpy.types.Panel):
    bl_label = "Fieldwork"
    bl_idname = "VIEW3D_PT_fieldwork"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.fieldwork  # type: ignore[attr-defined]
        layout.prop(settings, "field")
        col = layout.column(align=True)
        col.prop(settings, "steps")
        col.prop(settings, "minutes")
        layout.prop(settings, "output_dir")
        layout.operator("fieldwork.check_engine", icon="CHECKMARK")


_CLASSES = (VIEW3D_PT_fieldwork,)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
