"""Registry entry of ``nerf``: NeRF (Mildenhall et al. 2020); the model is engine/fields/nerf.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import DENSITY, IMAGES, MethodSpec
from .figures import RADIANCE_FIGURES


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


METHOD = MethodSpec(
    name="nerf",
    label="NeRF",
    description="the original NeRF: positional encoding, coarse and fine MLPs with hierarchical sampling (slow)",
    family=IMAGES,
    surface=DENSITY,
    config=NerfConfig,
    model=".fields.nerf:NerfModel",
    figures=RADIANCE_FIGURES,
    renders=True,
)
