"""FIELDWORK_OT_render_layout_animation: the layout at every frame of the scene's range, as an image sequence.

Keyframed empties move, turn and scale; keyframed code properties (``fieldwork_shape_code`` and
``fieldwork_appearance_code`` are float arrays, each entry animatable) interpolate between their keys as
Blender's F-curves say. Each frame writes ``frame_NNNN.png`` (colour), ``alpha_NNNN.png`` (the objects' alphas,
each in its colour) and ``layout_NNNN.json`` (the layout rendered), synchronously (``blender -b`` too).
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy
from bpy.props import IntProperty, StringProperty

from .. import camera_math, client, engine_env, layouts


def render_animation(scene: bpy.types.Scene, out_dir: Path, start: int, end: int, step: int = 1) -> list[Path]:
    """Render frames ``start..end`` of the layout into ``out_dir``; the scene's current frame is restored."""
    original = scene.frame_current
    written = []
    try:
        for frame in range(start, end + 1, max(1, step)):
            with layouts.live_paused():  # this loop renders each frame itself
                scene.frame_set(frame)
            result = layouts.render_now(scene)
            written.append(layouts.write_png(out_dir / f"frame_{frame:04d}.png", result.colour))
            layouts.write_png(out_dir / f"alpha_{frame:04d}.png", layouts.alpha_composite(result.alphas)[..., :3])
            document = dict(result.request.layout, extra={**result.request.layout.get("extra", {}), "frame": frame})
            (out_dir / f"layout_{frame:04d}.json").write_text(json.dumps(document, indent=1) + "\n")
    finally:
        with layouts.live_paused():
            scene.frame_set(original)
    return written


class FIELDWORK_OT_render_layout_animation(bpy.types.Operator):
    """Render the layout at every frame of the scene's frame range (keyframed empties and codes) as images"""

    bl_idname = "fieldwork.render_layout_animation"
    bl_label = "Render Layout Animation"
    bl_options = {"REGISTER"}

    out_dir: StringProperty(name="Folder", subtype="DIR_PATH", default="")  # type: ignore[valid-type]
    frame_step: IntProperty(name="Frame Step", default=1, min=1)  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and layouts.layout_collection(context.scene) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        assert scene is not None
        settings = scene.fieldwork.layouts  # type: ignore[attr-defined]
        out_dir = Path(bpy.path.abspath(self.out_dir or settings.animation_dir))
        try:
            layouts.open_run(scene, layouts.run_folder(scene), context)
            written = render_animation(scene, out_dir, scene.frame_start, scene.frame_end, self.frame_step)
        except (layouts.LayoutError, camera_math.CameraError, engine_env.EngineSetupError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except client.EngineBusyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(written)} frames to {out_dir}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_render_layout_animation,)
