"""The NeRF ``transforms.json`` dataset format, read and written. Standard library only.

A dataset is a folder: ``transforms.json`` plus images whose ``file_path`` is relative to that
folder. Camera-to-world matrices are Blender's ``matrix_world`` (camera looks down -Z, +Y up: the
OpenGL/NeRF convention that NeRF, nerfstudio and instant-ngp share). Intrinsics are pinhole pixels
with a pixel centre at +0.5, so ``cx = width / 2`` is the image centre.

Keys read
---------
Top level, or per frame (a frame's own value wins over the top-level one):

- ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` (nerfstudio, instant-ngp).
- ``camera_angle_x``, ``camera_angle_y`` (NeRF synthetic, instant-ngp): full field of view in
  radians, used when ``fl_x`` / ``fl_y`` are absent; instant-ngp's ``x_fov``, ``y_fov`` (degrees)
  win over both, as in instant-ngp. ``fl_y`` defaults to ``fl_x`` (square pixels),
  ``cx``/``cy`` to the image centre, ``w``/``h`` to the size of the frame's image file (PNG, JPEG
  or OpenEXR header; NeRF synthetic has no ``w``/``h``).
- ``k1 k2 k3 k4 p1 p2`` (nerfstudio, instant-ngp): accepted only when zero; Fieldwork cameras are
  pinhole, so real lens distortion is an error rather than silently ignored.
- ``camera_model`` (nerfstudio): pinhole models only (``PINHOLE``, ``SIMPLE_PINHOLE``, ``OPENCV``,
  ``SIMPLE_RADIAL``, ``RADIAL``, all with zero distortion); fisheye/equirectangular are errors,
  as are instant-ngp's ``is_fisheye: true``, ``ftheta_p0``, ``latlong`` and ``equirectangular``.

Top level only:

- ``frames``: list of ``{"file_path", "transform_matrix"}``. ``transform_matrix`` is 4x4 (or 3x4,
  the last row then taken as 0 0 0 1). ``file_path`` may omit the extension (NeRF synthetic writes
  ``./train/r_0``): ``.png``, ``.jpg``, ``.jpeg``, ``.exr`` are tried in that order.
- ``train_filenames``, ``val_filenames``, ``test_filenames`` (nerfstudio's split lists): a frame's
  split. In a split file ``transforms_{train,val,test}.json`` the split is the file's.
- ``aabb_scale``, ``scale``, ``offset`` (one number or three), ``aabb`` (instant-ngp): used for the
  scene box only when the file has no ``fieldwork`` scene box. instant-ngp maps a world point p to
  ``p * scale + offset`` (``aabb`` sets both so its bounding cube fills the unit cube) and marches
  the cube of side ``aabb_scale`` centred on 0.5, so the world box is
  ``(0.5 -+ aabb_scale / 2 - offset) / scale`` (defaults 1, 0.33, 0.5 as in instant-ngp).
- ``fieldwork`` (ours): ``{"version", "scene_box": {"min", "max"}, "color_space", "has_alpha",
  "filled_split"}``; per frame ``"fieldwork": {"name"}``, the Blender camera's name.

Ignored: nerfstudio's ``applied_transform``/``applied_scale`` (the poses in the file are already
in the frame those describe), ``mask_path``, ``depth_file_path``, ``ply_file_path``,
``orientation_override``; NeRF synthetic's per-frame ``rotation``; instant-ngp's ``sharpness``.

Keys written
------------
``camera_model: "OPENCV"`` (pinhole, no distortion keys), then either top-level ``fl_x fl_y cx cy w
h camera_angle_x camera_angle_y`` when every frame has the same intrinsics, or those keys in
every frame when they differ (nerfstudio takes a top-level key for all frames, so the two are never
mixed). ``aabb_scale: 1``, ``scale`` and ``offset`` chosen so instant-ngp's unit cube is the scene
box's bounding cube. ``frames`` with ``file_path`` (relative, with extension) and
``transform_matrix`` (4x4). When any frame is held out: all three of nerfstudio's
``{train,val,test}_filenames`` (nerfstudio refuses a file that lists some splits but not the one it
asks for, so an empty val or test list is filled with the other and ``fieldwork.filled_split`` says
which). Our extras live under ``fieldwork`` where both tools ignore them.

How the two readers take what we write (nerfstudio ``nerfstudio_dataparser.py``, instant-ngp
``src/nerf_loader.cu``):

==============================  ==========================================  ===========================================
key                             nerfstudio                                  instant-ngp
==============================  ==========================================  ===========================================
camera_model "OPENCV"           perspective camera                          not read
fl_x, fl_y                      focal lengths; a top-level key holds for    focal lengths (``x_fov`` would win; never
                                all frames, else every frame needs it       written); frame keys override top-level
cx, cy, w, h                    principal point and size in pixels          principal point as cx / w, cy / h (so w, h
                                                                            are written beside cx, cy at each level)
camera_angle_x, camera_angle_y  not read                                    only when fl_x/fl_y are absent (never)
k1 k2 k3 k4 p1 p2               absent: zero distortion                     absent: plain perspective lens
aabb_scale, scale, offset       not read (it centres and scales the poses)  the unit cube it marches, in world units
frames[].file_path              opened as given, relative to the file's     relative to the file's folder; extension
                                folder (so the extension is written)        optional
frames[].transform_matrix       camera-to-world, OpenGL axes                camera-to-world, OpenGL axes
{train,val,test}_filenames      the split, all three or an error            not read
fieldwork, frames[].fieldwork   not read                                    not read
==============================  ==========================================  ===========================================
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..atomic import write_text_atomic

TRANSFORMS_NAME = "transforms.json"
SPLITS = ("train", "val", "test")
COLOR_SPACES = ("srgb", "linear")
FORMAT_VERSION = 1
# Tried in order when a file_path has no extension (NeRF synthetic omits ".png").
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr")
_PINHOLE_CAMERA_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
# Bounds that keep every camera number representable in float32 with room for products: a focal length
# of 1e308 is "finite" but overflows the engine's float32 tensors, and a rotation scaled by 1e30 has
# column norms whose squares overflow, so rays come out NaN deep inside the sampler.
MAX_PIXEL_VALUE = 1e8  # fl_x, fl_y, |cx|, |cy| in pixels
MAX_IMAGE_SIDE = 65536  # w, h in pixels
MAX_COORDINATE = 1e8  # |entry| of a camera_to_world, in world units
# instant-ngp's defaults when aabb_scale/scale/offset are absent.
_NGP_DEFAULT_SCALE = 0.33
_NGP_DEFAULT_OFFSET = (0.5, 0.5, 0.5)
_NGP_DEFAULT_AABB_SCALE = 1.0
# Without a split in the dataset, every HOLDOUT_EVERY-th frame (0, 8, 16, ...) is held out.
HOLDOUT_EVERY = 8


class TransformsError(ValueError):
    """A dataset that cannot be read or written; the message names the file (and frame)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels; a pixel centre is at +0.5, so ``cx = width / 2`` is centred."""

    fl_x: float
    fl_y: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be a whole number of pixels, got {value!r}")
        if not (0 < self.width <= MAX_IMAGE_SIDE and 0 < self.height <= MAX_IMAGE_SIDE):
            raise ValueError(f"image size must be 1..{MAX_IMAGE_SIDE} pixels a side, got {self.width}x{self.height}")
        for name in ("fl_x", "fl_y", "cx", "cy"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if abs(value) > MAX_PIXEL_VALUE:
                raise ValueError(f"{name} must be at most {MAX_PIXEL_VALUE:g} pixels in size, got {value!r}")
        if self.fl_x <= 0 or self.fl_y <= 0:
            raise ValueError(f"focal lengths must be positive, got fl_x={self.fl_x!r} fl_y={self.fl_y!r}")

    @property
    def camera_angle_x(self) -> float:
        """Full horizontal field of view in radians."""
        return 2.0 * math.atan(0.5 * self.width / self.fl_x)

    @property
    def camera_angle_y(self) -> float:
        """Full vertical field of view in radians."""
        return 2.0 * math.atan(0.5 * self.height / self.fl_y)


@dataclass
class Frame:
    """One image and the camera that took it."""

    file_path: str  # as in the JSON, relative to the transforms file's folder
    camera_to_world: list[list[float]]  # 4x4 row-major, Blender world, camera looks down -Z, +Y up
    intrinsics: Intrinsics
    name: str = ""  # Blender camera name when known
    split: str = "train"  # train | val | test

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        rows = self.camera_to_world
        if len(rows) != 4 or any(len(row) != 4 for row in rows):
            raise ValueError(f"camera_to_world must be 4x4, got {[len(row) for row in rows]} columns per row")


@dataclass
class SceneBox:
    """Axis-aligned box in world units (Blender units)."""

    minimum: tuple[float, float, float]
    maximum: tuple[float, float, float]

    def __post_init__(self) -> None:
        for value in (*self.minimum, *self.maximum):
            if not math.isfinite(value) or abs(value) > MAX_COORDINATE:
                raise ValueError(
                    f"scene box corners must be finite and at most {MAX_COORDINATE:g} in size, got {value!r}"
                )
        if any(not (lo < hi) for lo, hi in zip(self.minimum, self.maximum, strict=True)):
            raise ValueError(f"scene box minimum {self.minimum} must be below maximum {self.maximum} on every axis")

    @property
    def center(self) -> tuple[float, float, float]:
        x, y, z = ((lo + hi) / 2.0 for lo, hi in zip(self.minimum, self.maximum, strict=True))
        return (x, y, z)

    @property
    def size(self) -> tuple[float, float, float]:
        x, y, z = (hi - lo for lo, hi in zip(self.minimum, self.maximum, strict=True))
        return (x, y, z)


def check_camera_to_world(rows: Any, where: str, key: str = "camera_to_world") -> None:
    """A usable camera pose: 4x4 numbers, finite and at most MAX_COORDINATE, a rotation part whose columns
    are neither zero nor parallel (a camera object may be scaled: columns are normalised later, but a zero
    or degenerate one leaves no direction), and a last row of 0 0 0 1. Errors name ``where`` and ``key``."""
    if (
        not isinstance(rows, list | tuple)
        or len(rows) != 4
        or any(not isinstance(row, list | tuple) or len(row) != 4 for row in rows)
    ):
        raise ValueError(f"{where}: '{key}' must be a 4x4 list of rows of numbers")
    for row in rows:
        for value in row:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{where}: '{key}' must hold finite numbers, got {value!r}")
            if abs(value) > MAX_COORDINATE:
                raise ValueError(f"{where}: '{key}' entries must be at most {MAX_COORDINATE:g} in size, got {value!r}")
    if any(abs(got - want) > 1e-6 for got, want in zip(rows[3], (0.0, 0.0, 0.0, 1.0), strict=True)):
        raise ValueError(f"{where}: '{key}' last row must be 0 0 0 1, got {list(rows[3])}")
    columns = [[float(rows[row][column]) for row in range(3)] for column in range(3)]
    norms = [math.sqrt(sum(value * value for value in column)) for column in columns]
    if min(norms) < 1e-8:
        raise ValueError(f"{where}: '{key}' has a zero rotation (a column of its 3x3 part is all zeros)")
    unit = [[value / norm for value in column] for column, norm in zip(columns, norms, strict=True)]
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = unit
    determinant = ax * (by * cz - bz * cy) - bx * (ay * cz - az * cy) + cx * (ay * bz - az * by)
    if abs(determinant) < 1e-6:
        raise ValueError(f"{where}: '{key}' has a degenerate rotation (its axes are parallel or flat)")


def outside_dataset(file_path: str) -> bool:
    """``file_path`` (as a dataset writes it, '/' or '\\' separated) is absolute or climbs out of the dataset's
    folder with '..'. Judged on the text, so a dataset's own symlinked image folder stays allowed."""
    text = file_path.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return True
    depth = 0
    for part in text.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


