"""Starts, talks to and stops engine processes (``python -m engine serve``), off the UI thread.

The engine is a child process speaking the framed protocol (``engine/protocol.py``) on
its stdin/stdout. Two reader threads per session turn the child's stdout into events
and keep the tail of its stderr (its log) for error reports; the events cross to
Blender's main thread through a queue that :func:`tick` drains from ``bpy.app.timers``
within a time budget, so the UI never waits on the engine. In background mode
(``blender -b``) :meth:`EngineSession.run_to_completion` drains the same queue
synchronously until the run ends.

Sessions live in a registry keyed by the scene they belong to, so two scenes (or two
files in one Blender) never share an engine by accident, and every child is ended on
add-on unregister, file load and interpreter exit: no orphans.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import math
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import engine_env
from .engine import protocol

LOG_TAIL_LINES = 20
TICK_INTERVAL_S = 0.05
TICK_BUDGET_S = 0.02  # time one timer tick may spend on events; frames are coalesced to the latest
HISTORY_LIMIT = 4096


class EngineError(RuntimeError):
    """The engine refused, failed or died; the message carries its last log lines."""


class EngineBusyError(RuntimeError):
    """This scene already has a running engine session."""


@dataclass
class SessionState:
    """What the panel shows; updated on the main thread only."""

    status: str = "starting"  # starting | idle | training | paused | finished | stopped | failed | closed
    step: int = 0  # from progress, and from status changes and the end of training
    progress: protocol.Progress | None = None  # the engine's last progress report
    message: str = ""  # the last log line, warning or error, for the panel
    error: str = ""  # set when the session failed: the reason and the engine's last log lines
    checkpoint: str = ""
    frames_received: int = 0
    engine_pid: int = 0
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, loss, psnr or nan)
    figures: dict[str, float] = field(default_factory=dict)  # the last training progress's named figures
    training_steps: int = 0  # the run's step budget, from the last training progress

    @property
    def active(self) -> bool:
        return self.status in ("starting", "idle", "training", "paused")

    @property
    def total_steps(self) -> int:
        return self.training_steps

    @property
    def progress_fraction(self) -> float:
        progress = self.progress
        if progress is not None and progress.phase == "evaluate":
            return min(1.0, progress.step / progress.total_steps) if progress.total_steps else 0.0
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def preview_share(self) -> float:
        """Fraction of the engine's wall time spent rendering previews."""
        progress = self.progress
        return progress.preview_s / progress.elapsed_s if progress is not None and progress.elapsed_s > 0 else 0.0


@dataclass
class DrainResult:
    """What one drain handed to the main thread. ``latest_frame``: only the newest preview counts."""

    events: list[protocol.Message] = field(default_factory=list)
    latest_frame: protocol.PreviewFrame | None = None
    progressed: bool = False
    ended: bool = False  # the session finished, stopped, failed or closed during this drain

    @property
    def changed(self) -> bool:
        return bool(self.events) or self.ended


@dataclass(frozen=True)
class _StdoutEnded:
    """The child's stdout ended (it exited or closed it) or turned to garbage."""

    reason: str


