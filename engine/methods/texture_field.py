"""Registry entry of ``texture_field``: a colour field on the surface of a given mesh (Texture Fields,
Oechsle et al. 2019, fitted to one scene's posed views); the model is engine/fields/texture_field.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import IMAGES, NO_SURFACE, Figure, MethodSpec
from .dvr import HIT_SHARE
from .figures import PSNR, RAYS_PER_SECOND

RESIDUAL = Figure("residual", "view-dep.", ".4f")


@dataclass
class TextureFieldConfig:
    """Colour t(p) on a fixed mesh: every training ray is cast against the mesh and the colour at its hit is
    supervised by the pixel. The view-independent t(p) is the texture that is baked; an optional small
    view-dependent residual takes highlights and is not baked."""

    mesh: str = ""  # a .ply/.obj in world units, or a run folder (its newest mesh file)
    levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 0  # 0: fit the scene
    hidden_width: int = 64
    view_dependent: bool = True
    direction_sh_degree: int = 3  # bands 0..2 of the view direction for the residual
    residual_weight: float = 1.0  # L2 on the residual as costly as the error it removes: only what t(p) cannot explain
    raycast_resolution: int = 0  # cells of the ray-casting grid along the mesh's longest side; 0: from its faces
    learning_rate: float = 1e-2
    final_learning_rate: float = 3e-4


METHOD = MethodSpec(
    name="texture_field",
    label="Texture field",
    description="a colour field on a given mesh's surface, trained from the posed views; bakes UV textures",
    family=IMAGES,
    surface=NO_SURFACE,
    config=TextureFieldConfig,
    model=".fields.texture_field:TextureFieldModel",
    figures=(PSNR, HIT_SHARE, RESIDUAL, RAYS_PER_SECOND),
    renders=True,
)
