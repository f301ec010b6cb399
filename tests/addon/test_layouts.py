"""Generated layouts in Blender (addon/layouts.py) with real bpy and a real engine child process, on a
2-step GIRAFFE run trained in the test session (tests/layout_runs.py): generate, poses and codes on the
empties, per-object alphas that follow a moved empty, duplicate/delete, save/load, animation, refusals,
and a killed engine during a live edit.

bpy.app.timers do not fire inside pytest, so the operators take their background-mode (synchronous) path,
and the live path is driven by the real depsgraph handler (``view_layer.update()``) and drained with
``layouts.wait_for``, as the timer would.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.addon.test_session import process_exited
from tests.conftest import addon_module, require_leg
from tests.layout_runs import ngp_run_folder, train_giraffe

bpy = pytest.importorskip("bpy", reason="layouts need Blender as a module (bpy)")


@pytest.fixture(scope="session")
def giraffe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_giraffe(tmp_path_factory.mktemp("giraffe-layouts"))


@pytest.fixture
def scene(empty_scene, giraffe_run: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = empty_scene.fieldwork.layouts
    settings.run_dir = str(giraffe_run)
    settings.preview_size = 48
    settings.proxy_resolution = 8
    yield empty_scene
    addon_module("client").close_all()


def centroid(alpha: np.ndarray) -> np.ndarray:
    """(x, y) pixel coordinates (centres at +0.5) of an alpha map's centre of mass, rows from the top."""
    rows, columns = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]]
    total = alpha.sum()
    return np.array([(alpha * (columns + 0.5)).sum() / total, (alpha * (rows + 0.5)).sum() / total])


def generate(scene, seed: int, count: int) -> dict:  # type: ignore[no-untyped-def]
    settings = scene.fieldwork.layouts
    settings.seed, settings.object_count = seed, count
    assert bpy.ops.fieldwork.generate_layout() == {"FINISHED"}
    return addon_module("layouts").state_for(scene).built


def test_generate_puts_the_layout_on_empties_and_a_moved_empty_moves_its_alpha(scene) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    camera_math = addon_module("camera_math")
    bpy.ops.mesh.primitive_cube_add(location=(20.0, 0.0, 0.0))
    users_cube = bpy.context.active_object
    document = generate(scene, seed=3, count=1)

    empties = layouts.layout_objects(scene)
    assert [obj.name for obj in empties] == [obj["name"] for obj in document["objects"]]
    for empty, obj in zip(empties, document["objects"], strict=True):
        assert np.allclose(empty.matrix_world.translation, obj["translation"], atol=1e-6)
        assert math.isclose(empty.rotation_euler.z, math.radians(obj["rotation_z_deg"]), abs_tol=1e-6)
        assert np.allclose(empty.scale, [obj["scale"]] * 3, atol=1e-6)
        assert np.allclose(list(empty[layouts.SHAPE_KEY]), obj["shape_code"], atol=1e-6)
        assert np.allclose(list(empty[layouts.APPEARANCE_KEY]), obj["appearance_code"], atol=1e-6)
        assert empty[layouts.SEED_KEY] == 3
        proxies = [child for child in empty.children if child.get(layouts.ROLE_KEY) == "proxy"]
        assert len(proxies) == 1 and len(proxies[0].data.polygons) > 0
    assert scene.camera.get(layouts.ROLE_KEY) == "camera"
    assert np.allclose(np.array(scene.camera.matrix_world), document["camera"]["camera_to_world"], atol=1e-5)
    state = layouts.state_for(scene)
    first = state.last
    assert first is not None and first.alphas.shape == (1, 48, 48)
    assert bpy.data.images["Fieldwork Preview"].size[:] == (48, 48)
    assert bpy.data.images[layouts.ALPHA_IMAGE_NAME].size[:] == (48, 48)
    assert users_cube.name in bpy.data.objects and tuple(users_cube.location) == (20.0, 0.0, 0.0)

    # Move the empty by d with bpy: its alpha's centroid moves by the camera's projection of d.
    empty = empties[0]
    start = np.array(empty.matrix_world.translation)
    offset = np.array([0.25, -0.2, 0.0])
    empty.location = tuple(start + offset)
    second = layouts.render_now(scene)
    request = second.request
    intrinsics = camera_math.Intrinsics(
        request.fl_x, request.fl_y, request.cx, request.cy, request.width, request.height
    )
    projected = camera_math.project_points(intrinsics, request.camera_to_world, [start, start + offset])
    expected = projected[1] - projected[0]
    measured = centroid(second.alphas[0]) - centroid(first.alphas[0])
    print(f"centroid moved {measured}, projection {expected}")
    assert np.linalg.norm(expected) > 1.0  # a move the test can see
    assert np.linalg.norm(measured - expected) < 0.35 * np.linalg.norm(expected) + 0.5


