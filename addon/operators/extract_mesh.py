"""FIELDWORK_OT_extract_mesh: ``python -m engine extract`` on a run folder, then import the mesh.

Runs the engine as a child process, so it works on any finished run without a live
session. Interactively it polls the child from a timer (the interface stays responsive,
Esc cancels) while reader threads drain its pipes: a child whose output outgrew the pipe
buffer (about 64 KiB) would otherwise block forever. The engine's ``PROGRESS`` lines show in
the status bar. In background mode (``blender -b``) it runs the child to completion.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from .. import engine_env, importers, paths, preferences, properties
from ..engine import methods
from .import_mesh import select_only

MESH_FOLDER = "meshes"
POLL_SECONDS = 0.25
# Lines of the child's output kept: the JSON summary is the last stdout line, the error the last stderr one.
KEPT_LINES = 200


class ExtractError(RuntimeError):
    """The engine could not make a mesh; the message is the engine's own (names the run or level)."""


def numbered_path(path: Path) -> Path:
    """``path``, or ``NAME-2.SUFFIX``, ``NAME-3.SUFFIX``... whichever does not exist yet: nothing earlier
    is ever overwritten or mixed with."""
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def fresh_mesh_path(run_dir: Path, resolution: int, texture: bool = False) -> Path:
    """``RUN/meshes/mesh-RES.ply``, numbered so an earlier mesh (or, with ``texture``, the PNG
    beside it) is never overwritten."""
    path = run_dir / MESH_FOLDER / f"mesh-{resolution}.ply"
    candidate, number = path, 2
    while candidate.exists() or (texture and candidate.with_suffix(".png").exists()):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


@dataclass(frozen=True)
class ExtractJob:
    run_dir: Path
    out_path: Path
    command: list[str]


def run_surface_kind(run_dir: Path) -> str | None:
    """The surface kind (engine.methods: density, sdf, occupancy) of the run's method, from its config.json;
    None when the file or the method cannot be read (the engine then says what is wrong)."""
    try:
        document = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        return methods.get(str(document["method"])).surface
    except (OSError, ValueError, KeyError, TypeError):
        return None


def extract_job(
    python: Path,
    run_dir: Path,
    resolution: int,
    *,
    device: str = "auto",
    level: float = 0.0,
    colour_from: str = "auto",
    fill_unseen: bool = True,
    keep_largest: int = 0,
    target_faces: int = 0,
    texture: int = 0,
) -> ExtractJob:
    """The ``python -m engine extract`` command for a run, writing a fresh ``RUN/meshes/mesh-RES.ply``.
    ``level`` is a density level: 0, or a run whose method has another kind of surface (an SDF's zero, an
    occupancy's 0.5), leaves the level to the engine, so nobody needs to know what a level is. ``texture`` 0:
    vertex colours, else the baked texture's size (the PNG lands beside the mesh)."""
    out_path = fresh_mesh_path(run_dir, resolution, texture=bool(texture))
    arguments = [str(run_dir), "--resolution", str(resolution), "--out", str(out_path), "--json", "--progress"]
    arguments += ["--device", device, "--colour-from", colour_from]
    if level > 0 and run_surface_kind(run_dir) in ("density", None):
        arguments += ["--level", repr(level)]
    if not fill_unseen:
        arguments.append("--keep-unseen")
    if keep_largest:
        arguments += ["--keep-largest", str(keep_largest)]
    if target_faces:
        arguments += ["--target-faces", str(target_faces)]
    if texture:
        arguments += ["--texture", str(texture)]
    return ExtractJob(run_dir, out_path, engine_env.engine_command(python, "extract", *arguments))


def run_extract_job(job: ExtractJob) -> dict:
    """Run ``job`` to completion (blocking): the engine's JSON summary, or :class:`ExtractError`."""
    completed = subprocess.run(
        job.command, capture_output=True, text=True, env=engine_env.engine_environment(), check=False
    )
    return finished_job_result(job, completed.returncode, completed.stdout, completed.stderr)