@dataclass
class Transforms:
    """A dataset: frames plus what the images are."""

    frames: list[Frame]
    root: Path  # folder the file_paths are relative to
    scene_box: SceneBox | None = None
    color_space: str = "srgb"  # srgb | linear
    has_alpha: bool = False

    def __post_init__(self) -> None:
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {self.color_space!r}")

    def image_path(self, frame: Frame) -> Path:
        """The frame's image file; a file_path without extension gets the first that exists."""
        return _resolve_image(self.root, frame.file_path)

    def frames_in(self, split: str) -> list[Frame]:
        """The frames of one split, in file order."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return [frame for frame in self.frames if frame.split == split]


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says."""

    width: int
    height: int
    has_alpha: bool


def read_image_info(path: Path) -> ImageInfo:
    """Size and alpha of a PNG, JPEG or OpenEXR file, from its header alone."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png_info(stream, path)
            if head.startswith(b"\xff\xd8"):
                stream.seek(2)
                return _jpeg_info(stream, path)
            if head.startswith(b"\x76\x2f\x31\x01"):
                stream.seek(8)
                return _exr_info(stream, path)
    except OSError as error:
        raise TransformsError(f"{path}: cannot read image: {error.strerror or error}") from error
    except struct.error as error:
        raise TransformsError(f"{path}: truncated image header") from error
    raise TransformsError(f"{path}: not a PNG, JPEG or OpenEXR image")


def read_transforms(path: Path, allow_outside_paths: bool = False) -> Transforms:
    """Read a dataset.

    ``path`` is a ``transforms.json`` (or a ``transforms_{split}.json``), or a folder holding
    ``transforms.json`` or the NeRF-synthetic split files ``transforms_{train,val,test}.json``.

    A frame whose ``file_path`` leaves the dataset's folder (absolute, or ``../``) is an error naming the
    frame unless ``allow_outside_paths``: a downloaded transforms.json must not pull any image on the
    user's disk into a field.
    """
    path = Path(path)
    if path.is_dir():
        single = path / TRANSFORMS_NAME
        if single.is_file():
            return _read_file(single, default_split=None, allow_outside_paths=allow_outside_paths)
        split_files = [(split, path / f"transforms_{split}.json") for split in SPLITS]
        present = [(split, file) for split, file in split_files if file.is_file()]
        if not present:
            raise TransformsError(f"{path}: no {TRANSFORMS_NAME} or transforms_{{train,val,test}}.json in this folder")
        parts = [_read_file(file, split, allow_outside_paths) for split, file in present]
        first = parts[0]
        return Transforms(
            frames=[frame for part in parts for frame in part.frames],
            root=path,
            scene_box=next((part.scene_box for part in parts if part.scene_box is not None), None),
            color_space=first.color_space,
            has_alpha=first.has_alpha,
        )
    if not path.exists():
        raise TransformsError(f"{path}: no such file")
    split_of_file = next((split for split in SPLITS if path.name == f"transforms_{split}.json"), None)
    return _read_file(path, default_split=split_of_file, allow_outside_paths=allow_outside_paths)


def split_indices(frames: list[Frame], path: Path) -> tuple[list[int], list[int]]:
    """(training, held-out) frame indices: the dataset's val/test split, else every HOLDOUT_EVERY-th frame."""
    holdout = [index for index, frame in enumerate(frames) if frame.split in ("val", "test")]
    if not holdout:
        holdout = list(range(0, len(frames), HOLDOUT_EVERY)) if len(frames) > 1 else []
    held = set(holdout)
    train = [index for index in range(len(frames)) if index not in held]
    if not train:
        raise TransformsError(f"{path}: every frame is held out (split val/test); no frame is left to train on")
    return train, holdout


