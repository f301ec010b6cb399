"""Preview helpers on real bpy: frames into the Blender Image, the viewport's view as a pinhole, the curve image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import addon_module

bpy = pytest.importorskip("bpy", reason="previews need Blender as a module (bpy)")


def test_viewport_projection_becomes_the_cameras_own_intrinsics(empty_scene) -> None:  # type: ignore[no-untyped-def]
    """Blender's camera projection (what the viewport uses in camera view) read back as a pinhole.

    A shifted, non-square camera, so cx, cy and fl_y are all checked against the add-on's
    camera maths, which the dataset export uses.
    """
    preview = addon_module("preview")
    capture = addon_module("capture")
    camera_math = addon_module("camera_math")
    empty_scene.render.resolution_x, empty_scene.render.resolution_y = 320, 200
    camera_data = bpy.data.cameras.new("Shifted")
    camera_data.lens, camera_data.shift_x, camera_data.shift_y = 35.0, 0.1, -0.05
    camera = bpy.data.objects.new("Shifted", camera_data)
    empty_scene.collection.objects.link(camera)
    camera.location = (1.0, -4.0, 2.0)
    camera.rotation_euler = (math.radians(70), 0.0, math.radians(15))
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    projection = camera.calc_matrix_camera(depsgraph, x=320, y=200)
    view = preview.view_from_matrices(camera.matrix_world.inverted(), projection, 320, 200)
    expected = camera_math.intrinsics_from_camera(capture.camera_settings(empty_scene, camera_data))
    assert (view.width, view.height) == (320, 200)
    np.testing.assert_allclose(
        [view.fl_x, view.fl_y, view.cx, view.cy], [expected.fl_x, expected.fl_y, expected.cx, expected.cy], rtol=1e-4
    )
    np.testing.assert_allclose(view.camera_to_world, np.asarray(camera.matrix_world), atol=1e-5)


def test_frames_land_in_the_preview_image_unflipped_and_a_users_image_is_left_alone(empty_scene) -> None:  # type: ignore[no-untyped-def]
    preview = addon_module("preview")
    protocol = addon_module("engine.protocol")
    users_image = bpy.data.images.new("Fieldwork Preview", 4, 4)
    users_image.pixels.foreach_set(np.full(64, 0.25, dtype=np.float32))
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0] = (255, 0, 0, 255)  # first row in the payload: the bottom row
    rgba[1] = (0, 0, 255, 128)
    image = preview.show_frame(protocol.PreviewFrame(width=3, height=2, payload=rgba.tobytes()))
    assert image != users_image and tuple(image.size) == (3, 2)
    pixels = np.empty(24, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(2, 3, 4)
    np.testing.assert_allclose(pixels[0, 0], (1.0, 0.0, 0.0, 1.0))  # Blender's row 0 is the bottom row too
    np.testing.assert_allclose(pixels[1, 0], (0.0, 0.0, 1.0, 128 / 255), atol=1e-6)
    user_pixels = np.empty(64, dtype=np.float32)
    users_image.pixels.foreach_get(user_pixels)
    assert np.allclose(user_pixels, 0.25, atol=1 / 255)  # stored as bytes
    # A frame of another size resizes the add-on's image rather than making another one.
    preview.show_frame(protocol.PreviewFrame(width=4, height=4, payload=bytes(64)))
    assert tuple(image.size) == (4, 4)
    assert sum(1 for im in bpy.data.images if im.get(preview.OWNER_PROPERTY) == "preview") == 1


def test_curve_plots_falling_loss_and_rising_psnr() -> None:
    preview = addon_module("preview")
    history = [(step, 1.0 / step, 10.0 + step) for step in range(1, 50)]
    pixels = preview.curve_pixels(history, 64, 32).reshape(32, 64, 4)
    red = (pixels[..., 0] == 1.0) & (pixels[..., 1] < 0.5)
    green = (pixels[..., 1] == 1.0) & (pixels[..., 0] < 0.5)
    # Rows count up from the bottom: loss starts high and ends low, PSNR the other way round.
    assert np.nonzero(red[:, 0])[0].max() > np.nonzero(red[:, -1])[0].max()
    assert np.nonzero(green[:, 0])[0].max() < np.nonzero(green[:, -1])[0].max()
