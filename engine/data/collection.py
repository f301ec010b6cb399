"""Image collections for generative scene models (GRAF, GIRAFFE): images plus the pose prior they were drawn from.

A collection is a folder written by ``scripts/make_collection.py`` (Blender, headless)::

    collection.json      format, version, image size, count, renderer, the prior, the image list
    images/000123.png    RGB (an alpha channel, if any, is dropped), sRGB, all the same size
    params/000123.json   the image's true parameters: for evaluation only, never for training

Units and frames: lengths are Blender world units and points are Blender world coordinates (+Z up);
the floor is the plane ``z = floor.height``, and objects stand on it (GIRAFFE's ``object_on_plane``).
Angles are in degrees wherever they are stored (keys and fields end in ``_deg``); the ``*_rad``
properties give radians. Object rotation is about the world +Z axis, counter-clockwise seen from
above; camera azimuth is counter-clockwise from +X, elevation is up from the floor plane.
Object scale is the half-extent of the object in world units (a primitive of scale s spans 2 s).

Only numpy and imageio: importing this module never imports torch (the samplers of the prior that
engine methods use live beside the methods).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from .transforms import TransformsError, read_image_info

COLLECTION_NAME = "collection.json"
FORMAT = "fieldwork-image-collection"
FORMAT_VERSION = 1


class CollectionError(ValueError):
    """A collection that cannot be read; the message names the file and the key or image at fault."""


@dataclass(frozen=True)
class Range:
    """A closed interval ``[low, high]`` a value is drawn from uniformly."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def rad(self) -> Range:
        """The same range read as degrees, in radians."""
        return Range(math.radians(self.low), math.radians(self.high))


@dataclass(frozen=True)
class Floor:
    """The plane objects stand on: ``z = height`` in world space, with its centre at world (x, y) = ``center``.

    A layout generated in the floor's frame (floor-centred, +Z up) maps to world space by adding
    ``(center[0], center[1], height)``; the prior's translation ranges are already in world space.
    """

    height: float
    center: tuple[float, float]


@dataclass(frozen=True)
class CameraPrior:
    """Cameras on a ring around ``look_at``, looking at it with +Y of the camera as up as it can be.

    The camera sits at ``look_at + radius * (cos e cos a, cos e sin a, sin e)`` for elevation e and
    azimuth a (degrees in the fields). It looks down its local -Z (Blender's and NeRF's convention).
    Intrinsics are pinhole pixels of the collection's images; a pixel centre is at +0.5.
    """

    radius: Range
    elevation_deg: Range
    azimuth_deg: Range
    look_at: tuple[float, float, float]
    lens_mm: float
    sensor_width_mm: float
    fov_x_deg: float
    fl_x: float
    fl_y: float
    cx: float
    cy: float


@dataclass(frozen=True)
class PosePrior:
    """What a generative model samples object poses and cameras from, in Blender world units.

    Per image: ``object_count`` objects (inclusive range), each with scale (half-extent, world units)
    in ``object_scale``, centre x, y in ``object_translation_x`` / ``_y`` (world coordinates), z such
    that it stands on the floor, and rotation about +Z in ``object_rotation_z_deg``. No two object
    footprints came closer than ``min_gap`` in the real images.
    """

    object_count: tuple[int, int]
    object_scale: Range
    object_translation_x: Range
    object_translation_y: Range
    object_rotation_z_deg: Range
    min_gap: float
    floor: Floor
    camera: CameraPrior


