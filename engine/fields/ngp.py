"""instant-NGP (Mueller et al. 2022) in plain PyTorch: a multiresolution hash grid feeds a one-hidden-layer
density MLP (log-density plus geometry features); a two-hidden-layer colour MLP takes those features and
the view direction in spherical harmonics. Rays march in fixed steps through the cells an occupancy grid marks as
occupied, and stop once their transmittance is negligible (early termination).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..encodings.hash_grid import HashGrid
from ..encodings.spherical_harmonics import SphericalHarmonics
from ..methods.ngp import NgpConfig
from ..render.occupancy_grid import OccupancyGrid
from ..render.samplers import RaySamples, compact_samples, march_samples
from ..render.volume import transmittance, volume_render
from .base import MethodContext, ModelOutput, ParameterGroup, RadianceModel, RayBundle, StepContext


class _TruncatedExp(torch.autograd.Function):
    """exp with its gradient clamped (as torch-ngp): density = exp(x) without exploding gradients."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inputs)
        return torch.exp(inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (inputs,) = ctx.saved_tensors
        return grad_output * torch.exp(inputs.clamp(-15.0, 15.0))


def truncated_exp(inputs: torch.Tensor) -> torch.Tensor:
    return _TruncatedExp.apply(inputs)


class NgpField(nn.Module):
    """Hash grid + density MLP + colour MLP. Points in the unit cube, unit directions."""

    def __init__(self, config: NgpConfig, finest_resolution: int, compile_encoding: bool = False) -> None:
        super().__init__()
        self.encoding = HashGrid(
            n_levels=config.levels,
            features_per_level=config.features_per_level,
            log2_table_size=config.log2_table_size,
            base_resolution=config.base_resolution,
            finest_resolution=finest_resolution,
        )
        width = config.hidden_width
        self.density_mlp = nn.Sequential(
            nn.Linear(self.encoding.out_dim, width), nn.ReLU(), nn.Linear(width, 1 + config.geometry_features)
        )
        self.direction_encoding = SphericalHarmonics(config.direction_sh_degree)
        self.colour_mlp = nn.Sequential(
            nn.Linear(config.geometry_features + self.direction_encoding.out_dim, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 3),
        )
        # The hash lookup is many small elementwise ops on (n, levels, 8) tensors: compiled, they fuse into
        # one loop (see build_model for when that pays). The MLPs are plain matmuls and gain nothing.
        # A compiled bound method, not a compiled module: the state dict stays the same with or without it.
        self._encode: Any = torch.compile(self.encoding.forward, dynamic=True) if compile_encoding else self.encoding

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) -> (n,)"""
        return truncated_exp(self.density_mlp(self._encode(points))[:, 0].float())

    def forward(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3), (n, 3) -> densities (n,), colours (n, 3)."""
        geometry = self.density_mlp(self._encode(points))
        densities = truncated_exp(geometry[:, 0].float())
        colour_input = torch.cat([geometry[:, 1:], self.direction_encoding(directions).to(geometry.dtype)], dim=-1)
        return densities, torch.sigmoid(self.colour_mlp(colour_input).float())


class NgpModel(RadianceModel):
    """NgpField marched through an occupancy grid."""

    def __init__(self, config: NgpConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        finest_resolution = config.finest_resolution or context.finest_resolution
        if finest_resolution < 1:
            raise ValueError(f"ngp needs a finest_resolution >= 1, got {finest_resolution}")
        self.field = NgpField(config, finest_resolution, compile_encoding=context.compiles())
        marching_steps = config.marching_steps or min(1024, max(64, round(math.sqrt(3.0) * finest_resolution)))
        self.step_size = math.sqrt(3.0) / marching_steps
        # the opacity threshold per marching step, as a density: alpha = 1 - exp(-sigma * step)
        density_threshold = -math.log(1.0 - config.occupancy_opacity_threshold) / self.step_size
        occupancy_resolution = min(config.occupancy_resolution, finest_resolution)
        self.occupancy = OccupancyGrid(occupancy_resolution, config.occupancy_decay, density_threshold)

    def _occupied_samples(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> RaySamples:
        samples = march_samples(rays.t_near, rays.t_far, self.step_size, jitter=training, generator=generator)
        assert samples.valid is not None
        points = rays.origins[:, None, :] + rays.directions[:, None, :] * samples.t[..., None]
        occupied = self.occupancy.is_occupied(points.view(-1, 3)).view(samples.t.shape)
        samples.valid = samples.valid & occupied
        return compact_samples(samples)

    @torch.no_grad()
    def _terminate_early(self, rays: RayBundle, samples: RaySamples) -> RaySamples:
        """Drop samples behind which the ray is already (almost) fully blocked."""
        assert samples.valid is not None
        ray_index, sample_index = samples.valid.nonzero(as_tuple=True)
        if ray_index.numel() == 0:
            return samples
        points = rays.origins[ray_index] + rays.directions[ray_index] * samples.t[ray_index, sample_index, None]
        densities = torch.zeros_like(samples.t)
        densities[ray_index, sample_index] = self.field.density(points).to(densities.dtype)
        reaches = transmittance(densities, samples.deltas) > self.config.early_stop_transmittance
        samples.valid = samples.valid & reaches
        return compact_samples(samples)

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> ModelOutput:
        samples = self._terminate_early(rays, self._occupied_samples(rays, training, generator))
        rendered = volume_render(self.field, rays.origins, rays.directions, samples.t, samples.deltas, samples.valid)
        assert samples.valid is not None
        return ModelOutput(main=rendered, samples=int(samples.valid.sum()))

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.field.density(points)

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.field(points, directions)

    def before_step(self, step: StepContext) -> None:
        if step.step % self.config.occupancy_update_every == 0:
            warming_up = (
                step.step < self.config.occupancy_warmup_steps and step.fraction < self.config.occupancy_warmup_fraction
            )
            self.occupancy.update(self.field.density, all_cells=warming_up, generator=step.generator)

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]
