"""FIELDWORK_OT_export_shapes: the selected objects (or a collection) become a shape dataset."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from .. import shapes
from ..engine.data.shapes import SHAPES_NAME, ShapeError
from ..paths import BlendRelativePathError, absolute_path, output_folder
from ..properties import BLEND_RELATIVE

SHAPES_FOLDER = "shapes"  # <Output Folder>/shapes: where Export Shapes writes by default


def shapes_folder(context: bpy.types.Context, directory: str) -> Path:
    """Where the shape dataset goes: ``directory``, else ``<Output Folder>/shapes``; '//' is the .blend's folder."""
    if directory:
        return absolute_path(directory, "Shapes folder")
    if context.scene is None:
        raise ShapeError("No scene to export")
    return output_folder(context.scene) / SHAPES_FOLDER


class FIELDWORK_OT_export_shapes(bpy.types.Operator):
    """Write the selected objects' evaluated world-space geometry (or a collection's objects) as a shape dataset"""

    bl_idname = "fieldwork.export_shapes"
    bl_label = "Export Shapes"
    bl_options = {"REGISTER"}  # reads the scene and writes files only: nothing to undo

    directory: StringProperty(  # type: ignore[valid-type]
        name="Folder",
        description="Shape dataset folder to write (empty: <Output Folder>/shapes)",
        subtype="DIR_PATH",
        options={"SKIP_SAVE"} | BLEND_RELATIVE,
    )
    collection: StringProperty(  # type: ignore[valid-type]
        name="Collection",
        description="Export every object in this collection instead of the selection (a shape collection)",
        options={"SKIP_SAVE"},
    )
    overwrite: BoolProperty(  # type: ignore[valid-type]
        name="Replace Existing",
        description="Replace a shape dataset already in the folder",
        default=False,
        options={"SKIP_SAVE"},
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        try:
            target = shapes_folder(context, self.directory)
        except (ShapeError, BlendRelativePathError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if (target / SHAPES_NAME).is_file() and not self.overwrite:
            self.overwrite = True
            return set(
                context.window_manager.invoke_confirm(
                    self, event, title="Replace Shapes", message=f"Replace the shape dataset in {target}?"
                )
            )
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            target = shapes_folder(context, self.directory)
            collection = None
            if self.collection:
                collection = bpy.data.collections.get(self.collection)
                if collection is None:
                    raise ShapeError(f"no collection named {self.collection!r}")
            path, notes = shapes.export_shapes(
                target, collection=collection, view_layer=context.view_layer, overwrite=self.overwrite
            )
        except (ShapeError, BlendRelativePathError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for note in notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"Shapes written: {path}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_export_shapes,)