@dataclass(frozen=True)
class ImageCollection:
    """A validated collection. Images are read on demand: :meth:`image` one, :meth:`images` all."""

    root: Path
    width: int
    height: int
    color_space: str
    prior: PosePrior
    image_paths: tuple[Path, ...]
    params_paths: tuple[Path, ...]
    renderer: dict[str, Any]
    source: dict[str, Any]

    def __len__(self) -> int:
        return len(self.image_paths)

    def image(self, index: int) -> np.ndarray:
        """(height, width, 3) float32 in [0, 1], in the collection's colour space."""
        path = self.image_paths[index]
        try:
            pixels = iio.imread(path)
        except (OSError, ValueError) as error:
            raise CollectionError(f"{path}: cannot read the image ({error})") from error
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        if pixels.shape[:2] != (self.height, self.width):
            size = f"{pixels.shape[1]}x{pixels.shape[0]}"
            raise CollectionError(f"{path}: image is {size}, {COLLECTION_NAME} says {self.width}x{self.height}")
        scale = float(np.iinfo(pixels.dtype).max) if np.issubdtype(pixels.dtype, np.integer) else 1.0
        return (pixels[..., :3].astype(np.float32) / scale).clip(0.0, 1.0)

    def images(self, indices: list[int] | None = None) -> np.ndarray:
        """(n, height, width, 3) float32 in [0, 1]: every image, or those at ``indices``."""
        chosen = range(len(self)) if indices is None else indices
        out = np.empty((len(chosen), self.height, self.width, 3), dtype=np.float32)
        for row, index in enumerate(chosen):
            out[row] = self.image(index)
        return out

    def params(self, index: int) -> dict[str, Any]:
        """Image ``index``'s true parameters (objects, camera, light): for evaluation only."""
        path = self.params_paths[index]
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise CollectionError(f"{path}: cannot read the parameters ({error})") from error


def load_collection(path: Path | str, check_images: bool = True) -> ImageCollection:
    """Read and validate ``path`` (the folder or its collection.json).

    ``check_images`` reads every image's header (not its pixels) to check it exists and has the
    stated size, so a broken collection fails here rather than mid-training.
    """
    path = Path(path)
    file = path if path.suffix == ".json" else path / COLLECTION_NAME
    root = file.parent
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CollectionError(f"{file}: no such file (make one with scripts/make_collection.py)") from error
    except (OSError, json.JSONDecodeError) as error:
        raise CollectionError(f"{file}: not readable JSON ({error})") from error
    reader = _Reader(file)
    if not isinstance(document, dict):
        raise CollectionError(f"{file}: the top level must be an object")
    if reader.get(document, "format", str) != FORMAT:
        raise CollectionError(f"{file}: key 'format' is {document['format']!r}, expected {FORMAT!r}")
    version = reader.get(document, "version", int)
    if version > FORMAT_VERSION:
        raise CollectionError(f"{file}: key 'version' is {version}; this engine reads up to {FORMAT_VERSION}")
    if not reader.get(document, "complete", bool):
        raise CollectionError(
            f"{file}: key 'complete' is false: the collection is unfinished; re-run the same make_collection command"
        )
    width = reader.get(document, "width", int)
    height = reader.get(document, "height", int)
    count = reader.get(document, "count", int)
    color_space = reader.get(document, "color_space", str)
    if color_space not in ("srgb", "linear"):
        raise CollectionError(f"{file}: key 'color_space' is {color_space!r}, expected 'srgb' or 'linear'")
    entries = reader.get(document, "images", list)
    if len(entries) != count:
        raise CollectionError(f"{file}: key 'images' lists {len(entries)} images, key 'count' says {count}")
    image_paths, params_paths = [], []
    for number, entry in enumerate(entries):
        where = f"images[{number}]"
        image_paths.append(root / reader.get(entry, "image", str, where))
        params_paths.append(root / reader.get(entry, "params", str, where))
    collection = ImageCollection(
        root=root,
        width=width,
        height=height,
        color_space=color_space,
        prior=_prior(reader, reader.get(document, "prior", dict)),
        image_paths=tuple(image_paths),
        params_paths=tuple(params_paths),
        renderer=reader.get(document, "renderer", dict),
        source=reader.get(document, "source", dict),
    )
    if check_images:
        for image_path in image_paths:
            try:
                info = read_image_info(image_path)
            except (OSError, TransformsError) as error:
                raise CollectionError(f"{file} lists an image that cannot be read: {error}") from error
            if (info.width, info.height) != (width, height):
                raise CollectionError(
                    f"{image_path}: image is {info.width}x{info.height}, {file} keys 'width'/'height' say "
                    f"{width}x{height}"
                )
    return collection


