"""The live session the add-on talks to: ``python -m engine serve``.

stdin carries framed commands, stdout carries framed events and nothing else (stray
prints go to stderr), logs go to stderr and to ``engine.log`` in the run folder.

One thread reads stdin into a queue; the main thread owns the trainer and handles
commands between training steps, so a command never waits longer than one step.
Previews are rendered between steps too, at a rate and size chosen from measured
times so that previews take a small, fixed share of the wall clock
(:class:`PreviewScheduler`). The end of stdin means the add-on is gone: the session
writes a checkpoint and exits, so an engine never outlives its Blender.

numpy and torch are imported only after the handshake has checked they exist, so an
interpreter without them gets a protocol error that says how to install them.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import __version__, protocol
from .render.preview import PreviewScheduler, PreviewView, preview_pixels
from .train.run_folder import LOCK_FILE_NAME, RunFolder

__all__ = ["LOCK_FILE_NAME", "PreviewScheduler", "PreviewView", "Session", "serve"]

if TYPE_CHECKING:
    from .data.transforms import Transforms

LOG = logging.getLogger("fieldwork.engine")
LOG_FILE_NAME = "engine.log"
LAYOUT_PREVIEW_MAX_SIDE = 64  # the viewport's previews of a run opened for layouts (SetView)

# Exit statuses the add-on can tell apart.
EXIT_OK = 0
EXIT_HANDSHAKE_FAILED = 2
EXIT_MISSING_DEPENDENCY = 3


# --------------------------------------------------------------------------- transport


class EventWriter:
    """Frames events onto a binary stream; safe to call from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.closed = False

    def send(self, message: protocol.Message) -> None:
        data = protocol.encode(message)
        with self._lock:
            if self.closed:
                return
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # The add-on is gone; the reader sees the end of stdin and shuts the session down.
                self.closed = True


@dataclass(frozen=True)
class InvalidCommand:
    """A well-framed command that could not be decoded; the stream goes on."""

    reason: str


@dataclass(frozen=True)
class InputEnded:
    """stdin ended (the add-on closed it or died) or became garbage (``reason`` says which)."""

    reason: str
    broken: bool


Incoming = protocol.Message | InvalidCommand | InputEnded


def read_commands(fd: int, inbox: queue.Queue[Incoming], chunk_size: int = 1 << 16) -> None:
    """Reader thread body: decode frames from ``fd`` until it ends or breaks; never raises."""
    decoder = protocol.FrameDecoder()
    try:
        while True:
            chunk = os.read(fd, chunk_size)
            if not chunk:
                decoder.check_eof()
                inbox.put(InputEnded("the add-on closed the session", broken=False))
                return
            decoder.feed(chunk)
            while True:
                try:
                    message = decoder.next_message()
                except protocol.MessageError as exc:
                    inbox.put(InvalidCommand(str(exc)))
                    continue
                if message is None:
                    break
                inbox.put(message)
    except protocol.FramingError as exc:
        inbox.put(InputEnded(f"unreadable command stream: {exc}", broken=True))
    except OSError as exc:
        inbox.put(InputEnded(f"cannot read commands: {exc}", broken=True))


class ProtocolLogHandler(logging.Handler):
    """Forwards log records to the add-on: as :class:`protocol.Warning` or as :class:`protocol.Log`.

    The session's own warnings and errors are sent as events where they happen, with
    more context, so on the session logger only records below WARNING are forwarded.
    """

    def __init__(self, writer: EventWriter, as_warnings: bool) -> None:
        super().__init__(level=logging.WARNING if as_warnings else logging.INFO)
        self._writer = writer
        self._as_warnings = as_warnings

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if self._as_warnings:
            self._writer.send(protocol.Warning(message=text))
        elif record.levelno < logging.WARNING:
            self._writer.send(protocol.Log(level=record.levelname.lower(), message=text))


# --------------------------------------------------------------------------- the session


@dataclass
class SessionClock:
    """Wall time per step averaged over recent steps, previews included (for the remaining-time estimate)."""

    started: float = field(default_factory=time.perf_counter)
    seconds_per_step: float = 0.0
    _last: float = field(default_factory=time.perf_counter)

    def tick(self) -> None:
        now = time.perf_counter()
        spent, self._last = now - self._last, now
        self.seconds_per_step = spent if self.seconds_per_step == 0.0 else 0.9 * self.seconds_per_step + 0.1 * spent


