"""FIELDWORK_OT_setup_engine: a virtual environment for the engine in the extension's user folder.

The engine never goes into Blender's own Python (pip installs there break too often,
and torch would load into Blender's process): this creates ``<user folder>/engine-venv``
with Blender's interpreter and pip-installs ``engine/requirements.txt`` into it, in a
child process, step by step, with each line of pip's output in the status and in
``engine-setup.log``. It asks before it downloads and refuses when Blender is offline.
"""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .. import engine_env, preferences

VENV_FOLDER = "engine-venv"
LOG_NAME = "engine-setup.log"
REQUIREMENTS = engine_env.ENGINE_PARENT / "engine" / "requirements.txt"
FAILURE_TAIL_LINES = 20


@dataclass
class SetupJob:
    """Runs ``commands`` one after another in child processes, collecting their output off the UI thread.

    ``poll()`` (main thread) moves new output lines into ``lines`` and the log file and
    returns ``None`` while running, else ``True`` (all succeeded) or ``False``.
    """

    commands: list[list[str]]
    log_path: Path
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    failure: str = ""
    _output: queue.Queue[str | int] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _process: subprocess.Popen[str] | None = None
    _cancelled: bool = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, name="fieldwork-setup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for command in self.commands:
            self._output.put("$ " + " ".join(command))
            try:
                self._process = subprocess.Popen(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1"),
                )
            except OSError as exc:
                self._output.put(f"cannot run {command[0]}: {exc}")
                self._output.put(1)
                return
            assert self._process.stdout is not None
            for line in self._process.stdout:
                self._output.put(line.rstrip())
            returncode = self._process.wait()
            if returncode != 0 or self._cancelled:
                self._output.put(returncode or 1)
                return
        self._output.put(0)

    def poll(self) -> bool | None:
        finished: bool | None = None
        new_lines: list[str] = []
        while True:
            try:
                item = self._output.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, int):
                finished = item == 0
                if not finished:
                    tail = "\n".join(list(self.lines)[-FAILURE_TAIL_LINES:] + new_lines[-FAILURE_TAIL_LINES:])
                    self.failure = f"exit status {item}; full log: {self.log_path}\n{tail}"
                break
            new_lines.append(item)
        if new_lines:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write("\n".join(new_lines) + "\n")
            self.lines.extend(new_lines)
        return finished

    def cancel(self) -> None:
        self._cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def wait(self) -> bool:
        """Background mode: block until the job ends."""
        while (finished := self.poll()) is None:
            assert self._thread is not None
            self._thread.join(timeout=0.2)
        return finished


def setup_commands(base_python: Path, venv_dir: Path, requirements: Path = REQUIREMENTS) -> list[list[str]]:
    venv_python = engine_env.venv_python(venv_dir)
    commands = [] if venv_python.is_file() else [[str(base_python), "-m", "venv", str(venv_dir)]]
    return [*commands, [str(venv_python), "-m", "pip", "install", "--progress-bar", "off", "-r", str(requirements)]]


_status: list[str] = []  # what the preferences show about the last set-up


def status_lines() -> list[str]:
    return list(_status)


class FIELDWORK_OT_setup_engine(bpy.types.Operator):
    """Create a Python environment for the engine in Fieldwork's user folder and install torch and the other
    engine packages into it with pip (downloads about 1 GB)"""

    bl_idname = "fieldwork.setup_engine"
    bl_label = "Set up Engine"
    bl_options = {"REGISTER"}

    _job: SetupJob | None = None
    _timer: bpy.types.Timer | None = None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not self._online_allowed():
            return {"CANCELLED"}
        venv_dir = preferences.user_dir() / VENV_FOLDER
        return context.window_manager.invoke_confirm(  # type: ignore[return-value]
            self,
            event,
            title="Set up the Fieldwork engine",
            message=f"Download torch and the engine's packages (about 1 GB) with pip into {venv_dir}?",
            confirm_text="Download and Install",
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self._online_allowed():
            return {"CANCELLED"}
        venv_dir = preferences.user_dir() / VENV_FOLDER
        self._job = SetupJob(setup_commands(Path(sys.executable), venv_dir), preferences.user_dir() / LOG_NAME)
        self._job.start()
        _status[:] = [f"Setting up the engine in {venv_dir}..."]
        if bpy.app.background:
            return self._finish(context, self._job.wait())
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.2, window=context.window)
        window_manager.modal_handler_add(self)
        window_manager.progress_begin(0, 1)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        assert self._job is not None
        if event.type == "ESC":
            self._job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = self._job.poll()
        if self._job.lines:
            _status[1:] = [self._job.lines[-1][:160]]
            context.window_manager.progress_update(0.5)
            for area in context.screen.areas if context.screen else ():
                area.tag_redraw()
        if finished is None:
            return {"RUNNING_MODAL"}
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        return self._finish(context, finished)

    def _finish(self, context: bpy.types.Context, succeeded: bool) -> set[str]:
        assert self._job is not None
        if not succeeded:
            _status[:] = ["Engine set-up failed:", *self._job.failure.splitlines()]
            self.report({"ERROR"}, f"Engine set-up failed ({self._job.failure.splitlines()[0]})")
            if not bpy.app.background and context.window_manager is not None:
                lines = _status[:]

                def draw(menu: bpy.types.UIPopupMenu, _context: bpy.types.Context) -> None:
                    for line in lines:
                        menu.layout.label(text=line)

                context.window_manager.popup_menu(draw, title="pip failed", icon="ERROR")
            return {"CANCELLED"}
        venv_python = engine_env.venv_python(preferences.user_dir() / VENV_FOLDER)
        try:
            info = engine_env.query_engine_info(venv_python)
        except engine_env.EngineSetupError as exc:
            _status[:] = ["Installed, but the engine does not run:", str(exc)]
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _status[:] = [f"Engine ready: torch {info['torch_version']} on {info['device']} ({venv_python})"]
        self.report({"INFO"}, _status[0])
        return {"FINISHED"}

    def _online_allowed(self) -> bool:
        if bpy.app.online_access:
            return True
        self.report(
            {"ERROR"},
            "Blender is set to work offline, so Fieldwork will not download anything: allow Online Access in "
            f"Preferences > System > Network, or install the engine yourself with "
            f"'python -m pip install -r {REQUIREMENTS}' and set Engine Python",
        )
        return False


CLASSES = (FIELDWORK_OT_setup_engine,)
