"""Blender camera settings <-> pinhole intrinsics, and camera pose checks. Pure math: no bpy.

The model is Blender's own (``BKE_camera_params_compute_viewplane``, and Cycles'
``blender_camera_viewplane`` which agrees with it):

- the rendered image is ``width = resolution_x * percentage // 100`` by
  ``height = resolution_y * percentage // 100`` pixels (integer division, as Blender does);
- ``ycor = pixel_aspect_y / pixel_aspect_x`` is a pixel's height over its width;
- the sensor fit decides which image side the sensor spans: HORIZONTAL the width, VERTICAL the
  height, AUTO the longer side as displayed (``pixel_aspect_x * width >= pixel_aspect_y * height``
  means horizontal). AUTO and HORIZONTAL use ``sensor_width``, VERTICAL uses ``sensor_height``;
- ``view_factor`` is that side in horizontal pixel units: ``width``, or ``ycor * height``;
- focal length in horizontal pixels ``fl_x = lens * view_factor / sensor``; vertical pixels are
  ``ycor`` times as tall, so ``fl_y = fl_x / ycor``;
- a shift moves the view window by ``shift * view_factor`` horizontal pixels, so the optical axis
  lands at ``cx = width / 2 - shift_x * view_factor`` and, rows counting down from the top,
  ``cy = height / 2 + shift_y * view_factor / ycor``.

A pixel centre is at +0.5 (pixel ``i`` covers ``[i, i + 1)``), as in nerfstudio and instant-ngp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .engine.data.transforms import Intrinsics

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")
# Blender's property ranges (rna_camera.cc, rna_scene.cc).
_MIN_LENS_MM = 1.0
_MIN_SENSOR_MM = 1.0
_MAX_SHIFT = 10.0
_MIN_PIXEL_ASPECT = 1.0
_MAX_PIXEL_ASPECT = 200.0
_MIN_RESOLUTION = 4
# matrix_world is float32: an unscaled rotation's columns are unit length to about 1e-7.
_SCALE_TOLERANCE = 1e-4


class CameraError(ValueError):
    """A camera Fieldwork cannot use; the message names the camera."""


@dataclass(frozen=True)
class CameraSettings:
    """What Blender's camera and render settings say about the image a camera makes."""

    lens: float  # mm
    sensor_width: float  # mm
    sensor_height: float  # mm
    sensor_fit: str  # AUTO | HORIZONTAL | VERTICAL
    shift_x: float  # fraction of the fitted sensor side
    shift_y: float
    resolution_x: int
    resolution_y: int
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0

    def __post_init__(self) -> None:
        if self.sensor_fit not in SENSOR_FITS:
            raise ValueError(f"sensor_fit must be one of {SENSOR_FITS}, got {self.sensor_fit!r}")
        if self.lens <= 0 or self.sensor_width <= 0 or self.sensor_height <= 0:
            raise ValueError(
                f"lens and sensor must be positive, got lens={self.lens} "
                f"sensor={self.sensor_width}x{self.sensor_height}"
            )
        if self.pixel_aspect_x <= 0 or self.pixel_aspect_y <= 0:
            raise ValueError(f"pixel aspect must be positive, got {self.pixel_aspect_x}:{self.pixel_aspect_y}")
        if self.resolution_percentage <= 0:
            raise ValueError(f"resolution percentage must be positive, got {self.resolution_percentage}")

    @property
    def width(self) -> int:
        """Rendered image width in pixels."""
        return self.resolution_x * self.resolution_percentage // 100

    @property
    def height(self) -> int:
        """Rendered image height in pixels."""
        return self.resolution_y * self.resolution_percentage // 100


def _fit_is_horizontal(
    sensor_fit: str, width: float, height: float, pixel_aspect_x: float, pixel_aspect_y: float
) -> bool:
    if sensor_fit == "AUTO":
        return pixel_aspect_x * width >= pixel_aspect_y * height
    return sensor_fit == "HORIZONTAL"


def intrinsics_from_camera(settings: CameraSettings, camera_name: str = "camera") -> Intrinsics:
    """Pinhole intrinsics of the image this camera renders."""
    width, height = settings.width, settings.height
    if width < 1 or height < 1:
        raise CameraError(
            f"{camera_name}: the render is {width}x{height} pixels "
            f"({settings.resolution_x}x{settings.resolution_y} at {settings.resolution_percentage}%)"
        )
    pixel_height_over_width = settings.pixel_aspect_y / settings.pixel_aspect_x
    horizontal = _fit_is_horizontal(
        settings.sensor_fit, width, height, settings.pixel_aspect_x, settings.pixel_aspect_y
    )
    sensor = settings.sensor_height if settings.sensor_fit == "VERTICAL" else settings.sensor_width
    view_factor = width if horizontal else pixel_height_over_width * height
    fl_x = settings.lens * view_factor / sensor
    return Intrinsics(
        fl_x=fl_x,
        fl_y=fl_x / pixel_height_over_width,
        cx=width / 2.0 - settings.shift_x * view_factor,
        cy=height / 2.0 + settings.shift_y * view_factor / pixel_height_over_width,
        width=width,
        height=height,
    )


