"""UNISURF (Oechsle et al. 2021) on a multiresolution hash grid: an occupancy field o(x) = sigmoid(logit)
rendered as a volume whose alpha is the occupancy itself, w_i = o_i prod_{j<i} (1 - o_j).

The recipe: find the first crossing of o = 0.5 along each ray (uniform steps + secant, no gradients) ->
samples in an interval [t_s - delta, t_s + delta] around it, delta shrinking over training, plus samples
between the ray's entry and the interval (uniform over the ray when no crossing was found) -> occupancy,
normal and colour at the samples -> alpha compositing. Losses: photometric, the normal smoothness
||n(x_s) - n(x_s + eps)|| at the surface points, and (with alpha) a mask loss.

The backbone (hash grid + MLPs, a soft sphere to start from) is NeuS's SurfaceField with a negative prior
scale: the logit is positive inside. Hash grid rather than UNISURF's positional-encoding MLP, so that it
trains in CPU minutes like the other image methods.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..methods.unisurf import UnisurfConfig
from ..render.surfaces import find_surface
from .base import MethodContext, ModelOutput, ParameterGroup, RadianceModel, RayBatch, RayBundle, StepContext
from .neus import SurfaceField, SurfaceOutput, mask_loss, render_from_alpha, unit_normals


def interval_samples(
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    t_surface: torch.Tensor,
    hit: torch.Tensor,
    half_width: float,
    n_interval: int,
    n_free: int,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """UNISURF's sample positions, (n_rays, n_free + n_interval), sorted: n_free stratified in
    [t_near, t_s - delta] and n_interval in [t_s - delta, t_s + delta] (clipped to the ray) where the ray
    hit the surface at t_s; n_free + n_interval stratified over [t_near, t_far] where it did not."""
    n_rays, n_total = t_near.shape[0], n_free + n_interval
    interval_low = torch.maximum(t_near, t_surface - half_width)
    interval_high = torch.minimum(t_far, t_surface + half_width)
    split = t_near + (t_far - t_near) * (n_free / n_total)
    low = torch.stack([t_near, torch.where(hit, interval_low, split)], dim=-1)  # (n_rays, 2) bounds per part
    high = torch.stack([torch.where(hit, interval_low, split), torch.where(hit, interval_high, t_far)], dim=-1)
    if jitter:
        offsets = torch.rand(n_rays, n_total, generator=generator, device=t_near.device)
    else:
        offsets = torch.full((n_rays, n_total), 0.5, device=t_near.device)
    counts = (n_free, n_interval)
    parts = []
    for part, count in enumerate(counts):
        fraction = (torch.arange(count, device=t_near.device) + offsets[:, :count]) / max(count, 1)
        parts.append(low[:, part, None] + (high[:, part] - low[:, part])[:, None] * fraction)
    return torch.cat(parts, dim=-1).sort(dim=-1).values


class UnisurfModel(RadianceModel):
    """SurfaceField as an occupancy logit, sampled around its surface along each ray."""

    def __init__(self, config: UnisurfConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        finest_resolution = config.finest_resolution or context.finest_resolution
        if finest_resolution < 1:
            raise ValueError(f"unisurf needs a finest_resolution >= 1, got {finest_resolution}")
        self.finest_resolution = finest_resolution
        self.field = SurfaceField(config, finest_resolution, prior_scale=-config.sphere_sharpness)
        self.register_buffer("interval", torch.tensor(float(config.interval_end)))

    def _outside(self, points: torch.Tensor) -> torch.Tensor:
        """-logit: positive outside, zero on the o = 0.5 surface (what root finding looks for)."""
        return -self.field.scalar(points)

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> SurfaceOutput:
        config = self.config
        hits = find_surface(
            self._outside,
            rays.origins,
            rays.directions,
            rays.t_near,
            rays.t_far,
            config.root_steps,
            config.secant_steps,
        )
        t = interval_samples(
            rays.t_near,
            rays.t_far,
            hits.t,
            hits.hit,
            float(self.interval),
            config.interval_samples,
            config.free_samples,
            jitter=training,
            generator=generator,
        )
        valid = (rays.t_far > rays.t_near)[:, None].expand_as(t)
        n_rays, n_samples = t.shape
        points = rays.origins[:, None, :] + rays.directions[:, None, :] * t[..., None]
        directions = rays.directions[:, None, :].expand(n_rays, n_samples, 3).reshape(-1, 3)
        geometry = self.field.geometry(points.view(-1, 3), gradient=True, create_graph=training)
        assert geometry.gradient is not None
        # the logit grows inwards, so the outward normal is minus its gradient
        normals = unit_normals(-geometry.gradient)
        colours = self.field.colour(geometry.features, normals, directions).view(n_rays, n_samples, 3)
        alpha = torch.sigmoid(geometry.scalar).view(n_rays, n_samples) * valid
        rendered = render_from_alpha(alpha, colours, t)
        extra = {"surface_points": (rays.origins + rays.directions * hits.t[:, None])[hits.hit]}
        extra["hit_share"] = hits.hit.float().mean()
        return SurfaceOutput(main=rendered, samples=n_rays * (n_samples + config.root_steps), extra=extra)

    def regularization(
        self, output: ModelOutput, batch: RayBatch, step: StepContext
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        assert isinstance(output, SurfaceOutput)
        config = self.config
        figures = {"surface_hits": float(output.extra["hit_share"]), "interval": float(self.interval)}
        loss: torch.Tensor | None = None
        surface_points = output.extra["surface_points"]
        if config.smoothness_weight > 0 and surface_points.shape[0] > 0:
            smoothness = self.normal_smoothness(surface_points, step.generator)
            loss = config.smoothness_weight * smoothness
            figures["smoothness"] = float(smoothness.detach())
        if batch.has_alpha and config.mask_weight > 0:
            mask = mask_loss(output.main.opacity, batch.alpha)
            loss = config.mask_weight * mask if loss is None else loss + config.mask_weight * mask
            figures["mask"] = float(mask.detach())
        return loss, figures

    def normal_smoothness(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean ||n(x) - n(x + eps)|| over (n, 3) surface points, eps ~ N(0, smoothness_offset^2)."""
        noise = torch.randn(points.shape, generator=generator, device=points.device) * self.config.smoothness_offset
        both = torch.cat([points, (points + noise).clamp(0.0, 1.0)])
        gradient = self.field.geometry(both, gradient=True, create_graph=True).gradient
        assert gradient is not None
        normals = unit_normals(gradient)
        return (normals[: points.shape[0]] - normals[points.shape[0] :]).norm(dim=-1).mean()

    def surface(self, points: torch.Tensor) -> torch.Tensor:
        return self.field.scalar(points)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """A density whose opacity over one finest grid cell is the occupancy: -ln(1 - o) per cell length,
        so renderers of densities (mesh colours along normals) see the surface where o crosses 0.5."""
        return self._density_of_logit(self.field.scalar(points))

    def _density_of_logit(self, logit: torch.Tensor) -> torch.Tensor:
        # -ln(1 - sigmoid(l)) = softplus(l), stable for large logits
        return nn.functional.softplus(logit) * self.finest_resolution

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        geometry = self.field.geometry(points, gradient=True)
        assert geometry.gradient is not None
        colours = self.field.colour(geometry.features, unit_normals(-geometry.gradient), directions)
        return self._density_of_logit(geometry.scalar), colours

    def before_step(self, step: StepContext) -> None:
        config = self.config
        progress = 1.0 if config.interval_decay_end <= 0 else min(1.0, step.fraction / config.interval_decay_end)
        self.interval.fill_(
            config.interval_start * math.exp(progress * math.log(config.interval_end / config.interval_start))
        )

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]
