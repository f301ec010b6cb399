"""Typed configs of training runs. A run's config is saved as ``config.json`` in its run folder.

Importing this module does not import torch, so tools can read and write configs cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FIELDS = ("ngp", "nerf")
BACKGROUNDS = ("random", "white", "black")


@dataclass
class NerfConfig:
    """NeRF as in the paper: positional encoding, 8x256 MLP with a skip, coarse + fine networks."""

    position_frequencies: int = 10
    direction_frequencies: int = 4
    hidden_width: int = 256
    hidden_layers: int = 8
    skip_layer: int = 4  # the input is concatenated again after this layer (0-based)
    coarse_samples: int = 64
    fine_samples: int = 128
    learning_rate: float = 5e-4
    final_learning_rate: float = 5e-5


@dataclass
class NgpConfig:
    """instant-NGP: multiresolution hash grid, small MLPs, occupancy grid."""

    levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 0  # 0: fit the scene (about two grid cells per pixel footprint)
    hidden_width: int = 64
    geometry_features: int = 15
    direction_sh_degree: int = 4  # view direction as spherical harmonics of bands 0..3, as the paper
    marching_steps: int = 0  # samples along the unit cube's diagonal; 0: one per finest grid cell
    occupancy_resolution: int = 64  # cells per side, at most the finest resolution
    occupancy_update_every: int = 16
    occupancy_warmup_steps: int = 256
    occupancy_opacity_threshold: float = 0.01  # a cell is empty below this opacity per marching step
    occupancy_decay: float = 0.95
    early_stop_transmittance: float = 1e-4
    learning_rate: float = 1e-2
    final_learning_rate: float = 3e-4


@dataclass
class TrainConfig:
    field: str = "ngp"
    steps: int = 2000
    minutes: float = 0.0  # 0: no time budget
    device: str = "auto"
    seed: int = 0
    downscale: int = 1
    background: str = "random"  # training background behind transparent pixels: random, white or black
    batch_rays: int = 4096
    warmup_steps: int = 100
    render_chunk_rays: int = 8192
    log_every: int = 50
    checkpoint_every: int = 500
    compile: str = "auto"  # torch.compile the ngp hash lookup: auto (CUDA only), on, off
    mixed_precision: bool = True  # autocast to bfloat16 on CUDA; ignored on CPU
    nerf: NerfConfig = dataclasses.field(default_factory=NerfConfig)
    ngp: NgpConfig = dataclasses.field(default_factory=NgpConfig)

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"unknown field {self.field!r}; choose one of {', '.join(FIELDS)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; choose one of {', '.join(BACKGROUNDS)}")
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be auto, on or off, got {self.compile!r}")
        for name in ("steps", "downscale", "batch_rays", "render_chunk_rays", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.minutes < 0:
            raise ValueError(f"minutes must be >= 0 (0 means no time budget), got {self.minutes}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of to_dict; unknown keys are an error (a typo must not be ignored silently)."""
        values = dict(values)
        nested = {"nerf": NerfConfig, "ngp": NgpConfig}
        for name, config_class in nested.items():
            if name in values:
                values[name] = _build(config_class, values[name], name)
        return _build(cls, values, "train config")


def _build(config_class: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {where} keys: {', '.join(unknown)}")
    return config_class(**values)
