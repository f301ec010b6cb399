"""NeuS (Wang et al. 2021) on a multiresolution hash grid: a signed distance field, rendered with NeuS's
unbiased, occlusion-aware opacity, supervised by the pixels, an eikonal loss and (with alpha) a mask loss.

The recipe: march fixed steps through the cells an occupancy grid marks as near the zero level (|SDF|
within a band) -> SDF, its gradient and geometry features at each sample -> NeuS opacity from the SDF at
the segment ends (estimated from the sample and the ray-normal cosine, annealed) -> colour from features,
normal and view direction -> alpha compositing.

``SurfaceField`` (the hash grid, the SDF/occupancy MLP with its sphere prior, the colour MLP and both ways
of taking the gradient) is shared with UNISURF (engine/fields/unisurf.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..encodings.hash_grid import HashGrid, combine_corners
from ..encodings.spherical_harmonics import SphericalHarmonics
from ..methods.neus import NeusConfig
from ..render.occupancy_grid import OccupancyGrid
from ..render.samplers import RaySamples, compact_samples, march_samples
from ..render.surfaces import logistic_density, neus_alpha, neus_section_sdf, weights_from_alpha
from ..render.volume import RenderedRays, accumulated_opacity, composite, expected_depth
from .base import MethodContext, ModelOutput, ParameterGroup, RadianceModel, RayBatch, RayBundle, StepContext

CENTRE = 0.5  # of the unit cube, where the initial sphere sits

# Central differences: +-x, +-y, +-z
_DIFFERENCE_DIRECTIONS = torch.tensor(
    [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]
)


class _InterpolateWithJacobian(torch.autograd.Function):
    """Hash features and their spatial Jacobian from the same rows: features = sum_c w_c T[r_c] and
    jacobian[..., k] = sum_c (dw_c / dx_k) T[r_c]. rows, weights (m, 8); derivatives (m, 8, 3) ->
    features (m, F), jacobian (m, F, 3). Both are linear in the table T, so the backward is one
    scatter of the combined weighted gradients (not four, as four separate lookups would take)."""

    @staticmethod
    def forward(
        ctx: Any, table: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor, derivatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(rows, weights, derivatives)
        ctx.table_shape = table.shape
        features = nn.functional.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")
        jacobian = torch.stack(
            [
                nn.functional.embedding_bag(
                    rows, table, per_sample_weights=derivatives[..., axis].contiguous(), mode="sum"
                )
                for axis in range(3)
            ],
            dim=-1,
        )
        return features, jacobian

    @staticmethod
    def backward(
        ctx: Any, grad_features: torch.Tensor, grad_jacobian: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        rows, weights, derivatives = ctx.saved_tensors
        # (m, 8, F): what each corner's table row receives from the features and the three derivatives
        combined = weights[..., None] * grad_features[:, None, :]
        combined = combined + torch.einsum("mca,mfa->mcf", derivatives, grad_jacobian)
        grad_table = torch.zeros(ctx.table_shape, dtype=grad_features.dtype, device=grad_features.device)
        grad_table.index_add_(0, rows.reshape(-1), combined.reshape(-1, grad_features.shape[-1]))
        return grad_table, None, None, None


@dataclass
class Geometry:
    """A surface field at n points: scalar (n,) (SDF, or occupancy logit); features (n, geometry_features);
    gradient (n, 3) of the scalar, or None when not asked for."""

    scalar: torch.Tensor
    features: torch.Tensor
    gradient: torch.Tensor | None = None


class SurfaceField(nn.Module):
    """Hash grid + a one-hidden-layer MLP giving a scalar and geometry features, plus a colour MLP of the
    features, the unit normal and the view direction (spherical harmonics). The scalar is a sphere prior
    ``prior_scale * (|x - centre| - sphere_radius)`` plus the MLP's first output, whose weights start at
    zero: an SDF starts as the sphere's exact distance (NeuS's geometric initialisation), an occupancy
    logit (prior_scale < 0) as a soft sphere. Points in the unit cube, unit directions.

    ``config`` has the backbone fields of NeusConfig (levels ... direction_sh_degree, sphere_radius,
    normals, finite_difference_cells)."""

    def __init__(self, config: Any, finest_resolution: int, prior_scale: float = 1.0) -> None:
        super().__init__()
        self.encoding = HashGrid(
            n_levels=config.levels,
            features_per_level=config.features_per_level,
            log2_table_size=config.log2_table_size,
            base_resolution=min(config.base_resolution, finest_resolution),
            finest_resolution=finest_resolution,
        )
        width = config.hidden_width
        # the point itself goes in too, so the MLP has a smooth part that the hash levels refine
        self.scalar_mlp = nn.Sequential(
            nn.Linear(self.encoding.out_dim + 3, width),
            nn.Softplus(beta=100.0),
            nn.Linear(width, 1 + config.geometry_features),
        )
        output = self.scalar_mlp[-1]
        assert isinstance(output, nn.Linear)
        with torch.no_grad():
            output.weight[0].zero_()
            output.bias[0] = 0.0
        self.direction_encoding = SphericalHarmonics(config.direction_sh_degree)
        self.colour_mlp = nn.Sequential(
            nn.Linear(config.geometry_features + 3 + self.direction_encoding.out_dim, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 3),
        )
        self.prior_scale = prior_scale
        self.sphere_radius = config.sphere_radius
        self.normals = config.normals
        self.difference_step = config.finite_difference_cells / finest_resolution
        self.register_buffer("difference_offsets", _DIFFERENCE_DIRECTIONS * self.difference_step, persistent=False)

    def _encode(self, points: torch.Tensor, differentiable: bool) -> torch.Tensor:
        if not differentiable:
            return self.encoding(points)
        # HashGrid's fused lookup passes gradients to the table only; the plain gather also differentiates
        # the trilinear weights with respect to the points (twice, for the eikonal loss's double backward)
        lookup = self.encoding.lookup(points)
        table = self.encoding.table
        features = (table[lookup.rows] * lookup.weights[..., None].to(table.dtype)).sum(dim=2)
        return features.reshape(points.shape[0], self.encoding.out_dim)

    def scalar_and_features(
        self, points: torch.Tensor, differentiable: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3) -> scalar (n,), features (n, geometry_features)."""
        output = self.scalar_mlp(torch.cat([self._encode(points, differentiable), points * 2.0 - 1.0], dim=-1))
        prior = self.prior_scale * ((points - CENTRE).norm(dim=-1) - self.sphere_radius)
        return prior + output[:, 0].float(), output[:, 1:]

    def scalar(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) -> (n,)"""
        return self.scalar_and_features(points)[0]

    def geometry(self, points: torch.Tensor, gradient: bool = True, create_graph: bool = False) -> Geometry:
        """The scalar, features and (when ``gradient``) the scalar's gradient at (n, 3) points, analytic or
        by central differences as configured; ``create_graph`` when a loss uses the gradient."""
        if not gradient:
            scalar, features = self.scalar_and_features(points)
            return Geometry(scalar, features)
        if self.normals == "analytic":
            return self._analytic_geometry(points)
        if self.normals == "autograd":
            return self._autograd_geometry(points, create_graph)
        return self._finite_geometry(points)

    def _analytic_geometry(self, points: torch.Tensor) -> Geometry:
        """The gradient by the chain rule written out: the hash features' spatial Jacobian is the same table
        interpolated with the trilinear weights' derivatives (three more fused lookups on the same rows),
        and the MLP's input gradient is W1^T (w2 * softplus'(h)). Everything is linear in the table, so a
        loss on the gradient needs only a first-order backward (no double backward through the lookup)."""
        encoding = self.encoding
        n_points, n_levels = points.shape[0], encoding.n_levels
        lookup = encoding.lookup(points)
        rows = lookup.rows.view(-1, 8)
        table = encoding.table
        # per level and axis: the low and high corners' weights (1 - f, f) and their derivatives (-N, N)
        scale = encoding.level_scale[None, :, None]
        scaled = points.clamp(0.0, 1.0)[:, None, :] * scale
        fraction = scaled - scaled.floor().clamp(max=scale - 1)
        low, high = 1.0 - fraction, fraction
        slope = scale.expand_as(fraction)
        derivatives = []
        for axis in range(3):
            axis_low, axis_high = low.clone(), high.clone()
            axis_low[..., axis], axis_high[..., axis] = -slope[..., axis], slope[..., axis]
            derivatives.append(combine_corners(torch.stack([axis_low, axis_high], dim=-2), torch.mul).reshape(-1, 8))
        features, jacobian = _InterpolateWithJacobian.apply(
            table, rows, lookup.weights.view(-1, 8).to(table.dtype), torch.stack(derivatives, dim=-1).to(table.dtype)
        )
        features = features.reshape(n_points, encoding.out_dim)
        jacobian = jacobian.reshape(n_points, encoding.out_dim, 3)
        first, activation, last = self.scalar_mlp[0], self.scalar_mlp[1], self.scalar_mlp[2]
        assert isinstance(first, nn.Linear) and isinstance(activation, nn.Softplus) and isinstance(last, nn.Linear)
        hidden = first(torch.cat([features, points * 2.0 - 1.0], dim=-1))
        output = last(activation(hidden))
        offset = points - CENTRE
        distance = offset.norm(dim=-1, keepdim=True)
        scalar = self.prior_scale * (distance[:, 0] - self.sphere_radius) + output[:, 0].float()
        # d scalar / d MLP input: softplus' = sigmoid(beta h)
        input_gradient = (torch.sigmoid(activation.beta * hidden) * last.weight[0]) @ first.weight
        gradient = torch.einsum("nd,ndk->nk", input_gradient[:, : encoding.out_dim], jacobian)
        gradient = gradient + 2.0 * input_gradient[:, encoding.out_dim :]
        gradient = gradient + self.prior_scale * offset / distance.clamp(min=1e-8)
        assert n_levels == len(encoding.resolutions)
        return Geometry(scalar, output[:, 1:], gradient.float())

    def _autograd_geometry(self, points: torch.Tensor, create_graph: bool) -> Geometry:
        with torch.enable_grad():
            inputs = points.detach().requires_grad_(True)
            scalar, features = self.scalar_and_features(inputs, differentiable=True)
            (gradient,) = torch.autograd.grad(scalar, inputs, torch.ones_like(scalar), create_graph=create_graph)
        if not create_graph:
            scalar, features = scalar.detach(), features.detach()
        return Geometry(scalar, features, gradient)

    def _finite_geometry(self, points: torch.Tensor) -> Geometry:
        # one pass over the points and their six neighbours; gradients of losses on the differences reach
        # the parameters through the neighbours' lookups (first order only, no double backward)
        n_points = points.shape[0]
        neighbours = (points[:, None, :] + self.difference_offsets[None]).view(-1, 3)
        scalar, features = self.scalar_and_features(torch.cat([points, neighbours]))
        around = scalar[n_points:].view(n_points, 3, 2)
        gradient = (around[..., 0] - around[..., 1]) / (2.0 * self.difference_step)
        return Geometry(scalar[:n_points], features[:n_points], gradient)

    def colour(self, features: torch.Tensor, normals: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """(n, g), (n, 3) unit normals, (n, 3) unit directions -> (n, 3) in 0..1."""
        encoded = self.direction_encoding(directions).to(features.dtype)
        return torch.sigmoid(
            self.colour_mlp(torch.cat([features, normals.to(features.dtype), encoded], dim=-1)).float()
        )


def unit_normals(gradient: torch.Tensor) -> torch.Tensor:
    return gradient / gradient.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def eikonal_loss(gradient: torch.Tensor) -> torch.Tensor:
    """mean (|grad f| - 1)^2 over (n, 3) gradients (IGR's eikonal term); 0 when there are none."""
    if gradient.shape[0] == 0:
        return gradient.sum() * 0.0
    return ((gradient.norm(dim=-1) - 1.0) ** 2).mean()


def mask_loss(opacity: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of rendered opacity (n_rays,) against the pixels' alpha (n_rays,)."""
    return nn.functional.binary_cross_entropy(opacity.float().clamp(1e-3, 1.0 - 1e-3), alpha.float().clamp(0.0, 1.0))


@dataclass
class SurfaceOutput(ModelOutput):
    """A surface method's render plus what its losses need: gradient (n_valid, 3) of the scalar at every
    sample (for the eikonal loss), and method-specific tensors in ``extra``."""

    gradient: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def scatter_samples(
    valid: torch.Tensor, values: torch.Tensor, ray_index: torch.Tensor, sample_index: torch.Tensor
) -> torch.Tensor:
    """Packed per-sample values (m, ...) into a zero-padded (n_rays, n_samples, ...) tensor."""
    padded = torch.zeros(*valid.shape, *values.shape[1:], dtype=values.dtype, device=values.device)
    return padded.index_put((ray_index, sample_index), values)


def render_from_alpha(alpha: torch.Tensor, colours: torch.Tensor, t: torch.Tensor) -> RenderedRays:
    """Composite (n_rays, n_samples) opacities and (n_rays, n_samples, 3) colours at positions t."""
    weights = weights_from_alpha(alpha)
    opacity = accumulated_opacity(weights)
    return RenderedRays(
        rgb=composite(weights, colours),
        depth=expected_depth(weights, t.to(weights.dtype), opacity),
        opacity=opacity,
        weights=weights,
    )


class NeusModel(RadianceModel):
    """SurfaceField as an SDF, marched through the cells near its zero level."""

    def __init__(self, config: NeusConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        finest_resolution = config.finest_resolution or context.finest_resolution
        if finest_resolution < 1:
            raise ValueError(f"neus needs a finest_resolution >= 1, got {finest_resolution}")
        if not 0.0 < config.sphere_radius < 0.5 * math.sqrt(3.0):
            raise ValueError(f"neus sphere_radius must be in (0, 0.87) of the unit cube, got {config.sphere_radius}")
        self.field = SurfaceField(config, finest_resolution)
        self.variance = nn.Parameter(torch.tensor(float(config.initial_variance)))
        marching_steps = config.marching_steps or min(1024, max(64, round(math.sqrt(3.0) * finest_resolution)))
        self.step_size = math.sqrt(3.0) / marching_steps
        self.occupancy = OccupancyGrid(min(config.occupancy_resolution, finest_resolution))
        self.has_alpha = context.has_alpha
        # 1 once annealed: a run read back from its checkpoint renders with the true cosine
        self.register_buffer("anneal", torch.tensor(1.0))

    @property
    def sharpness(self) -> torch.Tensor:
        """s of the logistic CDF, per unit-cube length."""
        return torch.exp(self.variance * 10.0).clamp(1e-3, 1e6)

    def _samples(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> RaySamples:
        samples = march_samples(rays.t_near, rays.t_far, self.step_size, jitter=training, generator=generator)
        assert samples.valid is not None
        points = rays.origins[:, None, :] + rays.directions[:, None, :] * samples.t[..., None]
        samples.valid = samples.valid & self.occupancy.is_occupied(points.view(-1, 3)).view(samples.t.shape)
        return compact_samples(samples)

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> SurfaceOutput:
        samples = self._samples(rays, training, generator)
        assert samples.valid is not None
        ray_index, sample_index = samples.valid.nonzero(as_tuple=True)
        directions = rays.directions[ray_index]
        points = rays.origins[ray_index] + directions * samples.t[ray_index, sample_index, None]
        geometry = self.field.geometry(points, gradient=True, create_graph=training)
        assert geometry.gradient is not None
        colours = self.field.colour(geometry.features, unit_normals(geometry.gradient), directions)
        cosine = (directions * geometry.gradient).sum(dim=-1)
        deltas = samples.deltas[ray_index, sample_index]
        sdf_start, sdf_end = neus_section_sdf(geometry.scalar, cosine, deltas, float(self.anneal))
        alpha = neus_alpha(sdf_start, sdf_end, self.sharpness)
        rendered = render_from_alpha(
            scatter_samples(samples.valid, alpha, ray_index, sample_index),
            scatter_samples(samples.valid, colours, ray_index, sample_index),
            samples.t,
        )
        return SurfaceOutput(main=rendered, samples=int(ray_index.numel()), gradient=geometry.gradient)

    def regularization(
        self, output: ModelOutput, batch: RayBatch, step: StepContext
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        assert isinstance(output, SurfaceOutput) and output.gradient is not None
        eikonal = eikonal_loss(output.gradient)
        loss = self.config.eikonal_weight * eikonal
        figures = {"eikonal": float(eikonal.detach()), "sharpness": float(self.sharpness.detach())}
        if batch.has_alpha and self.config.mask_weight > 0:
            mask = mask_loss(output.main.opacity, batch.alpha)
            loss = loss + self.config.mask_weight * mask
            figures["mask"] = float(mask.detach())
        return loss, figures

    def surface(self, points: torch.Tensor) -> torch.Tensor:
        return self.field.scalar(points)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """The logistic density s * Phi_s(-f): what NeuS's opacity amounts to for a ray meeting the surface
        head-on, so renderers of densities (mesh colours along normals) see the surface where it is."""
        return logistic_density(self.field.scalar(points), self.sharpness)

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        geometry = self.field.geometry(points, gradient=True)
        assert geometry.gradient is not None
        colours = self.field.colour(geometry.features, unit_normals(geometry.gradient), directions)
        return logistic_density(geometry.scalar, self.sharpness.detach()), colours

    def before_step(self, step: StepContext) -> None:
        end = self.config.anneal_end
        self.anneal.fill_(1.0 if end <= 0 else min(1.0, step.fraction / end))
        if step.step % self.config.occupancy_update_every == 0:
            resolution = self.occupancy.resolution
            band = math.sqrt(3.0) / resolution + self.config.band_sharpness_widths / float(self.sharpness.detach())
            self.occupancy.update_near_surface(self.field.scalar, band)

    def parameter_groups(self) -> list[ParameterGroup]:
        field_parameters = list(self.field.parameters())
        return [
            ParameterGroup(field_parameters, self.config.learning_rate, self.config.final_learning_rate),
            ParameterGroup([self.variance], self.config.variance_learning_rate, self.config.variance_learning_rate),
        ]
