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


class VIEW3D_PT_fieldwork_extract(bpy.types.Panel):
    bl_label = "Extract"
    bl_idname = "VIEW3D_PT_fieldwork_extract"
    bl_parent_id = "VIEW3D_PT_fieldwork"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.fieldwork  # type: ignore[attr-defined]
        layout.prop(settings, "mesh_run_dir")
        layout.prop(settings, "mesh_resolution")
        layout.prop(settings, "mesh_replace_previous")
        extract = layout.operator("fieldwork.extract_mesh", icon="MESH_MONKEY")
        extract.run_dir = settings.mesh_run_dir
        extract.resolution = settings.mesh_resolution
        extract.replace_previous = settings.mesh_replace_previous
        layout.operator("fieldwork.import_mesh", icon="IMPORT")


_CLASSES = (VIEW3D_PT_fieldwork, VIEW3D_PT_fieldwork_extract)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
