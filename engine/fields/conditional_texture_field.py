"""Texture Fields (Oechsle et al. 2019), the conditional form: the texture of a new shape from one image of it.

t(p | z_shape, z_image) -> colour. z_shape is a PointNet (Occupancy Networks' ResnetPointnet,
engine/fields/onet.py) of the shape's surface points and normals; z_image a small CNN of one view of the
object (premultiplied RGB and alpha). The texture field is the paper's decoder: p through a linear layer, then
ResNet blocks, each adding a projection of both codes, then a sigmoid colour. Training (the paper's
supervised setting): per shape of a batch, one random view conditions and the pixels of another view
supervise, at the surface points their rays meet (engine/data/textured_source.py casts them), with L1.

Colours are the images' own (sRGB for the Blender collections): t(p) is baked into a texture as it is. Points
are in each shape's normalised space (engine/data/textured_source.py's ShapeFrame); a new mesh is normalised
the same way, so it is the mesh's shape and the image that decide its texture, not where it stands.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..data.textured_source import ShapeFrame, ShapeViews, TexturedBatch, TexturedSource, condition_tensor
from ..methods.conditional_texture_field import ConditionalTextureFieldConfig
from ..train.metrics import masked_ssim
from .base import Method, MethodContext, ParameterGroup, StepContext, StepResult, psnr_of_mse
from .onet import PointNetEncoder, ResnetBlock

if TYPE_CHECKING:
    from ..train.trainer import Trainer

# The view of a held-out shape that conditions its evaluation; every other view is predicted.
EVALUATION_CONDITION_VIEW = 0


class ImageEncoder(nn.Module):
    """(b, 4, s, s) premultiplied RGB + alpha -> (b, code_size): four stride-2 stages of two 3x3 convolutions
    (batch-normalised, as the paper's ResNet-18 is: measured on 88 training shapes, 300 steps, held-out PSNR
    14.8 dB against 13.9 without), channels doubling from ``channels``, global average pooling, a linear layer
    (a small stand-in for the paper's ImageNet-pretrained ResNet-18: no downloaded weights here, and a CPU
    cannot train one from scratch in minutes)."""

    def __init__(self, channels: int, code_size: int, normalize: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = 4
        for stage in range(4):
            width = channels * 2**stage
            layers += [
                nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=not normalize),
                *([nn.BatchNorm2d(width)] if normalize else []),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1, bias=not normalize),
                *([nn.BatchNorm2d(width)] if normalize else []),
                nn.ReLU(),
            ]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.fc_code = nn.Linear(width_in, code_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc_code(self.features(images).mean(dim=(2, 3)))


class TextureDecoder(nn.Module):
    """(b, k, 3) points, (b, shape_code), (b, image_code) -> (b, k, 3) colour in 0..1 (the paper's decoder:
    both codes added before every ResNet block; its code projects the concatenated codes with one linear layer
    per block, which is the sum of these two)."""

    def __init__(self, width: int, blocks: int, shape_code_size: int, image_code_size: int, frequencies: int) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.fc_points = nn.Linear(3 + 6 * frequencies, width)
        self.fc_shape = nn.ModuleList([nn.Linear(shape_code_size, width) for _ in range(blocks)])
        self.fc_image = nn.ModuleList([nn.Linear(image_code_size, width) for _ in range(blocks)])
        self.blocks = nn.ModuleList([ResnetBlock(width) for _ in range(blocks)])
        self.fc_out = nn.Linear(width, 3)

    def forward(self, points: torch.Tensor, shape_code: torch.Tensor, image_code: torch.Tensor) -> torch.Tensor:
        features = [points]
        if self.frequencies:
            scales = 2.0 ** torch.arange(self.frequencies, device=points.device, dtype=points.dtype) * math.pi
            angles = (points[..., None, :] * scales[:, None]).flatten(-2)
            features += [torch.sin(angles), torch.cos(angles)]
        net = self.fc_points(torch.cat(features, dim=-1))
        for fc_shape, fc_image, block in zip(self.fc_shape, self.fc_image, self.blocks, strict=True):
            net = block(net + fc_shape(shape_code)[:, None] + fc_image(image_code)[:, None])
        return torch.sigmoid(self.fc_out(functional.relu(net)))


class ConditionalTextureFieldModel(Method):
    """The two encoders and the texture field; trained on TexturedBatch, answering textures of new shapes."""

    def __init__(self, config: ConditionalTextureFieldConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.image_size = int(config.image_size or context.data.get("image_size", 64))
        self.holdout: list[str] = list(context.data.get("holdout", []))
        self.shape_names: list[str] = list(context.data.get("shapes", []))
        self.shape_encoder = PointNetEncoder(config.encoder_width, config.shape_code_size, in_features=6)
        self.image_encoder = ImageEncoder(config.image_channels, config.image_code_size)
        self.decoder = TextureDecoder(
            config.hidden_width,
            config.blocks,
            config.shape_code_size,
            config.image_code_size,
            config.encoding_frequencies,
        )

    def codes(self, encoder_points: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, n, 6) surface points and normals, (b, 4, s, s) conditioning images -> z_shape, z_image."""
        return self.shape_encoder(encoder_points), self.image_encoder(condition)

    def training_step(self, batch: TexturedBatch, step: StepContext) -> StepResult:
        shape_code, image_code = self.codes(batch.encoder_points, batch.condition)
        predicted = self.decoder(batch.points, shape_code, image_code)
        error = predicted.float() - batch.colours
        l1 = error.abs().mean()
        squared = (error**2).mean()
        loss = l1 if self.config.loss == "l1" else squared
        points = batch.points.shape[0] * batch.points.shape[1]
        figures = {"l1": float(l1.detach()), "psnr": psnr_of_mse(float(squared.detach()))}
        return StepResult(loss=loss, figures=figures, samples=points)

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]

    # -- what a trained run answers ----------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self, encoder_points: torch.Tensor, condition: torch.Tensor, points: torch.Tensor, chunk: int = 1 << 15
    ) -> torch.Tensor:
        """One shape: (n, 6) encoder points, (4, s, s) conditioning image, (m, 3) normalised surface points ->
        (m, 3) colours in 0..1."""
        self.eval()
        shape_code, image_code = self.codes(encoder_points[None], condition[None])
        parts = [
            self.decoder(points[None, start : start + chunk], shape_code, image_code)[0].float()
            for start in range(0, points.shape[0], chunk)
        ]
        return torch.cat(parts) if parts else points.new_zeros(0, 3)

    def evaluate(self, trainer: Trainer) -> dict[str, Any]:
        """Masked PSNR/SSIM of the held-out shapes' views, each predicted from the shape's view 0."""
        source = trainer.source
        if not isinstance(source, TexturedSource):
            raise ValueError("a conditional texture field evaluates on a textured collection")
        names = source.names()
        indices = [names.index(name) for name in self.holdout if name in names]
        if not indices:
            return {"holdout_shapes": 0}
        device = next(self.parameters()).device
        views = []
        for index in indices:
            shape = source.shapes[index]
            predictions = predict_shape_views(self, shape, EVALUATION_CONDITION_VIEW, device)
            for view, colours in predictions.items():
                views.append({"shape": shape.name, "view": view, **view_quality(shape, view, colours)})
        return {
            "holdout_shapes": len(indices),
            "condition_view": EVALUATION_CONDITION_VIEW,
            "psnr": float(np.mean([view["psnr"] for view in views])),
            "ssim": float(np.mean([view["ssim"] for view in views])),
            "views": views,
        }


