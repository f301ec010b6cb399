"""Install the built extension zip into a real Blender (bpy module), enable it, check what it
registered, run "Check engine", disable it and check nothing stays. Prints one JSON report.

Run in its own process with BLENDER_USER_RESOURCES pointing at a temporary folder:
    python extension_lifecycle.py ZIP ENGINE_PYTHON
"""

from __future__ import annotations

import json
import sys


def registered_names(bpy) -> dict[str, bool]:
    return {
        "operator_check_engine": hasattr(bpy.types, "FIELDWORK_OT_check_engine"),
        "panel": hasattr(bpy.types, "VIEW3D_PT_fieldwork"),
        "preferences": any(
            getattr(addon.preferences, "bl_rna", None) is not None
            and addon.preferences.bl_rna.identifier == "FieldworkPreferences"
            for addon in bpy.context.preferences.addons
        ),
        "scene_settings": hasattr(bpy.types.Scene, "fieldwork"),
        "operator_callable": "check_engine" in dir(bpy.ops.fieldwork),
    }


def main(zip_path: str, engine_python: str) -> dict:
    import importlib

    import bpy

    # addon_utils lives in Blender's scripts folder, which importing bpy puts on sys.path.
    addon_utils = importlib.import_module("addon_utils")

    report: dict = {"blender": bpy.app.version_string, "python": sys.version.split()[0]}
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=False)
    report["install"] = sorted(result)
    module_name = "bl_ext.user_default.fieldwork"
    report["before_enable"] = registered_names(bpy)
    addon_utils.enable(module_name, default_set=True, handle_error=lambda exc: (_ for _ in ()).throw(exc))
    report["enabled"] = module_name in bpy.context.preferences.addons
    report["after_enable"] = registered_names(bpy)

    prefs = bpy.context.preferences.addons[module_name].preferences
    prefs.engine_python = engine_python
    report["check_engine"] = sorted(bpy.ops.fieldwork.check_engine())
    report["check_engine_text"] = prefs.last_check

    addon_utils.disable(module_name, default_set=True)
    report["disabled"] = module_name not in bpy.context.preferences.addons
    report["after_disable"] = registered_names(bpy)
    return report


if __name__ == "__main__":
    print("FIELDWORK_REPORT " + json.dumps(main(sys.argv[1], sys.argv[2])))
