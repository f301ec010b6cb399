"""The live session from Blender: the add-on's operators and client with a real engine child process.

bpy.app.timers do not fire inside pytest (bpy runs as a module, in background mode), so:
- tests through ``bpy.ops.fieldwork.train`` exercise the background/synchronous path
  (``EngineSession.run_to_completion``, what ``blender -b`` runs), observing every drain
  through a client listener;
- ``test_timer_tick_drives_a_session`` calls ``client.tick()``, the very function the timer
  calls in the UI, in a loop.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import addon_module, require_leg

bpy = pytest.importorskip("bpy", reason="the add-on's session needs Blender as a module (bpy)")

# Small, fast runs on 2 shared CPU cores: a few hundred rays a step, a small hash grid, few samples a ray,
# no compile (it takes minutes). About 30 ms a step instead of seconds with the defaults.
FAST_SETTINGS = {
    "batch_rays": 256,
    "compile": "off",
    "log_every": 1000,
    "checkpoint_every": 100000,
    "settings": {"levels": 4, "log2_table_size": 12, "marching_steps": 32, "occupancy_resolution": 16},
}
# A run that has not shown what a test waits for by then is killed, which fails the test with the engine's log.
TEST_DEADLINE_S = 150.0


def process_exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped) counts as exited: it runs nothing.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def scene(empty_scene, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[no-untyped-def]
    settings = empty_scene.fieldwork
    settings.dataset_dir = str(tiny_dataset)
    settings.output_dir = str(tmp_path / "out")
    settings.preview_every_s = 0.05
    settings.preview_max_side = 32
    train = addon_module("operators.train")
    original = train.train_command

    def fast_train_command(*args, **kwargs):  # type: ignore[no-untyped-def]
        command = original(*args, **kwargs)
        command.settings = dict(FAST_SETTINGS)
        return command

    monkeypatch.setattr(train, "train_command", fast_train_command)
    # The engine child inherits this: one torch thread, because OpenMP threads spinning against the other
    # processes on a loaded 2-core machine make every step tens of times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield empty_scene
    addon_module("client").close_all()


class Recorder:
    """A client listener: what each drain brought, and the preview image's pixels after it."""

    def __init__(self) -> None:
        self.image_snapshots: list[np.ndarray] = []
        self.steps: list[int] = []
        self.on_drain = None  # optional extra action, called with (session, recorder)
        self.started = time.monotonic()

    def __call__(self, session, result) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() - self.started > TEST_DEADLINE_S and session.alive:
            os.kill(session.state.engine_pid, signal.SIGKILL)
        if result.latest_frame is not None:
            image = bpy.data.images["Fieldwork Preview"]
            pixels = np.empty(len(image.pixels), dtype=np.float32)
            image.pixels.foreach_get(pixels)
            self.image_snapshots.append(pixels)
        if result.progressed:
            self.steps.append(session.state.step)
        if self.on_drain is not None:
            self.on_drain(session, self)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    client = addon_module("client")
    recorder = Recorder()
    client.add_listener(recorder)
    yield recorder
    client.remove_listener(recorder)


def test_train_operator_streams_previews_then_stop_keeps_a_checkpoint(scene, recorder: Recorder) -> None:  # type: ignore[no-untyped-def]
    """Synchronous path. Stop is pressed (the operator) once 3 changed frames and rising steps arrived."""
    client = addon_module("client")
    scene.fieldwork.steps = 100000  # far more than the test waits for: only Stop ends it
    stop_requested: list[float] = []

    def stop_when_seen_enough(session, rec: Recorder) -> None:  # type: ignore[no-untyped-def]
        changed = sum(not np.array_equal(a, b) for a, b in itertools.pairwise(rec.image_snapshots))
        if not stop_requested and changed >= 2 and len(set(rec.steps)) >= 2:
            stop_requested.append(time.perf_counter())
            assert bpy.ops.fieldwork.stop() == {"FINISHED"}

    recorder.on_drain = stop_when_seen_enough
    assert bpy.ops.fieldwork.train() == {"FINISHED"}

    session = client.session_for(client.scene_key(scene))
    assert stop_requested, "never saw 3 preview frames and rising steps"
    assert len(recorder.image_snapshots) >= 3
    snapshots = recorder.image_snapshots
    assert sum(not np.array_equal(a, b) for a, b in itertools.pairwise(snapshots)) >= 2
    assert recorder.steps == sorted(recorder.steps) and recorder.steps[-1] > recorder.steps[0]
    assert session.state.status in ("stopped", "closed")
    assert Path(session.state.checkpoint).is_file()
    assert (Path(scene.fieldwork.output_dir) / "run" / "engine.log").is_file()
    assert process_exited(session.state.engine_pid)


