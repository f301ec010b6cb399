"""Layouts through ``python -m engine serve`` (protocol 3): open a trained GIRAFFE run, sample a layout with
proxies, render it with per-object alphas; a run that makes no layouts is refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine import protocol
from engine.layout_service import alpha_layers
from tests.engine.test_server import EngineProcess, handshake
from tests.layout_runs import ngp_run_folder, train_giraffe


@pytest.fixture(scope="module")
def giraffe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_giraffe(tmp_path_factory.mktemp("giraffe"))


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineProcess]:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    process = EngineProcess()
    handshake(process)
    yield process
    process.close()


def alphas_of(frames: list[protocol.PreviewFrame], k: int) -> np.ndarray:
    """(k, h, w) alphas in [0, 1], rows from the top, from a render_layout answer's alpha frames."""
    planes = []
    for frame in sorted((f for f in frames if f.mode == "alpha"), key=lambda f: f.layer):
        rgba = np.frombuffer(frame.payload, np.uint8).reshape(frame.height, frame.width, 4)[::-1] / 255.0
        planes.extend(np.moveaxis(rgba, -1, 0))
    return np.stack(planes[:k])


def render(engine: EngineProcess, layout: dict, camera: dict, request_id: int) -> list[protocol.PreviewFrame]:
    engine.send(protocol.RenderLayout(request_id=request_id, layout=layout, **camera))
    first = engine.next_event(timeout=60)
    assert isinstance(first, protocol.PreviewFrame) and first.mode == "color", first
    frames = [first] + [engine.next_event(timeout=60) for _ in range(first.layers)]
    assert all(isinstance(f, protocol.PreviewFrame) and f.request_id == request_id for f in frames), frames
    return frames  # type: ignore[return-value]


def test_open_sample_and_render_a_layout(engine: EngineProcess, giraffe_run: Path) -> None:
    engine.send(protocol.OpenRun(run_dir=str(giraffe_run), device="cpu"))
    opened = engine.next_event(timeout=60)
    assert isinstance(opened, protocol.RunOpened), opened
    assert opened.method == "giraffe" and opened.facts["object_count"] == [1, 3]
    assert opened.facts["floor"] == {"height": 0.5, "center": [1.0, 0.0]}

    engine.send(protocol.SampleLayout(request_id=7, seed=3, n_objects=5, proxy_resolution=8))
    ready = engine.next_event(timeout=60)
    assert isinstance(ready, protocol.LayoutReady) and ready.request_id == 7, ready
    layout = ready.layout
    assert len(layout["objects"]) == 5 and len(ready.proxies) == 5
    size = sum(p["vertices"] * 12 + p["faces"] * 12 for p in ready.proxies)
    assert len(ready.payload) == size and all(p["kind"] in ("density", "box") for p in ready.proxies)

    camera = dict(camera_to_world=layout["camera"]["camera_to_world"], fl_x=35.0, fl_y=35.0, cx=24.0, cy=16.0)
    frames = render(engine, layout, dict(camera, width=48, height=32), 8)  # wider than tall: rendered square
    assert frames[0].layers == alpha_layers(5) == 2 and (frames[0].width, frames[0].height) == (48, 32)
    alphas = alphas_of(frames, 5)
    assert alphas.shape == (5, 32, 48) and alphas.max() > 0.1

    # Moving object 0 (up, out of the frame) changes its alpha
    moved = {**layout, "objects": [dict(obj) for obj in layout["objects"]]}
    x, y, z = moved["objects"][0]["translation"]
    moved["objects"][0]["translation"] = [x, y, z + 5.0]
    again = alphas_of(render(engine, moved, dict(camera, width=48, height=32), 9), 5)
    assert not np.allclose(again[0], alphas[0], atol=0.02)

    # The viewport's view (SetView) previews the current layout: the last one rendered
    engine.send(protocol.SetView(view_id=4, **dict(camera, width=40, height=30)))
    preview = engine.next_event(timeout=60)
    assert isinstance(preview, protocol.PreviewFrame) and preview.view_id == 4 and preview.mode == "color", preview
    assert max(preview.width, preview.height) <= 64 and preview.layers == 0


def test_a_run_that_makes_no_layouts_is_refused_by_name(engine: EngineProcess, tmp_path: Path) -> None:
    run = ngp_run_folder(tmp_path)
    engine.send(protocol.OpenRun(run_dir=str(run)))
    error = engine.next_event(timeout=60)
    assert isinstance(error, protocol.Error) and error.command == "open_run"
    assert f"run {run} trains ngp, which makes no layouts" in error.message
    engine.send(protocol.SampleLayout(seed=1))
    error = engine.next_event(timeout=30)
    assert isinstance(error, protocol.Error) and "send open_run first" in error.message


def test_a_proxy_is_marched_from_the_object_density_and_falls_back_to_its_box(
    giraffe_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.layout_service import LayoutService

    service = LayoutService(giraffe_run, device="cpu")
    layout = service.model.sample_layout(1, 1)
    obj = layout.objects[0]

    def ball(_obj, resolution):  # type: ignore[no-untyped-def]
        axis = np.linspace(-1.0, 1.0, resolution + 1)
        x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
        return np.where(x**2 + y**2 + z**2 < 0.5**2, 100.0, 0.0)  # dense inside radius 0.5 of the box

    monkeypatch.setattr(service, "object_density", ball)
    vertices, faces, kind = service.proxy_mesh(obj, 24)
    radii = np.linalg.norm(vertices, axis=1)
    assert kind == "density" and len(faces) > 50
    assert abs(radii.mean() - 0.5) < 0.05 and vertices.min() >= -1.0 and vertices.max() <= 1.0
    monkeypatch.setattr(service, "object_density", lambda _obj, r: np.zeros((r + 1,) * 3))
    assert service.proxy_mesh(obj, 8)[2] == "box"
