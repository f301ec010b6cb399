"""``train --preview-view VIEW.json``: a picture of the run as it trains, from a given view, in a file.

The view file holds a ``set_view`` message's header (engine/protocol.py: the camera in Blender world space
and pinhole intrinsics), the same view the live session takes. Every so often (a PreviewScheduler keeps
previews to a small share of the wall clock) the run is rendered from it into ``RUN/preview.png`` (RGBA,
atomically replaced): a volume render for an image method, a shaded surface for a shape method. The view
file is read again whenever it changes, so a caller that rewrites it (Fit Surface, following the
viewport) moves the preview; a rewrite that does not parse keeps the last good view and is logged once.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import protocol
from ..atomic import write_bytes_atomic
from ..render.preview import PreviewScheduler, PreviewView, preview_pixels

if TYPE_CHECKING:
    from .trainer import Trainer

log = logging.getLogger(__name__)

PREVIEW_FILE_NAME = "preview.png"


def read_view(path: Path) -> PreviewView:
    """The view in ``path`` (a set_view header as JSON); a ValueError names the file and what is wrong."""
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
        message = protocol.decode_header(header)
        if not isinstance(message, protocol.SetView):
            raise ValueError(f"it holds a {message.type!r} message, not set_view")
        return PreviewView.from_message(message)
    except OSError as error:
        raise ValueError(f"cannot read the preview view {path}: {error.strerror or error}") from error
    except (ValueError, protocol.ProtocolError) as error:
        raise ValueError(f"preview view {path}: {error}") from error


class PreviewFile:
    """Renders ``trainer`` from the view in ``view_path`` into ``out_path`` when due (``maybe_write``)."""

    def __init__(
        self, view_path: Path, out_path: Path, min_interval_s: float = 1.0, max_side: int = 256, share: float = 0.1
    ) -> None:
        self.view_path, self.out_path = view_path, out_path
        self.view = read_view(view_path)  # a bad view file is named before training starts
        self._view_stamp = self._stamp()
        self._view_changed = True
        self._warned_stamp: tuple[int, int] | None = None
        self.scheduler = PreviewScheduler(
            min_interval_s=min_interval_s, max_side=max_side, budget_fraction=share, first_side=min(64, max_side)
        )
        self.written = 0
        self.seconds = 0.0  # spent rendering and writing previews
        self.last_side = 0

    def _stamp(self) -> tuple[int, int]:
        try:
            status = self.view_path.stat()
        except OSError:
            return (0, 0)
        return (status.st_mtime_ns, status.st_size)

    def _refresh_view(self) -> None:
        stamp = self._stamp()
        if stamp == self._view_stamp or stamp == (0, 0):
            return
        try:
            self.view = read_view(self.view_path)
        except ValueError as error:
            if self._warned_stamp != stamp:
                log.warning("%s; previews keep the last view", error)
                self._warned_stamp = stamp
            return
        self._view_stamp = stamp
        self._view_changed = True

    def maybe_write(self, trainer: Trainer, final: bool = False) -> bool:
        """Render and write the preview if one is due (``final``: now, at the largest side); True when written."""
        self._refresh_view()
        started = time.perf_counter()
        if not final and not self.scheduler.due(started, self._view_changed):
            return False
        view = self.view.scaled_to(self.scheduler.max_side if final else self.scheduler.side(self._view_changed))
        from ..data.transforms import Intrinsics

        intrinsics = Intrinsics(view.fl_x, view.fl_y, view.cx, view.cy, view.width, view.height)
        rendered = trainer.render(view.camera_to_world, intrinsics)
        bottom_first = preview_pixels(rendered.rgb, rendered.depth, rendered.opacity, view.mode)
        pixels = np.frombuffer(bottom_first, dtype=np.uint8).reshape(view.height, view.width, 4)[::-1]
        import imageio.v3 as iio

        write_bytes_atomic(self.out_path, iio.imwrite("<bytes>", pixels, extension=".png"))
        ended = time.perf_counter()
        self.scheduler.record(ended - started, view.width * view.height, ended)
        self._view_changed = False
        self.written += 1
        self.seconds += ended - started
        self.last_side = max(view.width, view.height)
        return True
