"""FIELDWORK_OT_generate_layout: sample a layout from a GIRAFFE run into the "Fieldwork Layout" collection."""

from __future__ import annotations

import time

import bpy
from bpy.props import IntProperty, StringProperty

from .. import client, engine_env, layouts


class FIELDWORK_OT_generate_layout(bpy.types.Operator):
    """Sample a layout from a trained GIRAFFE run: one empty per object (move, rotate, scale it), proxies, a
    backdrop and the model's camera; replaces the previous generated layout (one undo removes it)"""

    bl_idname = "fieldwork.generate_layout"
    bl_label = "Generate Layout"
    bl_options = {"REGISTER", "UNDO"}

    run_dir: StringProperty(name="Run Folder", subtype="DIR_PATH", default="")  # type: ignore[valid-type]
    seed: IntProperty(name="Seed", default=-1, min=-1)  # type: ignore[valid-type]  # -1: the panel's
    object_count: IntProperty(name="Objects", default=-2, min=-2)  # type: ignore[valid-type]  # -2: the panel's

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        # The panel's values, written into the operator: Adjust Last Operation (F9) then shows the seed and
        # count used, and changing them there undoes this layout and generates that one.
        settings = context.scene.fieldwork.layouts  # type: ignore[union-attr]
        if self.seed < 0:
            self.seed = settings.seed
        if self.object_count < -1:
            self.object_count = settings.object_count
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        assert scene is not None
        settings = scene.fieldwork.layouts  # type: ignore[attr-defined]
        seed = self.seed if self.seed >= 0 else settings.seed
        count = self.object_count if self.object_count >= -1 else settings.object_count
        started = time.perf_counter()
        try:
            run_dir = layouts.run_folder(scene, self.run_dir)
            layouts.open_run(scene, run_dir, context)
            state = layouts.state_for(scene)
            ready = layouts.sample(scene, seed, count, settings.proxy_resolution)
            layouts.build_layout(scene, ready.layout, state.facts, run_dir, ready, seed)
            if bpy.app.background:
                result = layouts.render_now(scene)
                rendered = f"; rendered {result.request.width}x{result.request.height}"
            else:
                layouts.submit(scene, force=True)
                rendered = ""
        except (layouts.LayoutError, engine_env.EngineSetupError, client.EngineBusyError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        objects = len(ready.layout["objects"])
        seconds = time.perf_counter() - started
        self.report({"INFO"}, f"Layout of {objects} objects from seed {seed} in {seconds:.1f} s{rendered}")
        for warning in layouts.state_for(scene).warnings:
            self.report({"WARNING"}, warning)
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_generate_layout,)
