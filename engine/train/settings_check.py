"""Typed values for config dataclasses from JSON: a value of the wrong type is named before the
dataclass is built, so ``{"ngp": {"levels": "16"}}`` is "settings.ngp.levels must be a whole number,
got '16'" instead of a failure deep inside the model. Standard library only.

Works on any dataclass whose fields are ``int``, ``float``, ``str``, ``bool`` or a nested dataclass
(given as a dictionary); other annotations are left to the dataclass itself.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any


def check_values(config_class: Any, values: Any, where: str) -> None:
    """Raise ValueError naming ``where.key`` for the first value in ``values`` that does not fit its
    field of ``config_class``. Unknown keys are not this function's business (the config's from_dict
    names them)."""
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be an object of settings, got {_shown(values)}")
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name not in values:
            continue
        expected, value, name = hints.get(field.name), values[field.name], f"{where}.{field.name}"
        if dataclasses.is_dataclass(expected):
            check_values(expected, value, name)
        elif expected is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {_shown(value)}")
        elif expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {_shown(value)}")
        elif expected is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {_shown(value)}")
        elif expected is str and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {_shown(value)}")


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, int | float) else repr(value)
