"""Surfaces from fields: MISE and dense sampling, marching cubes, colours, clean-up, mesh files.

Importing this package, ``triangle_mesh`` or ``io`` must not import torch or scipy: the
add-on reads mesh files with :mod:`engine.mesh.io` inside Blender's own Python. So the
extraction entry points load lazily, on first use (``from engine.mesh import extract_to_file``).
"""

from __future__ import annotations

from typing import Any

_LAZY = ("extract_to_file", "extract_mesh_from_trainer", "ExtractSettings", "MeshResult")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import extract

        return getattr(extract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
