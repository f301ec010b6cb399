"""The whole Fieldwork job on the open .blend, headless: the demo and the batch script share it.

Stages, each timed and reported: export the cameras (render the views or take existing
images) -> train through the add-on's engine session (the client in background mode,
exactly what the Train button runs) -> extract a coloured mesh with ``python -m engine
extract`` (what the Extract button runs) -> import it into the "Fieldwork" collection ->
save the .blend -> ``report.json``.

The add-on's modules come from this checkout (``addon/``), imported without registering
anything, so a headless run needs no installed extension and leaves the user's Blender
preferences alone. Needs bpy; never imports torch (the engine process does).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy

REPO = Path(__file__).resolve().parent.parent
REPORT_NAME = "report.json"
DEFAULT_STEPS = 2000
DEFAULT_METHOD = "ngp"


class PipelineError(RuntimeError):
    """A stage failed; the message says what, and names the camera, file or value at fault."""


@dataclass(frozen=True)
class PipelineSettings:
    """What to train and how; written into ``report.json`` as given."""

    method: str = DEFAULT_METHOD  # any image method of engine.methods
    steps: int = DEFAULT_STEPS
    minutes: float = 0.0  # 0: no time budget
    resolution: int | None = None  # longest side of the rendered views; None keeps the scene's
    mesh_resolution: int = 128
    camera_collection: str = ""  # "" = every camera in the view layer
    box_object: str = ""  # "" = the bounds of the visible geometry
    images_dir: str = ""  # "" = render every camera
    engine_python: str = ""  # "" = $FIELDWORK_ENGINE_PYTHON, else this checkout's .venv
    device: str = "auto"
    seed: int = 0
    holdout_every: int = 8  # every n-th camera is held out for PSNR
    compile: str = "auto"  # torch.compile the field: auto | on | off (off starts at once; tiny runs want that)
    batch_rays: int = 0  # rays per training step; 0: the trainer's default
    warmup_steps: int = 0  # learning-rate warm-up; 0: the trainer's default (a few-step run wants a short one)
    mesh_level: float = 0.0  # surface density level per world unit; 0: the engine's automatic level
    texture: int = 0  # bake a UV texture this many texels square (256-8192, power of two); 0: vertex colours
    preview_every_s: float = 2.0
    preview_max_side: int = 128


@dataclass
class StageProgress:
    """What a progress callback receives: a stage, and within training the step counts and figures."""

    stage: str
    message: str = ""
    step: int = 0
    total_steps: int = 0
    psnr: float = 0.0
    elapsed_s: float = 0.0
    remaining_s: float = 0.0


ProgressCallback = Callable[[StageProgress], None]


@dataclass
class Report:
    """Collected while the pipeline runs; ``to_json`` is what ``report.json`` holds."""

    source_blend: str
    settings: PipelineSettings
    status: str = "running"  # running | ok | failed
    failed_stage: str = ""
    error: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    mesh: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failed_stage": self.failed_stage,
            "error": self.error,
            "source_blend": self.source_blend,
            "blender": bpy.app.version_string,
            "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "settings": dataclasses.asdict(self.settings),
            "timings_s": {name: round(seconds, 3) for name, seconds in self.timings_s.items()},
            "metrics": self.metrics,
            "training": self.training,
            "engine": self.engine,
            "mesh": self.mesh,
            "outputs": self.outputs,
            **self.extra,
        }


# --------------------------------------------------------------------------- the add-on


def addon() -> ModuleType:
    """This checkout's add-on package, imported (not registered) so its functions run headless."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("addon")


def addon_module(name: str) -> ModuleType:
    addon()
    return importlib.import_module(f"addon.{name}")


def resolve_engine_python(settings: PipelineSettings) -> Path:
    """``engine_python``, else ``$FIELDWORK_ENGINE_PYTHON``, else this checkout's ``.venv`` (scripts/setup.sh)."""
    engine_env = addon_module("engine_env")
    try:
        return engine_env.resolve_engine_python(settings.engine_python, None)
    except engine_env.EngineSetupError as error:
        checkout_python = engine_env.venv_python(REPO / ".venv")
        if not settings.engine_python and checkout_python.is_file():
            return checkout_python
        raise PipelineError(str(error)) from error