class Session:
    """Handles the command stream; owns the trainer. ``run`` returns the process exit status."""

    PROGRESS_INTERVAL_S = 0.1

    def __init__(self, writer: EventWriter, inbox: queue.Queue[Incoming]) -> None:
        self.writer = writer
        self.inbox = inbox
        self.trainer: Any = None
        self.training = False
        self.paused = False
        self.running = True
        self.view: PreviewView | None = None
        self.view_changed = False
        self.scheduler = PreviewScheduler()
        self.streaming_previews = True
        self.preview_seconds = 0.0
        self.clock = SessionClock()
        self._last_progress = -math.inf
        self._run_folder: RunFolder | None = None
        self.layouts: Any = None  # engine.layout_service.LayoutService of a run opened for layouts
        self._log_file: logging.Handler | None = None
        self._handlers: dict[type[protocol.Message], Callable[[Any], None]] = {
            protocol.Train: self._on_train,
            protocol.Pause: self._on_pause,
            protocol.Resume: self._on_resume,
            protocol.Stop: self._on_stop,
            protocol.SetView: self._on_set_view,
            protocol.RenderView: self._on_render_view,
            protocol.Extract: self._on_extract,
            protocol.OpenRun: self._on_open_run,
            protocol.SampleLayout: self._on_sample_layout,
            protocol.RenderLayout: self._on_render_layout,
            protocol.Shutdown: self._on_shutdown,
        }

    # -- handshake -----------------------------------------------------------------

    def handshake(self, timeout_s: float = 60.0) -> int | None:
        """Wait for Hello and answer Welcome. Returns an exit status when the session must end."""
        try:
            first = self.inbox.get(timeout=timeout_s)
        except queue.Empty:
            self._fatal(f"no hello within {timeout_s:.0f} s")
            return EXIT_HANDSHAKE_FAILED
        if not isinstance(first, protocol.Hello):
            described = first.reason if isinstance(first, InvalidCommand | InputEnded) else first.type
            self._fatal(f"expected hello as the first command, got {described}")
            return EXIT_HANDSHAKE_FAILED
        try:
            protocol.check_version(first.protocol_version, f"the add-on ({first.client or 'unnamed client'})")
        except protocol.ProtocolError as exc:
            self._fatal(str(exc))
            return EXIT_HANDSHAKE_FAILED
        missing = [name for name in ("torch", "numpy") if importlib.util.find_spec(name) is None]
        if missing:
            requirements = Path(__file__).resolve().parent / "requirements.txt"
            self._fatal(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed for {sys.executable}. "
                f"In Blender use Preferences > Add-ons > Fieldwork > Set up engine, or run: "
                f"{sys.executable} -m pip install -r {requirements}"
            )
            return EXIT_MISSING_DEPENDENCY
        import torch

        from .device import pick_device

        self.writer.send(
            protocol.Welcome(
                engine_version=__version__,
                torch_version=torch.__version__,
                device=pick_device("auto").type,
                pid=os.getpid(),
                session_id=first.session_id,
            )
        )
        LOG.info("session %s started (engine %s, pid %d)", first.session_id or "-", __version__, os.getpid())
        self.writer.send(protocol.Status(state="idle"))
        return None

    # -- main loop -----------------------------------------------------------------

    def run(self, handshake_timeout_s: float = 60.0) -> int:
        status = self.handshake(handshake_timeout_s)
        if status is not None:
            return status
        from .train.run_folder import StopSignals

        # SIGTERM (a killed Blender's session manager, a batch system) and Ctrl-C end the session as Stop does:
        # the checkpoint is written first
        with StopSignals() as signals:
            try:
                while self.running and not signals.requested:
                    active = self.training and not self.paused
                    self._handle_commands(block=not active)
                    if self.training and not self.paused and self.running:
                        self._train_one_step()
                if signals.requested:
                    LOG.info("%s: stopping the session", signals.signal_name)
                    self._finish_training("stopped")
            finally:
                self._release_run_dir()
        return EXIT_OK

    def _handle_commands(self, block: bool) -> None:
        """Handle everything queued; when idle, wait (briefly, so shutdown stays prompt) for a command."""
        try:
            item = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(item)
            if not self.running:
                return
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, item: Incoming) -> None:
        if isinstance(item, InvalidCommand):
            LOG.warning("ignored an invalid command: %s", item.reason)
            self.writer.send(protocol.Error(message=f"invalid command ignored: {item.reason}"))
            return
        if isinstance(item, InputEnded):
            if item.broken:
                self.writer.send(protocol.Error(message=item.reason, fatal=True))
            LOG.info("input ended (%s): stopping", item.reason)
            self._finish_training("stopped")
            self.running = False
            return
        handler = self._handlers.get(type(item))
        if handler is None:
            self.writer.send(protocol.Error(message=f"{item.type!r} is not a command the engine accepts"))
            return
        try:
            handler(item)
        except Exception as exc:
            LOG.exception("%s failed", item.type)
            self.writer.send(
                protocol.Error(
                    message=f"{item.type} failed: {exc}", traceback=traceback.format_exc(), command=item.type
                )
            )

    # -- commands ------------------------------------------------------------------

    def _on_train(self, command: protocol.Train) -> None:
        if self.training:
            raise RuntimeError("a training run is already in progress; stop it first")
        from .data.transforms import read_transforms
        from .train.run_folder import DatasetIdentity, claim_run_folder

        if not command.out_dir:
            raise ValueError("train: out_dir is empty")
        out_dir = Path(command.out_dir).expanduser()
        dataset = Path(command.dataset).expanduser()
        config = train_config(command)  # a bad setting fails here, named, before anything is written
        identity = DatasetIdentity.of_data(config.spec.family, dataset)  # so does a bad dataset
        self._release_run_dir()
        # The add-on renders its dataset again before each Train, into the same folder: a changed scene
        # there continues the run. A dataset in another folder must be the same frames.
        self._run_folder = claim_run_folder(out_dir, identity, allow_changed_in_place=True)
        if self._run_folder.previous_dataset is not None:
            self.writer.send(
                protocol.Warning(
                    message=f"resuming {out_dir} on {dataset}, whose frames changed since the run began "
                    f"({self._run_folder.previous_dataset.frame_count} frames, now {identity.frame_count})"
                )
            )
        self._attach_log_file(out_dir / LOG_FILE_NAME)
        from .train.trainer import Trainer

        LOG.info("training %s on %s into %s", command.method, dataset, out_dir)
        self.layouts = None  # the run trained now is what previews and extracts show
        self.trainer = Trainer.create(dataset, out_dir, config)
        self.streaming_previews = command.preview_every_s > 0
        self.scheduler = PreviewScheduler(
            min_interval_s=max(0.05, command.preview_every_s), max_side=max(16, command.preview_max_side)
        )
        if self.view is None and config.spec.family == "images":
            self.view = default_view(read_transforms(dataset))
        self.training, self.paused = True, False
        self.clock = SessionClock()
        self.preview_seconds = 0.0
        self.writer.send(protocol.Status(state="training", step=self._step()))

    def _on_pause(self, _: protocol.Pause) -> None:
        if not self.training:
            raise RuntimeError("nothing is training")
        self.paused = True
        LOG.info("paused at step %d", self._step())
        self.writer.send(protocol.Status(state="paused", step=self._step()))

    def _on_resume(self, _: protocol.Resume) -> None:
        if not self.training:
            raise RuntimeError("nothing is training")
        self.paused = False
        self.clock = SessionClock(started=self.clock.started)
        LOG.info("resumed at step %d", self._step())
        self.writer.send(protocol.Status(state="training", step=self._step()))

    def _on_stop(self, _: protocol.Stop) -> None:
        if not self.training:
            self.writer.send(protocol.Warning(message="stop: nothing is training"))
            return
        self._finish_training("stopped")

    def _on_set_view(self, command: protocol.SetView) -> None:
        self.view = PreviewView.from_message(command)
        self.view_changed = True
        if self.trainer is not None and not (self.training and not self.paused):
            # Nothing else is using the time: answer the new view at once.
            self._send_preview()

    def _on_render_view(self, command: protocol.RenderView) -> None:
        if self.trainer is None:
            raise RuntimeError("render_view: no field yet, send train first")
        view = PreviewView.from_message(command)
        self._send_frame(view, request_id=command.request_id)

    def _on_extract(self, command: protocol.Extract) -> None:
        if self.trainer is None:
            raise RuntimeError("extract: no field yet, send train first")
        from .mesh import extract_to_file

        result = extract_to_file(self.trainer, Path(command.out_path), command.resolution, **command.settings)
        self.writer.send(
            protocol.MeshReady(path=str(result.path), vertex_count=result.vertex_count, face_count=result.face_count)
        )

    # -- layouts (protocol 3) --------------------------------------------------------

    def _on_open_run(self, command: protocol.OpenRun) -> None:
        if self.training:
            raise RuntimeError("open_run: a training run is in progress; stop it first")
        from .layout_service import LayoutService

        run_dir = Path(command.run_dir).expanduser()
        service = LayoutService(run_dir, device=command.device)  # refuses runs that make no layouts, named
        self.layouts, self.trainer = service, service.trainer
        # Viewport previews of a layout stay small: render_layout requests, the artist's edits, come first.
        self.scheduler = PreviewScheduler(max_side=LAYOUT_PREVIEW_MAX_SIDE)
        LOG.info("opened %s run %s at step %d for layouts", service.method, run_dir, service.step)
        self.writer.send(
            protocol.RunOpened(run_dir=str(run_dir), method=service.method, step=service.step, facts=service.facts())
        )

    def _layout_service(self, command: str) -> Any:
        if self.layouts is None:
            raise RuntimeError(f"{command}: no run is open for layouts, send open_run first")
        return self.layouts

    def _on_sample_layout(self, command: protocol.SampleLayout) -> None:
        service = self._layout_service("sample_layout")
        n_objects = command.n_objects if command.n_objects >= 0 else None
        document, proxies, payload = service.sample(command.seed, n_objects, command.proxy_resolution)
        self.writer.send(
            protocol.LayoutReady(request_id=command.request_id, layout=document, proxies=proxies, payload=payload)
        )

    def _on_render_layout(self, command: protocol.RenderLayout) -> None:
        import numpy as np

        from . import layouts as layout_format
        from .layout_service import alpha_layers, alpha_pixels

        service = self._layout_service("render_layout")
        layout = layout_format.Layout.from_dict(command.layout, "render_layout.layout")
        fields = ("camera_to_world", "fl_x", "fl_y", "cx", "cy", "width", "height")
        view = PreviewView.from_message(protocol.RenderView(**{name: getattr(command, name) for name in fields}))
        rendered = service.render(layout, _layout_camera(view))
        layers = alpha_layers(len(layout.objects)) if command.alphas else 0
        opaque = np.ones_like(rendered.depth)
        self.writer.send(
            protocol.PreviewFrame(
                width=view.width,
                height=view.height,
                mode="color",
                step=service.step,
                request_id=command.request_id,
                layers=layers,
                payload=preview_pixels(rendered.colour, rendered.depth, opaque, "color"),
            )
        )
        for layer in range(layers):
            self.writer.send(
                protocol.PreviewFrame(
                    width=view.width,
                    height=view.height,
                    mode="alpha",
                    step=service.step,
                    request_id=command.request_id,
                    layer=layer,
                    layers=layers,
                    payload=alpha_pixels(rendered.alphas, layer),
                )
            )

    def _on_shutdown(self, _: protocol.Shutdown) -> None:
        self._finish_training("stopped")
        self.running = False

    # -- training ------------------------------------------------------------------

    def _train_one_step(self) -> None:
        try:
            stats = self.trainer.train_step()
        except Exception as exc:
            LOG.exception("training step failed")
            self.writer.send(
                protocol.Error(message=f"training failed: {exc}", traceback=traceback.format_exc(), fatal=False)
            )
            self._finish_training("failed")
            return
        self.clock.tick()
        done = self.trainer.is_done()
        now = time.perf_counter()
        if done or now - self._last_progress >= self.PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.writer.send(self._progress(stats))
        if done:
            self._finish_training("finished")
        elif self.streaming_previews and self._previewable() and self.scheduler.due(now, self.view_changed):
            self._try_preview()

    def _progress(self, stats: Any) -> protocol.Progress:
        # The trainer's own budget: Train.settings may override the command's steps and minutes.
        total, minutes = self.trainer.config.steps, self.trainer.config.minutes
        remaining_s = max(0, total - stats.step) * self.clock.seconds_per_step
        elapsed = time.perf_counter() - self.clock.started
        if minutes > 0:
            remaining_s = min(remaining_s, max(0.0, minutes * 60.0 - elapsed))
        figures = {"loss": _finite(stats.loss), **{name: _finite(value) for name, value in stats.figures.items()}}
        return protocol.Progress(
            step=int(stats.step),
            total_steps=int(total),
            figures=figures,
            elapsed_s=elapsed,
            remaining_s=remaining_s,
            preview_s=self.preview_seconds,
        )

    def _finish_training(self, reason: str) -> None:
        if not self.training:
            return
        self.training = False
        checkpoint = ""
        try:
            checkpoint = str(self.trainer.save_checkpoint())
            self.writer.send(protocol.Checkpoint(path=checkpoint, step=self._step()))
        except Exception as exc:
            LOG.exception("could not write the checkpoint")
            self.writer.send(protocol.Error(message=f"could not write the checkpoint: {exc}"))
        metrics: dict[str, Any] = {}
        if reason == "finished":
            try:
                trainer = self.trainer
                if trainer.spec.family == "images" and trainer.config.eval_views != 0:
                    evaluated = trainer.evaluate(
                        limit=trainer.config.eval_views,
                        on_view=self._evaluation_progress,
                        max_seconds=trainer.evaluation_seconds_bound(),
                    )
                else:
                    evaluated = trainer.evaluate_run()
                metrics = _json_metrics(evaluated)
            except Exception as exc:
                LOG.exception("evaluation failed")
                self.writer.send(protocol.Warning(message=f"evaluation failed: {exc}"))
        LOG.info("training %s at step %d", reason, self._step())
        self.writer.send(protocol.Done(reason=reason, step=self._step(), checkpoint=checkpoint, metrics=metrics))
        if self._previewable() and reason == "finished":
            self._try_preview()  # the final picture, whatever the schedule said

    def _evaluation_progress(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.clock.started
        self.writer.send(protocol.Progress(step=done, total_steps=total, phase="evaluate", elapsed_s=elapsed))

    def _step(self) -> int:
        return int(self.trainer.step) if self.trainer is not None else 0

    # -- previews ------------------------------------------------------------------

    def _try_preview(self) -> None:
        """A streamed preview between training steps: a view that cannot be rendered is an error event
        and is dropped (the next set_view brings previews back); training goes on."""
        try:
            self._send_preview()
        except Exception as exc:
            LOG.exception("preview failed")
            self.writer.send(
                protocol.Error(
                    message=f"preview of view {self.view.view_id if self.view else 0} failed, previews stop until "
                    f"the next set_view: {exc}",
                    traceback=traceback.format_exc(),
                    command="set_view",
                )
            )
            self.view = None
            self.view_changed = False

    def _previewable(self) -> bool:
        """A view to render from, or a method whose preview needs none (a generative model's samples)."""
        return self.view is not None or (self.trainer is not None and not self.trainer.spec.renders)

    def _send_preview(self) -> None:
        started = time.perf_counter()
        if self.view is None:  # a generative model's sample grid
            self._send_sample_grid(0)
            self.preview_seconds += time.perf_counter() - started
            return
        view = self.view.scaled_to(self.scheduler.side(self.view_changed))
        self._send_frame(view)
        self.view_changed = False
        ended = time.perf_counter()
        self.scheduler.record(ended - started, view.width * view.height, ended)
        self.preview_seconds += ended - started

    def _send_frame(self, view: PreviewView, request_id: int = 0) -> None:
        import numpy as np

        from .data.transforms import Intrinsics

        if self.layouts is not None:
            self._send_layout_frame(view, request_id)
            return
        if not self.trainer.spec.renders:
            self._send_sample_grid(request_id)
            return

        intrinsics = Intrinsics(
            fl_x=view.fl_x, fl_y=view.fl_y, cx=view.cx, cy=view.cy, width=view.width, height=view.height
        )
        rendered = self.trainer.render(view.camera_to_world, intrinsics)
        payload = preview_pixels(
            np.asarray(rendered.rgb), np.asarray(rendered.depth), np.asarray(rendered.opacity), view.mode
        )
        self.writer.send(
            protocol.PreviewFrame(
                width=view.width,
                height=view.height,
                mode=view.mode,
                step=self._step(),
                request_id=request_id,
                view_id=view.view_id,
                payload=payload,
            )
        )

    def _send_sample_grid(self, request_id: int) -> None:
        """A generative model's preview while it trains: its grid of images from fixed latents (the run's
        samples/latest.png), whatever the view; a method with neither rays nor samples has no preview."""
        import numpy as np

        model = self.trainer.model
        sample_images = getattr(model, "sample_images", None)
        if sample_images is None:
            raise RuntimeError(f"{self.trainer.config.method} has no preview: it renders no rays and no samples")
        from .fields.generative import SAMPLE_SEED, image_grid

        images, _ = sample_images(model.settings.sample_grid, SAMPLE_SEED)
        model.train()
        rgb = image_grid(images).astype(np.float32) / 255.0
        height, width = rgb.shape[:2]
        payload = preview_pixels(rgb, np.zeros((height, width)), np.ones((height, width)), "color")
        self.writer.send(
            protocol.PreviewFrame(
                width=width, height=height, mode="color", step=self._step(), request_id=request_id, payload=payload
            )
        )

    def _send_layout_frame(self, view: PreviewView, request_id: int) -> None:
        """A run open for layouts previews its current layout (the last sampled or rendered) from ``view``:
        colour, or opacity / depth of the objects."""
        service = self.layouts
        if service.current is None:
            return  # nothing to show yet: the first render_layout answers
        import numpy as np

        rendered = service.render(service.current, _layout_camera(view))
        opacity = rendered.alphas.sum(axis=0).clip(0.0, 1.0) if len(rendered.alphas) else np.zeros_like(rendered.depth)
        # colour covers the whole view (the background is part of the scene); depth and opacity show the objects
        alpha = opacity if view.mode != "color" else np.ones_like(opacity)
        self.writer.send(
            protocol.PreviewFrame(
                width=view.width,
                height=view.height,
                mode=view.mode,
                step=service.step,
                request_id=request_id,
                view_id=view.view_id,
                payload=preview_pixels(rendered.colour, rendered.depth, alpha, view.mode),
            )
        )

    # -- files ---------------------------------------------------------------------

    def _attach_log_file(self, path: Path) -> None:
        if self._log_file is not None:
            logging.getLogger().removeHandler(self._log_file)
            self._log_file.close()
        self._log_file = logging.FileHandler(path, encoding="utf-8")
        self._log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self._log_file)

    def _release_run_dir(self) -> None:
        if self._run_folder is not None:
            self._run_folder.release()
            self._run_folder = None

    def _fatal(self, message: str) -> None:
        LOG.error("%s", message)
        self.writer.send(protocol.Error(message=message, fatal=True))


