"""FIELDWORK_OT_export_dataset: the scene's cameras and images become a transforms.json dataset."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from .. import capture
from ..camera_math import CameraError
from ..engine.data.transforms import TransformsError
from ..paths import DATASET_FOLDER, BlendRelativePathError, absolute_path, output_folder
from ..properties import BLEND_RELATIVE


def dataset_folder(context: bpy.types.Context, directory: str) -> Path:
    """Where the dataset goes: ``directory``, else ``<Output Folder>/dataset``; '//' is the .blend's folder."""
    if directory:
        return absolute_path(directory, "Dataset folder")
    if context.scene is None:
        raise capture.CaptureError("No scene to export")
    return output_folder(context.scene) / DATASET_FOLDER


def chosen_cameras(context: bpy.types.Context) -> list[bpy.types.Object] | None:
    """The cameras the Capture settings pick; None means every perspective camera in the view layer."""
    settings = context.scene.fieldwork.capture  # type: ignore[attr-defined]
    if settings.camera_scope == "SELECTED":
        return sorted((obj for obj in context.selected_objects if obj.type == "CAMERA"), key=lambda obj: obj.name)
    if settings.camera_scope == "COLLECTION":
        if settings.camera_collection is None:
            raise capture.CaptureError("pick the camera collection in the Capture panel")
        cameras = (obj for obj in settings.camera_collection.all_objects if obj.type == "CAMERA")
        return sorted(cameras, key=lambda obj: obj.name)
    return None


def export_with_capture_settings(
    context: bpy.types.Context, target: Path, *, overwrite: bool, progress: capture.Progress | None = None
) -> Path:
    """``capture.export_dataset`` with the scene's Capture panel settings; returns the transforms.json path."""
    scene = context.scene
    settings = scene.fieldwork.capture  # type: ignore[union-attr]
    image_folder = Path(bpy.path.abspath(settings.image_folder)) if settings.image_source == "folder" else None
    return capture.export_dataset(
        scene,  # type: ignore[arg-type]  # always set inside an operator
        target,
        cameras=chosen_cameras(context),
        image_source=settings.image_source,
        image_folder=image_folder,
        scene_box_object=settings.scene_box_object,
        holdout_every=settings.holdout_every,
        progress=progress,
        split_files=settings.split_files,
        overwrite=overwrite,
        view_layer=context.view_layer,
    )


class FIELDWORK_OT_export_dataset(bpy.types.Operator):
    """Write the chosen cameras and their images (rendered, background images or photos) as a dataset folder"""

    bl_idname = "fieldwork.export_dataset"
    bl_label = "Export Dataset"
    # Rendering changes render settings only for its duration and restores them: nothing to undo.
    bl_options = {"REGISTER"}

    directory: StringProperty(  # type: ignore[valid-type]
        name="Folder",
        description="Dataset folder to write (empty: <Output Folder>/dataset)",
        subtype="DIR_PATH",
        options={"SKIP_SAVE"} | BLEND_RELATIVE,
    )
    overwrite: BoolProperty(  # type: ignore[valid-type]
        name="Replace Existing",
        description="Replace a dataset already in the folder",
        default=False,
        options={"SKIP_SAVE"},
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        try:
            target = dataset_folder(context, self.directory)
        except (capture.CaptureError, BlendRelativePathError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if (target / "transforms.json").is_file() and not self.overwrite:
            self.overwrite = True
            return set(
                context.window_manager.invoke_confirm(
                    self, event, title="Replace Dataset", message=f"Replace the dataset in {target}?"
                )
            )
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        window_manager = context.window_manager

        def progress(done: int, total: int) -> None:
            if done == 0:
                window_manager.progress_begin(0, total)
            window_manager.progress_update(done)

        try:
            target = dataset_folder(context, self.directory)
            path = export_with_capture_settings(context, target, overwrite=self.overwrite, progress=progress)
        except (capture.CaptureError, CameraError, TransformsError, BlendRelativePathError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        finally:
            window_manager.progress_end()
        self.report({"INFO"}, f"Dataset written: {path}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_export_dataset,)
