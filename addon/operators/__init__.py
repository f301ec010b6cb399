"""Operators, one per file. Registered in the order listed, unregistered in reverse."""

from __future__ import annotations

import bpy

from . import (
    blend_shapes,
    check_engine,
    complete_shape,
    copy_codes,
    export_dataset,
    export_shapes,
    extract_mesh,
    fit_surface,
    generate_layout,
    import_dataset,
    import_mesh,
    load_layout,
    new_shape,
    render_layout,
    render_layout_animation,
    resample_codes,
    save_layout,
    setup_engine,
    shape_space,
    stop,
    texture_from_image,
    train,
)

_MODULES = (
    check_engine,
    export_dataset,
    import_dataset,
    export_shapes,
    import_mesh,
    extract_mesh,
    fit_surface,
    shape_space,
    new_shape,
    blend_shapes,
    complete_shape,
    texture_from_image,
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
