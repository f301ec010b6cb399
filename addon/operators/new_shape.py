"""FIELDWORK_OT_new_shape: a new shape drawn from a trained shape space's prior, at the 3D cursor."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from .import_mesh import select_only
from .shape_jobs import EngineStep, ShapeJobOperator, device, engine, import_result, shape_space_run


class FIELDWORK_OT_new_shape(ShapeJobOperator):
    """Sample a new shape from the shape space (Shape Space trains one) and add it at the 3D cursor"""

    bl_idname = "fieldwork.new_shape"
    bl_label = "New Shape"
    bl_options = {"REGISTER", "UNDO"}

    run_dir: StringProperty(name="Shape Space", subtype="DIR_PATH", description="Run folder (empty: the last)")  # type: ignore[valid-type]
    seed: IntProperty(name="Seed", description="Which sample of the prior", default=0, min=0)  # type: ignore[valid-type]
    resolution: IntProperty(name="Resolution", default=128, min=16, max=1024)  # type: ignore[valid-type]

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        run = shape_space_run(context, self.run_dir)
        mesh = run / "meshes" / f"sample-{self.seed}-{self.resolution}.ply"
        cursor = context.scene.cursor.location.copy() if context.scene is not None else None

        def done(_stdout: str) -> None:
            result = import_result(context, mesh, str(run), f"New Shape {self.seed}", place_at=cursor)
            select_only(context, result)

        command = engine(
            context,
            "extract",
            str(run),
            "--sample",
            str(self.seed),
            "--resolution",
            str(self.resolution),
            "--out",
            str(mesh),
            "--overwrite",
            "--json",
            "--device",
            device(context),
        )
        return [EngineStep(command, f"sampling shape {self.seed}", done)]


CLASSES = (FIELDWORK_OT_new_shape,)
