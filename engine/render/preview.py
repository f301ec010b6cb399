"""Previews of a run from a view: when to render one and how big (a share of the wall clock), the view
itself (a pinhole camera in Blender world space), and the RGBA bytes Blender's images take.

Used by the live session (engine/server.py) and by ``train --preview-view`` (engine/train/preview_file.py).
numpy is imported inside the functions: the server imports this module before its handshake has checked
that numpy exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import protocol

if TYPE_CHECKING:
    import numpy as np

PREVIEW_MODES = ("color", "depth", "opacity")
# A render_view is rendered at its full size: beyond this many pixels it would exhaust memory, not fail.
MAX_VIEW_PIXELS = 4096 * 4096


@dataclass
class PreviewScheduler:
    """When to render a preview and how big, so that previews cost about ``budget_fraction`` of the time.

    The engine measures what a preview costs per pixel and sizes the next one from that, like
    interactive viewers adapt their resolution to the frame rate:

    - a regular preview gets the largest side (up to ``max_side``) whose render fits in
      ``budget_fraction * min_interval_s``; the next one waits ``max(min_interval_s, t / budget_fraction)``
      after a render of ``t`` seconds ended, so previews never take more than ``budget_fraction``
      of the wall clock, whatever the field and device;
    - after a view change, a quick low-resolution frame (render time about ``interactive_s``) comes
      as soon as the last render's own duration has passed, and the next regular preview sharpens it.
    """

    min_interval_s: float = 1.0
    max_side: int = 128
    min_side: int = 16
    budget_fraction: float = 0.05
    interactive_s: float = 0.05
    first_side: int = 24  # before anything is measured: a cheap probe of the cost per pixel
    _seconds_per_pixel: float = 0.0
    _last_render_s: float = 0.0
    _last_end: float = -math.inf

    def __post_init__(self) -> None:
        if not 0.0 < self.budget_fraction < 1.0:
            raise ValueError(f"budget_fraction must be in (0, 1), got {self.budget_fraction}")
        if self.max_side < self.min_side:
            raise ValueError(f"preview max side {self.max_side} is below the minimum {self.min_side}")

    def due(self, now: float, view_changed: bool = False) -> bool:
        if view_changed:
            return now - self._last_end >= self._last_render_s
        return now - self._last_end >= max(self.min_interval_s, self._last_render_s / self.budget_fraction)

    def side(self, view_changed: bool = False) -> int:
        """Longest side in pixels for the next preview."""
        if self._seconds_per_pixel == 0.0:
            return max(self.min_side, min(self.max_side, self.first_side))
        target_s = self.interactive_s if view_changed else self.budget_fraction * self.min_interval_s
        side = int(math.sqrt(target_s / self._seconds_per_pixel))
        return max(self.min_side, min(self.max_side, side))

    def record(self, render_s: float, pixels: int, now: float) -> None:
        """A preview of ``pixels`` pixels took ``render_s`` seconds and ended at ``now``."""
        per_pixel = render_s / max(1, pixels)
        # Averaged, so one slow render (a busy machine) does not collapse the size at once.
        self._seconds_per_pixel = per_pixel if self._seconds_per_pixel == 0.0 else (
            0.5 * self._seconds_per_pixel + 0.5 * per_pixel
        )  # fmt: skip
        self._last_render_s = render_s
        self._last_end = now


@dataclass(frozen=True)
class PreviewView:
    """A pinhole view in Blender world space at full size; previews scale it down."""

    camera_to_world: np.ndarray  # (4, 4)
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    width: int
    height: int
    mode: str = "color"
    view_id: int = 0

    @classmethod
    def from_message(cls, message: protocol.SetView | protocol.RenderView) -> PreviewView:
        import numpy as np

        from ..data.transforms import Intrinsics, check_camera_to_world

        try:
            check_camera_to_world(message.camera_to_world, message.type)
        except ValueError as exc:
            shape = np.shape(message.camera_to_world) if isinstance(message.camera_to_world, list) else "?"
            raise ValueError(f"{exc} (camera_to_world must be a finite 4x4 matrix, got shape {shape})") from exc
        matrix = np.asarray(message.camera_to_world, dtype=np.float64)
        if message.width <= 0 or message.height <= 0 or message.fl_x <= 0 or message.fl_y <= 0:
            raise ValueError(
                f"{message.type}: size {message.width}x{message.height} and focal lengths "
                f"{message.fl_x}, {message.fl_y} must be positive"
            )
        try:  # the same bounds as a dataset camera: every number finite and within float32's reach
            Intrinsics(message.fl_x, message.fl_y, message.cx, message.cy, message.width, message.height)
        except ValueError as exc:
            raise ValueError(f"{message.type}: {exc}") from exc
        if isinstance(message, protocol.RenderView) and message.width * message.height > MAX_VIEW_PIXELS:
            raise ValueError(
                f"{message.type}: {message.width}x{message.height} is over {MAX_VIEW_PIXELS} pixels; "
                "render it smaller, or with `python -m engine render`"
            )
        if message.mode not in PREVIEW_MODES:
            raise ValueError(f"{message.type}: mode {message.mode!r} is not one of {', '.join(PREVIEW_MODES)}")
        view_id = message.view_id if isinstance(message, protocol.SetView) else 0
        return cls(
            matrix, message.fl_x, message.fl_y, message.cx, message.cy, message.width, message.height,
            message.mode, view_id,
        )  # fmt: skip

    def scaled_to(self, max_side: int) -> PreviewView:
        """The same view with its longer side at most ``max_side`` pixels (never upscaled)."""
        scale = min(1.0, max_side / max(self.width, self.height))
        width, height = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        return PreviewView(
            self.camera_to_world,
            self.fl_x * width / self.width,
            self.fl_y * height / self.height,
            self.cx * width / self.width,
            self.cy * height / self.height,
            width,
            height,
            self.mode,
            self.view_id,
        )


def preview_pixels(rgb: np.ndarray, depth: np.ndarray, opacity: np.ndarray, mode: str) -> bytes:
    """RGBA uint8 bytes, bottom row first (Blender's ``Image.pixels`` order), alpha = opacity.

    rgb (h, w, 3) in [0, 1], depth (h, w) in world units, opacity (h, w) in [0, 1].
    Depth is shown near-bright / far-dark between the nearest and farthest opaque pixels.
    """
    import numpy as np

    height, width = opacity.shape
    rgba = np.empty((height, width, 4), dtype=np.float32)
    if mode == "color":
        rgba[..., :3] = rgb
    elif mode == "depth":
        opaque = opacity > 0.5
        near, far = (float(depth[opaque].min()), float(depth[opaque].max())) if opaque.any() else (0.0, 1.0)
        rgba[..., :3] = (1.0 - (depth - near) / max(far - near, 1e-6))[..., None]
    elif mode == "opacity":
        rgba[..., :3] = opacity[..., None]
    else:
        raise ValueError(f"preview mode {mode!r} is not one of {', '.join(PREVIEW_MODES)}")
    rgba[..., 3] = opacity
    pixels = (np.clip(np.nan_to_num(rgba), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return pixels[::-1].tobytes()