def finished_job_result(job: ExtractJob, returncode: int, stdout: str, stderr: str) -> dict:
    """The engine's JSON summary, or :class:`ExtractError` with the engine's message."""
    if returncode != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"the engine exited with status {returncode}"
        raise ExtractError(message.removeprefix("fieldwork extract: "))
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines or not job.out_path.is_file():
        raise ExtractError(f"the engine finished but wrote no mesh to {job.out_path}")
    return json.loads(lines[-1])


def parse_progress(line: str) -> tuple[float, str] | None:
    """``PROGRESS <fraction> <stage>`` (what ``extract --progress`` prints) as (fraction, stage), else None."""
    words = line.strip().split(" ", 2)
    if len(words) < 2 or words[0] != "PROGRESS":
        return None
    try:
        fraction = float(words[1])
    except ValueError:
        return None
    return min(max(fraction, 0.0), 1.0), words[2] if len(words) > 2 else ""


class DrainedChild:
    """A child process whose stdout and stderr reader threads keep draining, so it never blocks on a
    full pipe; the last :data:`KEPT_LINES` of each are kept, and the latest progress line is parsed."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", env=env
        )
        self.stdout_lines: deque[str] = deque(maxlen=KEPT_LINES)
        self.stderr_lines: deque[str] = deque(maxlen=KEPT_LINES)
        self.progress: tuple[float, str] | None = None
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self.stdout_lines, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self.stderr_lines, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, pipe: IO[str], lines: deque[str], parse: bool) -> None:
        with pipe:
            for line in pipe:
                progress = parse_progress(line) if parse else None
                if progress is not None:
                    self.progress = progress  # one reference swap: safe to read from the main thread
                else:
                    lines.append(line.rstrip("\n"))

    def poll(self) -> int | None:
        return self.process.poll()

    def finish(self, timeout: float = 10.0) -> tuple[int, str, str]:
        """Wait for the child and its readers; (exit status, kept stdout, kept stderr)."""
        returncode = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=timeout)
        return returncode, "\n".join(self.stdout_lines), "\n".join(self.stderr_lines)

    def terminate(self) -> None:
        self.process.terminate()
        try:
            self.finish(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.finish()


def status_text(child: DrainedChild, resolution: int) -> str:
    """The status bar's line while ``child`` extracts."""
    if child.progress is None:
        return f"Fieldwork: extracting a mesh at {resolution}^3 (Esc cancels)"
    fraction, stage = child.progress
    return f"Fieldwork: extracting a mesh, {100 * fraction:.0f}% {stage} (Esc cancels)"


def poll_child(job: ExtractJob, child: DrainedChild) -> dict | None:
    """One timer tick of the modal Extract: None while the child runs, else its summary
    (or :class:`ExtractError`). Never blocks on the child's output."""
    if child.poll() is None:
        return None
    returncode, stdout, stderr = child.finish()
    return finished_job_result(job, returncode, stdout, stderr)


