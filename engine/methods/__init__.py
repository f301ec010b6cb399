"""The method registry: every system Fieldwork trains, named once.

Standard library only, so the add-on (which never imports torch), the CLI and extraction all read the
same list. Each method has a registry entry here (one small module: its config dataclass and its
``MethodSpec``) and a model module elsewhere in the engine that the spec names and that is imported only
when a model is built. Adding a method is: one model file, one entry module, one line in ``_ENTRIES``.

    from engine import methods
    spec = methods.get("ngp")           # MethodSpec
    config = spec.make_config({"levels": 8})
    methods.names(family=methods.IMAGES)
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing
from dataclasses import dataclass
from typing import Any

# Data families: what a method learns from.
IMAGES = "images"  # posed images (transforms.json)
SHAPES = "shapes"  # shape samples from meshes and point clouds
COLLECTIONS = "collections"  # image collections with a pose prior (generative models)
TEXTURED_SHAPES = "textured_shapes"  # meshes with posed views of their texture (conditional texture fields)
FAMILIES = (IMAGES, SHAPES, COLLECTIONS, TEXTURED_SHAPES)

# Surface kinds: what the field's scalar is, which decides how a mesh is extracted.
DENSITY = "density"  # volume density; the level is a density (engine/mesh/levels.py)
SDF = "sdf"  # signed distance, negative inside; the surface is its zero level
OCCUPANCY = "occupancy"  # probability of being inside; the surface is its 0.5 level
NO_SURFACE = "none"
SURFACE_KINDS = (DENSITY, SDF, OCCUPANCY, NO_SURFACE)


@dataclass(frozen=True)
class Figure:
    """A named figure a method reports in progress and metrics (``loss``, ``psnr``, ``eikonal``...).
    ``format`` is a str.format spec for panels and progress bars; ``unit`` follows the number."""

    name: str
    label: str
    format: str = ".4g"
    unit: str = ""

    def text(self, value: float) -> str:
        return f"{self.label} {value:{self.format}}{(' ' + self.unit) if self.unit else ''}"


@dataclass(frozen=True)
class MethodSpec:
    """One method. ``model`` is ``"package.module:ClassName"``, relative to the engine package, of a
    class built as ``Class(config, context)`` (see engine.fields.base.Method)."""

    name: str
    label: str
    description: str  # one line, shown in menus and ``engine methods``
    family: str
    surface: str
    config: type
    model: str
    figures: tuple[Figure, ...] = ()  # beyond "loss", which every method reports
    renders: bool = False  # renders rays from a camera (previews, evaluation by PSNR)
    layouts: bool = False  # samples and renders object layouts

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"method {self.name!r}: unknown data family {self.family!r}; one of {FAMILIES}")
        if self.surface not in SURFACE_KINDS:
            raise ValueError(f"method {self.name!r}: unknown surface kind {self.surface!r}; one of {SURFACE_KINDS}")
        if not dataclasses.is_dataclass(self.config):
            raise ValueError(f"method {self.name!r}: config must be a dataclass, got {self.config!r}")
        if ":" not in self.model:
            raise ValueError(f"method {self.name!r}: model must be 'module:Class', got {self.model!r}")

    def make_config(self, values: dict[str, Any] | None = None) -> Any:
        """The config dataclass from a dict; unknown keys and wrongly typed values are errors naming them."""
        return build_dataclass(self.config, values or {}, f"{self.name} setting")

    def config_fields(self) -> list[dict[str, Any]]:
        """[{"name", "type", "default"}] of the config, for listings."""
        hints = typing.get_type_hints(self.config)
        rows = []
        for item in dataclasses.fields(self.config):
            default = item.default if item.default is not dataclasses.MISSING else None
            rows.append({"name": item.name, "type": _type_name(hints.get(item.name)), "default": default})
        return rows

    def load_model_class(self) -> type:
        """Import the model module (this is where torch gets imported)."""
        module_name, _, class_name = self.model.partition(":")
        module = importlib.import_module(module_name, package=__package__.rpartition(".")[0])
        return getattr(module, class_name)

    @property
    def all_figures(self) -> tuple[Figure, ...]:
        return (Figure("loss", "loss", ".5f"), *self.figures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "family": self.family,
            "surface": self.surface,
            "renders": self.renders,
            "layouts": self.layouts,
            "figures": [dataclasses.asdict(figure) for figure in self.all_figures],
            "config": self.config_fields(),
        }


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Add a method (tests register their own); a name is taken once unless ``replace``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"method {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> MethodSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def names(family: str | None = None) -> list[str]:
    return [spec.name for spec in _REGISTRY.values() if family is None or spec.family == family]


def specs(family: str | None = None) -> list[MethodSpec]:
    return [spec for spec in _REGISTRY.values() if family is None or spec.family == family]


# ---------------------------------------------------------------------------- typed configs from dicts


def build_dataclass(config_class: Any, values: dict[str, Any], where: str) -> Any:
    """``config_class(**values)`` after checking every key is a field and every value has the field's type
    (ints are accepted for floats; numbers must be finite). Errors name the key and the value."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}s must be a mapping of names to values, got {values!r}")
    fields = {item.name: item for item in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {where} {', '.join(repr(name) for name in unknown)}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(config_class)
    checked = {name: check_value(hints.get(name), value, f"{where} {name!r}") for name, value in values.items()}
    return config_class(**checked)


def check_value(annotation: Any, value: Any, where: str) -> Any:
    """value as the annotation's type (bool, int, float, str, tuples of those, nested dataclasses)."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return value if isinstance(value, annotation) else build_dataclass(annotation, value, where)
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        arguments = [item for item in typing.get_args(annotation) if item is not Ellipsis]
        item_type = arguments[0] if arguments else None
        return origin(check_value(item_type, item, where) for item in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
    elif annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be a whole number, got {value!r}")
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    elif annotation is str and not isinstance(value, str):
        raise ValueError(f"{where} must be text, got {value!r}")
    return value


def parse_setting(config_class: Any, assignment: str) -> tuple[str, Any]:
    """``"key=value"`` (the CLI's ``--set``) -> (key, value typed by the config's field)."""
    key, separator, text = assignment.partition("=")
    key = key.strip()
    if not separator or not key:
        raise ValueError(f"--set takes key=value, got {assignment!r}")
    hints = typing.get_type_hints(config_class)
    if key not in hints:
        known = ", ".join(item.name for item in dataclasses.fields(config_class))
        raise ValueError(f"unknown setting {key!r}; known: {known}")
    annotation = hints[key]
    text = text.strip()
    try:
        if annotation is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            return key, lowered in ("true", "1", "yes", "on")
        if annotation is int:
            return key, int(text)
        if annotation is float:
            return key, float(text)
    except ValueError:
        raise ValueError(f"setting {key!r} must be a {_type_name(annotation)}, got {text!r}") from None
    return key, text


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


# ---------------------------------------------------------------------------- the entries

_ENTRIES = (
    "ngp",
    "nerf",
    "neus",
    "unisurf",
    "dvr",
    "texture_field",
    "conditional_texture_field",
    "igr",
    "onet",
    "deepsdf",
    "giraffe",
    "graf",
)


def _load_entries() -> None:
    for entry in _ENTRIES:
        module = importlib.import_module(f".{entry}", __name__)
        register(module.METHOD)


_load_entries()
