"""IGR: Implicit Geometric Regularization (Gropp et al. 2020), a signed distance fitted to a point cloud.

An MLP f (softplus, one skip connection, geometric initialisation so that f starts as the signed distance of
a sphere; Atzmon & Lipman 2020) is trained with

    loss = mean_surface |f(x)| + tau * mean_surface ||grad f(x) - n(x)|| + lambda * mean_samples (||grad f|| - 1)^2

the last (Eikonal) term on samples from Gaussians around each surface point, their standard deviation the
distance to its k-th nearest neighbour (50th: engine/data/shape_source.py), plus 1/8 as many uniform in the
cube. The normal term only where the input has normals. All in the shape's normalised space [-1, 1]^3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data.shape_source import ShapeBatch
from ..methods.igr import IgrConfig
from .base import ParameterGroup, StepContext, StepResult
from .shape_model import ShapeModel


class GeometricMlp(nn.Module):
    """x (n, in) -> (n,) an MLP with softplus(beta) activations, the input concatenated again at ``skip``
    (divided by sqrt 2), geometrically initialised to the SDF of a sphere of ``radius`` (negative inside).

    ``code_size`` inputs after the first three (a shape's code) and Fourier ``frequencies`` of xyz start with
    zero weights, so the initial function is still the sphere (NeuS's variant of the initialisation)."""

    def __init__(
        self,
        hidden_width: int,
        hidden_layers: int,
        skip_layer: int,
        beta: float,
        radius: float,
        frequencies: int = 0,
        code_size: int = 0,
    ) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.code_size = code_size
        self.skip_layer = skip_layer
        input_size = 3 + 6 * frequencies + code_size
        self.input_size = input_size
        widths = [input_size] + [hidden_width] * hidden_layers + [1]
        self.layers = nn.ModuleList()
        for index in range(len(widths) - 1):
            out_width = widths[index + 1]
            if index + 1 == skip_layer:
                out_width -= input_size  # the next layer's input is this output plus the input again
            layer = nn.Linear(widths[index], out_width)
            if index == len(widths) - 2:  # the last: f(x) ~ |x| - radius
                nn.init.normal_(layer.weight, mean=math.sqrt(math.pi) / math.sqrt(widths[index]), std=1e-4)
                nn.init.constant_(layer.bias, -radius)
            else:
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0) / math.sqrt(out_width))
                nn.init.constant_(layer.bias, 0.0)
                if index == 0 and input_size > 3:
                    nn.init.constant_(layer.weight[:, 3:], 0.0)
            self.layers.append(layer)
        for index, layer in enumerate(self.layers):
            if index == skip_layer and input_size > 3:
                # the re-entering encoded and code inputs also start at zero
                nn.init.constant_(layer.weight[:, -(input_size - 3) :], 0.0)
        self.activation = nn.Softplus(beta=beta)

    def encode(self, points: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        parts = [points]
        if self.frequencies:
            scales = 2.0 ** torch.arange(self.frequencies, device=points.device, dtype=points.dtype) * math.pi
            angles = points[..., None, :] * scales[:, None]  # (n, f, 3)
            parts += [torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)]
        if self.code_size:
            assert code is not None
            parts.append(code.expand(points.shape[0], -1))
        return torch.cat(parts, dim=-1)

    def forward(self, points: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        inputs = self.encode(points, code)
        hidden = inputs
        for index, layer in enumerate(self.layers):
            if index == self.skip_layer:
                hidden = torch.cat([hidden, inputs], dim=-1) / math.sqrt(2.0)
            hidden = layer(hidden)
            if index < len(self.layers) - 1:
                hidden = self.activation(hidden)
        return hidden.squeeze(-1)


def gradient(values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """d values / d points, (n, 3), kept in the graph (the losses are of the gradient)."""
    (grad,) = torch.autograd.grad(values, points, torch.ones_like(values), create_graph=True)
    return grad


def igr_loss(
    sdf: Callable[[torch.Tensor], torch.Tensor],
    surface: torch.Tensor,
    normals: torch.Tensor | None,
    samples: torch.Tensor,
    eikonal_weight: float,
    normal_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """IGR's loss of the function ``sdf`` ((n, 3) -> (n,)): surface (s, 3) points, their unit normals or None,
    Eikonal samples (m, 3). Returns the loss and its parts (surface, normal, eikonal), unweighted."""
    surface = surface.detach().requires_grad_(True)
    samples = samples.detach().requires_grad_(True)
    on_surface = sdf(surface)
    parts = {"surface": on_surface.abs().mean()}
    loss = parts["surface"]
    if normals is not None and normal_weight > 0:
        parts["normal"] = (gradient(on_surface, surface) - normals).norm(dim=-1).mean()
        loss = loss + normal_weight * parts["normal"]
    sample_gradients = gradient(sdf(samples), samples)
    parts["eikonal"] = ((sample_gradients.norm(dim=-1) - 1.0) ** 2).mean()
    return loss + eikonal_weight * parts["eikonal"], parts


def eikonal_samples(
    surface: torch.Tensor, sigmas: torch.Tensor, global_fraction: float, generator: torch.Generator | None
) -> torch.Tensor:
    """IGR's distribution: each surface point (s, 3) moved by a Gaussian of its sigma (s,), plus
    ``global_fraction`` as many uniform in [-1, 1]^3 (a little beyond, where a spurious surface could hide)."""
    local = surface + torch.randn(surface.shape, generator=generator, device=surface.device) * sigmas[:, None]
    count = max(1, int(surface.shape[0] * global_fraction))
    uniform = torch.rand(count, 3, generator=generator, device=surface.device) * 2.2 - 1.1
    return torch.cat([local, uniform])


class IgrModel(ShapeModel):
    """One shape's SDF, fitted to its surface points (and normals when it has them)."""

    sdf_output = True

    def __init__(self, config: IgrConfig, context: Any) -> None:
        super().__init__(context)
        self.config = config
        self.network = GeometricMlp(
            config.hidden_width,
            config.hidden_layers,
            config.skip_layer,
            config.softplus_beta,
            config.initial_radius,
            config.encoding_frequencies,
        )

    def field(self, points: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        return self.network(points)

    def training_step(self, batch: ShapeBatch, step: StepContext) -> StepResult:
        config = self.config
        surface = batch.surface_points[0]
        normals = batch.surface_normals[0] if batch.surface_normals is not None and config.use_normals else None
        samples = eikonal_samples(surface, batch.surface_sigmas[0], config.global_fraction, step.generator)
        loss, parts = igr_loss(self.network, surface, normals, samples, config.eikonal_weight, config.normal_weight)
        figures = {name: float(value.detach()) for name, value in parts.items()}
        return StepResult(loss=loss, figures=figures, samples=surface.shape[0] + samples.shape[0])

    def parameter_groups(self) -> list[ParameterGroup]:
        return [
            ParameterGroup(list(self.network.parameters()), self.config.learning_rate, self.config.final_learning_rate)
        ]
