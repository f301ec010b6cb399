"""Fieldwork: neural fields inside Blender.

Blender loads this package as ``bl_ext.<repo>.fieldwork``: relative imports only.
Register and unregister are mirror images: submodules in order, then in reverse.
"""

from __future__ import annotations

from . import client, layouts, operators, panels, preferences, preview, properties, surface_preview

_MODULES = (preferences, properties, client, preview, surface_preview, layouts, operators, panels)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