# --------------------------------------------------------------------------- files


def open_blend(path: Path) -> None:
    """Open a .blend in this Blender; a missing or unreadable file is a :class:`PipelineError`."""
    if not path.is_file():
        raise PipelineError(f"{path}: no such .blend file")
    try:
        bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    except RuntimeError as error:
        raise PipelineError(f"{path}: Blender cannot open it: {str(error).strip()}") from error


def save_blend_copy(target: Path) -> Path:
    """Save the open file as ``target`` atomically: a temporary name in the same folder, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name that does not exist yet: Blender would keep an existing file at the temporary name as a .blend1.
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.{time.monotonic_ns()}.blend")
    try:
        # copy=True: the session keeps its own file path; relative paths are remapped to the new folder.
        result = bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True, relative_remap=True)
        if result != {"FINISHED"}:
            raise PipelineError(f"Blender could not save {target} ({sorted(result)})")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    from engine.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(document, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_failure_report(out_dir: Path, blend: Path, settings: PipelineSettings, stage: str, error: str) -> Path:
    report = Report(source_blend=str(blend), settings=settings, status="failed", failed_stage=stage, error=error)
    write_json_atomic(out_dir / REPORT_NAME, report.to_json())
    return out_dir / REPORT_NAME


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """A text progress bar on stderr: redrawn in place on a terminal, a line every few seconds in a log."""

    WIDTH = 30
    LOG_INTERVAL_S = 5.0

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_line = 0.0
        self._stage = ""

    def __call__(self, progress: StageProgress) -> None:
        now = time.monotonic()
        new_stage = progress.stage != self._stage
        if new_stage and self.interactive and self._stage:
            self.stream.write("\n")
        self._stage = progress.stage
        if progress.total_steps > 0:
            fraction = min(1.0, progress.step / progress.total_steps)
            if progress.elapsed_s > 0:
                # A time budget ends a run before its step count: the engine's remaining time says how far it is.
                fraction = max(fraction, progress.elapsed_s / (progress.elapsed_s + progress.remaining_s))
            filled = round(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            if progress.stage == "evaluate":
                line = f"{progress.stage:<8}[{bar}] view {progress.step}/{progress.total_steps}"
            else:
                line = (
                    f"{progress.stage:<8}[{bar}] {fraction * 100:5.1f}% step {progress.step}/{progress.total_steps}"
                    f"  PSNR {progress.psnr:5.2f} dB  {_clock(progress.elapsed_s)} elapsed,"
                    f" {_clock(progress.remaining_s)} left"
                )
        else:
            line = f"{progress.stage:<8}{progress.message}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(110))
            self.stream.flush()
        elif new_stage or now - self._last_line >= self.LOG_INTERVAL_S or progress.step == progress.total_steps > 0:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line = now

    def close(self) -> None:
        if self.interactive and self._stage:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def print_progress(progress: StageProgress) -> None:
    """Progress for the batch script's children: one bar for the process, redrawn in place on a terminal
    and a line every few seconds in a log."""
    _PLAIN_BAR(progress)


_PLAIN_BAR = ProgressBar()


# --------------------------------------------------------------------------- images


def write_png(path: Path, rgba: Any) -> Path:
    """Write (height, width, 4) uint8 RGBA, top row first, as an 8-bit PNG, atomically. numpy + stdlib only."""
    import struct
    import zlib

    import numpy as np

    pixels = np.ascontiguousarray(rgba, dtype=np.uint8)
    height, width, channels = pixels.shape
    if channels != 4:
        raise ValueError(f"write_png needs RGBA pixels, got {channels} channels for {path}")
    # Filter type 0 (none) before every row.
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), pixels.reshape(height, width * 4)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
    from engine.atomic import write_bytes_atomic

    return write_bytes_atomic(path, data)


def read_rgba(path: Path) -> Any:
    """(height, width, 4) float32 RGBA in [0, 1], top row first, as stored in the file (no colour conversion)."""
    import numpy as np

    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]


def frame_rgba(frame: Any) -> Any:
    """A protocol PreviewFrame as (height, width, 4) uint8, top row first."""
    import numpy as np

    return np.frombuffer(frame.payload, dtype=np.uint8).reshape(frame.height, frame.width, 4)[::-1]


def side_by_side(left: Any, right: Any, gap: int = 4) -> Any:
    """Two (h, w, 4) float RGBA images over white, next to each other: (h, w_left + gap + w_right, 4) uint8."""
    import numpy as np

    def over_white(rgba: Any) -> Any:
        alpha = rgba[..., 3:4]
        return rgba[..., :3] * alpha + (1.0 - alpha)

    height = max(left.shape[0], right.shape[0])
    canvas = np.ones((height, left.shape[1] + gap + right.shape[1], 3), dtype=np.float32)
    canvas[: left.shape[0], : left.shape[1]] = over_white(left)
    canvas[: right.shape[0], left.shape[1] + gap :] = over_white(right)
    rgba = np.concatenate([canvas, np.ones((height, canvas.shape[1], 1), dtype=np.float32)], axis=2)
    return (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- the pipeline


@dataclass
class _SessionEvents:
    """Collects what the engine session says while it trains; streams previews to files."""

    progress: ProgressCallback
    preview_dir: Path | None
    protocol: ModuleType
    welcome: Any = None
    done: Any = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    preview_files: list[Path] = field(default_factory=list)

    def __call__(self, session: Any, result: Any) -> None:
        protocol = self.protocol
        for event in result.events:
            if isinstance(event, protocol.Welcome):
                self.welcome = event
            elif isinstance(event, protocol.Done):
                self.done = event
            elif isinstance(event, protocol.Error):
                self.errors.append(event.message)
            elif isinstance(event, protocol.Warning):
                # Python warnings arrive with their source line; the first line says what happened.
                self.warnings.append(event.message.strip().splitlines()[0] if event.message.strip() else "")
        if result.latest_frame is not None:
            self.save_preview(result.latest_frame)
        last = session.state.progress
        if result.progressed and last is not None:
            self.progress(
                StageProgress(
                    "train" if last.phase == "train" else "evaluate",
                    step=last.step,
                    total_steps=last.total_steps,
                    psnr=float(last.figures.get("psnr", 0.0)),
                    elapsed_s=last.elapsed_s,
                    remaining_s=last.remaining_s,
                )
            )

    def save_preview(self, frame: Any) -> None:
        if self.preview_dir is None or frame.mode != "color":
            return
        path = self.preview_dir / f"preview-{frame.step:06d}.png"
        write_png(path, frame_rgba(frame))
        self.preview_files.append(path)


def _timed_stage(report: Report, name: str, started: float) -> None:
    report.timings_s[name] = time.perf_counter() - started


def _camera_objects(collection_name: str) -> list[bpy.types.Object] | None:
    """The cameras of the named collection (by name), or None for capture's default (all in the view layer)."""
    if not collection_name:
        return None
    collection = bpy.data.collections.get(collection_name)
    if collection is None:
        known = ", ".join(sorted(c.name for c in bpy.data.collections)) or "none"
        raise PipelineError(f"no collection named {collection_name!r} (collections: {known})")
    cameras = sorted((obj for obj in collection.all_objects if obj.type == "CAMERA"), key=lambda obj: obj.name)
    if not cameras:
        raise PipelineError(f"collection {collection_name!r} holds no cameras")
    return cameras


