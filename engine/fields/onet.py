"""Occupancy Networks (Mescheder et al. 2019): occupancy probability f(p, c, z) trained with BCE on K points.

Three settings, as the paper's:

- one shape: f(p), no encoder;
- conditional, over a shape collection: c = a ResNet PointNet of the shape's point cloud (300 noisy surface
  points); c is added before each ResNet block of the decoder (``decoder=additive``, the default) or sets
  the scale and shift of every batch norm (``cbatchnorm``, the paper's DecoderCBatchNorm);
- variational: z from an encoder q(z | points, occupancies[, c]) during training, a KL term to the prior
  N(0, I), new shapes decoded from z ~ N(0, I).

The loss per shape is the sum of the K binary cross-entropies (and the KL, summed over z), averaged over the
shapes of the batch, as the paper's code. Points are in the shape's normalised space [-1, 1]^3; the field is
occupancy logits (the surface is their 0 level: probability 0.5).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from ..data.shape_source import ShapeBatch, ShapeSource
from ..methods.onet import DECODERS, OnetConfig, frequencies_for
from .base import ParameterGroup, StepContext, StepResult
from .shape_model import ShapeModel


def occupancy_bce(logits: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    """(b, k) logits and (b, k) 0/1 labels -> the BCE summed over the k points, averaged over the b shapes."""
    return functional.binary_cross_entropy_with_logits(logits, occupancy, reduction="none").sum(-1).mean()


def kl_to_standard_normal(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_std)^2) || N(0, I)) of (b, d) posteriors: summed over d, averaged over b."""
    return (0.5 * (torch.exp(2.0 * log_std) + mean**2 - 1.0) - log_std).sum(-1).mean()


class ResnetBlock(nn.Module):
    """x + fc(relu(fc(relu(x)))), with a linear shortcut when the widths differ (Occupancy Networks' block)."""

    def __init__(self, size_in: int, size_out: int | None = None) -> None:
        super().__init__()
        size_out = size_out or size_in
        hidden = min(size_in, size_out)
        self.fc_0 = nn.Linear(size_in, hidden)
        self.fc_1 = nn.Linear(hidden, size_out)
        nn.init.zeros_(self.fc_1.weight)
        self.shortcut = nn.Linear(size_in, size_out, bias=False) if size_in != size_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.fc_1(functional.relu(self.fc_0(functional.relu(x))))
        return (x if self.shortcut is None else self.shortcut(x)) + dx


class PointNetEncoder(nn.Module):
    """(b, n, in_features) point clouds (points, optionally with normals) -> (b, code_size): ResNet blocks with
    max-pooled features concatenated back in (Occupancy Networks' ResnetPointnet)."""

    def __init__(self, width: int, code_size: int, blocks: int = 5, in_features: int = 3) -> None:
        super().__init__()
        self.fc_pos = nn.Linear(in_features, 2 * width)
        self.blocks = nn.ModuleList([ResnetBlock(2 * width, width) for _ in range(blocks)])
        self.fc_code = nn.Linear(width, code_size)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        net = self.blocks[0](self.fc_pos(points))
        for block in self.blocks[1:]:
            pooled = net.max(dim=1, keepdim=True).values.expand_as(net)
            net = block(torch.cat([net, pooled], dim=-1))
        return self.fc_code(functional.relu(net.max(dim=1).values))


