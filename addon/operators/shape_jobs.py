"""What the shape operators share: engine commands run one after another as child processes, and their
meshes brought back where the source objects are.

Interactively an operator polls the current child from a timer (the interface stays responsive, Esc
cancels) and shows the engine's progress line in the status bar; in background mode (``blender -b``) it
runs the children to completion. Both pipes of a child are drained by threads, so a chatty engine never
blocks on a full pipe. No torch here: the engine is a separate interpreter (engine_env).
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import bpy
import numpy as np
from mathutils import Matrix

from .. import engine_env, importers, preferences, shapes, surface_preview
from ..engine.data.shapes import ShapeError
from ..paths import output_folder
from ..preview import tag_redraw

POLL_SECONDS = 0.25
SHAPES_FOLDER = "surfaces"  # <Output Folder>/surfaces/<name>-N: a fit's shape dataset, run and mesh
PREVIEW_FILE_NAME = "preview.png"  # the engine's picture in the run folder (engine/train/preview_file.py)
SHAPE_SPACE_KEY = "fieldwork_shape_space"  # on the scene and the collection: the last shape-space run folder
# The engine's progress bar: "\rigr [####....] step 12 loss ..."
_BAR = re.compile(r"\[([#.]+)\]")
# A command's --progress line on stdout: "PROGRESS 0.420 texture: colouring texels"
_PROGRESS = re.compile(r"^PROGRESS ([0-9.]+)", re.MULTILINE)


class ShapeJobError(RuntimeError):
    """A shape job cannot start or an engine step failed; the message names the object or the engine's error."""


@dataclass
class EngineStep:
    """One engine command. ``label`` is shown in the status bar; ``on_done(stdout)`` runs on Blender's main
    thread once the command succeeded (imports a mesh, say); ``preview``: the picture the command renders
    while it runs (train --preview-view), shown over the viewport."""

    command: list[str]
    label: str
    on_done: Callable[[str], None] | None = None
    preview: Path | None = None


@dataclass
class _Child:
    process: subprocess.Popen
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)


def _drain(stream: IO[str], into: list[str]) -> None:
    while True:
        chunk = stream.read(256)
        if not chunk:
            return
        into.append(chunk)


class EngineSteps:
    """Runs EngineSteps in order; ``poll()`` from a timer, or ``run_all()`` blocking."""

    def __init__(self, steps: Sequence[EngineStep]) -> None:
        self.steps = list(steps)
        self.index = -1
        self.child: _Child | None = None

    def _start(self) -> None:
        self.index += 1
        step = self.steps[self.index]
        process = subprocess.Popen(
            step.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=engine_env.engine_environment(),
        )
        child = _Child(process)
        for stream, into in ((process.stdout, child.stdout), (process.stderr, child.stderr)):
            assert stream is not None
            thread = threading.Thread(target=_drain, args=(stream, into), daemon=True)
            thread.start()
            child.threads.append(thread)
        self.child = child

    def poll(self) -> bool:
        """Advance; True once every step finished. Raises ShapeJobError when a step failed."""
        if self.child is None:
            self._start()
        assert self.child is not None
        if self.child.process.poll() is None:
            return False
        self._finish_child()
        if self.index + 1 == len(self.steps):
            return True
        self._start()
        return False

    def _finish_child(self) -> None:
        child, step = self.child, self.steps[self.index]
        assert child is not None
        for thread in child.threads:
            thread.join()
        self.child = None
        stdout, stderr = "".join(child.stdout), "".join(child.stderr)
        if child.process.returncode != 0:
            lines = [line.strip() for line in re.split(r"[\r\n]", stderr) if line.strip()]
            message = lines[-1] if lines else f"the engine exited with status {child.process.returncode}"
            for prefix in ("fieldwork extract: ", "fieldwork texture: "):
                message = message.removeprefix(prefix)
            raise ShapeJobError(f"{step.label}: {message}")
        if step.on_done is not None:
            step.on_done(stdout)

    def run_all(self) -> None:
        while not self.poll():
            assert self.child is not None
            self.child.process.wait()

    def cancel(self) -> None:
        if self.child is not None:
            self.child.process.terminate()
            self.child.process.wait()
            for thread in self.child.threads:
                thread.join()
            self.child = None

    def current(self) -> EngineStep | None:
        return self.steps[self.index] if self.child is not None and self.index >= 0 else None

    def status(self) -> tuple[str, float]:
        """(what runs now, the fraction of all steps done, from the engine's progress bar within a step)."""
        if self.child is None or self.index < 0:
            return "starting", 0.0
        step = self.steps[self.index]
        within = 0.0
        tail = "".join(self.child.stderr[-8:])
        bars = _BAR.findall(tail)
        progress = _PROGRESS.findall("".join(self.child.stdout[-8:]))
        if bars:
            within = bars[-1].count("#") / len(bars[-1])
        elif progress:
            within = min(1.0, float(progress[-1]))
        return step.label, (self.index + within) / len(self.steps)