def shape_encoder_input(shape: ShapeViews, count: int, device: torch.device) -> torch.Tensor:
    """The first ``count`` of a shape's encoder points (they are a random sample already): one fixed input."""
    return torch.from_numpy(shape.encoder_points[:count]).to(device)


def predict_shape_views(
    model: ConditionalTextureFieldModel, shape: ShapeViews, condition_view: int, device: torch.device
) -> dict[int, np.ndarray]:
    """{view: (m, 3) predicted colours of the view's supervised pixels} for every view but the conditioning one."""
    encoder = shape_encoder_input(shape, model.config.encoder_points, device)
    condition = condition_tensor(torch.from_numpy(shape.images[condition_view]), model.image_size).to(device)
    out = {}
    for view in range(len(shape.view_start) - 1):
        if view == condition_view:
            continue
        start, stop = int(shape.view_start[view]), int(shape.view_start[view + 1])
        points = torch.from_numpy(shape.points[start:stop]).to(device)
        out[view] = model.predict(encoder, condition, points).cpu().numpy()
    return out


def view_quality(shape: ShapeViews, view: int, colours: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of a view whose supervised pixels (the object's) take ``colours``, masked to those pixels:
    the background, which any method gets right, does not count."""
    start, stop = int(shape.view_start[view]), int(shape.view_start[view + 1])
    expected = shape.colours[start:stop]
    mse = float(np.mean((np.clip(colours, 0.0, 1.0) - expected) ** 2))
    image = shape.images[view].astype(np.float32) / 255.0
    height, width = image.shape[:2]
    truth = image[..., :3] * image[..., 3:] + (1.0 - image[..., 3:])  # over white
    predicted = truth.reshape(-1, 3).copy()
    predicted[shape.pixels[start:stop]] = np.clip(colours, 0.0, 1.0)
    mask = np.zeros(height * width, dtype=bool)
    mask[shape.pixels[start:stop]] = True
    truth_image = torch.from_numpy(truth.reshape(-1, 3).copy())
    truth_image[torch.from_numpy(mask)] = torch.from_numpy(expected)
    quality = masked_ssim(
        torch.from_numpy(predicted.reshape(height, width, 3)),
        truth_image.reshape(height, width, 3),
        torch.from_numpy(mask.reshape(height, width)),
    )
    return {"psnr": psnr_of_mse(mse), "ssim": quality, "pixels": int(stop - start)}


def texture_colour_function(
    model: ConditionalTextureFieldModel, frame: ShapeFrame, encoder_points: torch.Tensor, condition: torch.Tensor
) -> Any:
    """The bake's colour callback (engine/mesh/bake.py) of a new shape: world points (n, 3), normals (ignored)
    -> (n, 3) colours in the collection's colour space (sRGB), 0..1."""
    device = encoder_points.device

    def colour(points_world: np.ndarray, _normals: np.ndarray) -> np.ndarray:
        points = torch.as_tensor(frame.to_local(points_world), dtype=torch.float32, device=device)
        return model.predict(encoder_points, condition, points).cpu().numpy().astype(np.float32)

    return colour
