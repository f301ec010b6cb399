"""Generate a layout from the installed add-on, start a live edit, then end Blender's side in one of two ways:

    python layout_orphans.py ZIP ENGINE_PYTHON RUN disable   # disable the add-on mid-edit: it ends the engine
    python layout_orphans.py ZIP ENGINE_PYTHON RUN crash     # os._exit mid-edit: the engine exits by itself

Prints one JSON report with the engine's pid (the test checks the pid afterwards) and what Blender still does.
Run in its own process with BLENDER_USER_RESOURCES pointing at a temporary folder.
"""

from __future__ import annotations

import importlib
import json
import os
import sys


def main(zip_path: str, engine_python: str, run_dir: str, mode: str) -> dict:
    import bpy

    addon_utils = importlib.import_module("addon_utils")
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=False)
    module_name = "bl_ext.user_default.fieldwork"
    addon_utils.enable(module_name, default_set=True, handle_error=lambda exc: (_ for _ in ()).throw(exc))
    bpy.context.preferences.addons[module_name].preferences.engine_python = engine_python
    client = importlib.import_module(f"{module_name}.client")
    layouts = importlib.import_module(f"{module_name}.layouts")
    scene = bpy.context.scene
    scene.fieldwork.layouts.run_dir = run_dir
    scene.fieldwork.layouts.object_count = 2
    scene.fieldwork.layouts.proxy_resolution = 0
    assert bpy.ops.fieldwork.generate_layout() == {"FINISHED"}
    session = client.session_for(client.scene_key(scene))
    obj = layouts.layout_objects(scene)[0]
    obj.location.x += 0.2
    bpy.context.view_layer.update()  # the live handler sends the edit: a request is in flight
    state = layouts.state_for(scene)
    report = {"pid": session.state.engine_pid, "mode": mode, "in_flight": state.in_flight is not None}
    if mode == "disable":
        addon_utils.disable(module_name, default_set=True)
        report["exit_code"] = session.process.poll()
        handlers = [*bpy.app.handlers.depsgraph_update_post, *bpy.app.handlers.frame_change_post]
        report["handlers_left"] = [h.__name__ for h in handlers]
        obj.location.x += 0.2
        bpy.context.view_layer.update()  # no handler of ours runs now
        bpy.ops.mesh.primitive_cube_add()
        report["objects"] = len(bpy.data.objects)
    return report


if __name__ == "__main__":
    result = main(*sys.argv[1:5])
    print("FIELDWORK_REPORT " + json.dumps(result), flush=True)
    if result["mode"] == "crash":
        os._exit(0)  # like a crash: no atexit handlers, no add-on unregister
