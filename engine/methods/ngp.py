"""Registry entry of ``ngp``: instant-NGP (Mueller et al. 2022); the model is engine/fields/ngp.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import DENSITY, IMAGES, MethodSpec
from .figures import RADIANCE_FIGURES


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
    occupancy_warmup_steps: int = 256  # every cell is re-measured during the warm-up (instant-NGP)...
    occupancy_warmup_fraction: float = 0.02  # ...which also ends after this share of the budget (slow CPU steps)
    occupancy_opacity_threshold: float = 0.01  # a cell is empty below this opacity per marching step
    occupancy_decay: float = 0.95
    early_stop_transmittance: float = 1e-4
    learning_rate: float = 1e-2
    final_learning_rate: float = 3e-4


METHOD = MethodSpec(
    name="ngp",
    label="Instant-NGP",
    description="hash-grid radiance field marched through an occupancy grid: fast, the default",
    family=IMAGES,
    surface=DENSITY,
    config=NgpConfig,
    model=".fields.ngp:NgpModel",
    figures=RADIANCE_FIGURES,
    renders=True,
)