def write_transforms(folder: Path, transforms: Transforms, split_files: bool = False) -> Path:
    """Write ``folder/transforms.json`` (and ``transforms_{train,val,test}.json`` if asked); return its path.

    Each file is written to a temporary name in ``folder`` and renamed into place, so a crash never
    leaves a half file. File paths are rewritten relative to ``folder`` when ``transforms.root``
    is elsewhere.
    """
    folder = Path(folder)
    target = folder / TRANSFORMS_NAME
    if not transforms.frames:
        raise TransformsError(f"{target}: a dataset needs at least one frame")
    frames = [_rebased(frame, transforms.root, folder) for frame in transforms.frames]
    seen: dict[str, int] = {}
    for index, frame in enumerate(frames):
        key = str(PurePosixPath(frame.file_path))
        if key in seen:
            raise TransformsError(
                f"{target}: frames {seen[key]} and {index} share the image {frame.file_path!r}; "
                "each frame needs its own"
            )
        seen[key] = index
    uniform = all(frame.intrinsics == frames[0].intrinsics for frame in frames)

    by_split = {split: [frame for frame in frames if frame.split == split] for split in SPLITS}
    filled_split = None
    if by_split["val"] and not by_split["test"]:
        filled_split = "test"
    elif by_split["test"] and not by_split["val"]:
        filled_split = "val"
    held_out = bool(by_split["val"] or by_split["test"])

    document = _header(transforms, frames, uniform, filled_split if held_out else None)
    document["frames"] = [_frame_json(frame, per_frame_intrinsics=not uniform) for frame in frames]
    if held_out:
        for split in SPLITS:
            listed = by_split[split] or (by_split["val"] + by_split["test"] if split == filled_split else [])
            document[f"{split}_filenames"] = [frame.file_path for frame in listed]

    folder.mkdir(parents=True, exist_ok=True)
    if split_files:
        for split in SPLITS:
            listed = by_split[split] or (by_split["val"] + by_split["test"] if split == filled_split else [])
            if not listed:
                continue
            split_document = _header(transforms, listed, uniform, None)
            split_document["frames"] = [_frame_json(frame, per_frame_intrinsics=not uniform) for frame in listed]
            _write_json_atomic(folder / f"transforms_{split}.json", split_document)
    _write_json_atomic(target, document)
    return target