class EngineSession:
    """One engine child process and its protocol state.

    ``key`` says whom the session belongs to (a scene); ``log_path`` receives the child's
    stderr as well, so the whole log survives the session.
    """

    def __init__(self, key: str, python: Path, label: str = "") -> None:
        self.key = key
        self.label = label or key
        self.python = python
        self.session_id = uuid.uuid4().hex
        self.state = SessionState()
        self.events: queue.Queue[protocol.Message | _StdoutEnded] = queue.Queue()
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.process: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._write_lock = threading.Lock()
        self._log_reader: threading.Thread | None = None
        self._view_id = 0
        self.last_view_sent_at = 0.0

    # -- life cycle ----------------------------------------------------------------

    def start(self, command: Sequence[str] | None = None) -> None:
        """Start the child and send Hello; never waits for it (torch takes seconds to import).

        ``command``: the child's argv, by default ``<python> -m engine serve``; anything that
        speaks the protocol on stdin/stdout will do (scripts/bench_preview.py times the pipe alone).
        """
        command = list(command) if command is not None else engine_env.engine_command(self.python, "serve")
        # A process group of its own: Ctrl+C in Blender's terminal must not kill the engine mid-write;
        # the add-on stops it through the protocol (and kills it if that fails).
        extra: dict = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if sys.platform == "win32"
            else {"start_new_session": True}
        )
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=engine_env.engine_environment(),
                **extra,
            )
        except OSError as exc:
            raise engine_env.EngineSetupError(f"Cannot start the engine with {self.python}: {exc}") from exc
        self.state.engine_pid = self.process.pid
        self._log_reader = threading.Thread(target=self._read_log, name=f"fieldwork-log-{self.key}", daemon=True)
        self._log_reader.start()
        threading.Thread(target=self._read_events, name=f"fieldwork-events-{self.key}", daemon=True).start()
        self.send(protocol.Hello(client=f"blender {bpy.app.version_string}", session_id=self.session_id))

    def send(self, message: protocol.Message) -> bool:
        """Send a command; ``False`` when the engine is gone (its exit is reported by the drain)."""
        process = self.process
        if process is None or process.stdin is None or process.poll() is not None:
            return False
        data = protocol.encode(message)
        with self._write_lock:
            try:
                process.stdin.write(data)
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def set_view(self, view: protocol.SetView) -> int:
        """Send the view previews are rendered from; returns its view id (echoed by the frames)."""
        self._view_id += 1
        view.view_id = self._view_id
        self.last_view_sent_at = time.perf_counter()
        self.send(view)
        return self._view_id

    def stop(self) -> None:
        """Stop training (the engine writes a checkpoint) and end the session."""
        self._closing = True
        self.send(protocol.Stop())
        self.send(protocol.Shutdown())

    def close(self, timeout_s: float = 5.0) -> None:
        """End the child: Shutdown, then close its stdin, then terminate, then kill. Never leaves an orphan."""
        self._closing = True
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            self.send(protocol.Shutdown())
            if process.stdin is not None:
                # A broken pipe is fine here: the engine sees the end of its input either way.
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5.0)
        if self.state.active:
            self.state.status = "closed"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- reader threads ------------------------------------------------------------

    def _read_events(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        decoder = protocol.FrameDecoder()
        try:
            while chunk := os.read(fd, 1 << 18):
                decoder.feed(chunk)
                while True:
                    try:
                        message = decoder.next_message()
                    except protocol.MessageError as exc:
                        self.events.put(protocol.Warning(message=f"skipped an invalid event from the engine: {exc}"))
                        continue
                    if message is None:
                        break
                    self.events.put(message)
            decoder.check_eof()
            self.events.put(_StdoutEnded("the engine closed its output"))
        except (protocol.FramingError, OSError) as exc:
            self.events.put(_StdoutEnded(f"unreadable engine output: {exc}"))

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            self.log_tail.append(raw.decode("utf-8", errors="replace").rstrip())

    def last_log_lines(self, count: int = LOG_TAIL_LINES) -> list[str]:
        return list(self.log_tail)[-count:]

    # -- main thread ---------------------------------------------------------------

    def drain(self, budget_s: float = TICK_BUDGET_S, block_s: float = 0.0) -> DrainResult:
        """Apply queued events to :attr:`state` for at most ``budget_s``; optionally wait ``block_s`` for the first."""
        result = DrainResult()
        deadline = time.perf_counter() + budget_s
        first = True
        while first or time.perf_counter() < deadline:
            try:
                item = self.events.get(timeout=block_s) if first and block_s > 0 else self.events.get_nowait()
            except queue.Empty:
                break
            first = False
            if isinstance(item, _StdoutEnded):
                self._on_exit(item.reason)
                result.ended = True
                break
            result.events.append(item)
            if self._apply(item, result):
                result.ended = True
        return result

    def _apply(self, event: protocol.Message, result: DrainResult) -> bool:
        """Update the state from one event; ``True`` when the session ended."""
        state = self.state
        if isinstance(event, protocol.Welcome):
            if event.session_id != self.session_id:
                self._fail(f"an engine answered for session {event.session_id!r}, not this one: refusing it")
                return True
            if state.status == "starting":
                state.status = "idle"
        elif isinstance(event, protocol.Status):
            state.status = event.state
            state.step = event.step
        elif isinstance(event, protocol.Progress):
            state.progress = event
            if event.phase == "train":
                state.step, state.figures, state.training_steps = event.step, dict(event.figures), event.total_steps
                loss = float(event.figures.get("loss", math.nan))
                state.history.append((event.step, loss, float(event.figures.get("psnr", math.nan))))
                del state.history[:-HISTORY_LIMIT]
            result.progressed = True
        elif isinstance(event, protocol.PreviewFrame):
            state.frames_received += 1
            if event.mode != "alpha":  # a layout's per-object alphas are not a picture (addon/layouts.py)
                result.latest_frame = event
        elif isinstance(event, protocol.Log | protocol.Warning):
            state.message = event.message
        elif isinstance(event, protocol.Error):
            state.message = event.message
            # A fatal error ends the session; a failed train means the run this session exists for never began.
            if event.fatal or event.command == "train":
                self._fail(event.message)
                return True
        elif isinstance(event, protocol.Checkpoint):
            state.checkpoint = event.path
        elif isinstance(event, protocol.Done):
            state.step = event.step
            state.checkpoint = event.checkpoint or state.checkpoint
            if event.reason == "failed":
                self._fail(state.message or "training failed")
                return True
            state.status = event.reason
            # The checkpoint is written: the engine has nothing left to do for this run.
            self._closing = True
            self.send(protocol.Shutdown())
        return False

    def _on_exit(self, reason: str) -> None:
        process = self.process
        returncode = process.poll() if process is not None else None
        if returncode is None and process is not None:
            try:
                returncode = process.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                returncode = None
        # The log reader may still hold the last lines the engine wrote as it died.
        if self._log_reader is not None:
            self._log_reader.join(timeout=0.03)
        if self._closing or self.state.status in ("finished", "stopped"):
            if self.state.active:
                self.state.status = "closed"
            return
        if self.state.status == "failed":
            return
        self._fail(f"the engine exited unexpectedly (exit status {returncode}; {reason})")

    def _fail(self, reason: str) -> None:
        lines = self.last_log_lines()
        log = "\n".join(lines) if lines else "(the engine wrote no log lines)"
        self.state.status = "failed"
        self.state.error = f"{reason}\nLast {len(lines)} engine log lines:\n{log}"
        self.state.message = reason
        if self.process is not None and self.process.poll() is None:
            self.close(timeout_s=2.0)

    def run_to_completion(
        self, on_drain: Callable[[EngineSession, DrainResult], None] | None = None, timeout_s: float | None = None
    ) -> SessionState:
        """Background mode: drain until the session ends. Raises :class:`EngineError` if it failed."""
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        while self.state.active:
            if deadline is not None and time.perf_counter() > deadline:
                self.close()
                raise EngineError(f"engine session {self.label} did not finish within {timeout_s:.0f} s")
            result = self.drain(budget_s=0.2, block_s=0.2)
            if on_drain is not None and result.changed:
                on_drain(self, result)
        if self.state.status == "failed":
            raise EngineError(self.state.error)
        self.close()
        return self.state


# --------------------------------------------------------------------------- the registry

_SESSIONS: dict[str, EngineSession] = {}
_LISTENERS: list[Callable[[EngineSession, DrainResult], None]] = []


def scene_key(scene: bpy.types.Scene) -> str:
    """Identifies a scene for this Blender session (names can repeat across files; session_uid cannot)."""
    return f"scene-{scene.session_uid}"


def session_for(key: str) -> EngineSession | None:
    return _SESSIONS.get(key)


def start_session(key: str, python: Path, label: str = "") -> EngineSession:
    """A new engine session for ``key``; refuses while that key's engine is still running."""
    existing = _SESSIONS.get(key)
    if existing is not None and existing.alive and existing.state.active:
        raise EngineBusyError(
            f"{existing.label} already has a running engine (pid {existing.state.engine_pid}); stop it first"
        )
    if existing is not None:
        existing.close(timeout_s=1.0)
    session = EngineSession(key, python, label)
    session.start()
    _SESSIONS[key] = session
    if not bpy.app.background and not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_INTERVAL_S, persistent=True)
    return session


