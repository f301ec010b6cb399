"""Add-on preferences: which interpreter runs the engine, on which device."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import engine_env

DEVICE_ITEMS = [
    ("auto", "Automatic", "CUDA when present, then Apple MPS, else CPU"),
    ("cuda", "CUDA", "NVIDIA GPU"),
    ("mps", "Apple MPS", "Apple silicon GPU"),
    ("cpu", "CPU", "Processor only"),
]


def addon_package() -> str:
    # ``__package__`` of this module is the add-on's own package (bl_ext.<repo>.fieldwork).
    return __package__ or "fieldwork"


def get_preferences(context: bpy.types.Context | None = None) -> FieldworkPreferences:
    context = context or bpy.context
    return context.preferences.addons[addon_package()].preferences  # type: ignore[return-value]


def user_dir() -> Path:
    """The extension's own writable folder (engine venv, logs). Created on demand."""
    return Path(bpy.utils.extension_path_user(addon_package(), create=True))


def resolve_engine_python(context: bpy.types.Context | None = None) -> Path:
    return engine_env.resolve_engine_python(get_preferences(context).engine_python, user_dir())


class FieldworkPreferences(bpy.types.AddonPreferences):
    bl_idname = addon_package()

    engine_python: StringProperty(  # type: ignore[valid-type]
        name="Engine Python",
        description="Python interpreter with torch that runs the Fieldwork engine (leave empty to use the one "
        "'Set up engine' creates)",
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device", description="Where the engine trains", items=DEVICE_ITEMS, default="auto"
    )
    last_check: StringProperty(  # type: ignore[valid-type]
        name="Last check", description="Result of the last 'Check engine'", default="", options={"SKIP_SAVE"}
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_python")
        layout.prop(self, "device")
        row = layout.row()
        row.operator("fieldwork.check_engine", icon="CHECKMARK")
        row.operator("fieldwork.setup_engine", icon="IMPORT")
        from .operators import setup_engine  # here, not at the top: that module imports this one

        for line in setup_engine.status_lines():
            layout.label(text=line)
        if self.last_check:
            box = layout.box()
            for line in self.last_check.splitlines():
                box.label(text=line)


_CLASSES = (FieldworkPreferences,)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
