"""Registry entry of ``conditional_texture_field``: Texture Fields (Oechsle et al. 2019) over a collection of
textured shapes, conditioned on a shape encoding and an image encoding; the model is
engine/fields/conditional_texture_field.py."""

from __future__ import annotations

from dataclasses import dataclass

from . import NO_SURFACE, TEXTURED_SHAPES, Figure, MethodSpec
from .figures import PSNR

LOSSES = ("l1", "l2")


@dataclass
class ConditionalTextureFieldConfig:
    """t(p | z_shape, z_image): a PointNet encodes the shape's surface points and normals, a CNN one view of it;
    a ResNet-block MLP maps a surface point and both codes to its colour, supervised with L1 by the pixels
    another view of the shape sees there."""

    shape_code_size: int = 256  # z_shape (the paper's single-view model: 512)
    encoder_width: int = 128  # the PointNet's
    encoder_points: int = 1024  # surface points (with normals) the shape encoder sees (the paper: 2048)
    image_code_size: int = 256  # z_image (the paper: 512 from an ImageNet-pretrained ResNet-18; no weights here)
    image_channels: int = 32  # the CNN's first layer; doubled at each of its 4 stride-2 stages
    image_size: int = 0  # the conditioning image's side in pixels (0: the collection's)
    hidden_width: int = 128  # the texture field's (the paper: 128)
    blocks: int = 7  # ResNet blocks, each adding both codes (the paper's code: 7, each_layer_c_larger)
    encoding_frequencies: int = 0  # Fourier features of p (0: the paper's plain p)
    loss: str = "l1"  # l1 (the paper's) or l2 (measured to leave the mean-colour plateau sooner)
    points_per_shape: int = 1024  # target pixels per shape per step
    shapes_per_batch: int = 16  # the paper: 18
    surface_samples: int = 8192  # surface points made per shape; the encoder's inputs are drawn from them
    colour_augmentation: bool = True  # reorder and invert the colour channels per shape at random (recolour)
    holdout_shapes: int = 0  # the last N shapes by name are not trained on; evaluation uses them
    raycast_resolution: int = 0  # cells of the ray-casting grid along a mesh's longest side; 0: from its faces
    learning_rate: float = 1e-3  # the paper: 1e-4 (and days on a GPU)
    final_learning_rate: float = 5e-5

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(
                f"conditional_texture_field setting 'loss' must be one of {', '.join(LOSSES)}, got {self.loss!r}"
            )


METHOD = MethodSpec(
    name="conditional_texture_field",
    label="Texture field (conditional)",
    description="texture of a new shape from one image: a colour field conditioned on shape and image codes",
    family=TEXTURED_SHAPES,
    surface=NO_SURFACE,
    config=ConditionalTextureFieldConfig,
    model=".fields.conditional_texture_field:ConditionalTextureFieldModel",
    figures=(Figure("l1", "L1", ".4f"), PSNR),
)
