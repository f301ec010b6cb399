"""The installed add-on in this process: settings on every scene, preferences reachable."""

from __future__ import annotations

import bpy

from tests.conftest import addon_module


def test_scene_settings_survive_a_new_file(empty_scene: bpy.types.Scene) -> None:
    assert empty_scene.fieldwork.method == "ngp"  # type: ignore[attr-defined]
    preferences = addon_module("preferences").get_preferences()
    assert preferences.engine_python


def test_every_sidebar_panel_is_registered_in_the_fieldwork_tab(empty_scene: bpy.types.Scene) -> None:
    for name in ("", "_capture", "_train", "_extract", "_layouts"):
        panel = getattr(bpy.types, f"VIEW3D_PT_fieldwork{name}")
        assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == ("VIEW_3D", "UI", "Fieldwork")