def train_config(command: protocol.Train) -> Any:
    """The trainer's typed config from a Train command; ``settings`` may set any other config field
    (the method's own under "settings", e.g. ``{"settings": {"log2_table_size": 14}}``); unknown names and
    wrongly typed values are errors naming them."""
    from .train.config import TrainConfig

    values: dict[str, Any] = {name: getattr(command, name) for name in ("method", "steps", "minutes", "device")}
    values.update(downscale=command.downscale, seed=command.seed)
    values.update(command.settings)
    return TrainConfig.from_dict(values)


def _layout_camera(view: PreviewView) -> Any:
    from .layout_service import Camera

    return Camera(view.camera_to_world, view.fl_x, view.fl_y, view.cx, view.cy, view.width, view.height)


def default_view(transforms: Transforms) -> PreviewView:
    """Previews start from the dataset's first camera, until the add-on sends a view."""
    import numpy as np

    frame = transforms.frames[0]
    intrinsics = frame.intrinsics
    return PreviewView(
        np.asarray(frame.camera_to_world, dtype=np.float64),
        intrinsics.fl_x,
        intrinsics.fl_y,
        intrinsics.cx,
        intrinsics.cy,
        intrinsics.width,
        intrinsics.height,
    )


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _json_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {name: _finite(value) for name, value in metrics.items() if isinstance(value, int | float)}


