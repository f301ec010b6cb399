"""Registry entry of ``unisurf``: UNISURF (Oechsle et al. 2021) on a hash grid; the model is
engine/fields/unisurf.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import IMAGES, OCCUPANCY, MethodSpec
from .figures import INTERVAL, MASK, RADIANCE_FIGURES, SMOOTHNESS, SURFACE_HITS
from .neus import NORMAL_MODES


@dataclass
class UnisurfConfig:
    """An occupancy field (hash grid + small MLP, starting as a soft sphere) rendered with alpha = o(x),
    sampled around the surface found along each ray."""

    levels: int = 8  # as neus: gradients at every sample double the cost of each lookup
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 0  # 0: fit the scene (about two grid cells per pixel footprint)
    hidden_width: int = 64
    geometry_features: int = 15
    direction_sh_degree: int = 4
    sphere_radius: float = 0.4  # the occupancy starts as a soft sphere of this radius in the unit cube
    sphere_sharpness: float = 30.0  # initial logit = -sharpness * (|x - centre| - radius)
    normals: str = "analytic"  # the logit's gradient: "analytic" or "finite" differences (as neus)
    finite_difference_cells: float = 0.5
    root_steps: int = 64  # uniform steps along the ray to the first crossing of o = 0.5
    secant_steps: int = 8
    interval_samples: int = 24  # samples in [t_s - delta, t_s + delta] around the surface t_s
    free_samples: int = 12  # samples between the ray's entry and the interval (all uniform when no root)
    # The interval's half width delta, in unit-cube lengths, shrinks exponentially from the first to the
    # last over the first interval_decay_end of the budget (UNISURF: 1.0 to 0.05 in a sphere of radius 1)
    interval_start: float = 0.5
    interval_end: float = 0.025
    interval_decay_end: float = 0.5
    smoothness_weight: float = 0.005  # ||n(x_s) - n(x_s + eps)|| at the surface points
    smoothness_offset: float = 0.01  # std of eps, unit-cube lengths
    mask_weight: float = 0.1
    learning_rate: float = 1e-2
    final_learning_rate: float = 3e-4

    def __post_init__(self) -> None:
        if self.normals not in NORMAL_MODES:
            raise ValueError(
                f"unisurf setting 'normals' must be one of {', '.join(NORMAL_MODES)}, got {self.normals!r}"
            )
        if not 0.0 < self.interval_end <= self.interval_start:
            raise ValueError(
                f"unisurf needs 0 < interval_end <= interval_start, got {self.interval_end}, {self.interval_start}"
            )


METHOD = MethodSpec(
    name="unisurf",
    label="UNISURF",
    description="occupancy surface rendered with alpha = occupancy, sampled around the surface each ray finds",
    family=IMAGES,
    surface=OCCUPANCY,
    config=UnisurfConfig,
    model=".fields.unisurf:UnisurfModel",
    figures=(*RADIANCE_FIGURES, SMOOTHNESS, SURFACE_HITS, INTERVAL, MASK),
    renders=True,
)