class ShapeJobOperator(bpy.types.Operator):
    """A base of the shape operators: ``prepare(context)`` checks the input and returns the engine steps.
    Interactively, ``self.preview`` (set by ``prepare`` where a step renders a picture) follows the viewport."""

    _steps: EngineSteps | None = None
    _timer: Any = None
    preview: surface_preview.SurfacePreview | None = None
    wants_preview = False  # a job that trains a surface shows it over the viewport as it goes

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        raise NotImplementedError

    def finished_message(self) -> str:
        return f"{self.bl_label}: done"

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking: background mode and scripts."""
        try:
            runner = EngineSteps(self.prepare(context))
            runner.run_all()
        except (ShapeJobError, ShapeError, engine_env.EngineSetupError, importers.MeshImportError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, self.finished_message())
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        return self.start_modal(context)

    def start_modal(self, context: bpy.types.Context) -> set[str]:
        """Start the steps in the background and follow them from a timer (progress in the status bar, Esc)."""
        self.preview = surface_preview.start(context) if self.wants_preview else None
        try:
            self._steps = EngineSteps(self.prepare(context))
            self._steps.poll()
        except (ShapeJobError, ShapeError, engine_env.EngineSetupError, ValueError) as exc:
            self._end(context)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(POLL_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        assert self._steps is not None
        if event.type == "ESC":
            self._steps.cancel()
            self._end(context)
            self.report({"WARNING"}, f"{self.bl_label} cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            done = self._steps.poll()
        except (ShapeJobError, importers.MeshImportError, ValueError) as exc:
            self._end(context)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if done:
            self._end(context)
            self.report({"INFO"}, self.finished_message())
            return {"FINISHED"}
        label, fraction = self._steps.status()
        context.workspace.status_text_set(f"Fieldwork: {label} {100 * fraction:.0f}% (Esc cancels)")
        self._follow_preview(context)
        return {"PASS_THROUGH"}

    def _follow_preview(self, context: bpy.types.Context) -> None:
        step = self._steps.current() if self._steps is not None else None
        if self.preview is None or step is None or step.preview is None:
            return
        self.preview.follow_region(context)
        if self.preview.show(step.preview) is not None:
            tag_redraw()

    def _end(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self.preview is not None:
            surface_preview.stop()
            self.preview = None
        context.workspace.status_text_set(None)


# ---------------------------------------------------------------------------- helpers of the operators


def engine(context: bpy.types.Context, *arguments: str) -> list[str]:
    return engine_env.engine_command(preferences.resolve_engine_python(context), *arguments)


def train_arguments(
    dataset: Path, run: Path, method: str, device: str, budget: list[str], preview_view: Path | None
) -> list[str]:
    """The engine's train command of a shape job; with ``preview_view`` it renders the surface it fits from
    that view into RUN/PREVIEW_FILE_NAME as it goes (addon/surface_preview.py keeps the view, shows it)."""
    arguments = ["train", str(dataset), "--method", method, "--out", str(run), "--no-eval", "--device", device]
    if preview_view is not None:
        arguments += ["--preview-view", str(preview_view), "--preview-every", repr(surface_preview.PREVIEW_EVERY_S)]
        arguments += ["--preview-size", str(surface_preview.PREVIEW_SIZE)]
    return arguments + budget


def device(context: bpy.types.Context) -> str:
    return str(preferences.get_preferences(context).device)


def fresh_folder(context: bpy.types.Context, name: str) -> Path:
    """``<Output Folder>/surfaces/<name>``, numbered so nothing earlier is overwritten."""
    if context.scene is None:
        raise ShapeJobError("No scene to work in")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "shape"
    base = output_folder(context.scene) / SHAPES_FOLDER
    candidate, number = base / stem, 2
    while candidate.exists():
        candidate = base / f"{stem}-{number}"
        number += 1
    return candidate


def checked_objects(context: bpy.types.Context, objects: Sequence[bpy.types.Object]) -> list[bpy.types.Object]:
    """The objects, each with geometry Fieldwork can read (a ShapeError naming the first that has none)."""
    if not objects:
        raise ShapeJobError("No objects selected: select the mesh or point-cloud objects to work on")
    view_layer = context.view_layer
    assert view_layer is not None
    view_layer.update()
    depsgraph = view_layer.depsgraph
    assert depsgraph is not None  # a view layer always has one once updated
    for obj in objects:
        if obj.type not in shapes.SHAPE_TYPES:
            raise ShapeError(f"object {obj.name!r} is a {obj.type.lower()}, not a mesh or point cloud")
        shapes.object_geometry(obj, depsgraph)  # empty meshes, NaN vertices: named before anything is made
    return list(objects)


def export_objects(context: bpy.types.Context, folder: Path, objects: Sequence[bpy.types.Object]) -> Path:
    """The objects as a shape dataset ``folder`` (world space, modifiers applied)."""
    path, _ = shapes.export_shapes(folder, objects=list(objects), view_layer=context.view_layer)
    return path.parent


def import_result(
    context: bpy.types.Context,
    mesh_path: Path,
    source: str,
    name: str,
    matrix_world: Matrix | None = None,
    place_at: Any = None,
) -> bpy.types.Object:
    """The engine's world-space mesh as an object in the Fieldwork collection. With ``matrix_world`` the
    object gets that transform (a source object's) and its vertices are moved into it, so the surface stays
    where the engine put it; with ``place_at`` (a point) its bounding box's centre goes there instead."""
    scene = context.scene
    assert scene is not None
    obj = importers.import_mesh_file(scene, mesh_path, source=source)
    obj.name = name
    mesh = obj.data
    assert isinstance(mesh, bpy.types.Mesh)
    if matrix_world is not None:
        mesh.transform(matrix_world.inverted())
        obj.matrix_world = matrix_world
    elif place_at is not None:
        count = len(mesh.vertices)
        positions = np.empty(count * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", positions)
        positions = positions.reshape(-1, 3)
        centre = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
        mesh.transform(Matrix.Translation(-centre))
        obj.location = place_at
    mesh.update()
    return obj


def shape_space_run(context: bpy.types.Context, run_dir: str) -> Path:
    """The shape-space run to use: ``run_dir``, else the one Shape Space trained last in this scene."""
    raw = run_dir or (str(context.scene.get(SHAPE_SPACE_KEY, "")) if context.scene is not None else "")
    if not raw:
        raise ShapeJobError("No shape space yet: train one with Shape Space, or give its run folder")
    path = Path(bpy.path.abspath(raw))
    if not (path / "checkpoint.pt").is_file():
        raise ShapeJobError(f"Run folder {path} holds no trained shape space (no checkpoint.pt)")
    return path