def test_killed_engine_is_reported_with_its_log_and_a_new_session_starts(scene, recorder: Recorder) -> None:  # type: ignore[no-untyped-def]
    """Synchronous path. The engine is killed (SIGKILL) at its first progress event."""
    client = addon_module("client")
    scene.fieldwork.steps = 100000

    def kill_engine(session, rec: Recorder) -> None:  # type: ignore[no-untyped-def]
        if rec.steps and session.alive:
            os.kill(session.state.engine_pid, signal.SIGKILL)

    recorder.on_drain = kill_engine
    with pytest.raises(RuntimeError, match=r"(?s)exited unexpectedly.*Last \d+ engine log lines:.*session .* started"):
        bpy.ops.fieldwork.train()
    killed = client.session_for(client.scene_key(scene))
    assert killed.state.status == "failed"
    assert "exit status -9" in killed.state.error

    recorder.on_drain = None
    scene.fieldwork.steps = 3
    assert bpy.ops.fieldwork.train() == {"FINISHED"}
    fresh = client.session_for(client.scene_key(scene))
    assert fresh is not killed and fresh.state.engine_pid != killed.state.engine_pid
    assert fresh.state.status in ("finished", "closed") and fresh.state.step >= 3
    assert process_exited(fresh.state.engine_pid)


def test_timer_tick_drives_a_session(scene, recorder: Recorder) -> None:  # type: ignore[no-untyped-def]
    """Interactive path: the timer's own function, ``client.tick``, drains the session; then Stop ends it."""
    client = addon_module("client")
    train = addon_module("operators.train")
    preferences = addon_module("preferences")
    session = client.start_session(client.scene_key(scene), preferences.resolve_engine_python(), label="tick test")
    dataset = Path(scene.fieldwork.dataset_dir)
    session.send(train.train_command(scene, dataset, Path(scene.fieldwork.output_dir) / "run", "cpu"))
    deadline = time.monotonic() + 120
    longest_tick = 0.0
    while len(recorder.image_snapshots) < 2 and time.monotonic() < deadline:
        started = time.perf_counter()
        assert client.tick() == client.TICK_INTERVAL_S
        longest_tick = max(longest_tick, time.perf_counter() - started)
        time.sleep(0.02)
    assert len(recorder.image_snapshots) >= 2, session.last_log_lines()
    assert session.state.status == "training" and session.state.step > 0
    stopped_at = time.perf_counter()
    assert bpy.ops.fieldwork.stop() == {"FINISHED"}  # in background mode it also waits for the exit
    print(f"stop took {time.perf_counter() - stopped_at:.2f} s")
    assert session.state.status == "stopped" and Path(session.state.checkpoint).is_file()
    assert process_exited(session.state.engine_pid)
    assert client.tick() is None  # nothing left: the timer unregisters itself
    print(f"longest tick {longest_tick * 1000:.1f} ms")


def test_two_scenes_get_two_engines_and_one_scene_only_one(scene) -> None:  # type: ignore[no-untyped-def]
    client = addon_module("client")
    preferences = addon_module("preferences")
    other = bpy.data.scenes.new("Other")
    python = preferences.resolve_engine_python()
    first = client.start_session(client.scene_key(scene), python)
    second = client.start_session(client.scene_key(other), python)
    assert first.state.engine_pid != second.state.engine_pid
    with pytest.raises(client.EngineBusyError, match="already has a running engine"):
        client.start_session(client.scene_key(scene), python)
    client.close_all()
    assert process_exited(first.state.engine_pid) and process_exited(second.state.engine_pid)


