"""FIELDWORK_OT_check_engine: run ``python -m engine info`` with the chosen interpreter."""

from __future__ import annotations

import bpy

from .. import engine_env, preferences


def describe_engine(info: dict) -> str:
    return (
        f"Engine {info['engine_version']} - torch {info['torch_version']} on {info['device']}"
        f" ({info.get('device_name') or 'unknown'}), {info['threads']} threads\n"
        f"Python {info['python_version']}: {info['python']}"
    )


class FIELDWORK_OT_check_engine(bpy.types.Operator):
    """Start the engine interpreter once and report its torch version and device"""

    bl_idname = "fieldwork.check_engine"
    bl_label = "Check Engine"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = preferences.get_preferences(context)
        try:
            python = preferences.resolve_engine_python(context)
            info = engine_env.query_engine_info(python)
        except engine_env.EngineSetupError as exc:
            prefs.last_check = f"Engine not usable: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        prefs.last_check = describe_engine(info)
        self.report({"INFO"}, prefs.last_check.splitlines()[0])
        return {"FINISHED"}


CLASSES = (FIELDWORK_OT_check_engine,)