def add_listener(listener: Callable[[EngineSession, DrainResult], None]) -> None:
    """Called on the main thread after every drain that changed something (previews, panels)."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def remove_listener(listener: Callable[[EngineSession, DrainResult], None]) -> None:
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


def notify(session: EngineSession, result: DrainResult) -> None:
    for listener in list(_LISTENERS):
        listener(session, result)


def tick() -> float | None:
    """The ``bpy.app.timers`` callback (tests call it directly): drain every session within the budget.

    Returns the next interval while any session is active, ``None`` to unregister.
    """
    budget = TICK_BUDGET_S / max(1, len(_SESSIONS))
    for session in list(_SESSIONS.values()):
        was_active = session.state.active
        result = session.drain(budget_s=budget)
        if result.changed:
            notify(session, result)
        if was_active and session.state.status == "failed":
            _report_failure(session)
    # Keep ticking until every child has exited too, so its exit is seen (and the process reaped).
    busy = any(session.state.active or session.alive for session in _SESSIONS.values())
    return TICK_INTERVAL_S if busy else None


def _report_failure(session: EngineSession) -> None:
    """The engine died or refused: show its last log lines in a popup (printed in background mode)."""
    lines = session.state.error.splitlines()
    print(f"Fieldwork: engine session {session.label} failed:\n{session.state.error}", file=sys.stderr)
    window_manager = bpy.context.window_manager
    if bpy.app.background or window_manager is None or not window_manager.windows:
        return

    def draw(menu: bpy.types.UIPopupMenu, _context: bpy.types.Context) -> None:
        for line in lines:
            menu.layout.label(text=line)

    window_manager.popup_menu(draw, title=f"Fieldwork engine stopped ({session.label})", icon="ERROR")


def close_all(timeout_s: float = 5.0) -> None:
    """End every engine child (add-on disabled, file loaded, Blender quitting)."""
    for key, session in list(_SESSIONS.items()):
        session.close(timeout_s=timeout_s)
        del _SESSIONS[key]


@bpy.app.handlers.persistent
def _on_load_pre(*_args: object) -> None:
    # The scenes these sessions belonged to are going away with the old file.
    close_all()


def register() -> None:
    atexit.register(close_all)
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    close_all()
    atexit.unregister(close_all)
