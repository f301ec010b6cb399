"""The framed protocol (engine/protocol.py): round trips and every way a stream can go wrong."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from engine import protocol
from tests.conftest import REPO

EXAMPLES: dict[str, protocol.Message] = {
    "hello": protocol.Hello(client="test", session_id="abc"),
    "train": protocol.Train(dataset="/d", out_dir="/o", steps=5, minutes=1.5, settings={"lr": 0.01}),
    "pause": protocol.Pause(),
    "resume": protocol.Resume(),
    "stop": protocol.Stop(),
    "set_view": protocol.SetView(
        view_id=3,
        camera_to_world=[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2.5], [0, 0, 0, 1]],
        fl_x=40.0,
        fl_y=40.0,
        cx=16.0,
        cy=12.0,
        width=32,
        height=24,
        mode="depth",
    ),
    "render_view": protocol.RenderView(request_id=7, fl_x=10.0, fl_y=10.0, cx=4.0, cy=4.0, width=8, height=8),
    "extract": protocol.Extract(out_path="/o/mesh.ply", resolution=64),
    "shutdown": protocol.Shutdown(),
    "open_run": protocol.OpenRun(run_dir="/runs/giraffe", device="cpu"),
    "sample_layout": protocol.SampleLayout(request_id=2, seed=5, n_objects=3, proxy_resolution=16),
    "render_layout": protocol.RenderLayout(
        request_id=3, layout={"objects": []}, fl_x=10.0, fl_y=10.0, cx=4.0, cy=4.0, width=8, height=8
    ),
    "run_opened": protocol.RunOpened(run_dir="/runs/giraffe", method="giraffe", step=2, facts={"slots": 3}),
    "layout_ready": protocol.LayoutReady(
        request_id=2, layout={"objects": []}, proxies=[{"name": "a", "vertices": 1, "faces": 0}], payload=b"x" * 12
    ),
    "welcome": protocol.Welcome(engine_version="0.1.0", torch_version="2.x", device="cpu", pid=42, session_id="abc"),
    "progress": protocol.Progress(step=3, total_steps=10, figures={"loss": 0.25, "psnr": 18.5}, preview_s=0.5),
    "preview_frame": protocol.PreviewFrame(width=2, height=3, step=4, view_id=3, layers=2, payload=bytes(range(24))),
    "log": protocol.Log(level="info", message="hello"),
    "warning": protocol.Warning(message="careful"),
    "error": protocol.Error(message="bad", traceback="Traceback...", fatal=True, command="train"),
    "status": protocol.Status(state="paused", step=12),
    "checkpoint": protocol.Checkpoint(path="/o/ckpt.pt", step=9),
    "mesh_ready": protocol.MeshReady(path="/o/mesh.ply", vertex_count=8, face_count=12),
    "done": protocol.Done(reason="stopped", step=9, checkpoint="/o/ckpt.pt", metrics={"psnr": 20.0}),
}


def frame(header: dict | bytes, payload: bytes = b"", magic: bytes = b"FW") -> bytes:
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack(">2sII", magic, len(header_bytes), len(payload)) + header_bytes + payload


def test_examples_cover_every_message_type() -> None:
    assert set(EXAMPLES) == set(protocol.message_types())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip(name: str) -> None:
    message = EXAMPLES[name]
    decoder = protocol.FrameDecoder()
    decoder.feed(protocol.encode(message))
    assert decoder.next_message() == message
    assert decoder.next_message() is None
    decoder.check_eof()


def test_byte_by_byte_feed_and_several_frames_in_one_chunk() -> None:
    stream = b"".join(protocol.encode(m) for m in EXAMPLES.values())
    decoder = protocol.FrameDecoder()
    received = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        while (message := decoder.next_message()) is not None:
            received.append(message)
    assert received == list(EXAMPLES.values())


def test_preview_payload_is_raw_rgba() -> None:
    frame_bytes = protocol.encode(protocol.PreviewFrame(width=256, height=256, payload=bytes(256 * 256 * 4)))
    # No image encode: the frame is the pixels plus a small header.
    assert 256 * 256 * 4 < len(frame_bytes) < 256 * 256 * 4 + 200


def test_preview_frame_with_wrong_payload_size_is_refused() -> None:
    with pytest.raises(protocol.ProtocolError, match="needs 16 payload bytes, got 3"):
        protocol.encode(protocol.PreviewFrame(width=2, height=2, payload=b"abc"))
    decoder = protocol.FrameDecoder()
    decoder.feed(frame({"type": "preview_frame", "width": 2, "height": 2}, b"abc"))
    with pytest.raises(protocol.MessageError, match="needs 16 payload bytes"):
        decoder.next_message()


def test_truncated_frame_is_reported_at_eof() -> None:
    encoded = protocol.encode(EXAMPLES["progress"])
    decoder = protocol.FrameDecoder()
    decoder.feed(encoded[:-5])
    assert decoder.next_message() is None
    with pytest.raises(protocol.FramingError, match="stream ended inside a frame"):
        decoder.check_eof()


def test_oversized_length_prefixes_fail_at_once() -> None:
    decoder = protocol.FrameDecoder()
    decoder.feed(struct.pack(">2sII", b"FW", 10, protocol.MAX_PAYLOAD_BYTES + 1))
    with pytest.raises(protocol.FramingError, match="payload length .* over the limit"):
        decoder.next_message()
    decoder = protocol.FrameDecoder()
    decoder.feed(struct.pack(">2sII", b"FW", protocol.MAX_HEADER_BYTES + 1, 0))
    with pytest.raises(protocol.FramingError, match="header length"):
        decoder.next_message()


def test_garbage_is_a_framing_error() -> None:
    decoder = protocol.FrameDecoder()
    decoder.feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(protocol.FramingError, match="bad frame magic"):
        decoder.next_message()


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        ({"type": "launch_rockets"}, "unknown message type 'launch_rockets'"),
        ({"type": "train", "stepz": 3}, "unknown field"),
        ({"type": "train", "steps": "many"}, r"train.steps: expected int, got str"),
        ({"type": "set_view", "width": True}, "got bool"),
    ],
)
def test_invalid_message_is_skipped_and_stream_goes_on(header: dict | bytes, match: str) -> None:
    decoder = protocol.FrameDecoder()
    decoder.feed(frame(header) + protocol.encode(protocol.Stop()))
    with pytest.raises(protocol.MessageError, match=match):
        decoder.next_message()
    assert decoder.next_message() == protocol.Stop()


def test_wrong_version_is_a_clear_exception() -> None:
    with pytest.raises(protocol.ProtocolError, match="speaks Fieldwork protocol 99.*this side speaks 3"):
        protocol.check_version(99, "the add-on")
    with pytest.raises(
        protocol.ProtocolError, match=r"protocol 2, this side speaks 3 \(the older side lacks 3: layouts"
    ):
        protocol.check_version(2, "the add-on")


def test_a_protocol_1_progress_is_refused_naming_its_old_fields() -> None:
    # protocol 1 reported fixed loss/psnr/rays_per_second fields; 2 has a dict of the method's figures
    old = {"type": "progress", "step": 3, "total_steps": 10, "loss": 0.1, "psnr": 20.0, "rays_per_second": 5.0}
    with pytest.raises(protocol.MessageError, match="unknown field.*loss, psnr, rays_per_second.*speaks 3"):
        protocol.decode_header(old)


def test_importing_the_protocol_does_not_import_torch() -> None:
    code = "import sys, engine.protocol; sys.exit('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60, check=False)
    assert completed.returncode == 0
