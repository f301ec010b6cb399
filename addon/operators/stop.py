"""FIELDWORK_OT_stop: stop training now; the engine writes its checkpoint and exits."""

from __future__ import annotations

import bpy

from .. import client


class FIELDWORK_OT_stop(bpy.types.Operator):
    """Stop training this scene's field; the last checkpoint is kept"""

    bl_idname = "fieldwork.stop"
    bl_label = "Stop"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        scene = context.scene
        session = client.session_for(client.scene_key(scene)) if scene is not None else None
        return session is not None and session.state.active

    def execute(self, context: bpy.types.Context) -> set[str]:
        session = client.session_for(client.scene_key(context.scene))  # type: ignore[arg-type]
        if session is None:
            self.report({"WARNING"}, "Nothing is training in this scene")
            return {"CANCELLED"}
        session.stop()
        if bpy.app.background:
            try:
                session.run_to_completion(on_drain=client.notify, timeout_s=30.0)
            except client.EngineError as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
        self.report({"INFO"}, "Stopping: the engine writes a checkpoint and exits")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_stop,)
