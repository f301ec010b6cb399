"""Differentiable Volumetric Rendering (Niemeyer et al. 2020): occupancy and texture in one network,
rendered at the surface point, whose gradient comes from implicit differentiation.

Forward: along each ray the occupancy logit f is evaluated at uniform steps up to its first sign change
(outside to inside), and secant steps between the two samples around it find the surface point p^
where f(p^) = tau (tau = 0: probability 1/2). The pixel's colour is the texture t(p^).

Backward: p^ depends on the parameters theta only through f(p^) = tau. Differentiating that along the
ray direction w gives (the seed's equation)

    d p^ / d theta = -w (grad_p f(p^) . w)^-1  d f(p^) / d theta

which this module gets from one extra field evaluation: p = p^.detach() - w (f(p^) - tau) / (grad_p f . w)
with the denominator detached. Its value is p^ (f(p^) = tau up to the root finder's precision, so this
is one more Newton step) and its derivative is the equation above; the marching needs no graph.

Masks train the occupancy where the RGB loss cannot: a ray outside the mask pushes the occupancy down
where it hit the surface (or at a random point along it when it missed), a ray inside the mask that
missed pushes the occupancy up at its likeliest point (the highest logit it marched through).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as functional
from torch import nn

from ..encodings.hash_grid import HashGrid
from ..encodings.positional import PositionalEncoding
from ..methods.dvr import DvrConfig
from ..render.surfaces import SurfaceHits, find_surface
from ..render.volume import RenderedRays
from .base import (
    MethodContext,
    ModelOutput,
    ParameterGroup,
    RadianceModel,
    RayBatch,
    RayBundle,
    StepContext,
    StepResult,
    psnr_of_mse,
)

# points (n, 3) -> (n,) occupancy logits
LogitFunction = Callable[[torch.Tensor], torch.Tensor]

# Density of the inside (per unit-cube length) that radiance() reports for extraction's vertex colours and
# bakes (engine/mesh/colour.py composites a short band along each normal): opaque within any sampling step.
INSIDE_DENSITY = 1e4
# |grad f . w| below this is a ray grazing the surface: its implicit gradient would explode.
MIN_DIRECTIONAL_DERIVATIVE = 1e-3


def implicit_surface_points(
    logit_fn: LogitFunction, origins: torch.Tensor, directions: torch.Tensor, t: torch.Tensor, level: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Surface points (n, 3) = origins + t directions whose gradient with respect to the parameters of
    ``logit_fn`` is DVR's implicit one, -w (grad_p f . w)^-1 df/dtheta; and f - level there (n,), with its graph.
    origins, directions (n, 3), t (n,) from engine/render/surfaces.find_surface. ``logit_fn`` must be
    differentiable in its points (for grad_p f) and its parameters."""
    with torch.enable_grad():
        found = (origins + directions * t[:, None]).detach().requires_grad_(True)
        value = logit_fn(found).float() - level
        (gradient,) = torch.autograd.grad(value.sum(), found, retain_graph=True)
    along = (gradient * directions).sum(dim=-1).detach()
    # entering the surface f grows along w; keep the sign, bound the magnitude away from 0
    along = torch.where(
        along >= 0, along.clamp(min=MIN_DIRECTIONAL_DERIVATIVE), along.clamp(max=-MIN_DIRECTIONAL_DERIVATIVE)
    )
    points = found.detach() - directions * (value / along)[:, None]
    return points, value


