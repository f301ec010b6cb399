"""Registry entry of ``graf``: GRAF (Schwarz et al. 2020), GIRAFFE's baseline; the model is engine/fields/graf.py.

The defaults are the tiny configuration that trains on a CPU in minutes; ``--set preset=gpu`` takes sizes near
the paper's (autonomousvision/graf configs/default.yaml) for every setting left at its default.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import COLLECTIONS, NO_SURFACE, MethodSpec
from .giraffe import GAN_FIGURES, with_preset


@dataclass
class GrafConfig:
    """GRAF: one radiance field conditioned on shape and appearance codes, covering the whole scene,
    rendered as patches of rays at a random scale and place (dilated sampling), judged by a patch
    discriminator; non-saturating loss with R1, RMSprop, an EMA generator for sampling."""

    preset: str = "tiny"  # tiny (CPU) or gpu for every setting left at its default
    shape_code_size: int = 16
    appearance_code_size: int = 16
    hidden_width: int = 64
    hidden_layers: int = 4
    skip_layer: int = 2
    position_frequencies: int = 6
    direction_frequencies: int = 4
    ray_samples: int = 24
    patch_size: int = 16  # rays per patch side (the paper's 32 at 128^2 and more)
    patch_scale_min: float = 0.5  # a patch spans this fraction of the image side at least, 1 at most
    discriminator_features: int = 64
    batch_size: int = 8
    learning_rate: float = 5e-4
    discriminator_learning_rate: float = 1e-4
    r1_weight: float = 10.0
    ema_beta: float = 0.999
    sample_every: int = 100
    sample_grid: int = 16

    def resolved(self) -> GrafConfig:
        """This config with its preset's values for every setting left at its default."""
        return with_preset(self, GRAF_PRESETS)


GRAF_PRESETS: dict[str, dict[str, object]] = {
    "tiny": {},
    "gpu": {
        "shape_code_size": 128,
        "appearance_code_size": 128,
        "hidden_width": 256,
        "hidden_layers": 8,
        "skip_layer": 4,
        "position_frequencies": 10,
        "ray_samples": 64,
        "patch_size": 32,
        "patch_scale_min": 0.25,
        "discriminator_features": 512,
        "batch_size": 8,
        "sample_every": 1000,
    },
}


METHOD = MethodSpec(
    name="graf",
    label="GRAF",
    description="generative radiance field of one object (GIRAFFE's baseline; image collections)",
    family=COLLECTIONS,
    surface=NO_SURFACE,
    config=GrafConfig,
    model=".fields.graf:GrafModel",
    figures=GAN_FIGURES,
)
