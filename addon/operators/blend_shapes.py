"""FIELDWORK_OT_blend_shapes: the shapes between two shapes of a shape space, one mesh per step."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from .shape_jobs import EngineStep, ShapeJobError, ShapeJobOperator, device, engine, import_result, shape_space_run


class FIELDWORK_OT_blend_shapes(ShapeJobOperator):
    """Interpolate the codes of the two selected shapes of the shape space: one mesh per step, between them"""

    bl_idname = "fieldwork.blend_shapes"
    bl_label = "Blend Shapes"
    bl_options = {"REGISTER", "UNDO"}

    run_dir: StringProperty(name="Shape Space", subtype="DIR_PATH", description="Run folder (empty: the last)")  # type: ignore[valid-type]
    first: StringProperty(name="From", description="A shape of the space (empty: the active object)")  # type: ignore[valid-type]
    second: StringProperty(name="To", description="Another (empty: the other selected object)")  # type: ignore[valid-type]
    count: IntProperty(  # type: ignore[valid-type]
        name="Steps", description="Meshes from one to the other, both ends included", default=5, min=2, max=64
    )
    resolution: IntProperty(name="Resolution", default=96, min=16, max=1024)  # type: ignore[valid-type]

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        run = shape_space_run(context, self.run_dir)
        first, second = self._names(context)
        self._made: list[str] = []
        steps = []
        for index in range(self.count):
            t = index / (self.count - 1)
            mesh = run / "meshes" / f"blend-{first}-{second}-{index}.ply"

            def done(_stdout: str, mesh=mesh, index=index) -> None:  # type: ignore[no-untyped-def]
                self._made.append(import_result(context, mesh, str(run), f"Blend {first}-{second} {index}").name)

            command = engine(
                context,
                "extract",
                str(run),
                "--blend",
                first,
                second,
                "--t",
                repr(t),
                "--resolution",
                str(self.resolution),
                "--out",
                str(mesh),
                "--overwrite",
                "--json",
                "--device",
                device(context),
            )
            steps.append(EngineStep(command, f"blend {index + 1}/{self.count}", done))
        return steps

    def _names(self, context: bpy.types.Context) -> tuple[str, str]:
        if self.first and self.second:
            return self.first, self.second
        active = context.active_object
        others = [obj for obj in context.selected_objects if obj is not active]
        if active is None or len(others) != 1:
            raise ShapeJobError("Select two shapes of the shape space (the active one is where the blend starts)")
        return active.name, others[0].name

    def finished_message(self) -> str:
        return f"Blended: {', '.join(self._made)}"


CLASSES = (FIELDWORK_OT_blend_shapes,)
