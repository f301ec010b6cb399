"""Blender camera settings <-> intrinsics, worked by hand, and pose checks. No Blender scene needed."""

from __future__ import annotations

import itertools
import math
from dataclasses import astuple

import numpy as np
import pytest

from addon.camera_math import (
    CameraError,
    CameraSettings,
    camera_from_intrinsics,
    checked_camera_to_world,
    intrinsics_from_camera,
    project_points,
)
from engine.data.transforms import Intrinsics


def settings(**overrides: object) -> CameraSettings:
    values: dict = dict(
        lens=50.0,
        sensor_width=36.0,
        sensor_height=24.0,
        sensor_fit="AUTO",
        shift_x=0.0,
        shift_y=0.0,
        resolution_x=1920,
        resolution_y=1080,
    )
    values.update(overrides)
    return CameraSettings(**values)


def test_default_camera_full_hd() -> None:
    # 50 mm over a 36 mm sensor spanning 1920 px: 50 * 1920 / 36 px; the axis hits the image centre.
    assert astuple(intrinsics_from_camera(settings())) == pytest.approx(
        (50 * 1920 / 36, 50 * 1920 / 36, 960.0, 540.0, 1920, 1080), rel=1e-15
    )


def test_sensor_fit_decides_which_side_the_sensor_spans() -> None:
    portrait = dict(resolution_x=100, resolution_y=200)
    # AUTO on a portrait image: the sensor WIDTH spans the longer (vertical) side.
    assert intrinsics_from_camera(settings(**portrait)).fl_x == pytest.approx(50 * 200 / 36)
    # VERTICAL: sensor HEIGHT spans the height.
    assert intrinsics_from_camera(settings(sensor_fit="VERTICAL", **portrait)).fl_x == pytest.approx(50 * 200 / 24)
    # HORIZONTAL: sensor width spans the width, even in portrait.
    assert intrinsics_from_camera(settings(sensor_fit="HORIZONTAL", **portrait)).fl_x == pytest.approx(50 * 100 / 36)
    # VERTICAL on landscape: sensor height spans 1080 px.
    assert intrinsics_from_camera(settings(sensor_fit="VERTICAL")).fl_x == pytest.approx(50 * 1080 / 24)


def test_shift_moves_the_principal_point_against_the_view() -> None:
    # Shifting the view right/up moves the optical axis left/down in the image (rows count down).
    shifted = intrinsics_from_camera(settings(resolution_x=64, resolution_y=48, shift_x=0.1, shift_y=0.25))
    assert shifted.cx == pytest.approx(32 - 0.1 * 64)
    assert shifted.cy == pytest.approx(24 + 0.25 * 64)  # shift is in units of the fitted (horizontal) side
    vertical = intrinsics_from_camera(
        settings(resolution_x=48, resolution_y=64, shift_x=0.1, shift_y=0.25, sensor_fit="VERTICAL")
    )
    assert (vertical.cx, vertical.cy) == pytest.approx((24 - 0.1 * 64, 32 + 0.25 * 64))


def test_resolution_percentage_truncates_like_blender() -> None:
    # Blender renders resolution * percentage // 100 pixels: 101 at 50% is 50 px, not 50.5.
    half = intrinsics_from_camera(settings(resolution_x=101, resolution_y=64, resolution_percentage=50))
    assert (half.width, half.height) == (50, 32)
    assert half.fl_x == pytest.approx(50 * 50 / 36)
    assert (half.cx, half.cy) == (25.0, 16.0)


def test_pixel_aspect_makes_focal_lengths_differ() -> None:
    # Pixels twice as wide as tall (aspect x=2, y=1): an angle covers twice as many rows as columns.
    wide_pixels = intrinsics_from_camera(settings(resolution_x=64, resolution_y=64, pixel_aspect_x=2.0))
    assert wide_pixels.fl_x == pytest.approx(50 * 64 / 36)  # displayed 128 wide x 64 tall: horizontal fit
    assert wide_pixels.fl_y == pytest.approx(2 * 50 * 64 / 36)
    # Pixels twice as tall: displayed 64 x 128, so AUTO fits vertically over ycor * height = 128 px.
    tall_pixels = intrinsics_from_camera(settings(resolution_x=64, resolution_y=64, pixel_aspect_y=2.0))
    assert tall_pixels.fl_x == pytest.approx(50 * 128 / 36)
    assert tall_pixels.fl_y == pytest.approx(50 * 64 / 36)


FITS = ("AUTO", "HORIZONTAL", "VERTICAL")
SIZES = ((64, 48), (48, 64), (50, 50), (1920, 1080))
ASPECTS = ((1.0, 1.0), (2.0, 1.0), (1.0, 1.5))
SHIFTS = ((0.0, 0.0), (0.13, -0.27))


