"""Preview frames into the Blender Image "Fieldwork Preview" and the 3D viewport.

Frames arrive as RGBA uint8, bottom row first (Blender's pixel order), so they go
into the image with one ``pixels.foreach_set`` and no flip. The viewport overlay
draws the latest frame over the view it was rendered from; when the artist moves
the view, the new view and projection go to the engine (``SetView``), which renders
from it next. A loss/PSNR curve is drawn into the image "Fieldwork Curve".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import bpy
import gpu
import numpy as np
from gpu_extras.presets import draw_texture_2d

from . import client
from .engine import protocol

PREVIEW_IMAGE_NAME = "Fieldwork Preview"
CURVE_IMAGE_NAME = "Fieldwork Curve"
# Images this add-on made carry this custom property; a user's image with the same name is never touched.
OWNER_PROPERTY = "fieldwork_role"
CURVE_SIZE = (256, 128)
CURVE_INTERVAL_S = 1.0
VIEW_INTERVAL_S = 0.1  # at most this often a moving viewport sends its view

_curve_drawn_at = 0.0
_draw_handle: Any = None
# Per session: the region (pointer) that sent the last view, its last view, and a pending one.
_sent_views: dict[str, tuple[int, tuple[float | str, ...]]] = {}
_pending_views: dict[str, protocol.SetView] = {}


def find_owned_image(name: str, role: str) -> bpy.types.Image | None:
    """The add-on's image for ``role``: looked up by ``name`` first (the overlay asks on every redraw),
    else among all images (the user may have renamed it)."""
    image = bpy.data.images.get(name)
    if image is not None and image.get(OWNER_PROPERTY) == role:
        return image
    return next((im for im in bpy.data.images if im.get(OWNER_PROPERTY) == role), None)


def owned_image(name: str, role: str, width: int, height: int) -> bpy.types.Image:
    """The add-on's image for ``role`` at ``width`` x ``height``, created or resized as needed."""
    image = find_owned_image(name, role)
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True)
        image[OWNER_PROPERTY] = role
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    return image


def show_frame(frame: protocol.PreviewFrame) -> bpy.types.Image:
    """Copy one preview frame into the "Fieldwork Preview" image."""
    image = owned_image(PREVIEW_IMAGE_NAME, "preview", frame.width, frame.height)
    pixels = np.frombuffer(frame.payload, dtype=np.uint8).astype(np.float32)
    pixels *= 1.0 / 255.0
    image.pixels.foreach_set(pixels)  # type: ignore[attr-defined]
    image.update()
    return image


def curve_pixels(history: Sequence[tuple[int, float, float]], width: int, height: int) -> np.ndarray:
    """A loss (red, log scale) and PSNR (green) plot over steps: (height * width * 4,) float32, bottom row first."""
    canvas = np.zeros((height, width, 4), dtype=np.float32)
    canvas[..., :3] = 0.08
    canvas[..., 3] = 1.0
    if len(history) < 2:
        return canvas.ravel()
    steps = np.array([entry[0] for entry in history], dtype=np.float64)
    columns = np.linspace(steps[0], steps[-1], width)
    losses = np.log10(np.maximum(np.array([entry[1] for entry in history]), 1e-12))
    psnrs = np.array([entry[2] for entry in history])
    for values, color in ((losses, (1.0, 0.3, 0.25)), (psnrs, (0.35, 1.0, 0.4))):
        known = np.isfinite(values)  # a method without PSNR reports nan there
        if known.sum() < 2:
            continue
        sampled = np.interp(columns, steps[known], values[known])
        low, high = float(sampled.min()), float(sampled.max())
        rows = np.round((sampled - low) / max(high - low, 1e-9) * (height - 5) + 2).astype(int)
        for column in range(width):
            # Join each column to the next so steep drops stay one connected line.
            following = rows[min(column + 1, width - 1)]
            lowest, highest = min(rows[column], following), max(rows[column], following)
            canvas[lowest : highest + 1, column, :3] = color
    return canvas.ravel()


def show_curve(history: Sequence[tuple[int, float, float]]) -> bpy.types.Image:
    image = owned_image(CURVE_IMAGE_NAME, "curve", *CURVE_SIZE)
    image.pixels.foreach_set(curve_pixels(history, *CURVE_SIZE))  # type: ignore[attr-defined]
    image.update()
    return image


