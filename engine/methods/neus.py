"""Registry entry of ``neus``: NeuS (Wang et al. 2021) on a hash grid; the model is engine/fields/neus.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import IMAGES, SDF, MethodSpec
from .figures import EIKONAL, MASK, RADIANCE_FIGURES, SHARPNESS

NORMAL_MODES = ("analytic", "autograd", "finite")


@dataclass
class NeusConfig:
    """A signed distance field (hash grid + small MLP, starting as a sphere) rendered with NeuS's opacity."""

    levels: int = 8  # half of ngp's 16: the per-sample gradient makes every lookup count double on a CPU
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 0  # 0: fit the scene (about two grid cells per pixel footprint)
    hidden_width: int = 64
    geometry_features: int = 15
    direction_sh_degree: int = 4
    sphere_radius: float = 0.4  # the SDF starts as |x - centre| - r, a sphere in the middle of the unit cube
    initial_variance: float = 0.35  # sharpness s = exp(10 * variance): 33 to start, learned
    anneal_end: float = 0.1  # fraction of the budget over which the ray-normal term anneals to the true cosine
    eikonal_weight: float = 0.1
    mask_weight: float = 0.1  # BCE of the rendered opacity against the images' alpha, when they have alpha
    # How the SDF's gradient (normals, the eikonal loss, the ray-normal cosine) is computed: "analytic" (the
    # chain rule written out: three more fused lookups for the hash features' Jacobian, a first-order
    # backward), "autograd" (torch.autograd.grad through the interpolation, a double backward) or "finite"
    # (central differences, six more lookups). Analytic measured fastest per training step on CPU.
    normals: str = "analytic"
    finite_difference_cells: float = 0.5  # the central-difference step, in finest grid cells
    marching_steps: int = 0  # samples along the unit cube's diagonal; 0: one per finest grid cell
    occupancy_resolution: int = 64  # cells per side of the empty-space grid, at most the finest resolution
    occupancy_update_every: int = 16
    band_sharpness_widths: float = 4.0  # a cell is near the surface within a cell diagonal + this / s
    learning_rate: float = 1e-2
    final_learning_rate: float = 3e-4
    variance_learning_rate: float = 3e-3  # s must grow tenfold within a few hundred CPU steps

    def __post_init__(self) -> None:
        if self.normals not in NORMAL_MODES:
            raise ValueError(f"neus setting 'normals' must be one of {', '.join(NORMAL_MODES)}, got {self.normals!r}")


METHOD = MethodSpec(
    name="neus",
    label="NeuS",
    description="signed distance surface on a hash grid, rendered with NeuS's unbiased opacity: watertight meshes",
    family=IMAGES,
    surface=SDF,
    config=NeusConfig,
    model=".fields.neus:NeusModel",
    figures=(*RADIANCE_FIGURES, EIKONAL, SHARPNESS, MASK),
    renders=True,
)
