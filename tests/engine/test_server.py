"""``python -m engine serve`` as a real subprocess: handshake, bad input, end of input.

Every read is bounded by a timeout, so a wedged engine fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import protocol
from engine.server import PreviewScheduler, preview_pixels
from engine.train.checkpoint import load_checkpoint
from tests.conftest import REPO


class EngineProcess:
    """A serve process with a reader thread that decodes its stdout into a queue."""

    def __init__(self, python: Path = Path(sys.executable), *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [str(python), "-m", "engine", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.events: queue.Queue[protocol.Message | Exception | None] = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        decoder = protocol.FrameDecoder()
        try:
            while chunk := os.read(self.process.stdout.fileno(), 1 << 16):
                decoder.feed(chunk)
                while (message := decoder.next_message()) is not None:
                    self.events.put(message)
            decoder.check_eof()
            self.events.put(None)
        except Exception as exc:  # handed to the test, which fails with it
            self.events.put(exc)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: protocol.Message) -> None:
        self.send_bytes(protocol.encode(message))

    def next_event(
        self, timeout: float = 30.0, skip: tuple[type, ...] = (protocol.Log, protocol.Status)
    ) -> protocol.Message | None:
        """The next event not of a ``skip`` type (log lines and status changes); ``None`` at the end of the stream."""
        while True:
            event = self.events.get(timeout=timeout)
            if isinstance(event, Exception):
                raise event
            if not isinstance(event, skip):
                return event

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def engine() -> Iterator[EngineProcess]:
    process = EngineProcess()
    yield process
    process.close()


def frame(header: bytes) -> bytes:
    return struct.pack(">2sII", b"FW", len(header), 0) + header


def handshake(engine: EngineProcess) -> protocol.Welcome:
    engine.send(protocol.Hello(client="pytest", session_id="s-1"))
    welcome = engine.next_event()
    assert isinstance(welcome, protocol.Welcome), welcome
    return welcome


def test_handshake_answers_welcome_with_the_session_id(engine: EngineProcess) -> None:
    welcome = handshake(engine)
    assert welcome.session_id == "s-1"
    assert welcome.pid == engine.process.pid
    assert welcome.torch_version.startswith("2.")
    engine.send(protocol.Shutdown())
    assert engine.wait() == 0


def test_wrong_protocol_version_is_refused(engine: EngineProcess) -> None:
    engine.send(protocol.Hello(protocol_version=99, client="old add-on"))
    error = engine.next_event()
    assert isinstance(error, protocol.Error) and error.fatal
    assert "protocol 99" in error.message and "old add-on" in error.message
    assert engine.wait() == 2


def test_a_command_before_hello_is_refused(engine: EngineProcess) -> None:
    engine.send(protocol.Stop())
    error = engine.next_event()
    assert isinstance(error, protocol.Error) and "expected hello" in error.message
    assert engine.wait() == 2


def test_invalid_and_unknown_commands_give_errors_and_the_session_goes_on(engine: EngineProcess) -> None:
    handshake(engine)
    engine.send_bytes(frame(b"{not json"))
    engine.send_bytes(frame(json.dumps({"type": "launch_rockets"}).encode()))
    engine.send(protocol.Welcome())  # an event is not a command
    engine.send(protocol.Stop())  # valid, but nothing is training
    messages = [engine.next_event() for _ in range(4)]
    errors = [m.message for m in messages if isinstance(m, protocol.Error)]
    assert any("not valid JSON" in text for text in errors), messages
    assert any("launch_rockets" in text for text in errors), messages
    assert any("'welcome' is not a command" in text for text in errors), messages
    assert any(isinstance(m, protocol.Warning) and "nothing is training" in m.message for m in messages)
    assert engine.process.poll() is None
    engine.send(protocol.Shutdown())
    assert engine.wait() == 0


def test_train_with_a_missing_dataset_names_it(engine: EngineProcess, tmp_path: Path) -> None:
    handshake(engine)
    engine.send(protocol.Train(dataset=str(tmp_path / "no-such-dataset"), out_dir=str(tmp_path / "run")))
    event = engine.next_event()
    assert isinstance(event, protocol.Error) and "no-such-dataset" in event.message, event
    assert event.command == "train" and not event.fatal
    engine.send(protocol.Shutdown())
    assert engine.wait() == 0


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n\r\n", struct.pack(">2sII", b"FW", 12, 0xFFFFFFF0)],
    ids=["garbage", "oversized-length"],
)
def test_garbage_ends_the_session_with_a_fatal_error(engine: EngineProcess, garbage: bytes) -> None:
    handshake(engine)
    engine.send_bytes(garbage)
    error = engine.next_event()
    assert isinstance(error, protocol.Error) and error.fatal, error
    assert engine.wait() == 0


def test_truncated_frame_then_eof_is_reported_and_the_engine_exits(engine: EngineProcess) -> None:
    handshake(engine)
    encoded = protocol.encode(protocol.Stop())
    engine.send_bytes(encoded[:-3])
    assert engine.process.stdin is not None
    engine.process.stdin.close()
    error = engine.next_event()
    assert isinstance(error, protocol.Error) and "stream ended inside a frame" in error.message
    assert engine.wait() == 0


def test_end_of_input_ends_the_engine(engine: EngineProcess) -> None:
    """The add-on dying closes the pipe: the engine must not outlive it."""
    handshake(engine)
    assert engine.process.stdin is not None
    started = time.monotonic()
    engine.process.stdin.close()
    assert engine.wait(timeout=10) == 0
    assert time.monotonic() - started < 5


def test_stdout_carries_only_frames(engine: EngineProcess) -> None:
    """Logs (the session start line, a stray print) go to stderr; the reader decoded every byte."""
    handshake(engine)
    engine.send(protocol.Shutdown())
    assert engine.wait() == 0
    assert engine.next_event(timeout=10) is None  # clean EOF: no stray bytes after the frames
    deadline = time.monotonic() + 5
    while b"session s-1 started" not in engine.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"session s-1 started" in engine.stderr


def test_interpreter_without_torch_gets_an_actionable_error(tmp_path: Path) -> None:
    venv.create(tmp_path / "bare", with_pip=False)
    bare = EngineProcess(tmp_path / "bare" / "bin" / "python")
    try:
        bare.send(protocol.Hello(client="pytest"))
        error = bare.next_event()
        assert isinstance(error, protocol.Error) and error.fatal
        assert "torch and numpy are not installed" in error.message
        assert "Set up engine" in error.message and "pip install -r" in error.message
        assert bare.wait() == 3
    finally:
        bare.close()


def simulated_render_s(side: int) -> float:
    """A preview costing 2 ms plus 4 us a pixel (square frames)."""
    return 0.002 + 4e-6 * side * side


def test_preview_scheduler_keeps_previews_within_their_budget() -> None:
    """Simulated clock: 20 ms training steps."""
    scheduler = PreviewScheduler(min_interval_s=0.1, max_side=128, budget_fraction=0.05)
    now, preview_time, sides = 0.0, 0.0, []
    while now < 60.0:
        now += 0.02
        if scheduler.due(now):
            side = scheduler.side()
            render_s = simulated_render_s(side)
            now += render_s
            preview_time += render_s
            scheduler.record(render_s, side * side, now)
            sides.append(side)
    assert preview_time / now <= 0.055
    # A 128 px render would take 68 ms, over the 5 ms a preview may take: the size settled lower...
    assert max(sides[-10:]) < 40
    # ...and previews still come steadily, about every 0.1 s.
    assert len(sides) > 300


def test_preview_scheduler_answers_a_view_change_quickly_and_small() -> None:
    scheduler = PreviewScheduler(min_interval_s=1.0, max_side=256, budget_fraction=0.05, interactive_s=0.01)
    scheduler.record(simulated_render_s(100), 100 * 100, now=10.0)
    assert not scheduler.due(10.5)
    # A moved view waits only as long as the last render took (42 ms), not the interval.
    assert scheduler.due(10.05, view_changed=True)
    assert scheduler.side(view_changed=True) < scheduler.side() <= 256


def test_preview_pixels_are_bottom_row_first_with_opacity_as_alpha() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.float32)
    rgb[0] = (1.0, 0.0, 0.0)  # top row red
    rgb[1] = (0.0, 0.0, 1.0)  # bottom row blue
    opacity = np.array([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]], dtype=np.float32)
    depth = np.array([[1.0, 2.0, 3.0], [3.0, 3.0, 3.0]], dtype=np.float32)
    color = np.frombuffer(preview_pixels(rgb, depth, opacity, "color"), np.uint8).reshape(2, 3, 4)
    assert color[0, 0].tolist() == [0, 0, 255, 128]  # first row out is the bottom (blue) row
    assert color[1, 0].tolist() == [255, 0, 0, 255]
    depth_rgba = np.frombuffer(preview_pixels(rgb, depth, opacity, "depth"), np.uint8).reshape(2, 3, 4)
    # Opaque depths span 1..3: the nearest pixel is white, the farthest black.
    assert depth_rgba[1, :, 0].tolist() == [255, 128, 0]
    opacity_rgba = np.frombuffer(preview_pixels(rgb, depth, opacity, "opacity"), np.uint8).reshape(2, 3, 4)
    assert opacity_rgba[0, 0, 0] == 128 and opacity_rgba[1, 0, 0] == 255
    with pytest.raises(ValueError, match="'normals' is not one of color, depth, opacity"):
        preview_pixels(rgb, depth, opacity, "normals")


# Small and quick on 2 shared cores (see tests/addon/test_session.py).
FAST_SETTINGS = {
    "batch_rays": 256,
    "compile": "off",
    "log_every": 1000,
    "checkpoint_every": 100000,
    "settings": {"levels": 4, "log2_table_size": 12, "marching_steps": 32, "occupancy_resolution": 16},
}


def next_of(engine: EngineProcess, kind: type | tuple[type, ...], timeout: float = 60.0) -> protocol.Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = engine.next_event(timeout=max(0.1, deadline - time.monotonic()), skip=(protocol.Log,))
        if isinstance(event, kind):
            return event
        assert not (isinstance(event, protocol.Error) and event.fatal), event
    raise AssertionError(f"no {kind} within {timeout} s")


def test_a_training_session_renders_pauses_resumes_and_stops_with_a_checkpoint(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real trainer behind the protocol: RenderView, a bad SetView, Pause/Resume, the run-folder lock, Stop."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine, rival = EngineProcess(), EngineProcess()
    try:
        handshake(engine)
        run_dir = tmp_path / "run"
        engine.send(
            protocol.Train(
                dataset=str(tiny_dataset), out_dir=str(run_dir), steps=100000, preview_every_s=0.0,
                settings=FAST_SETTINGS,
            )
        )  # fmt: skip
        assert next_of(engine, protocol.Progress).step >= 1

        engine.send(protocol.RenderView(request_id=9, camera_to_world=np.eye(4).tolist(), fl_x=8.0, fl_y=8.0,
                                        cx=4.0, cy=3.0, width=8, height=6, mode="depth"))  # fmt: skip
        frame = next_of(engine, protocol.PreviewFrame)
        assert (frame.request_id, frame.width, frame.height, frame.mode) == (9, 8, 6, "depth")
        assert len(frame.payload) == 8 * 6 * 4

        engine.send(protocol.SetView(camera_to_world=[[1.0, 0.0], [0.0, 1.0]], fl_x=1.0, fl_y=1.0, width=4, height=4))
        error = next_of(engine, protocol.Error)
        assert "camera_to_world must be a finite 4x4" in error.message and error.command == "set_view"

        engine.send(protocol.Pause())
        paused = next_of(engine, protocol.Status)
        assert paused.state == "paused"
        time.sleep(0.5)
        while not engine.events.empty():  # nothing trains while paused
            assert not isinstance(engine.events.get_nowait(), protocol.Progress)
        engine.send(protocol.Resume())
        assert next_of(engine, protocol.Status).state == "training"
        assert next_of(engine, protocol.Progress).step > paused.step

        # Another engine may not train into the same run folder.
        handshake(rival)
        rival.send(protocol.Train(dataset=str(tiny_dataset), out_dir=str(run_dir), settings=FAST_SETTINGS))
        refused = next_of(rival, protocol.Error)
        assert f"run folder {run_dir} is in use by engine pid {engine.process.pid}" in refused.message

        engine.send(protocol.Stop())
        checkpoint = next_of(engine, protocol.Checkpoint)
        done = next_of(engine, protocol.Done)
        assert done.reason == "stopped" and done.checkpoint == checkpoint.path and Path(done.checkpoint).is_file()
        assert "training stopped at step" in (run_dir / "engine.log").read_text()

        engine.send(protocol.Shutdown())
        assert engine.wait() == 0
    finally:
        engine.close()
        rival.close()


def test_extract_after_training_writes_the_mesh_and_names_bad_settings(tiny_dataset: Path, tmp_path: Path) -> None:
    engine = EngineProcess()
    try:
        handshake(engine)
        # settings may override the command's step budget: progress reports the budget the trainer runs.
        settings = {**FAST_SETTINGS, "steps": 400}
        run_dir = tmp_path / "run"
        engine.send(protocol.Train(dataset=str(tiny_dataset), out_dir=str(run_dir), steps=5, settings=settings))
        assert next_of(engine, protocol.Progress).total_steps == 400
        done = next_of(engine, protocol.Done, timeout=300)
        assert (done.reason, done.step) == ("finished", 400)

        mesh_path = tmp_path / "mesh.ply"
        engine.send(protocol.Extract(out_path=str(mesh_path), resolution=32, settings={"colour": False}))
        ready = next_of(engine, (protocol.MeshReady, protocol.Error))
        assert isinstance(ready, protocol.MeshReady), ready
        assert ready.path == str(mesh_path) and mesh_path.is_file() and ready.face_count > 0
        engine.send(protocol.Extract(out_path=str(mesh_path), resolution=32, settings={"colour": False}))
        assert "already exists" in next_of(engine, protocol.Error).message
        engine.send(protocol.Extract(out_path=str(tmp_path / "other.ply"), resolution=32, settings={"smooth": 1}))
        assert "unknown setting(s) smooth" in next_of(engine, protocol.Error).message
        engine.send(protocol.Shutdown())
        assert engine.wait() == 0
    finally:
        engine.close()


def test_bad_set_view_values_during_training_get_error_events_and_the_run_finishes(tmp_path: Path) -> None:
    """fl_x 1e308 is valid JSON and "finite", NaN is what Python's json writes for nan: neither may end the
    session; previews go on from the last good view and the run reaches its step budget."""
    from tests.engine.sphere_dataset import make_sphere_dataset

    dataset = make_sphere_dataset(tmp_path / "sphere", n_views=6, size=8)
    engine = EngineProcess()
    try:
        handshake(engine)
        engine.send(
            protocol.Train(dataset=str(dataset), out_dir=str(tmp_path / "run"), steps=150, preview_every_s=0.05,
                           settings=FAST_SETTINGS)
        )  # fmt: skip
        assert next_of(engine, protocol.Progress).step >= 1
        good = {"type": "set_view", "camera_to_world": np.eye(4).tolist(), "fl_x": 8.0, "fl_y": 8.0, "cx": 4.0,
                "cy": 4.0, "width": 8, "height": 8}  # fmt: skip
        bad_views = [
            ({**good, "fl_x": 1e308}, "fl_x must be at most"),
            ({**good, "cx": float("nan")}, "cx must be a finite number, got nan"),
            ({**good, "camera_to_world": [[0.0] * 4] * 3 + [[0.0, 0.0, 0.0, 1.0]]}, "zero rotation"),
            ({**good, "width": 10**6}, "image size must be 1..65536"),
        ]
        for header, message in bad_views:
            engine.send_bytes(frame(json.dumps(header).encode()))  # json.dumps writes NaN; encode() would refuse
            error = next_of(engine, protocol.Error)
            assert message in error.message and error.command == "set_view" and not error.fatal, error
        engine.send_bytes(frame(json.dumps({**good, "view_id": 7}).encode()))
        assert next_of(engine, protocol.PreviewFrame).view_id in (0, 7)
        done = next_of(engine, protocol.Done, timeout=300)
        assert (done.reason, done.step) == ("finished", 150)
        engine.send(protocol.Shutdown())
        assert engine.wait() == 0
    finally:
        engine.close()


def test_a_mistyped_setting_and_a_foreign_folder_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    from tests.engine.sphere_dataset import make_sphere_dataset

    dataset = make_sphere_dataset(tmp_path / "sphere", n_views=4, size=8)
    engine = EngineProcess()
    try:
        handshake(engine)
        run_dir = tmp_path / "run"
        engine.send(protocol.Train(dataset=str(dataset), out_dir=str(run_dir), settings={"settings": {"levels": "16"}}))
        error = next_of(engine, protocol.Error)
        assert "ngp setting 'levels' must be a whole number, got '16'" in error.message and error.command == "train"
        assert not run_dir.exists()

        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "config.json").write_text('{"my": "settings"}')
        engine.send(protocol.Train(dataset=str(dataset), out_dir=str(mine), settings=FAST_SETTINGS))
        error = next_of(engine, protocol.Error)
        assert f"{mine / 'config.json'} is not a Fieldwork run's config" in error.message, error
        assert [path.name for path in mine.iterdir()] == ["config.json"]
        assert (mine / "config.json").read_text() == '{"my": "settings"}'
        engine.send(protocol.Shutdown())
        assert engine.wait() == 0
    finally:
        engine.close()


def test_sigterm_during_training_writes_the_checkpoint_and_ends_the_session(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = EngineProcess()
    try:
        handshake(engine)
        run_dir = tmp_path / "run"
        engine.send(
            protocol.Train(
                dataset=str(tiny_dataset), out_dir=str(run_dir), steps=100000, preview_every_s=0.0,
                settings=FAST_SETTINGS,
            )
        )  # fmt: skip
        reached = next_of(engine, protocol.Progress).step
        engine.process.send_signal(signal.SIGTERM)
        done = next_of(engine, protocol.Done)
        assert done.reason == "stopped" and done.step >= reached and Path(done.checkpoint).is_file()
        assert engine.wait() == 0
        assert load_checkpoint(run_dir / "checkpoint.pt", torch.device("cpu"))["step"] == done.step
    finally:
        engine.close()


def test_a_generative_run_streams_its_sample_grid_as_previews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.engine.tiny_collection import write_tiny_collection

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    collection = write_tiny_collection(tmp_path / "collection", count=8)
    engine = EngineProcess()
    try:
        handshake(engine)
        settings = {"settings": {"batch_size": 2, "sample_every": 0, "sample_grid": 4}}
        engine.send(
            protocol.Train(
                dataset=str(collection), out_dir=str(tmp_path / "run"), method="giraffe", steps=3,
                preview_every_s=0.05, settings=settings,
            )
        )  # fmt: skip
        frame = next_of(engine, protocol.PreviewFrame, timeout=120.0)
        # four 32x32 images of the fixed latents in a 2x2 grid with 1-pixel gaps, whatever the view
        assert (frame.width, frame.height, frame.mode) == (65, 65, "color")
        assert len(frame.payload) == 65 * 65 * 4
        done = next_of(engine, protocol.Done, timeout=120.0)
        assert done.reason == "finished" and done.step == 3
        engine.send(protocol.Shutdown())
        assert engine.wait() == 0
    finally:
        engine.close()