def camera_from_intrinsics(
    intrinsics: Intrinsics,
    sensor_width: float = 36.0,
    sensor_height: float = 24.0,
    sensor_fit: str = "AUTO",
    frame_name: str = "frame",
) -> CameraSettings:
    """Blender settings that render exactly these intrinsics, at 100% of their resolution.

    The sensor size and fit are free choices (only ``lens / sensor`` matters); pass the ones to keep.
    """
    width, height = intrinsics.width, intrinsics.height
    if width < _MIN_RESOLUTION or height < _MIN_RESOLUTION:
        raise CameraError(
            f"{frame_name}: Blender renders at least {_MIN_RESOLUTION} pixels a side, got {width}x{height}"
        )
    pixel_height_over_width = intrinsics.fl_x / intrinsics.fl_y
    # Blender keeps each pixel aspect in [1, 200]: stretch whichever side is the longer one.
    if pixel_height_over_width >= 1.0:
        pixel_aspect_x, pixel_aspect_y = 1.0, pixel_height_over_width
    else:
        pixel_aspect_x, pixel_aspect_y = 1.0 / pixel_height_over_width, 1.0
    if max(pixel_aspect_x, pixel_aspect_y) > _MAX_PIXEL_ASPECT:
        raise CameraError(
            f"{frame_name}: fl_x/fl_y = {intrinsics.fl_x}/{intrinsics.fl_y} needs a pixel aspect beyond Blender's "
            f"{_MIN_PIXEL_ASPECT:g}..{_MAX_PIXEL_ASPECT:g}"
        )
    horizontal = _fit_is_horizontal(sensor_fit, width, height, pixel_aspect_x, pixel_aspect_y)
    sensor = sensor_height if sensor_fit == "VERTICAL" else sensor_width
    view_factor = width if horizontal else pixel_height_over_width * height
    lens = intrinsics.fl_x * sensor / view_factor
    shift_x = (width / 2.0 - intrinsics.cx) / view_factor
    shift_y = (intrinsics.cy - height / 2.0) * pixel_height_over_width / view_factor
    if lens < _MIN_LENS_MM:
        raise CameraError(f"{frame_name}: focal length {lens:.4g} mm is below Blender's {_MIN_LENS_MM:g} mm")
    if max(abs(shift_x), abs(shift_y)) > _MAX_SHIFT:
        raise CameraError(
            f"{frame_name}: principal point ({intrinsics.cx}, {intrinsics.cy}) needs a shift of "
            f"({shift_x:.3g}, {shift_y:.3g}), beyond Blender's +-{_MAX_SHIFT:g}"
        )
    if min(sensor_width, sensor_height) < _MIN_SENSOR_MM:
        raise CameraError(f"{frame_name}: sensor {sensor_width}x{sensor_height} mm is below Blender's 1 mm")
    return CameraSettings(
        lens=lens,
        sensor_width=sensor_width,
        sensor_height=sensor_height,
        sensor_fit=sensor_fit,
        shift_x=shift_x,
        shift_y=shift_y,
        resolution_x=width,
        resolution_y=height,
        resolution_percentage=100,
        pixel_aspect_x=pixel_aspect_x,
        pixel_aspect_y=pixel_aspect_y,
    )


def checked_camera_to_world(matrix_world: Sequence[Sequence[float]], camera_name: str) -> list[list[float]]:
    """A camera's ``matrix_world`` as a 4x4 list of rows, refused when it is not a pure rotation + translation.

    Blender renders a scaled camera as if unscaled, but a scaled, sheared or mirrored camera in a
    dataset would silently scale the scene for every other tool, so it is an error naming the camera.
    """
    matrix = np.asarray(matrix_world, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise CameraError(f"camera {camera_name!r}: matrix_world must be a finite 4x4 matrix, got shape {matrix.shape}")
    if np.max(np.abs(matrix[3] - (0.0, 0.0, 0.0, 1.0))) > 1e-6:
        raise CameraError(f"camera {camera_name!r}: matrix_world has a projective last row {matrix[3].tolist()}")
    rotation = matrix[:3, :3]
    scale = np.linalg.norm(rotation, axis=0)
    if np.max(np.abs(scale - 1.0)) > _SCALE_TOLERANCE:
        raise CameraError(
            f"camera {camera_name!r} is scaled (world scale {', '.join(f'{value:.4g}' for value in scale)}): "
            "set its scale, and its parents' scale, to 1 (Object > Apply > Scale)"
        )
    if np.max(np.abs(rotation.T @ rotation - np.eye(3))) > _SCALE_TOLERANCE:
        raise CameraError(
            f"camera {camera_name!r} is sheared by a parent's non-uniform scale: apply the parents' scale"
        )
    if np.linalg.det(rotation) < 0:
        raise CameraError(f"camera {camera_name!r} is mirrored (negative scale): make its world scale positive")
    return [[float(value) for value in row] for row in matrix]


def project_points(
    intrinsics: Intrinsics, camera_to_world: Sequence[Sequence[float]], points: Sequence[Sequence[float]]
) -> np.ndarray:
    """Pixel coordinates ``(n_points, 2)`` of world points ``(n_points, 3)``: x right, y down, pixel centres at +0.5.

    Points behind the camera get NaN.
    """
    world_to_camera = np.linalg.inv(np.asarray(camera_to_world, dtype=np.float64))
    homogeneous = np.concatenate([np.asarray(points, dtype=np.float64), np.ones((len(points), 1))], axis=1)
    in_camera = homogeneous @ world_to_camera.T  # (n_points, 4); the camera looks down -Z, +Y up
    depth = -in_camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics.cx + intrinsics.fl_x * in_camera[:, 0] / depth
        v = intrinsics.cy - intrinsics.fl_y * in_camera[:, 1] / depth
    pixels = np.stack([u, v], axis=1)
    pixels[depth <= 0] = math.nan
    return pixels