class DvrField(nn.Module):
    """Encoding -> MLP -> occupancy logit and geometry features -> colour MLP -> texture t(p) in 0..1."""

    def __init__(self, config: DvrConfig, finest_resolution: int) -> None:
        super().__init__()
        self.config = config
        self.hash_grid: HashGrid | None = None
        self.fourier: PositionalEncoding | None = None
        if config.encoding == "hash":
            self.hash_grid = HashGrid(
                n_levels=config.levels,
                features_per_level=config.features_per_level,
                log2_table_size=config.log2_table_size,
                base_resolution=config.base_resolution,
                finest_resolution=finest_resolution,
            )
            encoded = self.hash_grid.out_dim
        elif config.encoding == "fourier":
            self.fourier = PositionalEncoding(3, config.fourier_frequencies)
            encoded = self.fourier.out_dim
        else:
            raise ValueError(f"dvr encoding must be 'hash' or 'fourier', got {config.encoding!r}")
        width = config.hidden_width
        self.geometry = nn.Sequential(
            nn.Linear(encoded, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 1 + config.geometry_features),
        )
        # The colour head reads the encoding as well as the geometry features: through the geometry MLP alone,
        # whose updates the occupancy losses dominate, the texture stayed near its mean colour (measured).
        self.colour = nn.Sequential(
            nn.Linear(encoded + config.geometry_features, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 3),
        )

    def _encode(self, points: torch.Tensor, differentiable: bool) -> torch.Tensor:
        if self.fourier is not None:
            return self.fourier(2.0 * points - 1.0)
        assert self.hash_grid is not None
        if not differentiable:
            return self.hash_grid(points)
        # the hash grid's fast path passes no gradient to the points; the plain gather does (through the
        # trilinear weights), which the implicit gradient and the texture at p^ need
        lookup = self.hash_grid.lookup(points)
        rows = lookup.rows.view(-1, 8)
        features = (self.hash_grid.table[rows] * lookup.weights.view(-1, 8, 1).to(self.hash_grid.table.dtype)).sum(1)
        return features.reshape(points.shape[0], self.hash_grid.out_dim)

    def forward(self, points: torch.Tensor, differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3) unit-cube points -> occupancy logits (n,), features for the colour head (n, encoded + geometry)."""
        encoded = self._encode(points, differentiable)
        output = self.geometry(encoded)
        prior = self.config.prior_slope * (self.config.init_radius - (points - 0.5).norm(dim=-1))
        return output[:, 0].float() + prior.float(), torch.cat([encoded, output[:, 1:]], dim=-1)

    def logits(self, points: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        return self.forward(points, differentiable)[0]

    def texture(self, points: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        """(n, 3) -> (n, 3) colour in 0..1."""
        return torch.sigmoid(self.colour(self.forward(points, differentiable)[1]).float())


class DvrModel(RadianceModel):
    """DvrField rendered at the first surface crossing of each ray."""

    def __init__(self, config: DvrConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.has_alpha = context.has_alpha
        finest_resolution = config.finest_resolution or context.finest_resolution
        if config.encoding == "hash" and finest_resolution < 1:
            raise ValueError(f"dvr needs a finest_resolution >= 1, got {finest_resolution}")
        if config.marching_steps < 2 or config.secant_steps < 0:
            raise ValueError(
                f"dvr needs marching_steps >= 2 and secant_steps >= 0, "
                f"got {config.marching_steps} and {config.secant_steps}"
            )
        self.field = DvrField(config, max(1, finest_resolution))

    def _search(self, rays: RayBundle) -> SurfaceHits:
        """The first entry into the occupancy (logit 0) along each ray; a ray that starts inside enters none.
        The scalar marched is minus the logit, so marched_values are minus the marched logits."""
        return find_surface(
            lambda points: -self.field.logits(points),
            rays.origins,
            rays.directions,
            rays.t_near,
            rays.t_far,
            self.config.marching_steps,
            self.config.secant_steps,
            from_outside_only=True,
        )

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> ModelOutput:
        search = self._search(rays)
        index = search.hit.nonzero(as_tuple=True)[0]
        points = rays.origins[index] + rays.directions[index] * search.t[index, None]
        rgb = torch.zeros(rays.origins.shape[0], 3, device=rays.origins.device)
        rgb[index] = self.field.texture(points.clamp(0.0, 1.0)).float()
        opacity = search.hit.float()
        depth = torch.where(search.hit, search.t, torch.zeros_like(search.t))
        samples = rays.origins.shape[0] * self.config.marching_steps + index.numel() * (self.config.secant_steps + 1)
        return ModelOutput(
            main=RenderedRays(rgb=rgb, depth=depth, opacity=opacity, weights=opacity[:, None]), samples=samples
        )

    def training_step(self, batch: RayBatch, step: StepContext) -> StepResult:
        rays = batch.rays
        n_rays = rays.origins.shape[0]
        search = self._search(rays)
        inside_mask = batch.alpha > 0.5 if batch.has_alpha else torch.ones_like(search.hit)
        hit_index = search.hit.nonzero(as_tuple=True)[0]
        points, _ = implicit_surface_points(
            lambda p: self.field.logits(p.clamp(0.0, 1.0), differentiable=True),
            rays.origins[hit_index],
            rays.directions[hit_index],
            search.t[hit_index],
        )
        colour = self.field.texture(points.clamp(0.0, 1.0), differentiable=True)
        in_mask = inside_mask[hit_index].float()
        # The RGB loss at the surface point of rays that hit inside the mask. Squared, not DVR's L1: with Adam,
        # L1's constant-size gradients left the texture near its mean colour for hundreds of steps here.
        rgb_loss = (in_mask * ((colour - batch.target[hit_index]) ** 2).mean(dim=1)).sum() / max(
            1.0, float(in_mask.sum())
        )
        loss = self.config.rgb_weight * rgb_loss
        mask_loss = torch.zeros((), device=rays.origins.device)
        if batch.has_alpha:
            mask_loss = self._mask_loss(rays, search, inside_mask, step.generator)
            loss = loss + mask_loss
        with torch.no_grad():
            rendered = batch.background.clone()
            rendered[hit_index] = colour.detach()
            mse = float(((rendered - batch.target) ** 2).mean())
        samples = n_rays * self.config.marching_steps + hit_index.numel() * (self.config.secant_steps + 3)
        figures = {
            "psnr": psnr_of_mse(mse),
            "mask_loss": float(mask_loss.detach()),
            "hit_share": float(search.hit.float().mean()),
        }
        return StepResult(loss=loss, figures=figures, samples=samples)

    def _mask_loss(
        self, rays: RayBundle, search: SurfaceHits, inside_mask: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Free-space loss (outside the mask: BCE towards empty at the hit, or a random point of a missing ray)
        plus occupancy loss (inside the mask but missed: BCE towards full at the ray's highest logit), per ray."""
        n_rays = rays.origins.shape[0]
        rows = torch.arange(n_rays, device=rays.origins.device)
        jitter = torch.rand(n_rays, device=rays.origins.device, generator=generator)
        random_t = rays.t_near + (rays.t_far - rays.t_near) * jitter
        assert search.marched_t is not None and search.marched_values is not None  # find_surface's
        likeliest_t = search.marched_t[rows, search.marched_values.argmin(dim=1)]  # the highest logit
        outside = ~inside_mask
        missed_inside = inside_mask & ~search.hit
        t = torch.where(outside, torch.where(search.hit, search.t, random_t), likeliest_t)
        chosen = (outside | missed_inside) & (rays.t_far > rays.t_near)
        index = chosen.nonzero(as_tuple=True)[0]
        if index.numel() == 0:
            return torch.zeros((), device=rays.origins.device)
        points = (rays.origins[index] + rays.directions[index] * t[index, None]).clamp(0.0, 1.0)
        logits = self.field.logits(points)
        targets = missed_inside[index].float()
        weights = torch.where(
            missed_inside[index],
            torch.full_like(targets, self.config.occupancy_weight),
            torch.full_like(targets, self.config.freespace_weight),
        )
        losses = functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return (weights * losses).sum() / n_rays

    def surface(self, points: torch.Tensor) -> torch.Tensor:
        """Occupancy logits (the registry's occupancy surface kind)."""
        return self.field.logits(points)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        # inside is opaque: what extraction's colour compositing along normals needs to find the surface
        return INSIDE_DENSITY * torch.sigmoid(self.field.logits(points))

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.field(points)
        return INSIDE_DENSITY * torch.sigmoid(logits), torch.sigmoid(self.field.colour(features).float())

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]
