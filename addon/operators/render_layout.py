"""FIELDWORK_OT_render_layout: render the scene's layout from the active camera through the engine."""

from __future__ import annotations

import bpy

from .. import camera_math, client, engine_env, layouts


class FIELDWORK_OT_render_layout(bpy.types.Operator):
    """Render the layout from the active camera into "Fieldwork Preview", with each object's alpha in
    "Fieldwork Layout Alpha"; with Live on, edits re-render by themselves"""

    bl_idname = "fieldwork.render_layout"
    bl_label = "Render Layout"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and layouts.layout_collection(context.scene) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        assert scene is not None
        try:
            layouts.open_run(scene, layouts.run_folder(scene), context)
            if bpy.app.background:
                result = layouts.render_now(scene)
                self.report({"INFO"}, f"Rendered {len(result.names)} objects in {result.seconds:.2f} s")
            else:
                layouts.submit(scene, force=True)
        except (layouts.LayoutError, camera_math.CameraError, engine_env.EngineSetupError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except client.EngineBusyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in layouts.state_for(scene).warnings:
            self.report({"WARNING"}, warning)
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_render_layout,)
