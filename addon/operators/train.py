"""FIELDWORK_OT_train: train a field on the scene's cameras in an engine process, with live previews."""

from __future__ import annotations

from pathlib import Path

import bpy

from .. import capture, client, engine_env, preferences
from ..engine import protocol
from ..paths import DATASET_FOLDER, RUN_FOLDER, absolute_path, output_folder
from .export_dataset import export_with_capture_settings


def train_command(scene: bpy.types.Scene, dataset: Path, run_dir: Path, device: str) -> protocol.Train:
    settings = scene.fieldwork  # type: ignore[attr-defined]
    return protocol.Train(
        dataset=str(dataset),
        out_dir=str(run_dir),
        method=settings.method,
        steps=settings.steps,
        minutes=settings.minutes,
        device=device,
        preview_every_s=settings.preview_every_s,
        preview_max_side=settings.preview_max_side,
    )


def export_with_progress(context: bpy.types.Context, dataset: Path) -> None:
    """Export the cameras the Capture panel picks into ``dataset``; Blender's progress indicator counts frames."""
    window_manager = context.window_manager
    started = False

    def progress(done: int, total: int) -> None:
        nonlocal started
        if not started:
            window_manager.progress_begin(0, total)
            started = True
        window_manager.progress_update(done)

    try:
        export_with_capture_settings(context, dataset, overwrite=True, progress=progress)
    finally:
        if started:
            window_manager.progress_end()


class FIELDWORK_OT_train(bpy.types.Operator):
    """Train a neural field on this scene's cameras in the engine process; previews stream into Blender"""

    bl_idname = "fieldwork.train"
    bl_label = "Train"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        scene = context.scene
        if scene is None:
            return False
        session = client.session_for(client.scene_key(scene))
        return session is None or not session.state.active

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        assert scene is not None  # poll() checked
        settings = scene.fieldwork  # type: ignore[attr-defined]
        try:
            python = preferences.resolve_engine_python(context)
            output = output_folder(scene)
            if settings.dataset_dir:
                dataset = absolute_path(settings.dataset_dir, "Dataset")
            else:
                # Fieldwork's own render of the cameras: replaced on each run so it matches the scene.
                dataset = output / DATASET_FOLDER
                export_with_progress(context, dataset)
            session = client.start_session(client.scene_key(scene), python, label=f"scene {scene.name!r}")
        except (engine_env.EngineSetupError, client.EngineBusyError, capture.CaptureError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        device = preferences.get_preferences(context).device
        session.send(train_command(scene, dataset, output / RUN_FOLDER, device))
        if not bpy.app.background:
            self.report({"INFO"}, f"Training started (engine pid {session.state.engine_pid})")
            return {"FINISHED"}
        # blender -b: there is no event loop to drain the session from, so run it to the end here.
        try:
            state = session.run_to_completion(on_drain=client.notify)
        except client.EngineError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Training {state.status} at step {state.step}; checkpoint {state.checkpoint}")
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_train,)
