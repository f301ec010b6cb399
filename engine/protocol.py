"""The one definition of the messages between the Blender add-on and the engine.

Stdlib only: Blender's own Python imports this very file from inside the built
extension, and the engine process imports it too, so both sides always agree.

Framing (every message, both directions)::

    magic  b"FW"                      2 bytes
    header_length   uint32 big-endian 4 bytes   (JSON header, UTF-8)
    payload_length  uint32 big-endian 4 bytes   (raw binary payload, may be 0)
    header          JSON object with "type" and the message's fields
    payload         raw bytes (preview pixels: RGBA uint8, row-major, bottom row first)

Binary frames travel as raw bytes beside a small JSON header, so a 256x256 preview
costs 256 KiB on the pipe and no image encode. Decoding is sans-IO
(:class:`FrameDecoder` is fed bytes and hands out messages), so a reader thread never
blocks inside the decoder. Two kinds of failure, so that one bad message never wedges
a session:

- :class:`FramingError`: bad magic or a length prefix over the limits. The stream is
  out of step and must be closed (the peer reports it and ends the session).
- :class:`MessageError`: a well-framed message whose JSON is invalid, whose type is
  unknown or whose fields are wrong. That message is skipped; the stream goes on.

A frame cut short is reported by :meth:`FrameDecoder.check_eof` when the stream ends.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# 2: Train names a registry method (was: field); Progress carries a dict of the method's named figures
# (was: fixed loss, psnr and rays_per_second fields) and the phase.
# 3: layouts of generative runs: open_run, sample_layout, render_layout (answered by run_opened, layout_ready and
# preview frames of mode "alpha"); PreviewFrame gained layer and layers.
PROTOCOL_VERSION = 3

MAGIC = b"FW"
_HEADER = struct.Struct(">2sII")
HEADER_SIZE = _HEADER.size
MAX_HEADER_BYTES = 1 << 20  # JSON headers are small; a larger one is garbage
MAX_PAYLOAD_BYTES = 1 << 28  # 256 MiB: an 8K RGBA uint8 frame (133 MB) fits, a corrupt prefix does not


class ProtocolError(Exception):
    """A message that cannot be framed, parsed or accepted."""


class FramingError(ProtocolError):
    """The byte stream is out of step (garbage, oversized prefix, cut short): close it."""


class MessageError(ProtocolError):
    """One well-framed message was invalid and has been skipped; the stream is still usable."""


# --------------------------------------------------------------------------- messages


@dataclass
class Message:
    """Base of every message. Subclasses set ``type`` and declare JSON-able fields."""

    type: ClassVar[str] = ""
    payload: bytes = dataclasses.field(default=b"", repr=False, compare=True, kw_only=True)

    def header(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "payload"}
        return {"type": self.type, **fields}


_REGISTRY: dict[str, type[Message]] = {}


def _register(cls: type[Message]) -> type[Message]:
    if not cls.type or cls.type in _REGISTRY:
        raise ValueError(f"message type {cls.type!r} missing or registered twice")
    _REGISTRY[cls.type] = cls
    return cls


def message_types() -> dict[str, type[Message]]:
    return dict(_REGISTRY)


# Commands: add-on -> engine ------------------------------------------------------


@_register
@dataclass
class Hello(Message):
    """First message of a session; the engine answers :class:`Welcome` or :class:`Error`."""

    type: ClassVar[str] = "hello"
    protocol_version: int = PROTOCOL_VERSION
    client: str = ""
    session_id: str = ""


@_register
@dataclass
class Train(Message):
    """Start (or resume, when ``out_dir`` holds a checkpoint) a training run."""

    type: ClassVar[str] = "train"
    dataset: str = ""
    out_dir: str = ""
    method: str = "ngp"  # a name from engine.methods
    steps: int = 2000
    minutes: float = 0.0  # 0: no time budget
    device: str = "auto"
    downscale: int = 1
    seed: int = 0
    preview_every_s: float = 1.0  # at most this often (the engine may space them further); <= 0: no streamed previews
    preview_max_side: int = 128
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@_register
@dataclass
class Pause(Message):
    type: ClassVar[str] = "pause"


@_register
@dataclass
class Resume(Message):
    type: ClassVar[str] = "resume"


@_register
@dataclass
class Stop(Message):
    """Stop training after the current step and write a checkpoint."""

    type: ClassVar[str] = "stop"


@_register
@dataclass
class SetView(Message):
    """The view previews are rendered from (Blender's viewport or a camera).

    ``camera_to_world`` is a row-major 4x4 in Blender world space (camera looks down
    -Z, +Y up); intrinsics are pinhole pixels for a ``width`` x ``height`` image.
    """

    type: ClassVar[str] = "set_view"
    view_id: int = 0  # echoed by the preview frames rendered from this view (latency, staleness)
    camera_to_world: list[list[float]] = dataclasses.field(default_factory=list)
    fl_x: float = 0.0
    fl_y: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    width: int = 0
    height: int = 0
    mode: str = "color"  # color | depth | opacity


@_register
@dataclass
class RenderView(Message):
    """Render one view now and answer with a :class:`PreviewFrame` (``request_id`` echoed)."""

    type: ClassVar[str] = "render_view"
    request_id: int = 0
    camera_to_world: list[list[float]] = dataclasses.field(default_factory=list)
    fl_x: float = 0.0
    fl_y: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    width: int = 0
    height: int = 0
    mode: str = "color"


@_register
@dataclass
class Extract(Message):
    """Extract a mesh from the current field; answered by :class:`MeshReady`."""

    type: ClassVar[str] = "extract"
    out_path: str = ""
    resolution: int = 256
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@_register
@dataclass
class OpenRun(Message):
    """Open a trained run for layouts, without training (a method whose registry entry says ``layouts``);
    answered by :class:`RunOpened`, or an :class:`Error` with ``command="open_run"`` naming the run and its
    method when it makes no layouts."""

    type: ClassVar[str] = "open_run"
    run_dir: str = ""
    device: str = "auto"


@_register
@dataclass
class SampleLayout(Message):
    """Draw a layout from the open run's prior; answered by :class:`LayoutReady` (``request_id`` echoed).
    ``n_objects`` < 0: a count from the prior. ``proxy_resolution`` > 0: also a proxy mesh per object, marched
    on that many cells a side of the object's box from the object's own density (0: none)."""

    type: ClassVar[str] = "sample_layout"
    request_id: int = 0
    seed: int = 0
    n_objects: int = -1
    proxy_resolution: int = 0


@_register
@dataclass
class RenderLayout(Message):
    """Render a layout (engine/layouts.py's JSON document) from a pinhole camera (as :class:`RenderView`).

    Answered by a :class:`PreviewFrame` of mode "color" (``layers`` says how many alpha frames follow), then
    ``layers`` frames of mode "alpha": frame ``layer`` = g carries the alphas of objects 4g .. 4g + 3 of the
    layout, in layout order, in its R, G, B and A channels (0 where there is no such object). All of them echo
    ``request_id``. ``alphas=False``: the colour frame only. The layout becomes the session's current one:
    :class:`SetView` then renders it from the viewport's view."""

    type: ClassVar[str] = "render_layout"
    request_id: int = 0
    layout: dict[str, Any] = dataclasses.field(default_factory=dict)
    camera_to_world: list[list[float]] = dataclasses.field(default_factory=list)
    fl_x: float = 0.0
    fl_y: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    width: int = 0
    height: int = 0
    alphas: bool = True


@_register
@dataclass
class Shutdown(Message):
    type: ClassVar[str] = "shutdown"


# Events: engine -> add-on --------------------------------------------------------


@_register
@dataclass
class Welcome(Message):
    type: ClassVar[str] = "welcome"
    protocol_version: int = PROTOCOL_VERSION
    session_id: str = ""  # echoed from Hello, so a client knows the engine answering is its own
    engine_version: str = ""
    torch_version: str = ""
    device: str = ""
    pid: int = 0


@_register
@dataclass
class Progress(Message):
    """Training (phase "train") or the evaluation after it (phase "evaluate": step counts views). figures:
    the method's named numbers (engine.methods.MethodSpec.all_figures: loss, psnr, rays_per_second...)."""

    type: ClassVar[str] = "progress"
    step: int = 0
    total_steps: int = 0
    phase: str = "train"
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    elapsed_s: float = 0.0
    remaining_s: float = 0.0
    preview_s: float = 0.0  # wall time spent rendering previews since the run started (part of elapsed_s)


@_register
@dataclass
class Status(Message):
    """The session changed state: ``idle`` (no run, or a run ended), ``training`` or ``paused``."""

    type: ClassVar[str] = "status"
    state: str = "idle"
    step: int = 0


@_register
@dataclass
class PreviewFrame(Message):
    """A rendered view. ``payload`` is ``width*height*4`` bytes of RGBA uint8, bottom row first
    (Blender's ``Image.pixels`` order), so the add-on copies it without flipping."""

    type: ClassVar[str] = "preview_frame"
    width: int = 0
    height: int = 0
    mode: str = "color"
    step: int = 0
    request_id: int = 0  # 0 for streamed previews
    view_id: int = 0  # the SetView this frame was rendered from; 0: the default view
    layer: int = 0  # mode "alpha": which group of four objects' alphas this frame holds (RenderLayout)
    layers: int = 0  # render_layout answers: the alpha frames of this request (0: none follow)

    def validate(self) -> None:
        expected = self.width * self.height * 4
        if len(self.payload) != expected:
            raise ProtocolError(
                f"preview_frame {self.width}x{self.height} needs {expected} payload bytes, got {len(self.payload)}"
            )


@_register
@dataclass
class Log(Message):
    type: ClassVar[str] = "log"
    level: str = "info"
    message: str = ""


@_register
@dataclass
class Warning(Message):  # noqa: A001 - the protocol's name for the event
    type: ClassVar[str] = "warning"
    message: str = ""


@_register
@dataclass
class Error(Message):
    type: ClassVar[str] = "error"
    message: str = ""
    traceback: str = ""
    fatal: bool = False  # the session is over
    command: str = ""  # the command that failed, when one did ("train": the run never started)


@_register
@dataclass
class Checkpoint(Message):
    type: ClassVar[str] = "checkpoint"
    path: str = ""
    step: int = 0


@_register
@dataclass
class MeshReady(Message):
    type: ClassVar[str] = "mesh_ready"
    path: str = ""
    vertex_count: int = 0
    face_count: int = 0


@_register
@dataclass
class RunOpened(Message):
    """A run is open for layouts. ``facts``: method, code sizes, ``object_count`` [min, max] of the prior,
    ``slots`` (objects per image trained), ``object_scale``/``object_translation_x``/``..._y``/
    ``object_rotation_z_deg`` ranges [low, high], ``floor`` {height, center}, ``image_size`` [w, h]."""

    type: ClassVar[str] = "run_opened"
    run_dir: str = ""
    method: str = ""
    step: int = 0
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)


@_register
@dataclass
class LayoutReady(Message):
    """A sampled layout (engine/layouts.py's JSON document). ``proxies`` (one per object, layout order):
    {"name", "kind" ("density": marched from the object's density, "box": its box, the density had no surface),
    "vertices": n, "faces": m, "colour": [r, g, b] linear}; the payload holds, object after object, n x 3
    float32 vertices in the object's own box [-1, 1]^3 (x, y, z little-endian) then m x 3 int32 faces."""

    type: ClassVar[str] = "layout_ready"
    request_id: int = 0
    layout: dict[str, Any] = dataclasses.field(default_factory=dict)
    proxies: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@_register
@dataclass
class Done(Message):
    type: ClassVar[str] = "done"
    reason: str = "finished"  # finished | stopped | failed
    step: int = 0
    checkpoint: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- framing


def encode(message: Message) -> bytes:
    """One message as framed bytes."""
    if isinstance(message, PreviewFrame):
        message.validate()
    header = json.dumps(message.header(), separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(header) > MAX_HEADER_BYTES:
        raise ProtocolError(f"{message.type} header is {len(header)} bytes, over {MAX_HEADER_BYTES}")
    if len(message.payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{message.type} payload is {len(message.payload)} bytes, over {MAX_PAYLOAD_BYTES}")
    return _HEADER.pack(MAGIC, len(header), len(message.payload)) + header + bytes(message.payload)


def decode_header(header: Mapping[str, Any], payload: bytes = b"") -> Message:
    """Build the typed message from a parsed JSON header, naming what is wrong."""
    if not isinstance(header, Mapping):
        raise MessageError(f"message header must be a JSON object, got {type(header).__name__}")
    type_name = header.get("type")
    cls = _REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise MessageError(f"unknown message type {type_name!r}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "payload"}
    unknown = sorted(set(header) - set(known) - {"type"})
    if unknown:
        raise MessageError(
            f"{type_name}: unknown field(s) {', '.join(unknown)} (a peer of another protocol version? "
            f"this side speaks {PROTOCOL_VERSION})"
        )
    kwargs = {name: header[name] for name in known if name in header}
    try:
        message = cls(**kwargs, payload=payload)
    except TypeError as exc:  # pragma: no cover - dataclass arity is checked above
        raise MessageError(f"{type_name}: {exc}") from exc
    _check_field_types(message)
    if isinstance(message, PreviewFrame):
        try:
            message.validate()
        except ProtocolError as exc:
            raise MessageError(str(exc)) from exc
    return message


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "dict[str, Any]": (dict,),
    "list[list[float]]": (list,),
    "list[dict[str, Any]]": (list,),
}


def _check_field_types(message: Message) -> None:
    for f in dataclasses.fields(message):
        if f.name == "payload":
            continue
        allowed = _JSON_TYPES.get(str(f.type))
        value = getattr(message, f.name)
        if allowed is None:
            continue
        if isinstance(value, bool) and bool not in allowed:
            raise MessageError(f"{message.type}.{f.name}: expected {f.type}, got bool")
        if not isinstance(value, allowed):
            raise MessageError(f"{message.type}.{f.name}: expected {f.type}, got {type(value).__name__}")


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes as they arrive, take messages with :meth:`next_message`.

    ``next_message`` raises :class:`FramingError` when the stream is out of step (close it)
    and :class:`MessageError` for one invalid message, which is skipped: call it again.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> Message | None:
        """The next complete message, or ``None`` until more bytes arrive."""
        if len(self._buffer) < HEADER_SIZE:
            return None
        magic, header_length, payload_length = _HEADER.unpack_from(self._buffer)
        if magic != MAGIC:
            raise FramingError(f"bad frame magic {bytes(magic)!r} (expected {MAGIC!r}): stream is garbage")
        if header_length == 0 or header_length > MAX_HEADER_BYTES:
            raise FramingError(f"frame header length {header_length} outside 1..{MAX_HEADER_BYTES}")
        if payload_length > MAX_PAYLOAD_BYTES:
            raise FramingError(f"frame payload length {payload_length} over the limit {MAX_PAYLOAD_BYTES}")
        total = HEADER_SIZE + header_length + payload_length
        if len(self._buffer) < total:
            return None
        header_bytes = bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + header_length])
        payload = bytes(self._buffer[HEADER_SIZE + header_length : total])
        # The frame leaves the buffer before it is parsed, so an invalid one is skipped, not re-read.
        del self._buffer[:total]
        try:
            header = json.loads(header_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MessageError(f"frame header is not valid JSON: {exc}") from exc
        return decode_header(header, payload)

    def check_eof(self) -> None:
        """Call when the stream ended: a partial frame left over is an error."""
        if self._buffer:
            raise FramingError(f"stream ended inside a frame ({len(self._buffer)} bytes of an incomplete message)")


# What each version added, so a refusal says what the older side lacks.
VERSION_CHANGES = {
    2: "named methods and figures",
    3: "layouts of generative runs (open_run, sample_layout, render_layout)",
}


def check_version(peer_version: int, peer_name: str) -> None:
    if peer_version != PROTOCOL_VERSION:
        older = min(peer_version, PROTOCOL_VERSION)
        added = [f"{version}: {text}" for version, text in VERSION_CHANGES.items() if version > older]
        missing = f" (the older side lacks {'; '.join(added)})" if added else ""
        raise ProtocolError(
            f"{peer_name} speaks Fieldwork protocol {peer_version}, this side speaks {PROTOCOL_VERSION}{missing}: "
            "use the engine that ships with this extension version"
        )