class LatentEncoder(nn.Module):
    """q(z | points, occupancies, c): (b, k, 3) points, (b, k) labels, (b, c) or None -> mean, log std (b, z)."""

    def __init__(self, width: int, latent_size: int, code_size: int) -> None:
        super().__init__()
        self.fc_pos = nn.Linear(3, width)
        self.fc_occupancy = nn.Linear(1, width)
        self.fc_code = nn.Linear(code_size, width) if code_size else None
        self.block = ResnetBlock(width)
        self.fc_mean = nn.Linear(width, latent_size)
        self.fc_log_std = nn.Linear(width, latent_size)

    def forward(
        self, points: torch.Tensor, occupancy: torch.Tensor, code: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.fc_pos(points) + self.fc_occupancy(occupancy[..., None] * 2.0 - 1.0)
        if self.fc_code is not None and code is not None:
            net = net + self.fc_code(code)[:, None]
        net = self.block(net).max(dim=1).values
        net = functional.relu(net)
        return self.fc_mean(net), self.fc_log_std(net)


def fourier_features(points: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(..., 3) points -> (..., 3 + 6 frequencies): p, then sin and cos of 2^i pi p for i < frequencies,
    frequency-major (x, y, z of 2^0 pi, then of 2^1 pi...): the order saved runs were trained with, which is
    not engine.encodings.PositionalEncoding's axis-major one."""
    if not frequencies:
        return points
    scales = 2.0 ** torch.arange(frequencies, device=points.device, dtype=points.dtype) * math.pi
    angles = (points[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([points, torch.sin(angles), torch.cos(angles)], dim=-1)


class OccupancyDecoder(nn.Module):
    """(b, k, 3) points, (b, d) conditioning (c then z) or None -> (b, k) occupancy logits. z is added to the
    first layer; c is added before each ResNet block (the ``additive`` decoder)."""

    def __init__(self, width: int, blocks: int, code_size: int, latent_size: int, frequencies: int) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.code_size = code_size
        self.fc_points = nn.Linear(3 + 6 * frequencies, width)
        self.fc_latent = nn.Linear(latent_size, width) if latent_size else None
        self.fc_codes = nn.ModuleList([nn.Linear(code_size, width) for _ in range(blocks)]) if code_size else None
        self.blocks = nn.ModuleList([ResnetBlock(width) for _ in range(blocks)])
        self.fc_out = nn.Linear(width, 1)

    def forward(self, points: torch.Tensor, conditioning: torch.Tensor | None) -> torch.Tensor:
        net = self.fc_points(fourier_features(points, self.frequencies))
        code = latent = None
        if conditioning is not None:
            code, latent = conditioning[:, : self.code_size], conditioning[:, self.code_size :]
        if self.fc_latent is not None and latent is not None:
            net = net + self.fc_latent(latent)[:, None]
        for index, block in enumerate(self.blocks):
            if self.fc_codes is not None and code is not None:
                net = net + self.fc_codes[index](code)[:, None]
            net = block(net)
        return self.fc_out(functional.relu(net)).squeeze(-1)


class ConditionalBatchNorm(nn.Module):
    """(b, k, width) features, (b, c) codes -> batch norm over all b k points (no affine of its own), then
    scaled and shifted by linear maps of each shape's c, which start at scale 1, shift 0 (CBatchNorm1d)."""

    def __init__(self, code_size: int, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.fc_scale = nn.Linear(code_size, width)
        self.fc_shift = nn.Linear(code_size, width)
        nn.init.zeros_(self.fc_scale.weight)
        nn.init.ones_(self.fc_scale.bias)
        nn.init.zeros_(self.fc_shift.weight)
        nn.init.zeros_(self.fc_shift.bias)

    def forward(self, features: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        normalised = self.norm(features.reshape(-1, features.shape[-1])).reshape(features.shape)
        # one pass for scale and shift: the batch norms are most of the cbatchnorm decoder's extra time
        return torch.addcmul(self.fc_shift(code)[:, None], normalised, self.fc_scale(code)[:, None])


class ConditionalResnetBlock(nn.Module):
    """x + fc(relu(cbn(fc(relu(cbn(x, c)))), c)) (CResnetBlockConv1d, with linear layers on (b, k, width))."""

    def __init__(self, code_size: int, width: int) -> None:
        super().__init__()
        self.norm_0 = ConditionalBatchNorm(code_size, width)
        self.norm_1 = ConditionalBatchNorm(code_size, width)
        self.fc_0 = nn.Linear(width, width)
        self.fc_1 = nn.Linear(width, width)
        nn.init.zeros_(self.fc_1.weight)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        net = self.fc_0(functional.relu(self.norm_0(x, code)))
        return x + self.fc_1(functional.relu(self.norm_1(net, code)))


class ConditionalBatchNormDecoder(nn.Module):
    """Occupancy Networks' DecoderCBatchNorm: (b, k, 3) points, (b, d) conditioning (c then z) -> (b, k)
    logits; z is added to the first layer, c sets every batch norm's scale and shift. Batch statistics while
    training, running ones in eval mode (queries of one shape)."""

    def __init__(self, width: int, blocks: int, code_size: int, latent_size: int, frequencies: int) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.code_size = code_size
        self.fc_points = nn.Linear(3 + 6 * frequencies, width)
        self.fc_latent = nn.Linear(latent_size, width) if latent_size else None
        self.blocks = nn.ModuleList([ConditionalResnetBlock(code_size, width) for _ in range(blocks)])
        self.norm = ConditionalBatchNorm(code_size, width)
        self.fc_out = nn.Linear(width, 1)

    def forward(self, points: torch.Tensor, conditioning: torch.Tensor | None) -> torch.Tensor:
        if conditioning is None:
            raise ValueError("the cbatchnorm decoder needs a code c for every shape")
        code, latent = conditioning[:, : self.code_size], conditioning[:, self.code_size :]
        net = self.fc_points(fourier_features(points, self.frequencies))
        if self.fc_latent is not None:
            net = net + self.fc_latent(latent)[:, None]
        for block in self.blocks:
            net = block(net, code)
        return self.fc_out(functional.relu(self.norm(net, code))).squeeze(-1)


class OnetModel(ShapeModel):
    """Occupancy Network over one shape or a shape collection (see the module docstring)."""

    sdf_output = False

    def __init__(self, config: OnetConfig, context: Any) -> None:
        super().__init__(context)
        self.config = config
        shape_count = int(context.data.get("shape_count", 1))
        encoder = config.encoder
        if encoder == "auto":
            encoder = "pointnet" if shape_count > 1 and not config.variational else "none"
        if encoder not in ("none", "pointnet"):
            raise ValueError(f"onet setting 'encoder' must be auto, none or pointnet, got {config.encoder!r}")
        if shape_count > 1 and encoder == "none" and not config.variational:
            raise ValueError(
                f"onet over {shape_count} shapes needs something to tell them apart: --set encoder=pointnet "
                "(conditional) or --set variational=true"
            )
        self.conditional = encoder == "pointnet"
        code_size = config.code_size if self.conditional else 0
        latent_size = config.latent_size if config.variational else 0
        self.code_size, self.latent_size = code_size, latent_size
        self.encoder = PointNetEncoder(config.encoder_width, code_size) if self.conditional else None
        self.latent_encoder = LatentEncoder(config.encoder_width, latent_size, code_size) if latent_size else None
        if config.decoder not in DECODERS:
            raise ValueError(f"onet setting 'decoder' must be one of {', '.join(DECODERS)}, got {config.decoder!r}")
        self.frequencies = frequencies_for(config.encoding_frequencies, shape_count)
        decoder = ConditionalBatchNormDecoder if code_size and config.decoder == "cbatchnorm" else OccupancyDecoder
        self.decoder = decoder(config.hidden_width, config.blocks, code_size, latent_size, self.frequencies)

    def field(self, points: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        conditioning = None if code is None else code.reshape(1, -1)
        return self.decoder(points[None], conditioning)[0]

    def training_step(self, batch: ShapeBatch, step: StepContext) -> StepResult:
        if batch.points is None or batch.occupancy is None:
            raise ValueError("onet needs inside/outside labels: its shapes must be meshes")
        parts: list[torch.Tensor] = []
        code = None
        if self.encoder is not None:
            if batch.inputs is None:
                raise ValueError("conditional onet needs input point clouds (encoder_points > 0)")
            code = self.encoder(batch.inputs)
            parts.append(code)
        kl = None
        if self.latent_encoder is not None:
            mean, log_std = self.latent_encoder(batch.points, batch.occupancy, code)
            noise = torch.randn(mean.shape, generator=step.generator, device=mean.device)
            parts.append(mean + torch.exp(log_std) * noise)
            kl = kl_to_standard_normal(mean, log_std)
        conditioning = torch.cat(parts, dim=-1) if parts else None
        logits = self.decoder(batch.points, conditioning)
        bce = occupancy_bce(logits, batch.occupancy)
        loss = bce if kl is None else bce + self.config.kl_weight * kl
        with torch.no_grad():
            predicted, truth = logits > 0, batch.occupancy > 0.5
            iou = ((predicted & truth).sum() / (predicted | truth).sum().clamp(min=1)).item()
        figures = {"bce": float(bce.detach()) / batch.points.shape[1], "batch_iou": iou}
        if kl is not None:
            figures["kl"] = float(kl.detach())
        return StepResult(loss=loss, figures=figures, samples=batch.points.shape[0] * batch.points.shape[1])

    # -- codes ---------------------------------------------------------------------------------

    def code_of_shape(self, index: int, source: ShapeSource | None) -> torch.Tensor | None:
        """c from the shape's point cloud (a fixed draw of encoder_points), z the posterior mean (unconditional
        variational) or the prior mean 0 (conditional variational, as the paper at test time)."""
        if self.encoder is None and self.latent_encoder is None:
            return None
        assert source is not None
        generator = torch.Generator(device=source.device)
        generator.manual_seed(index)
        parts = []
        code = None
        if self.encoder is not None:
            code = self.encoder(source.encoder_input(index, generator, self.config.encoder_points)[None])
            parts.append(code)
        if self.latent_encoder is not None:
            if self.encoder is None:
                batch = source.batch_of([index], generator)
                assert batch.points is not None and batch.occupancy is not None
                mean, _ = self.latent_encoder(batch.points, batch.occupancy, None)
                parts.append(mean)
            else:
                parts.append(torch.zeros(1, self.latent_size, device=source.device))
        return torch.cat(parts, dim=-1)[0]

    def random_code(self, generator: torch.Generator) -> torch.Tensor:
        if self.latent_encoder is None:
            raise ValueError("onet samples new shapes only when variational: train with --set variational=true")
        device = generator.device
        latent = torch.randn(self.latent_size, generator=generator, device=device)
        if self.encoder is None:
            return latent
        raise ValueError(
            "a conditional variational onet samples variations of a given shape: use --shape NAME, or train "
            "an unconditional one (--set encoder=none --set variational=true) to sample new shapes"
        )

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]
