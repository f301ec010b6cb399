"""FIELDWORK_OT_import_mesh: a mesh file the engine wrote into the Fieldwork collection."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from .. import importers, properties


def show_attribute_colours(context: bpy.types.Context) -> None:
    """Solid shading of the 3D view the operator ran in: colour by attribute. Only when the user asks."""
    space = context.space_data
    if isinstance(space, bpy.types.SpaceView3D):
        space.shading.color_type = "VERTEX"  # shown as "Attribute" in the Viewport Shading popover


def select_only(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Make the new object the selected, active one; in Edit or other modes selection is left alone."""
    if context.mode != "OBJECT" or context.view_layer is None:
        return
    for other in context.view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


class FIELDWORK_OT_import_mesh(bpy.types.Operator):
    """Import a mesh Fieldwork extracted (PLY, with its baked texture) into the Fieldwork collection, in place"""

    bl_idname = "fieldwork.import_mesh"
    bl_label = "Import Fieldwork Mesh"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File", subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})  # type: ignore[valid-type]
    replace_previous: BoolProperty(  # type: ignore[valid-type]
        name="Replace Previous",
        description="Remove meshes imported earlier from the same file before importing",
        default=False,
    )
    texture_storage: properties.MESH_TEXTURE_STORAGE  # type: ignore[valid-type]
    show_colours: BoolProperty(  # type: ignore[valid-type]
        name="Show Colours in Solid View",
        description="Set this 3D view's Solid shading to colour by attribute",
        default=False,
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self.filepath or context.scene is None:
            self.report({"ERROR"}, "No mesh file given")
            return {"CANCELLED"}
        try:
            obj = importers.import_mesh_file(
                context.scene,
                self.filepath,
                replace_previous=self.replace_previous,
                texture_storage=self.texture_storage,
            )
        except importers.MeshImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        select_only(context, obj)
        if self.show_colours:
            show_attribute_colours(context)
        mesh = obj.data
        self.report({"INFO"}, f"Imported {obj.name}: {len(mesh.vertices)} vertices, {len(mesh.polygons)} faces")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_import_mesh,)