# --- reading -----------------------------------------------------------------------------------


def _read_file(path: Path, default_split: str | None, allow_outside_paths: bool = False) -> Transforms:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TransformsError(f"{path}: cannot read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise TransformsError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TransformsError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    if not isinstance(document, dict):
        raise TransformsError(f"{path}: expected a JSON object at the top, got {type(document).__name__}")
    frames_json = document.get("frames")
    if not isinstance(frames_json, list) or not frames_json:
        raise TransformsError(f"{path}: 'frames' must be a non-empty list")
    fieldwork = document.get("fieldwork", {})
    if not isinstance(fieldwork, dict):
        raise TransformsError(f"{path}: 'fieldwork' must be an object")
    _check_camera_model(document, f"{path}")

    root = path.parent
    split_of = _split_lists(document, fieldwork, path)
    frames = []
    for index, frame_json in enumerate(frames_json):
        where = f"{path}: frame {index}"
        if not isinstance(frame_json, dict):
            raise TransformsError(f"{where}: expected an object, got {type(frame_json).__name__}")
        file_path = frame_json.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            raise TransformsError(f"{where}: 'file_path' must be a non-empty string")
        where = f"{path}: frame {index} ({file_path})"
        if not allow_outside_paths and outside_dataset(file_path):
            raise TransformsError(
                f"{where}: 'file_path' leaves the dataset's folder {root}; images must lie inside it "
                "(allow outside paths, --allow-outside-paths, only for a dataset you trust)"
            )
        _check_camera_model(frame_json, where)
        frame_extra = frame_json.get("fieldwork", {})
        name = frame_extra.get("name") if isinstance(frame_extra, dict) else None
        split = default_split or split_of.get(str(PurePosixPath(file_path)), "train")
        frames.append(
            Frame(
                file_path=file_path,
                camera_to_world=_matrix(frame_json.get("transform_matrix"), where),
                intrinsics=_intrinsics(document, frame_json, root, where),
                name=name if isinstance(name, str) and name else PurePosixPath(file_path).stem,
                split=split,
            )
        )

    first_image = _resolve_image(root, frames[0].file_path)
    first_info = None
    if first_image.is_file() and first_image.suffix.lower() in IMAGE_SUFFIXES:
        try:
            first_info = read_image_info(first_image)
        except TransformsError:
            first_info = None
    color_space = fieldwork.get("color_space", "linear" if first_image.suffix.lower() == ".exr" else "srgb")
    if color_space not in COLOR_SPACES:
        raise TransformsError(f"{path}: fieldwork.color_space must be one of {COLOR_SPACES}, got {color_space!r}")
    has_alpha = fieldwork.get("has_alpha", first_info.has_alpha if first_info else False)
    if not isinstance(has_alpha, bool):
        raise TransformsError(f"{path}: fieldwork.has_alpha must be true or false, got {has_alpha!r}")
    return Transforms(
        frames=frames,
        root=root,
        scene_box=_scene_box(document, fieldwork, path),
        color_space=color_space,
        has_alpha=has_alpha,
    )


def _split_lists(document: dict[str, Any], fieldwork: dict[str, Any], path: Path) -> dict[str, str]:
    """file_path -> split from nerfstudio's ``{split}_filenames``; a filled-in copy is skipped."""
    split_of: dict[str, str] = {}
    skipped = fieldwork.get("filled_split")
    # Later splits win: a frame listed as test and (by an outside tool) also as train is held out.
    for split in SPLITS:
        if split == skipped:
            continue
        listed = document.get(f"{split}_filenames", [])
        if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
            raise TransformsError(f"{path}: '{split}_filenames' must be a list of file paths")
        for name in listed:
            split_of[str(PurePosixPath(name))] = split
    return split_of


def _check_camera_model(source: dict[str, Any], where: str) -> None:
    model = source.get("camera_model")
    if model is not None and model not in _PINHOLE_CAMERA_MODELS:
        raise TransformsError(
            f"{where}: camera_model {model!r} is not a pinhole camera; "
            f"Fieldwork reads {', '.join(_PINHOLE_CAMERA_MODELS)}"
        )
    if source.get("is_fisheye"):
        raise TransformsError(f"{where}: fisheye cameras (is_fisheye) are not supported; Fieldwork cameras are pinhole")
    for key in ("ftheta_p0", "latlong", "equirectangular"):  # instant-ngp's other lens models
        if key in source:
            raise TransformsError(f"{where}: '{key}' marks a non-pinhole lens; Fieldwork cameras are pinhole")
    for key in _DISTORTION_KEYS:
        value = source.get(key, 0.0)
        if not isinstance(value, int | float) or value != 0:
            raise TransformsError(
                f"{where}: lens distortion {key}={value!r} is not supported; undistort the images first"
            )


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TransformsError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _intrinsics(document: dict[str, Any], frame_json: dict[str, Any], root: Path, where: str) -> Intrinsics:
    def lookup(key: str) -> float | None:
        value = frame_json.get(key, document.get(key))
        return None if value is None else _number(value, key, where)

    width, height = lookup("w"), lookup("h")
    if width is None or height is None:
        image = _resolve_image(root, frame_json["file_path"])
        if not image.is_file():
            raise TransformsError(f"{where}: no 'w'/'h' given and the image {image} to take them from is missing")
        info = read_image_info(image)
        width = info.width if width is None else width
        height = info.height if height is None else height
    if width != int(width) or height != int(height) or width <= 0 or height <= 0:
        raise TransformsError(f"{where}: image size must be positive whole pixels, got w={width} h={height}")

    # instant-ngp's order: x_fov (degrees), then fl_x, then camera_angle_x (radians); likewise for y.
    focal = {}
    for axis, size in (("x", width), ("y", height)):
        degrees, pixels, radians = lookup(f"{axis}_fov"), lookup(f"fl_{axis}"), lookup(f"camera_angle_{axis}")
        for key, angle, half_turn in ((f"{axis}_fov", degrees, 180.0), (f"camera_angle_{axis}", radians, math.pi)):
            if angle is not None and not 0.0 < angle < half_turn:
                raise TransformsError(f"{where}: '{key}' must be a full field of view below {half_turn:g}, got {angle}")
        if degrees is not None:
            pixels = 0.5 * size / math.tan(math.radians(degrees) / 2.0)
        elif pixels is None and radians is not None:
            pixels = 0.5 * size / math.tan(radians / 2.0)
        focal[axis] = pixels
    fl_x, fl_y = focal["x"], focal["y"]
    # Square pixels when only one axis is given (NeRF synthetic gives camera_angle_x alone).
    fl_x = fl_x if fl_x is not None else fl_y
    fl_y = fl_y if fl_y is not None else fl_x
    if fl_x is None or fl_y is None:
        raise TransformsError(f"{where}: no focal length: give 'fl_x' (pixels) or 'camera_angle_x' (radians)")
    cx, cy = lookup("cx"), lookup("cy")
    try:
        return Intrinsics(
            fl_x=fl_x,
            fl_y=fl_y,
            cx=width / 2.0 if cx is None else cx,
            cy=height / 2.0 if cy is None else cy,
            width=int(width),
            height=int(height),
        )
    except ValueError as error:
        raise TransformsError(f"{where}: {error}") from error


def _matrix(value: Any, where: str) -> list[list[float]]:
    if not isinstance(value, list) or len(value) not in (3, 4) or any(not isinstance(row, list) for row in value):
        raise TransformsError(f"{where}: 'transform_matrix' must be a 4x4 (or 3x4) list of rows")
    if any(len(row) != 4 for row in value):
        raise TransformsError(f"{where}: 'transform_matrix' rows must have 4 numbers, got {[len(r) for r in value]}")
    rows = [[_number(entry, "transform_matrix", where) for entry in row] for row in value]
    if len(rows) == 3:
        rows.append([0.0, 0.0, 0.0, 1.0])
    try:
        check_camera_to_world(rows, where, "transform_matrix")
    except ValueError as error:
        raise TransformsError(str(error)) from error
    return rows


def _scene_box(document: dict[str, Any], fieldwork: dict[str, Any], path: Path) -> SceneBox | None:
    box = fieldwork.get("scene_box")
    if box is not None:
        if not isinstance(box, dict):
            raise TransformsError(f"{path}: fieldwork.scene_box must be an object with 'min' and 'max'")
        corners = []
        for key in ("min", "max"):
            corner = box.get(key)
            if not isinstance(corner, list) or len(corner) != 3:
                raise TransformsError(f"{path}: fieldwork.scene_box.{key} must be 3 numbers, got {corner!r}")
            x, y, z = (_number(value, f"fieldwork.scene_box.{key}", str(path)) for value in corner)
            corners.append((x, y, z))
        try:
            return SceneBox(minimum=corners[0], maximum=corners[1])
        except ValueError as error:
            raise TransformsError(f"{path}: fieldwork.scene_box: {error}") from error
    if not any(key in document for key in ("aabb_scale", "scale", "offset", "aabb")):
        return None
    where = str(path)
    aabb_scale = _number(document.get("aabb_scale", _NGP_DEFAULT_AABB_SCALE), "aabb_scale", where)
    scale = _number(document.get("scale", _NGP_DEFAULT_SCALE), "scale", where)
    offset = document.get("offset", list(_NGP_DEFAULT_OFFSET))
    if isinstance(offset, int | float) and not isinstance(offset, bool):
        offset = [offset] * 3  # instant-ngp takes one number for all three axes
    if not isinstance(offset, list) or len(offset) != 3:
        raise TransformsError(f"{path}: 'offset' must be 3 numbers, got {offset!r}")
    offset_xyz = [_number(value, "offset", where) for value in offset]
    aabb = document.get("aabb")
    if aabb is not None:
        # instant-ngp fits the cube around "aabb" into its unit cube, overriding scale and offset.
        if not isinstance(aabb, list) or len(aabb) != 2 or any(not isinstance(c, list) or len(c) != 3 for c in aabb):
            raise TransformsError(f"{path}: 'aabb' must be [[min x, y, z], [max x, y, z]], got {aabb!r}")
        low = [_number(value, "aabb", where) for value in aabb[0]]
        high = [_number(value, "aabb", where) for value in aabb[1]]
        scale = 1.0 / max(1e-6, *(abs(hi - lo) for lo, hi in zip(low, high, strict=True)))
        offset_xyz = [0.5 - (lo + hi) / 2.0 * scale for lo, hi in zip(low, high, strict=True)]
    if aabb_scale <= 0 or scale <= 0:
        raise TransformsError(f"{path}: 'aabb_scale' and 'scale' must be positive, got {aabb_scale} and {scale}")
    lo_x, lo_y, lo_z = ((0.5 - aabb_scale / 2.0 - shift) / scale for shift in offset_xyz)
    hi_x, hi_y, hi_z = ((0.5 + aabb_scale / 2.0 - shift) / scale for shift in offset_xyz)
    return SceneBox(minimum=(lo_x, lo_y, lo_z), maximum=(hi_x, hi_y, hi_z))


def _resolve_image(root: Path, file_path: str) -> Path:
    path = root / file_path
    if path.suffix.lower() in IMAGE_SUFFIXES or path.exists():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return candidate
    return path


# --- writing -----------------------------------------------------------------------------------


def _rebased(frame: Frame, root: Path, folder: Path) -> Frame:
    if Path(root).resolve() == folder.resolve():
        return frame
    relative = os.path.relpath(Path(root) / frame.file_path, folder)
    return Frame(
        file_path=PurePosixPath(Path(relative)).as_posix(),
        camera_to_world=frame.camera_to_world,
        intrinsics=frame.intrinsics,
        name=frame.name,
        split=frame.split,
    )


def _intrinsics_json(intrinsics: Intrinsics) -> dict[str, Any]:
    return {
        "fl_x": intrinsics.fl_x,
        "fl_y": intrinsics.fl_y,
        "cx": intrinsics.cx,
        "cy": intrinsics.cy,
        "w": intrinsics.width,
        "h": intrinsics.height,
        # Redundant with fl_x/fl_y; written for NeRF-synthetic readers that know only the angles.
        "camera_angle_x": intrinsics.camera_angle_x,
        "camera_angle_y": intrinsics.camera_angle_y,
    }


def _header(transforms: Transforms, frames: list[Frame], uniform: bool, filled_split: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"camera_model": "OPENCV"}
    if uniform:
        document.update(_intrinsics_json(frames[0].intrinsics))
    fieldwork: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "color_space": transforms.color_space,
        "has_alpha": transforms.has_alpha,
    }
    box = transforms.scene_box
    if box is not None:
        # instant-ngp marches the unit cube around 0.5: fit the box's bounding cube into it.
        scale = 1.0 / max(box.size)
        document["aabb_scale"] = 1
        document["scale"] = scale
        document["offset"] = [0.5 - centre * scale for centre in box.center]
        fieldwork["scene_box"] = {"min": list(box.minimum), "max": list(box.maximum)}
    if filled_split is not None:
        fieldwork["filled_split"] = filled_split
    document["fieldwork"] = fieldwork
    return document