def test_duplicate_and_delete_change_the_layout_sent_and_save_load_round_trips(scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    generate(scene, seed=5, count=2)
    state = layouts.state_for(scene)
    empty = layouts.layout_objects(scene)[0]

    duplicate = empty.copy()  # what Shift+D makes of an empty: its custom properties come along
    empty.users_collection[0].objects.link(duplicate)
    duplicate.location.x += 0.5
    bpy.context.view_layer.update()  # the depsgraph handler sends the layout (live)
    assert state.sent_counts[-1] == 3, (state.warnings, state.sent_counts)
    layouts.wait_for(scene, lambda: state.in_flight is None and state.pending is None, "the live render")
    assert len(state.last.names) == 3 and state.last.alphas.shape[0] == 3
    assert list(duplicate[layouts.SHAPE_KEY]) == list(empty[layouts.SHAPE_KEY])

    bpy.data.objects.remove(duplicate)
    bpy.context.view_layer.update()
    assert state.sent_counts[-1] == 2
    layouts.wait_for(scene, lambda: state.in_flight is None and state.pending is None, "the live render")

    before, _names, _notes = layouts.layout_from_scene(scene)
    path = tmp_path / "layout.json"
    assert bpy.ops.fieldwork.save_layout(filepath=str(path)) == {"FINISHED"}
    assert json.loads(path.read_text())["format"] == "fieldwork-layout"
    empty.location.x += 3.0  # changed after saving: loading brings back what was saved
    assert bpy.ops.fieldwork.load_layout(filepath=str(path)) == {"FINISHED"}
    after, _names, _notes = layouts.layout_from_scene(scene)
    assert [o["name"] for o in after["objects"]] == [o["name"] for o in before["objects"]]
    for a, b in zip(after["objects"], before["objects"], strict=True):
        for key in ("translation", "shape_code", "appearance_code"):
            assert np.allclose(a[key], b[key], atol=1e-6), key
        assert math.isclose(a["scale"], b["scale"], abs_tol=1e-6)
        assert math.isclose(a["rotation_z_deg"], b["rotation_z_deg"], abs_tol=1e-4)
    assert np.allclose(after["camera"]["camera_to_world"], before["camera"]["camera_to_world"], atol=1e-5)


def test_a_live_edit_drained_by_the_timer_re_renders_without_blocking(scene) -> None:  # type: ignore[no-untyped-def]
    """The interactive path: the depsgraph handler sends, ``client.tick`` (the timer's function) drains."""
    layouts = addon_module("layouts")
    client = addon_module("client")
    scene.fieldwork.layouts.preview_size = 32
    generate(scene, seed=6, count=2)
    state = layouts.state_for(scene)
    done = state.completed
    obj = layouts.layout_objects(scene)[1]
    obj.rotation_euler.z += 0.5
    obj.scale *= 1.2
    bpy.context.view_layer.update()
    assert state.in_flight is not None  # sent at once, nothing waited for
    started, longest = time.perf_counter(), 0.0
    while state.completed == done and time.perf_counter() - started < 60:
        tick = time.perf_counter()
        client.tick()
        longest = max(longest, time.perf_counter() - tick)
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    print(f"live re-render at 32^2 in {seconds:.2f} s; longest tick {longest * 1000:.1f} ms")
    assert state.completed == done + 1 and state.last.names == [o.name for o in layouts.layout_objects(scene)]
    sent = state.last.request.layout["objects"][1]
    assert math.isclose(sent["rotation_z_deg"], math.degrees(obj.rotation_euler.z), abs_tol=1e-4)
    assert math.isclose(sent["scale"], obj.scale.x, abs_tol=1e-6)
    assert longest < 0.25  # a tick never waits on the engine


def test_resample_and_copy_codes_reach_the_engine(scene) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    generate(scene, seed=8, count=2)
    first, second = layouts.layout_objects(scene)
    shape, appearance = list(first[layouts.SHAPE_KEY]), list(first[layouts.APPEARANCE_KEY])
    bpy.context.view_layer.objects.active = first
    assert bpy.ops.fieldwork.resample_codes(which="shape", seed=11) == {"FINISHED"}
    assert list(first[layouts.SHAPE_KEY]) != shape and list(first[layouts.APPEARANCE_KEY]) == appearance
    assert first[layouts.SEED_KEY] == 11
    first.select_set(True)
    second.select_set(True)
    assert bpy.ops.fieldwork.copy_layout_codes(which="both") == {"FINISHED"}
    assert list(second[layouts.SHAPE_KEY]) == list(first[layouts.SHAPE_KEY])
    assert list(second[layouts.APPEARANCE_KEY]) == list(first[layouts.APPEARANCE_KEY])
    rendered = layouts.render_now(scene)
    sent = rendered.request.layout["objects"]
    assert np.allclose(sent[1]["shape_code"], list(first[layouts.SHAPE_KEY]))
    assert np.allclose(sent[0]["appearance_code"], sent[1]["appearance_code"])


def test_more_objects_than_trained_render_with_a_warning(scene) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    generate(scene, seed=1, count=5)
    state = layouts.state_for(scene)
    assert state.last.alphas.shape[0] == 5
    assert any("trained with at most 3" in warning for warning in state.warnings), state.warnings
    obj = layouts.layout_objects(scene)[0]
    obj.location.z += 2.0
    assert any("floor" in warning for warning in layouts.update_warnings(scene))


def test_keyframed_empties_and_codes_render_as_an_image_sequence(scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    generate(scene, seed=2, count=1)
    obj = layouts.layout_objects(scene)[0]
    start_x = obj.location.x
    first_code = list(obj[layouts.SHAPE_KEY])
    obj.keyframe_insert("location", frame=1)
    obj.keyframe_insert(f'["{layouts.SHAPE_KEY}"]', frame=1)
    obj.location.x = start_x + 1.0
    obj[layouts.SHAPE_KEY] = [value + 2.0 for value in first_code]
    obj.keyframe_insert("location", frame=3)
    obj.keyframe_insert(f'["{layouts.SHAPE_KEY}"]', frame=3)
    scene.frame_start, scene.frame_end = 1, 3
    out = tmp_path / "frames"
    assert bpy.ops.fieldwork.render_layout_animation(out_dir=str(out)) == {"FINISHED"}
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    middle = json.loads((out / "layout_0002.json").read_text())["objects"][0]
    assert math.isclose(middle["translation"][0], start_x + 0.5, abs_tol=1e-4)
    assert np.allclose(middle["shape_code"], [value + 1.0 for value in first_code], atol=1e-4)

    state = layouts.state_for(scene)
    layouts.wait_for(scene, lambda: state.in_flight is None and state.pending is None, "the animation's last frame")
    scene.frame_set(2)  # scrubbing: the frame-change handler sends the frame's layout (live)
    sent = (state.pending[0] if state.pending else state.in_flight).layout["objects"][0]
    assert math.isclose(sent["translation"][0], start_x + 0.5, abs_tol=1e-4)


def test_a_run_that_makes_no_layouts_is_named(scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = ngp_run_folder(tmp_path)
    scene.fieldwork.layouts.run_dir = str(run)
    with pytest.raises(RuntimeError, match=f"run {run} trains ngp, which makes no layouts"):
        bpy.ops.fieldwork.generate_layout()


def test_killing_the_engine_during_a_live_edit_leaves_blender_usable(scene) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    client = addon_module("client")
    generate(scene, seed=4, count=2)
    session = client.session_for(client.scene_key(scene))
    pid = session.state.engine_pid
    obj = layouts.layout_objects(scene)[0]
    obj.location.x += 0.3
    bpy.context.view_layer.update()  # a live request in flight...
    os.kill(pid, signal.SIGKILL)  # ...and the engine dies
    for _ in range(100):  # the timer's own function notices the exit
        client.tick()
        if not session.state.active:
            break
        time.sleep(0.05)
    assert session.state.status == "failed" and process_exited(pid)
    obj.location.x += 0.3
    bpy.context.view_layer.update()  # the handler sees no session: nothing sent, nothing raised
    assert layouts.state_for(scene).in_flight is None
    bpy.ops.mesh.primitive_cube_add()  # Blender goes on
    assert bpy.ops.fieldwork.render_layout() == {"FINISHED"}  # with a fresh engine
    fresh = client.session_for(client.scene_key(scene))
    assert fresh.state.engine_pid != pid and layouts.state_for(scene).last.alphas.shape[0] == 2


@pytest.mark.parametrize(
    ("leg", "mode"), [("blender-5.0", "disable"), ("blender-5.0", "crash"), ("blender-5.2", "disable")]
)
def test_disabling_the_addon_or_crashing_mid_edit_leaves_no_engine(  # type: ignore[no-untyped-def]
    leg: str, mode: str, built_extension: Path, engine_python: Path, giraffe_run: Path, run_blender_script
) -> None:
    python = require_leg(leg)
    report = run_blender_script(
        python, "layout_orphans.py", str(built_extension), str(engine_python), str(giraffe_run), mode
    )
    assert report["in_flight"], report  # the edit was on its way to the engine
    if mode == "disable":
        assert report["exit_code"] is not None  # unregister waited for the child's exit
        assert not {"_on_depsgraph_update", "_on_frame_change"} & set(report["handlers_left"]), report
        assert report["objects"] > 0  # Blender went on: an edit and a new object after disabling
    deadline = time.monotonic() + 15
    while not process_exited(report["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_exited(report["pid"]), f"engine {report['pid']} outlived its Blender ({mode})"


def test_a_layout_of_other_code_sizes_loads_but_its_render_names_the_sizes(scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layouts = addon_module("layouts")
    document = generate(scene, seed=9, count=1)
    other = json.loads(json.dumps(document))
    other["shape_code_size"] = 4
    other["objects"][0]["shape_code"] = [0.5, -0.5, 0.25, 0.0]
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    assert bpy.ops.fieldwork.load_layout(filepath=str(path)) == {"FINISHED"}
    assert len(layouts.layout_objects(scene)[0][layouts.SHAPE_KEY]) == 4
    with pytest.raises(RuntimeError, match="'shape_code_size' is 4, the giraffe model's codes have 16"):
        bpy.ops.fieldwork.render_layout()
    assert bpy.ops.fieldwork.generate_layout() == {"FINISHED"}  # the session goes on
