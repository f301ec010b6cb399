"""Volume rendering: alpha compositing of samples along rays (NeRF, eq. 3).

    alpha_i = 1 - exp(-sigma_i * delta_i)
    T_i     = prod_{j < i} (1 - alpha_j) = exp(-sum_{j < i} sigma_j * delta_j)
    w_i     = T_i * alpha_i,   C = sum_i w_i c_i,   opacity = sum_i w_i

Samples are padded to (n_rays, n_samples); a sample that is not valid (outside the box, skipped by
the occupancy grid, after early termination) has zero density, so it adds nothing and blocks nothing.
The field is a callback, so this module never imports a field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# radiance_fn(points (n, 3), directions (n, 3)) -> (densities (n,), colours (n, 3))
RadianceFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class RenderedRays:
    """Per-ray results. rgb: (n_rays, 3) not yet blended with a background; depth: (n_rays,) expected
    distance along the (unit-length) ray direction, 0 where nothing was hit; opacity: (n_rays,);
    weights: (n_rays, n_samples) compositing weights, for hierarchical sampling."""

    rgb: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    weights: torch.Tensor


def transmittance(densities: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """T_i, (n_rays, n_samples): the probability that the ray reaches sample i unblocked."""
    _check_shapes(densities, deltas)
    return _transmittance(densities * deltas)


def _transmittance(optical_depth: torch.Tensor) -> torch.Tensor:
    # exclusive cumulative sum: T_1 = 1 because nothing lies in front of the first sample
    return torch.exp(-(torch.cumsum(optical_depth, dim=-1) - optical_depth))


def compositing_weights(densities: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Weights w_i = T_i * alpha_i, (n_rays, n_samples), from densities and segment lengths of that shape."""
    _check_shapes(densities, deltas)
    optical_depth = densities * deltas
    return _transmittance(optical_depth) * (1.0 - torch.exp(-optical_depth))


def _check_shapes(densities: torch.Tensor, deltas: torch.Tensor) -> None:
    if densities.shape != deltas.shape:
        raise ValueError(f"densities {tuple(densities.shape)} and deltas {tuple(deltas.shape)} must match")


def composite(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """sum_i w_i v_i: weights (n_rays, n_samples), values (n_rays, n_samples, c) -> (n_rays, c)."""
    return (weights[..., None] * values).sum(dim=-2)


def accumulated_opacity(weights: torch.Tensor) -> torch.Tensor:
    """(n_rays, n_samples) -> (n_rays,): the probability that the ray stops in the volume."""
    return weights.sum(dim=-1)


def expected_depth(weights: torch.Tensor, t_samples: torch.Tensor, opacity: torch.Tensor | None = None) -> torch.Tensor:
    """Depth of the expected termination, normalised by opacity (so a half-transparent surface is not
    pulled towards the camera); 0 where the ray hit nothing. (n_rays, n_samples) -> (n_rays,).
    ``opacity``: accumulated_opacity(weights) when the caller has it already."""
    if opacity is None:
        opacity = accumulated_opacity(weights)
    return (weights * t_samples).sum(dim=-1) / opacity.clamp(min=1e-10)


def blend_background(rgb: torch.Tensor, opacity: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """C + (1 - opacity) * background: rgb (n_rays, 3), opacity (n_rays,), background (n_rays, 3) or (3,)."""
    return rgb + (1.0 - opacity[..., None]) * background


def volume_render(
    radiance_fn: RadianceFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    t_samples: torch.Tensor,
    deltas: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> RenderedRays:
    """Evaluate the field at the valid samples only and composite along each ray.

    origins, directions: (n_rays, 3), directions unit length; t_samples, deltas: (n_rays, n_samples);
    valid: (n_rays, n_samples) bool or None (all valid).
    """
    n_rays, n_samples = t_samples.shape
    if valid is None:
        valid = torch.ones_like(t_samples, dtype=torch.bool)
    ray_index, sample_index = valid.nonzero(as_tuple=True)
    if ray_index.numel() == 0:
        # nothing to evaluate (every ray misses the box or crosses only empty cells)
        zeros = torch.zeros(n_rays, device=t_samples.device)
        return RenderedRays(
            rgb=torch.zeros(n_rays, 3, device=t_samples.device),
            depth=zeros,
            opacity=zeros,
            weights=torch.zeros_like(t_samples),
        )
    points = origins[ray_index] + directions[ray_index] * t_samples[ray_index, sample_index, None]
    packed_densities, packed_colours = radiance_fn(points, directions[ray_index])

    # scatter the packed results back into padded tensors; invalid samples keep zero density
    densities = torch.zeros(n_rays, n_samples, dtype=packed_densities.dtype, device=t_samples.device)
    colours = torch.zeros(n_rays, n_samples, 3, dtype=packed_colours.dtype, device=t_samples.device)
    densities = densities.index_put((ray_index, sample_index), packed_densities)
    colours = colours.index_put((ray_index, sample_index), packed_colours)

    weights = compositing_weights(densities, deltas.to(densities.dtype))
    opacity = accumulated_opacity(weights)
    return RenderedRays(
        rgb=composite(weights, colours),
        depth=expected_depth(weights, t_samples.to(weights.dtype), opacity),
        opacity=opacity,
        weights=weights,
    )
