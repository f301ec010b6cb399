"""FIELDWORK_OT_import_dataset: a transforms.json dataset becomes Blender cameras with background images."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from .. import capture
from ..engine.data.transforms import TransformsError


class FIELDWORK_OT_import_dataset(bpy.types.Operator):
    """Add one camera per image of a NeRF/nerfstudio/instant-ngp dataset, showing the image as its background"""

    bl_idname = "fieldwork.import_dataset"
    bl_label = "Import Dataset"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(  # type: ignore[valid-type]
        name="transforms.json", description="The dataset's transforms.json", subtype="FILE_PATH"
    )
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})  # type: ignore[valid-type]
    set_render_resolution: BoolProperty(  # type: ignore[valid-type]
        name="Set Render Resolution",
        description="Set the scene's render resolution and pixel aspect to the dataset's first image "
        "(cameras that differ keep their own)",
        default=True,
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self.filepath:
            self.report({"ERROR"}, "Pick a transforms.json (or a dataset folder)")
            return {"CANCELLED"}
        try:
            cameras = capture.import_dataset(
                context.scene,  # type: ignore[arg-type]  # always set inside an operator
                Path(bpy.path.abspath(self.filepath)),
                set_render_resolution=self.set_render_resolution,
            )
        except (capture.CaptureError, TransformsError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        collection = cameras[0].users_collection[0]
        box = next((obj for obj in collection.objects if obj.type == "EMPTY"), None)
        if box is not None:  # the dataset's scene box is what an export of these cameras should keep
            context.scene.fieldwork.capture.scene_box_object = box  # type: ignore[attr-defined]
        self.report({"INFO"}, f"Imported {len(cameras)} cameras into {collection.name!r}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_import_dataset,)