def test_engine_without_torch_gets_an_actionable_error(scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    venv.create(tmp_path / "bare", with_pip=False)
    addon_prefs = bpy.context.preferences.addons[addon_module("preferences").addon_package()].preferences
    original = addon_prefs.engine_python
    addon_prefs.engine_python = str(tmp_path / "bare" / "bin" / "python")
    try:
        with pytest.raises(RuntimeError, match="torch and numpy are not installed.*Set up engine.*pip install -r"):
            bpy.ops.fieldwork.train()
    finally:
        addon_prefs.engine_python = original


def test_missing_engine_interpreter_is_named(scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("FIELDWORK_ENGINE_PYTHON", raising=False)
    addon_prefs = bpy.context.preferences.addons[addon_module("preferences").addon_package()].preferences
    original = addon_prefs.engine_python
    addon_prefs.engine_python = str(tmp_path / "no-python-here")
    try:
        with pytest.raises(RuntimeError, match=r"No engine Python found.*no-python-here.*Set up engine"):
            bpy.ops.fieldwork.train()
    finally:
        addon_prefs.engine_python = original


def test_setup_engine_refuses_when_offline(fieldwork_addon: str) -> None:
    assert not bpy.app.online_access  # Blender as a module starts offline
    with pytest.raises(RuntimeError, match="work offline.*Online Access.*pip install -r"):
        bpy.ops.fieldwork.setup_engine()


def test_setup_job_reports_pip_failure_with_its_log(tmp_path: Path) -> None:
    """The set-up runner on real child processes: a failing step's output comes back, and is in the log."""
    setup_engine = addon_module("operators.setup_engine")
    job = setup_engine.SetupJob(
        [
            [sys.executable, "-c", "print('step one ok')"],
            [sys.executable, "-c", "import sys; print('ERROR: No matching distribution for torch'); sys.exit(1)"],
            [sys.executable, "-c", "print('never runs')"],
        ],
        tmp_path / "setup.log",
    )
    job.start()
    assert job.wait() is False
    assert "exit status 1" in job.failure and "No matching distribution" in job.failure
    log = (tmp_path / "setup.log").read_text()
    assert "step one ok" in log and "No matching distribution" in log and "never runs" not in log
    commands = setup_engine.setup_commands(Path(sys.executable), tmp_path / "venv")
    assert commands[0][1:3] == ["-m", "venv"] and commands[1][-2:] == ["-r", str(setup_engine.REQUIREMENTS)]


@pytest.mark.parametrize(
    ("leg", "mode"), [("blender-5.0", "disable"), ("blender-5.0", "crash"), ("blender-5.2", "crash")]
)
def test_no_orphan_engine_when_the_addon_is_disabled_or_blender_dies(  # type: ignore[no-untyped-def]
    leg: str, mode: str, built_extension: Path, engine_python: Path, run_blender_script
) -> None:
    """A fresh Blender process (both legs) starts an engine, then disables the add-on or dies without cleaning up."""
    python = require_leg(leg)
    report = run_blender_script(python, "session_orphans.py", str(built_extension), str(engine_python), mode)
    assert report["status"] == "idle", report  # the engine answered: it was really running
    if mode == "disable":
        assert report["exit_code"] is not None  # unregister waited for the child's exit
    deadline = time.monotonic() + 15
    while not process_exited(report["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_exited(report["pid"]), f"engine {report['pid']} outlived its Blender ({mode})"


def test_train_renders_the_scenes_cameras_first_when_no_dataset_is_given(  # type: ignore[no-untyped-def]
    fieldwork_addon: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synchronous path, the artist's default: no Dataset set, so Train exports the cameras, then trains."""
    from scripts.scenes import build_object_scene

    info = build_object_scene(camera_count=4, resolution=16, samples=2)
    train = addon_module("operators.train")
    original = train.train_command

    def fast_train_command(*args, **kwargs):  # type: ignore[no-untyped-def]
        command = original(*args, **kwargs)
        command.settings = dict(FAST_SETTINGS)
        return command

    monkeypatch.setattr(train, "train_command", fast_train_command)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = info.scene.fieldwork
    settings.output_dir, settings.dataset_dir, settings.steps = str(tmp_path / "out"), "", 2
    try:
        assert bpy.ops.fieldwork.train() == {"FINISHED"}
    finally:
        addon_module("client").close_all()
    transforms = (tmp_path / "out" / "dataset" / "transforms.json").read_text()
    assert all(name in transforms for name in info.camera_names)
    assert (tmp_path / "out" / "run" / "checkpoint.pt").is_file()


def test_a_run_the_engine_refuses_is_reported_by_name(scene, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Synchronous path. A setting the trainer does not know: the operator fails naming it, nothing hangs."""
    train = addon_module("operators.train")
    original = train.train_command

    def misspelt_train_command(*args, **kwargs):  # type: ignore[no-untyped-def]
        command = original(*args, **kwargs)
        command.settings = {"batch_rayz": 256}
        return command

    monkeypatch.setattr(train, "train_command", misspelt_train_command)
    with pytest.raises(RuntimeError, match="train failed: unknown train config key .batch_rayz."):
        bpy.ops.fieldwork.train()
    client = addon_module("client")
    session = client.session_for(client.scene_key(scene))
    assert session.state.status == "failed"
    deadline = time.monotonic() + 10
    while not process_exited(session.state.engine_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_exited(session.state.engine_pid)
