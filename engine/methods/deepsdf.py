"""Registry entry of ``deepsdf``: DeepSDF (Park et al. 2019); the model is engine/fields/deepsdf.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import SDF, SHAPES, Figure, MethodSpec


@dataclass
class DeepSdfConfig:
    """DeepSDF's auto-decoder over a shape collection (one code per shape), in each shape's space [-1, 1]^3."""

    shape: str = ""  # fit only this shape of the dataset ("": all of them)
    latent_size: int = 64  # the paper: 256
    hidden_width: int = 128  # the paper: 512 (8 layers); smaller fits a CPU's minutes
    hidden_layers: int = 6
    skip_layer: int = 3  # the code and point re-enter here (the paper: the fourth layer)
    dropout: float = 0.0  # the paper: 0.2, for long trainings
    clamp: float = 0.1  # delta of the clamped L1, normalised units
    code_regularization: float = 1e-4  # weight of the mean squared code norm (a zero-mean Gaussian prior)
    code_init_std: float = 0.01
    points_batch: int = 2048  # SDF samples per shape per step
    near_surface_fraction: float = 0.8  # DeepSDF samples mostly near the surface
    shapes_per_batch: int = 8
    surface_samples: int = 10_000
    labelled_samples: int = 50_000
    holdout_shapes: int = 0  # the last N shapes by name are not trained on; evaluation fits their codes
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-4
    code_learning_rate: float = 3e-3
    final_code_learning_rate: float = 3e-4
    inference_steps: int = 300  # fitting a code to a new shape (the paper: 800)
    inference_batch: int = 2048  # SDF samples per step of that fitting
    inference_learning_rate: float = 5e-3
    inference_regularization: float = 1e-4
    completion_offset: float = 0.02  # samples along a partial shape's normals, normalised units
    eval_resolution: int = 64
    eval_shapes: int = 4
    needs_labels: ClassVar[bool] = True
    signed_distances: ClassVar[bool] = True


METHOD = MethodSpec(
    name="deepsdf",
    label="DeepSDF",
    description="auto-decoder of signed distances over a shape collection: new shapes, blends, completion",
    family=SHAPES,
    surface=SDF,
    config=DeepSdfConfig,
    model=".fields.deepsdf:DeepSdfModel",
    figures=(Figure("clamped_l1", "clamped L1", ".4f"), Figure("code_norm", "|z|", ".3f")),
)
