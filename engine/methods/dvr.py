"""Registry entry of ``dvr``: Differentiable Volumetric Rendering (Niemeyer et al. 2020); the model is
engine/fields/dvr.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import IMAGES, OCCUPANCY, Figure, MethodSpec
from .figures import PSNR, RAYS_PER_SECOND

HIT_SHARE = Figure("hit_share", "hits", ".0%")
MASK_LOSS = Figure("mask_loss", "mask", ".4f")


@dataclass
class DvrConfig:
    """DVR: one network gives occupancy (logits) and colour; rays stop at the first crossing of the surface,
    found by marching and secant steps, and the surface point's gradient comes from implicit differentiation."""

    encoding: str = "hash"  # "hash" (multiresolution hash grid, fast) or "fourier" (positional encoding, smooth)
    levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 0  # 0: fit the scene
    fourier_frequencies: int = 6
    hidden_width: int = 64
    geometry_features: int = 15
    marching_steps: int = 128  # uniform steps along the unit cube's diagonal to the first sign change
    secant_steps: int = 8
    # The occupancy logit starts as a sphere of this radius (unit cube, centred): prior_slope * (radius - |p - c|)
    # is added to the network's output, so the first rays hit something and the RGB loss has a surface to move.
    init_radius: float = 0.3
    prior_slope: float = 10.0
    rgb_weight: float = 1.0
    freespace_weight: float = 1.0  # rays outside the mask: the occupancy where they hit (or anywhere) pushed down
    occupancy_weight: float = 1.0  # rays inside the mask that miss: the occupancy at their likeliest point pushed up
    learning_rate: float = 2e-2
    final_learning_rate: float = 1e-3


METHOD = MethodSpec(
    name="dvr",
    label="DVR",
    description="occupancy and texture in one network, rendered at the surface point with implicit gradients",
    family=IMAGES,
    surface=OCCUPANCY,
    config=DvrConfig,
    model=".fields.dvr:DvrModel",
    figures=(PSNR, MASK_LOSS, HIT_SHARE, RAYS_PER_SECOND),
    renders=True,
)
