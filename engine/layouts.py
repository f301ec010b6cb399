"""Layouts of generated objects: what a GIRAFFE run samples and renders, as a JSON file Blender can read.

Standard library only (the add-on reads and writes layouts without torch). A layout is::

    {
      "format": "fieldwork-layout", "version": 1, "method": "giraffe",
      "shape_code_size": 16, "appearance_code_size": 16, "background_code_size": 8,
      "objects": [
        {"name": "object_0", "shape_code": [...], "appearance_code": [...],
         "scale": 0.7, "translation": [x, y, z], "rotation_z_deg": 30.0}
      ],
      "background": {"shape_code": [...], "appearance_code": [...]},
      "camera": {"camera_to_world": [[4 numbers] x 4], "fl_x": .., "fl_y": .., "cx": .., "cy": .., "w": 32, "h": 32}
    }

Units are the collection's (scripts/make_collection.py): Blender world units and coordinates, +Z up. An
object's ``scale`` is its half-extent, ``translation`` its centre (a sampled object stands on the floor: z is
the floor height plus its scale), ``rotation_z_deg`` its rotation about world +Z in degrees, counter-clockwise
seen from above. The camera is Blender's ``matrix_world`` (looks down -Z, +Y up) with pinhole intrinsics in
pixels (a pixel centre at +0.5).

A model that makes layouts (``MethodSpec.layouts``) offers::

    model.sample_layout(seed, n_objects=None) -> Layout
    model.render_layout(layout, camera_to_world=None, intrinsics=None) -> LayoutRender
        colour (h, w, 3) in [0, 1], alphas (k, h, w) one per object in layout order, depth (h, w) along the
        camera's viewing axis in world units

The edits here are pure: each returns a new Layout. Errors name the field at fault (``objects[1].translation[2]``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "fieldwork-layout"
FORMAT_VERSION = 1


class LayoutError(ValueError):
    """A layout that cannot be used; the message names the field (and the file) at fault."""


@dataclass(frozen=True)
class LayoutObject:
    name: str
    shape_code: tuple[float, ...]
    appearance_code: tuple[float, ...]
    scale: float
    translation: tuple[float, float, float]
    rotation_z_deg: float


@dataclass(frozen=True)
class LayoutCamera:
    camera_to_world: tuple[tuple[float, ...], ...]  # 4 rows of 4
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    w: int
    h: int


@dataclass(frozen=True)
class Layout:
    method: str
    shape_code_size: int
    appearance_code_size: int
    background_code_size: int
    objects: tuple[LayoutObject, ...]
    background_shape_code: tuple[float, ...]
    background_appearance_code: tuple[float, ...]
    camera: LayoutCamera
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. the run it came from

    def __post_init__(self) -> None:
        validate(self)

    # -- lookup ----------------------------------------------------------------------------------

    def index(self, name: str) -> int:
        for number, obj in enumerate(self.objects):
            if obj.name == name:
                return number
        known = ", ".join(obj.name for obj in self.objects) or "none"
        raise LayoutError(f"objects: no object named {name!r} (the layout has {known})")

    def object(self, name: str) -> LayoutObject:
        return self.objects[self.index(name)]

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "method": self.method,
            "shape_code_size": self.shape_code_size,
            "appearance_code_size": self.appearance_code_size,
            "background_code_size": self.background_code_size,
            "objects": [
                {
                    "name": obj.name,
                    "shape_code": list(obj.shape_code),
                    "appearance_code": list(obj.appearance_code),
                    "scale": obj.scale,
                    "translation": list(obj.translation),
                    "rotation_z_deg": obj.rotation_z_deg,
                }
                for obj in self.objects
            ],
            "background": {
                "shape_code": list(self.background_shape_code),
                "appearance_code": list(self.background_appearance_code),
            },
            "camera": {
                "camera_to_world": [list(row) for row in self.camera.camera_to_world],
                "fl_x": self.camera.fl_x,
                "fl_y": self.camera.fl_y,
                "cx": self.camera.cx,
                "cy": self.camera.cy,
                "w": self.camera.w,
                "h": self.camera.h,
            },
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, document: Any, where: str = "layout") -> Layout:
        """Read a layout document; errors name ``where`` and the field."""
        reader = _Fields(where)
        if not isinstance(document, dict):
            raise LayoutError(f"{where}: a layout must be a JSON object")
        if reader.get(document, "format", str) != FORMAT:
            raise LayoutError(f"{where}: field 'format' is {document['format']!r}, expected {FORMAT!r}")
        if reader.get(document, "version", int) > FORMAT_VERSION:
            raise LayoutError(f"{where}: field 'version' is {document['version']}; this engine reads {FORMAT_VERSION}")
        objects = []
        for number, entry in enumerate(reader.get(document, "objects", list)):
            path = f"objects[{number}]"
            objects.append(
                LayoutObject(
                    name=reader.get(entry, "name", str, path),
                    shape_code=reader.numbers(entry, "shape_code", path),
                    appearance_code=reader.numbers(entry, "appearance_code", path),
                    scale=reader.get(entry, "scale", float, path),
                    translation=reader.numbers(entry, "translation", path, 3),  # type: ignore[arg-type]
                    rotation_z_deg=reader.get(entry, "rotation_z_deg", float, path),
                )
            )
        background = reader.get(document, "background", dict)
        camera = reader.get(document, "camera", dict)
        matrix = reader.get(camera, "camera_to_world", list, "camera")
        if len(matrix) != 4:
            raise LayoutError(f"{where}: field 'camera.camera_to_world' must have 4 rows, got {len(matrix)}")
        rows = tuple(
            reader.numbers({"row": row}, "row", f"camera.camera_to_world[{number}]", 4)
            for number, row in enumerate(matrix)
        )
        try:
            return cls(
                method=reader.get(document, "method", str),
                shape_code_size=reader.get(document, "shape_code_size", int),
                appearance_code_size=reader.get(document, "appearance_code_size", int),
                background_code_size=reader.get(document, "background_code_size", int),
                objects=tuple(objects),
                background_shape_code=reader.numbers(background, "shape_code", "background"),
                background_appearance_code=reader.numbers(background, "appearance_code", "background"),
                camera=LayoutCamera(
                    camera_to_world=rows,
                    fl_x=reader.get(camera, "fl_x", float, "camera"),
                    fl_y=reader.get(camera, "fl_y", float, "camera"),
                    cx=reader.get(camera, "cx", float, "camera"),
                    cy=reader.get(camera, "cy", float, "camera"),
                    w=reader.get(camera, "w", int, "camera"),
                    h=reader.get(camera, "h", int, "camera"),
                ),
                extra=dict(document.get("extra", {})) if isinstance(document.get("extra", {}), dict) else {},
            )
        except LayoutError as error:
            raise LayoutError(f"{where}: {error}") from None


def read_layout(path: Path | str) -> Layout:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{path}: no such layout file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise LayoutError(f"{path}: not readable JSON ({error})") from None
    return Layout.from_dict(document, str(path))


def write_layout(path: Path | str, layout: Layout) -> Path:
    from .atomic import write_text_atomic

    return write_text_atomic(Path(path), json.dumps(layout.to_dict(), indent=1) + "\n")


def read_camera(path: Path | str) -> LayoutCamera:
    """A camera JSON: {"camera_to_world": 4x4, "fl_x", "fl_y", "cx", "cy", "w", "h"} (a layout's "camera"
    block; a layout file's own camera is read too)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{path}: no such camera file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise LayoutError(f"{path}: not readable JSON ({error})") from None
    if isinstance(document, dict) and "camera" in document and isinstance(document["camera"], dict):
        document = document["camera"]
    reader = _Fields(str(path))
    matrix = reader.get(document, "camera_to_world", list)
    if len(matrix) != 4:
        raise LayoutError(f"{path}: field 'camera_to_world' must have 4 rows, got {len(matrix)}")
    camera = LayoutCamera(
        camera_to_world=tuple(
            reader.numbers({"row": row}, "row", f"camera_to_world[{number}]", 4) for number, row in enumerate(matrix)
        ),
        fl_x=reader.get(document, "fl_x", float),
        fl_y=reader.get(document, "fl_y", float),
        cx=reader.get(document, "cx", float),
        cy=reader.get(document, "cy", float),
        w=reader.get(document, "w", int),
        h=reader.get(document, "h", int),
    )
    try:
        _check_camera(camera)
    except LayoutError as error:
        raise LayoutError(f"{path}: {error}") from None
    return camera


# ---------------------------------------------------------------------------- validation


def validate(layout: Layout) -> None:
    """Raise LayoutError naming the first field at fault: code sizes, finite poses, positive scale, names."""
    for name in ("shape_code_size", "appearance_code_size", "background_code_size"):
        if getattr(layout, name) < 1:
            raise LayoutError(f"field {name!r} must be >= 1, got {getattr(layout, name)}")
    seen: set[str] = set()
    for number, obj in enumerate(layout.objects):
        path = f"objects[{number}]"
        if not obj.name:
            raise LayoutError(f"field '{path}.name' must not be empty")
        if obj.name in seen:
            raise LayoutError(f"field '{path}.name': {obj.name!r} is used twice")
        seen.add(obj.name)
        _check_code(obj.shape_code, layout.shape_code_size, f"{path}.shape_code", "shape_code_size")
        _check_code(obj.appearance_code, layout.appearance_code_size, f"{path}.appearance_code", "appearance_code_size")
        if len(obj.translation) != 3:
            raise LayoutError(f"field '{path}.translation' must hold 3 numbers, got {len(obj.translation)}")
        for axis, value in enumerate(obj.translation):
            _check_finite(value, f"{path}.translation[{axis}]")
        _check_finite(obj.scale, f"{path}.scale")
        if obj.scale <= 0:
            raise LayoutError(f"field '{path}.scale' must be positive, got {obj.scale!r}")
        _check_finite(obj.rotation_z_deg, f"{path}.rotation_z_deg")
    _check_code(
        layout.background_shape_code, layout.background_code_size, "background.shape_code", "background_code_size"
    )
    _check_code(
        layout.background_appearance_code,
        layout.background_code_size,
        "background.appearance_code",
        "background_code_size",
    )
    _check_camera(layout.camera)


def check_sizes(layout: Layout, shape: int, appearance: int, background: int, method: str) -> None:
    """A model's code sizes against the layout's: errors name the field and both sizes."""
    for name, model_size in (
        ("shape_code_size", shape),
        ("appearance_code_size", appearance),
        ("background_code_size", background),
    ):
        if getattr(layout, name) != model_size:
            raise LayoutError(
                f"field {name!r} is {getattr(layout, name)}, the {method} model's codes have {model_size} numbers"
            )


def _check_code(code: tuple[float, ...], size: int, path: str, size_field: str) -> None:
    if len(code) != size:
        raise LayoutError(f"field {path!r} has {len(code)} numbers, {size_field!r} says {size}")
    for number, value in enumerate(code):
        _check_finite(value, f"{path}[{number}]")


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LayoutError(f"field {path!r} must be a finite number, got {value!r}")


def _check_camera(camera: LayoutCamera) -> None:
    if len(camera.camera_to_world) != 4 or any(len(row) != 4 for row in camera.camera_to_world):
        raise LayoutError("field 'camera.camera_to_world' must be 4x4")
    for row_number, row in enumerate(camera.camera_to_world):
        for column, value in enumerate(row):
            _check_finite(value, f"camera.camera_to_world[{row_number}][{column}]")
    for name in ("fl_x", "fl_y", "cx", "cy"):
        _check_finite(getattr(camera, name), f"camera.{name}")
    for name in ("fl_x", "fl_y", "w", "h"):
        if getattr(camera, name) <= 0:
            raise LayoutError(f"field 'camera.{name}' must be positive, got {getattr(camera, name)!r}")


class _Fields:
    """Typed look-ups whose errors name the field's path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def get(self, container: Any, key: str, kind: type, path: str = "") -> Any:
        name = f"{path}.{key}" if path else key
        if not isinstance(container, dict) or key not in container:
            raise LayoutError(f"{self.where}: missing field {name!r}")
        value = container[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (kind in (int, float) and isinstance(value, bool)) or not isinstance(value, kind):
            raise LayoutError(f"{self.where}: field {name!r} must be {kind.__name__}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise LayoutError(f"{self.where}: field {name!r} must be a finite number, got {value!r}")
        return value

    def numbers(self, container: Any, key: str, path: str, length: int | None = None) -> tuple[float, ...]:
        name = f"{path}.{key}" if path else key
        values = self.get(container, key, list, path)
        if length is not None and len(values) != length:
            raise LayoutError(f"{self.where}: field {name!r} must hold {length} numbers, got {len(values)}")
        for number, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise LayoutError(f"{self.where}: field '{name}[{number}]' must be a finite number, got {value!r}")
        return tuple(float(value) for value in values)


# ---------------------------------------------------------------------------- edits (each returns a new layout)


def _replace_object(layout: Layout, name: str, **changes: Any) -> Layout:
    index = layout.index(name)
    objects = list(layout.objects)
    objects[index] = dataclasses.replace(objects[index], **changes)
    return dataclasses.replace(layout, objects=tuple(objects))


def move(layout: Layout, name: str, offset: tuple[float, float, float]) -> Layout:
    """Translate object ``name`` by ``offset`` (world units)."""
    obj = layout.object(name)
    return _replace_object(layout, name, translation=tuple(a + b for a, b in zip(obj.translation, offset, strict=True)))


def place(layout: Layout, name: str, translation: tuple[float, float, float]) -> Layout:
    """Put object ``name``'s centre at ``translation`` (world coordinates)."""
    return _replace_object(layout, name, translation=tuple(float(value) for value in translation))


def rotate(layout: Layout, name: str, degrees: float) -> Layout:
    """Turn object ``name`` by ``degrees`` about world +Z (its own centre)."""
    return _replace_object(layout, name, rotation_z_deg=layout.object(name).rotation_z_deg + degrees)


def rescale(layout: Layout, name: str, factor: float, keep_on_floor: float | None = None) -> Layout:
    """Scale object ``name`` by ``factor``; with ``keep_on_floor`` (the floor height) its bottom stays there."""
    obj = layout.object(name)
    scale = obj.scale * factor
    translation = obj.translation
    if keep_on_floor is not None:
        translation = (translation[0], translation[1], keep_on_floor + scale)
    return _replace_object(layout, name, scale=scale, translation=translation)


def set_codes(
    layout: Layout,
    name: str,
    shape_code: tuple[float, ...] | None = None,
    appearance_code: tuple[float, ...] | None = None,
) -> Layout:
    """Give object ``name`` new codes (either or both)."""
    obj = layout.object(name)
    return _replace_object(
        layout,
        name,
        shape_code=tuple(shape_code) if shape_code is not None else obj.shape_code,
        appearance_code=tuple(appearance_code) if appearance_code is not None else obj.appearance_code,
    )


def swap_codes(layout: Layout, first: str, second: str, which: str = "both") -> Layout:
    """Exchange the shape, appearance or both codes of two objects."""
    if which not in ("shape", "appearance", "both"):
        raise LayoutError(f"which must be shape, appearance or both, got {which!r}")
    a, b = layout.object(first), layout.object(second)
    swap_shape, swap_appearance = which in ("shape", "both"), which in ("appearance", "both")
    layout = set_codes(
        layout, first, b.shape_code if swap_shape else None, b.appearance_code if swap_appearance else None
    )
    return set_codes(
        layout, second, a.shape_code if swap_shape else None, a.appearance_code if swap_appearance else None
    )


def random_code(size: int, seed: int) -> tuple[float, ...]:
    """A code drawn from the models' prior N(0, 1), repeatable by seed."""
    rng = random.Random(seed)
    return tuple(rng.gauss(0.0, 1.0) for _ in range(size))


def resample_codes(layout: Layout, name: str, seed: int, which: str = "both") -> Layout:
    """Draw new codes for object ``name`` (shape, appearance or both) from N(0, 1)."""
    if which not in ("shape", "appearance", "both"):
        raise LayoutError(f"which must be shape, appearance or both, got {which!r}")
    return set_codes(
        layout,
        name,
        random_code(layout.shape_code_size, seed) if which in ("shape", "both") else None,
        random_code(layout.appearance_code_size, seed + 1) if which in ("appearance", "both") else None,
    )


def set_background(
    layout: Layout, shape_code: tuple[float, ...] | None = None, appearance_code: tuple[float, ...] | None = None
) -> Layout:
    return dataclasses.replace(
        layout,
        background_shape_code=tuple(shape_code) if shape_code is not None else layout.background_shape_code,
        background_appearance_code=(
            tuple(appearance_code) if appearance_code is not None else layout.background_appearance_code
        ),
    )


def add_object(layout: Layout, obj: LayoutObject) -> Layout:
    """Append an object (its name must be new)."""
    return dataclasses.replace(layout, objects=(*layout.objects, obj))


def remove_object(layout: Layout, name: str) -> Layout:
    index = layout.index(name)
    return dataclasses.replace(layout, objects=layout.objects[:index] + layout.objects[index + 1 :])


def interpolate_codes(first: tuple[float, ...], second: tuple[float, ...], amount: float) -> tuple[float, ...]:
    """Linear interpolation (1 - amount) first + amount second of two codes of one size."""
    if len(first) != len(second):
        raise LayoutError(f"codes of different sizes cannot be interpolated: {len(first)} and {len(second)}")
    return tuple((1.0 - amount) * a + amount * b for a, b in zip(first, second, strict=True))


def set_camera(layout: Layout, camera: LayoutCamera) -> Layout:
    return dataclasses.replace(layout, camera=camera)