class _Reader:
    """Typed look-ups whose errors name the file and the key's full path (``prior.camera.radius.min``)."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def get(self, container: Any, key: str, kind: type, where: str = "") -> Any:
        name = f"{where}.{key}" if where else key
        if not isinstance(container, dict) or key not in container:
            raise CollectionError(f"{self.file}: missing key {name!r}")
        value = container[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise CollectionError(f"{self.file}: key {name!r} must be {kind.__name__}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise CollectionError(f"{self.file}: key {name!r} must be finite, got {value!r}")
        return value

    def range(self, container: Any, key: str, where: str) -> Range:
        name = f"{where}.{key}"
        bounds = self.get(container, key, dict, where)
        low, high = self.get(bounds, "min", float, name), self.get(bounds, "max", float, name)
        if low > high:
            raise CollectionError(f"{self.file}: key {name!r} has min {low} > max {high}")
        return Range(low, high)

    def floats(self, container: Any, key: str, length: int, where: str) -> tuple[float, ...]:
        values = self.get(container, key, list, where)
        if len(values) != length:
            raise CollectionError(f"{self.file}: key '{where}.{key}' must hold {length} numbers, got {values!r}")
        return tuple(self.get({key: value}, key, float, where) for value in values)


def prior_from_dict(prior: dict[str, Any], where: Path | str) -> PosePrior:
    """The PosePrior of a prior as collection.json writes it; errors name ``where`` and the key."""
    return _prior(_Reader(Path(where)), prior)


def _prior(reader: _Reader, prior: dict[str, Any]) -> PosePrior:
    count = reader.range(prior, "object_count", "prior")
    if count.low < 1 or count.low != int(count.low) or count.high != int(count.high):
        raise CollectionError(f"{reader.file}: key 'prior.object_count' must be whole numbers from 1, got {count}")
    scale = reader.range(prior, "object_scale", "prior")
    if scale.low <= 0:
        raise CollectionError(f"{reader.file}: key 'prior.object_scale.min' must be positive, got {scale.low}")
    floor = reader.get(prior, "floor", dict, "prior")
    camera = reader.get(prior, "camera", dict, "prior")
    where = "prior.camera"
    center_x, center_y = reader.floats(floor, "center", 2, "prior.floor")
    look_x, look_y, look_z = reader.floats(camera, "look_at", 3, where)
    return PosePrior(
        object_count=(int(count.low), int(count.high)),
        object_scale=scale,
        object_translation_x=reader.range(prior, "object_translation_x", "prior"),
        object_translation_y=reader.range(prior, "object_translation_y", "prior"),
        object_rotation_z_deg=reader.range(prior, "object_rotation_z_deg", "prior"),
        min_gap=reader.get(prior, "min_gap", float, "prior"),
        floor=Floor(height=reader.get(floor, "height", float, "prior.floor"), center=(center_x, center_y)),
        camera=CameraPrior(
            radius=reader.range(camera, "radius", where),
            elevation_deg=reader.range(camera, "elevation_deg", where),
            azimuth_deg=reader.range(camera, "azimuth_deg", where),
            look_at=(look_x, look_y, look_z),
            lens_mm=reader.get(camera, "lens_mm", float, where),
            sensor_width_mm=reader.get(camera, "sensor_width_mm", float, where),
            fov_x_deg=reader.get(camera, "fov_x_deg", float, where),
            fl_x=reader.get(camera, "fl_x", float, where),
            fl_y=reader.get(camera, "fl_y", float, where),
            cx=reader.get(camera, "cx", float, where),
            cy=reader.get(camera, "cy", float, where),
        ),
    )