def view_from_matrices(
    view_matrix: Sequence[Sequence[float]], projection: Sequence[Sequence[float]], width: int, height: int
) -> protocol.SetView:
    """A viewport's view (world-to-view 4x4) and perspective projection as a pinhole SetView.

    For an OpenGL projection ``x_ndc = P00 * x / -z - P02``; a pixel column is
    ``(x_ndc + 1) * width / 2``, so ``fl_x = P00 * width / 2`` and ``cx = (1 - P02) * width / 2``.
    Rows count downwards from the top, hence ``cy = (1 + P12) * height / 2``.
    """
    world_to_view = np.asarray(view_matrix, dtype=np.float64)
    proj = np.asarray(projection, dtype=np.float64)
    camera_to_world = np.linalg.inv(world_to_view)
    return protocol.SetView(
        camera_to_world=camera_to_world.tolist(),
        fl_x=float(proj[0, 0] * width / 2.0),
        fl_y=float(proj[1, 1] * height / 2.0),
        cx=float((1.0 - proj[0, 2]) * width / 2.0),
        cy=float((1.0 + proj[1, 2]) * height / 2.0),
        width=int(width),
        height=int(height),
    )


def _on_drained(session: client.EngineSession, result: client.DrainResult) -> None:
    global _curve_drawn_at
    if result.latest_frame is not None:
        show_frame(result.latest_frame)
    now = time.perf_counter()
    if result.ended or (result.progressed and now - _curve_drawn_at >= CURVE_INTERVAL_S):
        show_curve(session.state.history)
        _curve_drawn_at = now
    tag_redraw()


def tag_redraw() -> None:
    window_manager = bpy.context.window_manager
    if window_manager is None:
        return
    for window in window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "STATUSBAR"}:
                area.tag_redraw()


# --------------------------------------------------------------------------- viewport


def _draw_overlay() -> None:
    """POST_PIXEL draw handler of every 3D viewport: send its view when it moved, draw the latest frame."""
    context = bpy.context
    scene, region, region_data = context.scene, context.region, context.region_data
    if scene is None or region is None or region_data is None:
        return
    settings = scene.fieldwork  # type: ignore[attr-defined]
    session = client.session_for(client.scene_key(scene))
    if session is None or not settings.show_preview_overlay:
        return
    if session.state.active and region_data.is_perspective:
        _note_view(session, region, region_data, settings.preview_mode)
    sent = _sent_views.get(session.key)
    image = find_owned_image(PREVIEW_IMAGE_NAME, "preview")
    if image is None or sent is None or sent[0] != region.as_pointer():
        return
    gpu.state.blend_set("ALPHA")
    draw_texture_2d(gpu.texture.from_image(image), (0, 0), region.width, region.height)
    gpu.state.blend_set("NONE")


def _note_view(session: client.EngineSession, region: Any, region_data: Any, mode: str) -> None:
    view = view_from_matrices(region_data.view_matrix, region_data.window_matrix, region.width, region.height)
    view.mode = mode
    signature = (
        *np.round(np.asarray(view.camera_to_world).ravel(), 5),
        round(view.fl_x, 3), round(view.cx, 3), round(view.cy, 3), view.width, view.height,
        mode,
    )  # fmt: skip
    pointer = region.as_pointer()
    if _sent_views.get(session.key) == (pointer, signature):
        return
    _sent_views[session.key] = (pointer, signature)
    _pending_views[session.key] = view
    if time.perf_counter() - session.last_view_sent_at >= VIEW_INTERVAL_S:
        _flush_views()
    elif not bpy.app.timers.is_registered(_flush_views):
        # The view stopped moving inside the interval: still send where it came to rest.
        bpy.app.timers.register(_flush_views, first_interval=VIEW_INTERVAL_S)


def _flush_views() -> None:
    for key, view in list(_pending_views.items()):
        session = client.session_for(key)
        if session is not None and session.state.active:
            session.set_view(view)
    _pending_views.clear()


def register() -> None:
    global _draw_handle
    client.add_listener(_on_drained)
    if not bpy.app.background:
        _draw_handle = bpy.types.SpaceView3D.draw_handler_add(_draw_overlay, (), "WINDOW", "POST_PIXEL")


def unregister() -> None:
    global _draw_handle
    if _draw_handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_draw_handle, "WINDOW")
        _draw_handle = None
    if bpy.app.timers.is_registered(_flush_views):
        bpy.app.timers.unregister(_flush_views)
    client.remove_listener(_on_drained)
    _sent_views.clear()
    _pending_views.clear()