# --------------------------------------------------------------------------- entry point


def serve(handshake_timeout_s: float = 60.0) -> int:
    """Run one session on the process's stdin/stdout. Returns the exit status."""
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    # Keep the real stdout for frames only; anything printed (by us or a library) goes to stderr.
    protocol_out = os.fdopen(os.dup(stdout_fd), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), stdout_fd)
    sys.stdout = sys.stderr
    writer = EventWriter(protocol_out)
    _configure_logging(writer)
    inbox: queue.Queue[Incoming] = queue.Queue()
    threading.Thread(target=read_commands, args=(stdin_fd, inbox), name="fieldwork-commands", daemon=True).start()
    try:
        return Session(writer, inbox).run(handshake_timeout_s)
    except Exception as exc:
        LOG.exception("the engine session crashed")
        writer.send(protocol.Error(message=f"engine crashed: {exc}", traceback=traceback.format_exc(), fatal=True))
        return 1
    finally:
        logging.shutdown()
        protocol_out.close()


def _configure_logging(writer: EventWriter) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(to_stderr)
    LOG.addHandler(ProtocolLogHandler(writer, as_warnings=False))
    # Python warnings (a library's deprecation, torch's notes) reach the artist as warning events.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(ProtocolLogHandler(writer, as_warnings=True))
