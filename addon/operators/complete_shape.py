"""FIELDWORK_OT_complete_shape: a whole shape from the selected partial object, by fitting a DeepSDF code to it."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from .import_mesh import select_only
from .shape_jobs import (
    EngineStep,
    ShapeJobOperator,
    checked_objects,
    device,
    engine,
    export_objects,
    fresh_folder,
    import_result,
    shape_space_run,
)


class FIELDWORK_OT_complete_shape(ShapeJobOperator):
    """Complete the selected partial object with the DeepSDF shape space: a code fitted to what it has"""

    bl_idname = "fieldwork.complete_shape"
    bl_label = "Complete Shape"
    bl_options = {"REGISTER", "UNDO"}

    run_dir: StringProperty(name="Shape Space", subtype="DIR_PATH", description="Run folder (empty: the last)")  # type: ignore[valid-type]
    resolution: IntProperty(name="Resolution", default=128, min=16, max=1024)  # type: ignore[valid-type]

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        run = shape_space_run(context, self.run_dir)
        (obj,) = checked_objects(context, [context.active_object] if context.active_object else [])
        folder = fresh_folder(context, f"{obj.name}-completion")
        dataset = export_objects(context, folder / "shapes", [obj])
        mesh = folder / f"mesh-{self.resolution}.ply"
        name = obj.name

        def done(_stdout: str) -> None:
            source = bpy.data.objects[name]
            result = import_result(
                context, mesh, str(run), f"{name} Completed", matrix_world=source.matrix_world.copy()
            )
            select_only(context, result)

        command = engine(
            context,
            "extract",
            str(run),
            "--complete",
            str(dataset),
            "--resolution",
            str(self.resolution),
            "--out",
            str(mesh),
            "--json",
            "--device",
            device(context),
        )
        return [EngineStep(command, f"completing {obj.name}", done)]


CLASSES = (FIELDWORK_OT_complete_shape,)
