"""Operators, one per file. Registered in the order listed, unregistered in reverse."""

from __future__ import annotations

import bpy

from . import (
    check_engine,
    copy_codes,
    export_dataset,
    export_shapes,
    extract_mesh,
    generate_layout,
    import_dataset,
    import_mesh,
    load_layout,
    render_layout,
    render_layout_animation,
    resample_codes,
    save_layout,
    setup_engine,
    stop,
    train,
)

_MODULES = (
    check_engine,
    export_dataset,
    import_dataset,
    export_shapes,
    import_mesh,
    extract_mesh,
    setup_engine,
    train,
    stop,
    # layouts of generative runs (addon/layouts.py)
    generate_layout,
    render_layout,
    render_layout_animation,
    resample_codes,
    copy_codes,
    save_layout,
    load_layout,
)


def classes() -> list[type]:
    return [cls for module in _MODULES for cls in module.CLASSES]


def register() -> None:
    for cls in classes():
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes()):
        bpy.utils.unregister_class(cls)