def _box_object(name: str) -> bpy.types.Object | None:
    if not name:
        return None
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise PipelineError(f"no object named {name!r} for the scene box")
    return obj


class _RenderResolution:
    """Temporarily render with the longest side at ``resolution`` pixels (aspect kept); restored on exit."""

    def __init__(self, scene: bpy.types.Scene, resolution: int | None) -> None:
        self.render = scene.render
        self.resolution = resolution
        self.saved = (self.render.resolution_x, self.render.resolution_y, self.render.resolution_percentage)

    def __enter__(self) -> None:
        if self.resolution is None:
            return
        if self.resolution < 4:
            raise PipelineError(f"resolution must be at least 4 pixels, got {self.resolution}")
        width, height, _ = self.saved
        scale = self.resolution / max(width, height)
        self.render.resolution_x = max(1, round(width * scale))
        self.render.resolution_y = max(1, round(height * scale))
        self.render.resolution_percentage = 100

    def __exit__(self, *_exc: object) -> None:
        self.render.resolution_x, self.render.resolution_y, self.render.resolution_percentage = self.saved


def train_overrides(settings: PipelineSettings) -> dict[str, Any]:
    """Trainer config fields beyond the Train command's own, as the session's ``settings`` carries them."""
    overrides: dict[str, Any] = {"compile": settings.compile}
    if settings.batch_rays:
        overrides["batch_rays"] = settings.batch_rays
    if settings.warmup_steps:
        overrides["warmup_steps"] = settings.warmup_steps
    return overrides


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return text if text else f"{type(error).__name__} (no message)"


