"""Typed configs of training runs. A run's config is saved as ``config.json`` in its run folder.

Importing this module does not import torch, so tools can read and write configs cheaply. The method's own
settings are its registry config (engine/methods); the trainer's are here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .. import methods

BACKGROUNDS = ("random", "white", "black")


@dataclass
class TrainConfig:
    method: str = "ngp"
    steps: int = 2000
    minutes: float = 0.0  # 0: no time budget
    device: str = "auto"
    seed: int = 0
    downscale: int = 1
    background: str = "random"  # training background behind transparent pixels: random, white or black
    # Rays per step: 0 adapts them so that a step evaluates about samples_per_step field samples (nerfacc's
    # rule), which keeps steps short while the occupancy grid still marches empty space.
    batch_rays: int = 0
    samples_per_step: int = 0  # 0: the device's default (engine.train.budget)
    warmup_steps: int = 100
    render_chunk_rays: int = 8192
    log_every: int = 50
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0  # also checkpoint after this much training time (0: only by steps)
    eval_views: int = -1  # held-out views evaluated when a run ends: -1 all, 0 none
    allow_outside_paths: bool = False  # the dataset's images may lie outside its folder (the user said so)
    compile: str = "auto"  # torch.compile a method's hot path: auto (CUDA only), on, off
    mixed_precision: bool = True  # autocast to bfloat16 on CUDA; ignored on CPU
    settings: Any = None  # the method's registry config; None: its defaults

    def __post_init__(self) -> None:
        spec = methods.get(self.method)
        if self.settings is None:
            self.settings = spec.make_config()
        elif isinstance(self.settings, dict):
            self.settings = spec.make_config(self.settings)
        elif not isinstance(self.settings, spec.config):
            raise ValueError(f"settings of {self.method} must be a {spec.config.__name__}, got {self.settings!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; choose one of {', '.join(BACKGROUNDS)}")
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be auto, on or off, got {self.compile!r}")
        for name in ("steps", "downscale", "render_chunk_rays", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_rays", "samples_per_step", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"{name} must be >= 0 (0: {'automatic' if name != 'warmup_steps' else 'none'}), "
                    f"got {getattr(self, name)}"
                )
        if self.eval_views < -1:
            raise ValueError(f"eval_views must be -1 (all), 0 (none) or a count, got {self.eval_views}")
        for name in ("minutes", "checkpoint_minutes"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (0 means none), got {value}")

    @property
    def spec(self) -> methods.MethodSpec:
        return methods.get(self.method)

    def to_dict(self) -> dict[str, Any]:
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        values["settings"] = dataclasses.asdict(self.settings)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of to_dict; unknown keys and wrongly typed values are errors naming them. Reads the
        configs of engine 0.1 runs too ("field" and a block per field)."""
        if not isinstance(values, dict):
            raise ValueError(f"a train config must be a mapping, got {values!r}")
        values = dict(values)
        if "field" in values:  # engine 0.1
            values["method"] = values.pop("field")
            legacy_blocks = {name: values.pop(name) for name in ("ngp", "nerf") if name in values}
            if values["method"] in legacy_blocks:
                values["settings"] = legacy_blocks[values["method"]]
        method = values.get("method", cls.method)
        if not isinstance(method, str):
            raise ValueError(f"train config 'method' must be a method name, got {method!r}")
        settings = values.pop("settings", None)
        config = methods.build_dataclass(cls, {**values, "settings": None}, "train config key")
        config.settings = methods.get(method).make_config(settings or {})
        return config

    def with_settings(self, **changes: Any) -> TrainConfig:
        """A copy whose method settings have ``changes`` (checked like from_dict)."""
        current = dataclasses.asdict(self.settings)
        return dataclasses.replace(self, settings=self.spec.make_config({**current, **changes}))
