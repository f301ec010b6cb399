"""Registry entry of ``giraffe``: GIRAFFE (Niemeyer and Geiger 2021); the model is engine/fields/giraffe.py.

The defaults are the tiny configuration that trains on a CPU in minutes; ``--set preset=gpu`` takes the
paper's sizes (autonomousvision/giraffe configs/default.yaml) for every setting left at its default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import COLLECTIONS, NO_SURFACE, Figure, MethodSpec

GAN_FIGURES = (
    Figure("loss_generator", "G", ".3f"),
    Figure("loss_discriminator", "D", ".3f"),
    Figure("r1", "R1", ".3g"),
    Figure("images_per_second", "img/s", ".1f"),
)


@dataclass
class GiraffeConfig:
    """GIRAFFE: per-object feature fields on positional encodings of object-space points and directions,
    conditioned on shape and appearance codes, posed by the collection's prior, composited with a background
    field, volume rendered to a small feature image and upsampled by a neural renderer; adversarial
    training (non-saturating loss, R1 on real images, RMSprop, an EMA generator for sampling)."""

    preset: str = "tiny"  # tiny (CPU) or gpu (the paper's sizes) for every setting left at its default
    shape_code_size: int = 16  # z_s per object
    appearance_code_size: int = 16  # z_a per object
    background_code_size: int = 8  # z_s and z_a of the background each
    hidden_width: int = 64
    hidden_layers: int = 4
    skip_layer: int = 2  # the encoded point and shape code are added again after this layer (0: none)
    position_frequencies: int = 6  # object-space points lie in [-1, 1]^3
    direction_frequencies: int = 4
    background_hidden_width: int = 32
    background_layers: int = 2
    background_position_frequencies: int = 4  # low: the background cannot draw sharp objects (the paper
    # gets the same by dividing its points by 12)
    feature_size: int = 32  # channels of the volume-rendered feature image
    feature_resolution: int = 16
    ray_samples: int = 8  # stratified over the whole depth range (the background's samples)
    object_samples: int = 8  # more inside each object's box, where a ray crosses it
    renderer_features: int = 64
    renderer_min_features: int = 16
    discriminator_features: int = 64
    batch_size: int = 16
    max_objects: int = 0  # feature fields per image; 0: the collection's largest object count
    # RMSprop. The paper's 5e-4 and 1e-4 (the gpu preset) leave a CPU run's discriminator at chance for its
    # first thousand steps; four times those reached a Fréchet distance of 1.56 in 822 steps where the
    # paper's had 2.57 after 752 (scripts/eval_generative.py, README).
    learning_rate: float = 2e-3  # generator
    discriminator_learning_rate: float = 4e-4
    r1_weight: float = 10.0
    ema_beta: float = 0.999
    sample_every: int = 100  # steps between sample grids written to RUN/samples/ (0: never)
    sample_grid: int = 16  # images in a sample grid

    def resolved(self) -> GiraffeConfig:
        """This config with its preset's values for every setting left at its default."""
        return with_preset(self, GIRAFFE_PRESETS)


GIRAFFE_PRESETS: dict[str, dict[str, object]] = {
    "tiny": {},
    "gpu": {
        "shape_code_size": 256,
        "appearance_code_size": 256,
        "background_code_size": 128,
        "hidden_width": 128,
        "hidden_layers": 8,
        "skip_layer": 4,
        "position_frequencies": 10,
        "background_hidden_width": 64,
        "background_layers": 4,
        "feature_size": 128,
        "ray_samples": 32,
        "object_samples": 32,
        "renderer_features": 128,
        "renderer_min_features": 32,
        "discriminator_features": 512,
        "batch_size": 32,
        "sample_every": 1000,
        "learning_rate": 5e-4,
        "discriminator_learning_rate": 1e-4,
    },
}


def with_preset(config: Any, presets: dict[str, dict[str, object]]) -> Any:
    """A copy of ``config`` where every setting still at its dataclass default takes the value of
    ``presets[config.preset]``; settings given explicitly (--set) win. An unknown preset is an error naming it."""
    if config.preset not in presets:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {', '.join(presets)}")
    changes = {}
    for item in dataclasses.fields(config):
        if item.name in presets[config.preset] and getattr(config, item.name) == item.default:
            changes[item.name] = presets[config.preset][item.name]
    return dataclasses.replace(config, **changes)


METHOD = MethodSpec(
    name="giraffe",
    label="GIRAFFE",
    description="compositional generative feature fields: objects you can move, rotate and swap (image collections)",
    family=COLLECTIONS,
    surface=NO_SURFACE,
    config=GiraffeConfig,
    model=".fields.giraffe:GiraffeModel",
    figures=GAN_FIGURES,
    layouts=True,
)