def _frame_json(frame: Frame, per_frame_intrinsics: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file_path": frame.file_path,
        "transform_matrix": [[float(value) for value in row] for row in frame.camera_to_world],
    }
    if per_frame_intrinsics:
        entry.update(_intrinsics_json(frame.intrinsics))
    if frame.name:
        entry["fieldwork"] = {"name": frame.name}
    return entry


# A list of numbers spread over lines by json.dumps(indent=...); JSON strings never hold a raw newline.
_NUMBER_LIST = re.compile(r"\[\n\s*(-?[0-9][-+0-9.eE]*(?:,\n\s*-?[0-9][-+0-9.eE]*)*)\n\s*\]")


def _write_json_atomic(target: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    # One matrix row or vector per line keeps the file readable.
    text = _NUMBER_LIST.sub(lambda match: "[" + ", ".join(re.split(r",\s*", match.group(1))) + "]", text)
    write_text_atomic(target, text)


# --- image headers -----------------------------------------------------------------------------


def _png_info(stream: Any, path: Path) -> ImageInfo:
    length, chunk = struct.unpack(">I4s", stream.read(8))
    if chunk != b"IHDR" or length < 13:
        raise TransformsError(f"{path}: PNG without an IHDR header")
    width, height, _bit_depth, color_type = struct.unpack(">IIBB", stream.read(10))
    # Colour types 4 (grey + alpha) and 6 (RGBA) carry an alpha channel.
    return ImageInfo(width=width, height=height, has_alpha=color_type in (4, 6))


def _jpeg_info(stream: Any, path: Path) -> ImageInfo:
    while True:
        byte = stream.read(1)
        if not byte:
            break
        if byte != b"\xff":
            continue
        marker = stream.read(1)
        while marker == b"\xff":
            marker = stream.read(1)
        code = marker[0] if marker else 0
        # Markers without a length: stuffed 0x00, TEM and the restart markers RST0..RST7.
        if code in (0x00, 0x01) or 0xD0 <= code <= 0xD7:
            continue
        (length,) = struct.unpack(">H", stream.read(2))
        # SOF0..SOF15 hold the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            _precision, height, width = struct.unpack(">BHH", stream.read(5))
            return ImageInfo(width=width, height=height, has_alpha=False)
        stream.seek(length - 2, os.SEEK_CUR)
    raise TransformsError(f"{path}: JPEG without a frame header")


def _exr_info(stream: Any, path: Path) -> ImageInfo:
    window = None
    channels: list[str] = []
    while True:
        name = _read_cstring(stream)
        if not name:
            break
        _type_name = _read_cstring(stream)
        (size,) = struct.unpack("<i", stream.read(4))
        value = stream.read(size)
        if name == "dataWindow":
            window = struct.unpack("<iiii", value[:16])
        elif name == "channels":
            # chlist: name\0 then 16 bytes per channel, ended by an empty name.
            position = 0
            while position < len(value) and value[position] != 0:
                end = value.index(b"\0", position)
                channels.append(value[position:end].decode("latin-1"))
                position = end + 1 + 16
    if window is None:
        raise TransformsError(f"{path}: OpenEXR without a dataWindow")
    x_min, y_min, x_max, y_max = window
    return ImageInfo(width=x_max - x_min + 1, height=y_max - y_min + 1, has_alpha="A" in channels)


def _read_cstring(stream: Any) -> str:
    characters = bytearray()
    while (byte := stream.read(1)) not in (b"", b"\0"):
        characters += byte
    return characters.decode("latin-1")