class FIELDWORK_OT_extract_mesh(bpy.types.Operator):
    """Extract a coloured mesh from a trained run (MISE + marching cubes) and import it, aligned with the scene"""

    bl_idname = "fieldwork.extract_mesh"
    bl_label = "Extract Mesh"
    bl_options = {"REGISTER", "UNDO"}

    run_dir: StringProperty(  # type: ignore[valid-type]
        name="Run Folder", subtype="DIR_PATH", options=properties.BLEND_RELATIVE
    )
    resolution: properties.MESH_RESOLUTION  # type: ignore[valid-type]
    level: FloatProperty(  # type: ignore[valid-type]
        name="Density Level",
        description="Surface density threshold of radiance fields (0: automatic, from the scene size); "
        "surface methods (NeuS, UNISURF) always extract at their own surface",
        min=0.0,
    )
    colour_from: EnumProperty(  # type: ignore[valid-type]
        name="Colours From",
        items=[
            ("auto", "Automatic", "The training images for a texture, the field for vertex colours"),
            ("field", "Field", "Volume-render the field along each vertex or texel normal"),
            ("views", "Training Images", "Average the training images that see each vertex or texel: sharper"),
        ],
        default="auto",
    )
    fill_unseen: properties.MESH_FILL_UNSEEN  # type: ignore[valid-type]
    keep_largest: IntProperty(  # type: ignore[valid-type]
        name="Keep Largest Parts", description="Keep only this many largest connected parts (0: all)", min=0
    )
    target_faces: IntProperty(  # type: ignore[valid-type]
        name="Target Faces", description="Decimate to at most this many faces (0: no decimation)", min=0
    )
    replace_previous: properties.MESH_REPLACE_PREVIOUS  # type: ignore[valid-type]
    colours: properties.MESH_COLOURS  # type: ignore[valid-type]
    texture_size: properties.MESH_TEXTURE_SIZE  # type: ignore[valid-type]
    texture_storage: properties.MESH_TEXTURE_STORAGE  # type: ignore[valid-type]

    _job: ExtractJob | None = None
    _child: DrainedChild | None = None
    _timer: bpy.types.Timer | None = None

    def _prepare(self, context: bpy.types.Context) -> ExtractJob:
        try:
            if self.run_dir:
                run_dir = paths.absolute_path(self.run_dir, "Run Folder").resolve()
            elif context.scene is not None:  # the run the Train button writes
                run_dir = (paths.output_folder(context.scene) / paths.RUN_FOLDER).resolve()
            else:
                raise ExtractError("No run folder given and no scene to take the Output Folder from")
        except paths.BlendRelativePathError as error:
            raise ExtractError(str(error)) from error
        if not run_dir.is_dir():
            raise ExtractError(f"Run folder {run_dir} does not exist: train first, or pick a run folder")
        return extract_job(
            preferences.resolve_engine_python(context),
            run_dir,
            self.resolution,
            device=preferences.get_preferences(context).device,
            level=self.level,
            colour_from=self.colour_from,
            fill_unseen=self.fill_unseen,
            keep_largest=self.keep_largest,
            target_faces=self.target_faces,
            texture=int(self.texture_size) if self.colours == "TEXTURE" else 0,
        )

    def _import(self, context: bpy.types.Context, job: ExtractJob, summary: dict) -> None:
        scene = context.scene
        if scene is None:
            raise ExtractError("No scene to import the mesh into")
        obj = importers.import_mesh_file(
            scene,
            job.out_path,
            source=str(job.run_dir),
            replace_previous=self.replace_previous,
            texture_storage=self.texture_storage,
        )
        select_only(context, obj)
        self.report(
            {"INFO"},
            f"Extracted {obj.name}: {summary['vertex_count']} vertices, {summary['face_count']} faces "
            f"in {summary['total_seconds']:.1f} s ({summary['n_queries']} field queries)",
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking: background mode, scripts, and the redo panel."""
        try:
            job = self._prepare(context)
            self._import(context, job, run_extract_job(job))
        except (ExtractError, engine_env.EngineSetupError, importers.MeshImportError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        try:
            self._job = self._prepare(context)
        except (ExtractError, engine_env.EngineSetupError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._child = DrainedChild(self._job.command, env=engine_env.engine_environment())
        self._timer = context.window_manager.event_timer_add(POLL_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(status_text(self._child, self.resolution))
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        assert self._child is not None and self._job is not None
        if event.type == "ESC":
            self._child.terminate()
            self._finish(context)
            self.report({"WARNING"}, "Mesh extraction cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            summary = poll_child(self._job, self._child)
            if summary is None:
                context.workspace.status_text_set(status_text(self._child, self.resolution))
                return {"PASS_THROUGH"}
            self._finish(context)
            self._import(context, self._job, summary)
        except (ExtractError, importers.MeshImportError) as exc:
            self._finish(context)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def _finish(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        context.workspace.status_text_set(None)


CLASSES = (FIELDWORK_OT_extract_mesh,)
