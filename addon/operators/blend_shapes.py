"""FIELDWORK_OT_blend_shapes: the shapes between two shapes of a shape space, one mesh per step; optionally
keyed so that one mesh shows at a time over the timeline (the blend as an animation of mesh swaps)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

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
    animate: BoolProperty(  # type: ignore[valid-type]
        name="Animate",
        description="Key the meshes' visibility so that one shows at a time, from the current frame on",
    )
    frames_per_step: IntProperty(  # type: ignore[valid-type]
        name="Frames per Step", description="How long each mesh shows when animated", default=10, min=1, max=10000
    )

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        run = shape_space_run(context, self.run_dir)
        first, second = self._names(context)
        self._made: list[str] = []
        assert context.scene is not None
        start = context.scene.frame_current
        steps = []
        for index in range(self.count):
            t = index / (self.count - 1)
            mesh = run / "meshes" / f"blend-{first}-{second}-{index}.ply"

            def done(_stdout: str, mesh=mesh, index=index) -> None:  # type: ignore[no-untyped-def]
                obj = import_result(context, mesh, str(run), f"Blend {first}-{second} {index}")
                if self.animate:
                    first_frame = start + index * self.frames_per_step
                    key_shown_between(obj, first_frame, self.frames_per_step, index == 0, index == self.count - 1)
                self._made.append(obj.name)

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
        frames = f", one every {self.frames_per_step} frames" if self.animate else ""
        return f"Blended: {', '.join(self._made)}{frames}"


def key_shown_between(obj: bpy.types.Object, first_frame: int, frames: int, first: bool, last: bool) -> None:
    """Key ``obj`` shown (viewport and render) for ``frames`` frames from ``first_frame`` and hidden around
    them; the first step is shown before its frames too and the last after, so the blend holds its ends.
    Booleans are keyed with constant interpolation, so each swap is a cut. The object is left as it is at
    ``first_frame`` of the first step (the current frame)."""
    keys = ([] if first else [(first_frame - 1, True)]) + [(first_frame, False)]
    keys += [] if last else [(first_frame + frames, True)]
    for frame, hidden in keys:
        obj.hide_viewport = obj.hide_render = hidden
        obj.keyframe_insert("hide_viewport", frame=frame)
        obj.keyframe_insert("hide_render", frame=frame)
    obj.hide_viewport = obj.hide_render = not first


CLASSES = (FIELDWORK_OT_blend_shapes,)
