"""Start an engine session from the installed add-on, then end Blender's side in one of two ways:

    python session_orphans.py ZIP ENGINE_PYTHON disable   # disable the add-on: it must end the engine
    python session_orphans.py ZIP ENGINE_PYTHON crash     # os._exit: no atexit, no unregister; the engine
                                                          # must notice its stdin closing and exit alone

Prints one JSON report with the engine's pid (the test checks the pid afterwards).
Run in its own process with BLENDER_USER_RESOURCES pointing at a temporary folder.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time


def main(zip_path: str, engine_python: str, mode: str) -> dict:
    import bpy

    addon_utils = importlib.import_module("addon_utils")
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=False)
    module_name = "bl_ext.user_default.fieldwork"
    addon_utils.enable(module_name, default_set=True, handle_error=lambda exc: (_ for _ in ()).throw(exc))
    bpy.context.preferences.addons[module_name].preferences.engine_python = engine_python
    client = importlib.import_module(f"{module_name}.client")
    session = client.start_session(client.scene_key(bpy.context.scene), client.Path(engine_python))
    deadline = time.monotonic() + 60
    while session.state.status == "starting" and time.monotonic() < deadline:
        session.drain(block_s=0.2)
    report = {"status": session.state.status, "pid": session.state.engine_pid, "mode": mode}
    if mode == "disable":
        addon_utils.disable(module_name, default_set=True)
        report["exit_code"] = session.process.poll()
    return report


if __name__ == "__main__":
    result = main(*sys.argv[1:4])
    print("FIELDWORK_REPORT " + json.dumps(result), flush=True)
    if result["mode"] == "crash":
        os._exit(0)  # like a crash: no atexit handlers, no add-on unregister
