"""Per-scene Fieldwork settings (``scene.fieldwork``)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

FIELD_ITEMS = [
    ("ngp", "Instant-NGP", "Multiresolution hash grid radiance field: fast"),
    ("nerf", "NeRF", "Positional-encoding MLP with hierarchical sampling: slow, faithful to the paper"),
]


class FieldworkSceneSettings(bpy.types.PropertyGroup):
    field: EnumProperty(name="Field", items=FIELD_ITEMS, default="ngp")  # type: ignore[valid-type]
    steps: IntProperty(name="Steps", default=2000, min=1, soft_max=100000)  # type: ignore[valid-type]
    minutes: FloatProperty(  # type: ignore[valid-type]
        name="Time Budget (min)", description="Stop after this many minutes (0: no limit)", default=0.0, min=0.0
    )
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Where datasets, checkpoints and meshes are written ('//' is the .blend's folder)",
        subtype="DIR_PATH",
        default="//fieldwork/",
    )


_CLASSES = (FieldworkSceneSettings,)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.fieldwork = PointerProperty(type=FieldworkSceneSettings)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.Scene.fieldwork  # type: ignore[attr-defined]
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
