"""Fit Surface's live preview: the surface being fitted, from the viewport's view, while the engine trains.

The engine's ``train --preview-view VIEW.json`` renders the shape method's current surface (sphere-traced
or marched, shaded like Solid mode) into ``RUN/preview.png`` every few seconds and reads VIEW.json again
whenever it changes. This side writes the viewport's view into VIEW.json (again when the artist moves
the view), brings each new picture into the image "Fieldwork Surface Preview" and draws it over the
viewport it was rendered from. Nothing here talks to the engine: a file each way, both written atomically.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bpy
import gpu
import numpy as np
from gpu_extras.presets import draw_texture_2d

from .engine.atomic import write_text_atomic
from .preview import OWNER_PROPERTY, find_owned_image, tag_redraw, view_from_matrices

IMAGE_NAME = "Fieldwork Surface Preview"
ROLE = "surface_preview"
VIEW_FILE_NAME = "preview_view.json"
# The engine renders a preview at most this often (train --preview-every) and at most this big
# (--preview-size), each sized to take a tenth of the interval: on one loaded CPU core a shape network
# takes 5-15 us per point and a sphere-traced pixel 20-30 points (scripts/bench_shapes.py --only preview),
# so a picture every 4 s is 20-60 pixels across there (bench_shapes: IGR 43, ONet 22); on a GPU, 128.
PREVIEW_EVERY_S = 4.0
PREVIEW_SIZE = 128

_active: SurfacePreview | None = None
_draw_handle: Any = None


def view_signature(view_matrix: Any, projection: Any, width: int, height: int) -> tuple[float | int, ...]:
    return (*np.round(np.asarray(view_matrix).ravel(), 5), *np.round(np.asarray(projection).ravel(), 5), width, height)


class SurfacePreview:
    """One Fit Surface's preview: the view file it keeps, the region it draws in, the picture it shows."""

    def __init__(self, region_pointer: int = 0) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fieldwork-surface-view-"))
        self.view_path = self.folder / VIEW_FILE_NAME
        self.region_pointer = region_pointer
        self.picture: Path | None = None
        self._picture_stamp: tuple[int, int] | None = None
        self._view_signature: tuple[float | int, ...] | None = None

    def write_view(self, view_matrix: Any, projection: Any, width: int, height: int) -> bool:
        """The view (world-to-view 4x4, perspective projection, region size) into the view file when it
        changed; True when written."""
        signature = view_signature(view_matrix, projection, width, height)
        if signature == self._view_signature:
            return False
        view = view_from_matrices(view_matrix, projection, width, height)
        write_text_atomic(self.view_path, json.dumps(view.header()))
        self._view_signature = signature
        return True

    def follow_region(self, context: bpy.types.Context) -> None:
        """Write the view of the region this preview draws in, if it still exists and looks in perspective."""
        found = _region_by_pointer(context, self.region_pointer)
        if found is not None:
            region, region_data = found
            if region_data.is_perspective:
                self.write_view(region_data.view_matrix, region_data.window_matrix, region.width, region.height)

    def show(self, picture: Path) -> bpy.types.Image | None:
        """The engine's latest ``picture`` in the "Fieldwork Surface Preview" image, when it is new."""
        try:
            status = picture.stat()
        except OSError:
            return None  # not rendered yet
        stamp = (status.st_mtime_ns, status.st_size)
        if picture == self.picture and stamp == self._picture_stamp:
            return None
        self.picture, self._picture_stamp = picture, stamp
        image = find_owned_image(IMAGE_NAME, ROLE)
        if image is None:
            image = bpy.data.images.load(str(picture), check_existing=False)
            image.name = IMAGE_NAME
            image[OWNER_PROPERTY] = ROLE
        else:
            image.filepath = str(picture)
            image.reload()
        return image

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def start(context: bpy.types.Context) -> SurfacePreview | None:
    """A preview drawn in the 3D viewport the operator was started from (else the window's first one), or
    None: background mode, no viewport, or an orthographic view (the engine renders pinhole cameras)."""
    global _active
    if bpy.app.background or context.window is None:
        return None
    found = _viewport_of(context)
    if found is None:
        return None
    region, region_data = found
    if not region_data.is_perspective:
        return None
    stop()
    preview = SurfacePreview(region.as_pointer())
    preview.write_view(region_data.view_matrix, region_data.window_matrix, region.width, region.height)
    _active = preview
    return preview


def stop() -> None:
    global _active
    if _active is not None:
        _active.close()
        _active = None
    tag_redraw()


def _viewport_of(context: bpy.types.Context) -> tuple[Any, Any] | None:
    areas = [context.area] if context.area is not None and context.area.type == "VIEW_3D" else []
    if context.window is not None and context.window.screen is not None:
        areas += [area for area in context.window.screen.areas if area.type == "VIEW_3D"]
    for area in areas:
        space = area.spaces.active
        region = next((region for region in area.regions if region.type == "WINDOW"), None)
        if region is not None and getattr(space, "region_3d", None) is not None:
            return region, space.region_3d
    return None


def _region_by_pointer(context: bpy.types.Context, pointer: int) -> tuple[Any, Any] | None:
    window_manager = context.window_manager
    if window_manager is None:
        return None
    for window in window_manager.windows:
        for area in window.screen.areas:
            if area.type != "VIEW_3D":
                continue
            for region in area.regions:
                if region.as_pointer() == pointer:
                    return region, area.spaces.active.region_3d
    return None


def _draw() -> None:
    """POST_PIXEL handler of every 3D viewport: the latest picture, in the region it was rendered for."""
    region = bpy.context.region
    if _active is None or _active.picture is None or region is None or region.as_pointer() != _active.region_pointer:
        return
    image = find_owned_image(IMAGE_NAME, ROLE)
    if image is None:
        return
    gpu.state.blend_set("ALPHA")
    draw_texture_2d(gpu.texture.from_image(image), (0, 0), region.width, region.height)
    gpu.state.blend_set("NONE")


def register() -> None:
    global _draw_handle
    if not bpy.app.background:
        _draw_handle = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")


def unregister() -> None:
    global _draw_handle
    stop()
    if _draw_handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_draw_handle, "WINDOW")
        _draw_handle = None