@pytest.mark.parametrize(("fit", "size", "aspect", "shift"), list(itertools.product(FITS, SIZES, ASPECTS, SHIFTS)))
def test_camera_to_intrinsics_to_camera_gives_back_the_settings(
    fit: str, size: tuple[int, int], aspect: tuple[float, float], shift: tuple[float, float]
) -> None:
    original = settings(
        lens=35.0,
        sensor_fit=fit,
        resolution_x=size[0],
        resolution_y=size[1],
        pixel_aspect_x=aspect[0],
        pixel_aspect_y=aspect[1],
        shift_x=shift[0],
        shift_y=shift[1],
    )
    back = camera_from_intrinsics(
        intrinsics_from_camera(original), sensor_width=36.0, sensor_height=24.0, sensor_fit=fit
    )
    for name in ("lens", "shift_x", "shift_y", "pixel_aspect_x", "pixel_aspect_y"):
        assert getattr(back, name) == pytest.approx(getattr(original, name), rel=1e-12, abs=1e-12), name
    assert (back.resolution_x, back.resolution_y, back.sensor_fit) == (
        original.resolution_x,
        original.resolution_y,
        fit,
    )


def test_percentage_folds_into_the_resolution_on_the_way_back() -> None:
    original = settings(resolution_x=200, resolution_y=100, resolution_percentage=25, shift_x=0.2)
    intrinsics = intrinsics_from_camera(original)
    back = camera_from_intrinsics(intrinsics)
    assert (back.resolution_x, back.resolution_y, back.resolution_percentage) == (50, 25, 100)
    assert astuple(intrinsics_from_camera(back)) == pytest.approx(astuple(intrinsics))
    assert back.lens == pytest.approx(50.0)


def test_intrinsics_blender_cannot_make_are_refused_by_name() -> None:
    with pytest.raises(CameraError, match="r_7: principal point .* beyond Blender's"):
        camera_from_intrinsics(Intrinsics(fl_x=50, fl_y=50, cx=5000, cy=20, width=40, height=40), frame_name="r_7")
    with pytest.raises(CameraError, match="r_8: fl_x/fl_y = 1/500 needs a pixel aspect"):
        camera_from_intrinsics(Intrinsics(fl_x=1, fl_y=500, cx=20, cy=20, width=40, height=40), frame_name="r_8")


def test_projection_puts_the_optical_axis_on_the_principal_point() -> None:
    intrinsics = intrinsics_from_camera(settings(resolution_x=64, resolution_y=48, shift_x=0.1, shift_y=-0.05))
    pose = np.eye(4)
    pose[:3, 3] = (1.0, 2.0, 3.0)
    pixels = project_points(intrinsics, pose, [(1.0, 2.0, -7.0), (1.0 + 0.5, 2.0 + 0.5, 3.0 - 5.0), (1, 2, 4)])
    assert pixels[0] == pytest.approx((intrinsics.cx, intrinsics.cy))
    # Right and up in the camera is right (+u) and up (-v) in the image.
    assert pixels[1] == pytest.approx((intrinsics.cx + intrinsics.fl_x * 0.1, intrinsics.cy - intrinsics.fl_y * 0.1))
    assert np.isnan(pixels[2]).all()  # behind the camera


def _rotation_z(angle: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    return pose


def test_pose_check_accepts_rotations_and_names_scaled_sheared_or_mirrored_cameras() -> None:
    pose = _rotation_z(0.3)
    pose[:3, 3] = (1, 2, 3)
    assert checked_camera_to_world(pose.tolist(), "Cam") == pose.tolist()

    scaled = pose @ np.diag([2.0, 2.0, 2.0, 1.0])
    with pytest.raises(CameraError, match=r"camera 'Cam.001' is scaled \(world scale 2, 2, 2\)"):
        checked_camera_to_world(scaled.tolist(), "Cam.001")
    sheared = np.diag([1.0, 2.0, 1.0, 1.0]) @ _rotation_z(math.pi / 4)  # a parent scaled along one axis
    sheared[:3, :3] /= np.linalg.norm(sheared[:3, :3], axis=0)  # even with unit-length columns
    with pytest.raises(CameraError, match="camera 'Rig' is sheared"):
        checked_camera_to_world(sheared.tolist(), "Rig")
    with pytest.raises(CameraError, match="camera 'Mirror' is mirrored"):
        checked_camera_to_world(np.diag([-1.0, 1.0, 1.0, 1.0]).tolist(), "Mirror")