def reconstruct_open_file(
    settings: PipelineSettings,
    out_dir: Path,
    *,
    blend_target: Path | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    preview_dir: Path | None = None,
) -> Report:
    """Run every stage on the open file's active scene; always writes ``out_dir/report.json``.

    The result is saved to ``blend_target``, else over the open file with ``overwrite``, else to
    ``out_dir/<name>_fieldwork.blend``. Nothing is saved when a stage fails, so the user's
    file stays as it was. Returns the report (``status`` "ok" or "failed").
    """
    progress = progress or (lambda _progress: None)
    source = Path(bpy.data.filepath).resolve() if bpy.data.filepath else None
    out_dir = out_dir.resolve()
    report = Report(source_blend=str(source) if source else "", settings=settings)
    run_started = time.perf_counter()
    stage = "engine"
    session = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        capture = addon_module("capture")
        client = addon_module("client")
        importers = addon_module("importers")
        extract_mesh = addon_module("operators.extract_mesh")
        protocol = addon_module("engine.protocol")

        started = time.perf_counter()
        python = resolve_engine_python(settings)
        report.engine["python"] = str(python)
        _timed_stage(report, stage, started)

        stage = "export"
        started = time.perf_counter()
        scene = bpy.context.scene
        dataset_dir = out_dir / "dataset"
        progress(StageProgress("render", f"exporting the cameras of scene {scene.name!r}"))

        def export_progress(done: int, total: int) -> None:
            progress(StageProgress("render", f"view {done}/{total}"))

        with _RenderResolution(scene, settings.resolution):
            capture.export_dataset(
                scene,
                dataset_dir,
                cameras=_camera_objects(settings.camera_collection),
                image_source="folder" if settings.images_dir else "render",
                image_folder=Path(settings.images_dir) if settings.images_dir else None,
                scene_box_object=_box_object(settings.box_object),
                holdout_every=settings.holdout_every,
                progress=export_progress,
                overwrite=True,
            )
        report.outputs["dataset"] = str(dataset_dir)
        _timed_stage(report, stage, started)

        stage = "train"
        started = time.perf_counter()
        run_dir = extract_mesh.numbered_path(out_dir / "run")  # a rerun never mixes with an old run
        report.outputs["run"] = str(run_dir)
        events = _SessionEvents(progress, preview_dir, protocol)
        session = client.start_session(f"headless-{os.getpid()}", python, label=f"scene {scene.name!r}")
        session.send(
            protocol.Train(
                dataset=str(dataset_dir),
                out_dir=str(run_dir),
                method=settings.method,
                steps=settings.steps,
                minutes=settings.minutes,
                device=settings.device,
                seed=settings.seed,
                preview_every_s=settings.preview_every_s,
                preview_max_side=settings.preview_max_side,
                settings=train_overrides(settings),
            )
        )
        try:
            state = session.run_to_completion(on_drain=events)
        except client.EngineError as error:
            detail = _describe(error) if str(error).strip() else "; ".join(events.errors) or "no message"
            raise PipelineError(f"the engine failed: {detail}") from error
        # Events that arrived after Done (the final preview) are still queued.
        events(session, session.drain(budget_s=1.0))
        if events.done is None or events.done.reason != "finished":
            reason = events.done.reason if events.done is not None else state.status
            detail = "; ".join(events.errors) or "\n".join(session.last_log_lines())
            raise PipelineError(f"training ended as {reason!r}, not finished: {detail}")
        if events.welcome is not None:
            report.engine.update(
                device=events.welcome.device,
                torch_version=events.welcome.torch_version,
                engine_version=events.welcome.engine_version,
            )
        report.metrics.update(events.done.metrics)
        last = state.progress
        report.training.update(
            steps=events.done.step,
            checkpoint=events.done.checkpoint,
            train_psnr=state.figures.get("psnr"),
            last_rays_per_second=state.figures.get("rays_per_second"),
            engine_seconds=last.elapsed_s if last is not None else None,
            previews_received=state.frames_received,
            warnings=events.warnings[-5:],
        )
        if events.preview_files:
            report.outputs["previews"] = str(preview_dir)
            report.outputs["preview"] = str(events.preview_files[-1])
        _timed_stage(report, stage, started)

        stage = "extract"
        started = time.perf_counter()
        progress(StageProgress("extract", f"marching cubes at {settings.mesh_resolution}^3"))
        job = extract_mesh.extract_job(
            python,
            run_dir,
            settings.mesh_resolution,
            device=settings.device,
            level=settings.mesh_level,
            texture=settings.texture,
        )
        summary = extract_mesh.run_extract_job(job)
        mesh_path = job.out_path
        report.outputs["mesh"] = str(mesh_path)
        report.mesh.update(
            vertices=summary.get("vertex_count"),
            faces=summary.get("face_count"),
            field_queries=summary.get("n_queries"),
            extract_seconds=summary.get("total_seconds"),
            texture=summary.get("texture_path"),
            bake_seconds=summary.get("bake_seconds"),
        )
        _timed_stage(report, stage, started)

        stage = "import"
        started = time.perf_counter()
        mesh_object = importers.import_mesh_file(scene, mesh_path, source=str(run_dir))
        report.mesh["object"] = mesh_object.name
        report.mesh["collection"] = importers.COLLECTION_NAME
        _timed_stage(report, stage, started)

        stage = "save"
        started = time.perf_counter()
        if blend_target is None:
            if overwrite and source is not None:
                blend_target = source
            else:
                blend_target = out_dir / f"{source.stem if source else 'scene'}_fieldwork.blend"
        progress(StageProgress("save", f"saving {blend_target}"))
        save_blend_copy(blend_target)
        report.outputs["blend"] = str(blend_target)
        _timed_stage(report, stage, started)
        report.status = "ok"
    except Exception as error:
        report.status = "failed"
        report.failed_stage = stage
        report.error = _describe(error)
        if not isinstance(error, PipelineError):
            report.extra["traceback"] = traceback.format_exc()
    finally:
        if session is not None:
            session.close()
        report.timings_s["total"] = time.perf_counter() - run_started
        write_json_atomic(out_dir / REPORT_NAME, report.to_json())
    return report


def render_camera(python: Path, run_dir: Path, frame_index: int, out_dir: Path, device: str = "auto") -> Path:
    """``python -m engine render RUN --camera INDEX``: the trained field's colour image of a dataset frame.

    Returns the path of the 8-bit RGB PNG (composited over white, as the engine evaluates held-out views).
    """
    engine_env = addon_module("engine_env")
    name = f"frame_{frame_index}"
    command = engine_env.engine_command(
        python, "render", str(run_dir), "--camera", str(frame_index), "--out", str(out_dir),
        "--name", name, "--device", device, "--overwrite",
    )  # fmt: skip
    environment = engine_env.engine_environment()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {completed.returncode}"
        raise PipelineError(f"rendering frame {frame_index} of {run_dir} failed: {reason}")
    return out_dir / f"{name}_rgb.png"
