"""Registry entry of ``onet``: Occupancy Networks (Mescheder et al. 2019); the model is engine/fields/onet.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import OCCUPANCY, SHAPES, Figure, MethodSpec

DECODERS = ("cbatchnorm", "additive")
SINGLE_SHAPE_FREQUENCIES = 4
COLLECTION_FREQUENCIES = 0


def frequencies_for(setting: int, shape_count: int) -> int:
    """The Fourier frequencies of p a run uses: the setting, or for -1 (auto) the choice for its shape count."""
    if setting == -1:
        return SINGLE_SHAPE_FREQUENCIES if shape_count <= 1 else COLLECTION_FREQUENCIES
    if setting < 0:
        raise ValueError(f"onet setting 'encoding_frequencies' must be -1 (auto) or >= 0, got {setting}")
    return setting


@dataclass
class OnetConfig:
    """Occupancy Networks on one shape (no encoder) or a collection (conditional on 300 points, or variational)."""

    shape: str = ""  # fit only this shape of the dataset ("": all of them)
    encoder: str = "auto"  # none, pointnet; auto: pointnet over a collection (unless variational), none for one shape
    variational: bool = False  # an encoder q(z | points, labels), a KL term, new shapes from z ~ N(0, I)
    latent_size: int = 32  # z
    code_size: int = 128  # c, the point-cloud encoder's output (the paper: 512)
    encoder_width: int = 128
    encoder_points: int = 300  # the input point cloud's size (the paper's point-cloud completion)
    encoder_noise: float = 0.005  # Gaussian noise on the input points, normalised units
    hidden_width: int = 128  # the decoder's (the paper: 256)
    blocks: int = 5
    # How c enters the decoder: additive (c added before each block), or cbatchnorm, the paper's (c sets
    # every batch norm's scale and shift), which lowers the loss more per step but costs 40% more a step and
    # measured a lower held-out IoU over 60 vases in 471 steps (scripts/bench_shapes.py --only conditional:
    # 0.862 against 0.885). Without c (one shape, unconditional variational): plain blocks.
    decoder: str = "additive"
    # Fourier features of p: 0 is the paper's plain p; -1 (auto) is SINGLE_SHAPE_FREQUENCIES for one shape,
    # where they fit detail much faster (scripts/bench_shapes.py --only onet: IoU 0.998 against 0.941 in
    # 120 s), COLLECTION_FREQUENCIES over a collection
    encoding_frequencies: int = -1
    points_batch: int = 2048  # K, labelled points per shape per step
    # of the K; the paper samples uniformly only, which needs more steps. 0.75 against 0.5: held-out IoU
    # 0.890 against 0.885, F@1% 0.36 against 0.32 over 60 vases in 471 steps (scripts/bench_shapes.py)
    near_surface_fraction: float = 0.75
    shapes_per_batch: int = 16  # the paper: 64
    kl_weight: float = 1.0
    surface_samples: int = 10_000  # surface points made per shape (the encoder's inputs come from them)
    labelled_samples: int = 50_000  # labelled points made per shape, half uniform, half near the surface
    holdout_shapes: int = 0  # the last N shapes by name are not trained on; evaluation uses them
    learning_rate: float = 5e-4
    final_learning_rate: float = 5e-5
    eval_resolution: int = 64
    eval_shapes: int = 4
    needs_labels: ClassVar[bool] = True


METHOD = MethodSpec(
    name="onet",
    label="Occupancy Network",
    description="occupancy from inside/outside labels: one shape, or a collection conditioned on point clouds",
    family=SHAPES,
    surface=OCCUPANCY,
    config=OnetConfig,
    model=".fields.onet:OnetModel",
    figures=(
        Figure("bce", "BCE/point", ".4f"),
        Figure("kl", "KL", ".3f"),
        Figure("batch_iou", "IoU", ".3f"),
    ),
)
