"""Where to evaluate a field along rays: box clipping, stratified and hierarchical (inverse-CDF) sampling
as in NeRF, and fixed-step marching for occupancy-grid fields.

Samples are (n_rays, n_samples) positions t along unit-length directions; each sample owns the
segment between the midpoints to its neighbours (clipped to [t_near, t_far]), whose length is its delta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class RaySamples:
    """t: (n_rays, n_samples) sample positions, sorted; deltas: (n_rays, n_samples) segment lengths;
    edges: (n_rays, n_samples + 1) bounds of contiguous segments, or None once samples were compacted;
    valid: (n_rays, n_samples) bool, or None when all are."""

    t: torch.Tensor
    deltas: torch.Tensor
    edges: torch.Tensor | None = None
    valid: torch.Tensor | None = None


def ray_box_intersection(
    origins: torch.Tensor,
    directions: torch.Tensor,
    box_min: float | torch.Tensor = 0.0,
    box_max: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test against an axis-aligned box (a cube for float bounds, (3,) tensors for any box).
    Returns t_near, t_far (n_rays,), with t_near >= 0 (the box is only seen in front of the camera) and
    t_far = t_near where the ray misses the box."""
    safe_directions = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t_low = (box_min - origins) / safe_directions
    t_high = (box_max - origins) / safe_directions
    t_near = torch.minimum(t_low, t_high).amax(dim=-1).clamp(min=0.0)
    t_far = torch.maximum(t_low, t_high).amin(dim=-1)
    return t_near, torch.maximum(t_far, t_near)


def samples_from_positions(t: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor) -> RaySamples:
    """Segments around sorted positions t (n_rays, n_samples): bounds are the midpoints between neighbours."""
    midpoints = 0.5 * (t[:, 1:] + t[:, :-1])
    edges = torch.cat([t_near[:, None], midpoints, t_far[:, None]], dim=-1)
    return RaySamples(t=t, edges=edges, deltas=edges[:, 1:] - edges[:, :-1])


def stratified_samples(
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    n_samples: int,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """n_samples per ray, one in each of n_samples equal bins of [t_near, t_far]: uniformly at random
    inside its bin when jitter (training), at the bin centre otherwise."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    n_rays = t_near.shape[0]
    if jitter:
        offsets = torch.rand(n_rays, n_samples, generator=generator, device=t_near.device)
    else:
        offsets = torch.full((n_rays, n_samples), 0.5, device=t_near.device)
    fraction = (torch.arange(n_samples, device=t_near.device) + offsets) / n_samples
    t = t_near[:, None] + (t_far - t_near)[:, None] * fraction
    return samples_from_positions(t, t_near, t_far)


def sample_pdf(
    edges: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverse-CDF sampling of the piecewise-constant density given by weights (n_rays, n_bins) over
    bins with bounds edges (n_rays, n_bins + 1). Returns (n_rays, n_samples) positions, sorted.

    A small constant is added to every weight so that rays which saw nothing still sample their whole
    length (and no division by zero happens)."""
    weights = weights.detach() + 1e-5
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1).clamp(max=1.0)
    n_rays = weights.shape[0]
    if jitter:
        u = torch.rand(n_rays, n_samples, generator=generator, device=weights.device)
    else:
        u = (torch.arange(n_samples, device=weights.device, dtype=weights.dtype) + 0.5) / n_samples
        u = u.expand(n_rays, n_samples)
    u = u.contiguous()
    # bin index i with cdf[i] <= u < cdf[i + 1]
    upper = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    lower = upper - 1
    cdf_low, cdf_high = cdf.gather(-1, lower), cdf.gather(-1, upper)
    edge_low, edge_high = edges.detach().gather(-1, lower), edges.detach().gather(-1, upper)
    span = torch.where(cdf_high - cdf_low < 1e-8, torch.ones_like(cdf_low), cdf_high - cdf_low)
    t = edge_low + (u - cdf_low) / span * (edge_high - edge_low)
    return t.sort(dim=-1).values


def march_samples(
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    step_size: float,
    jitter: bool,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """Fixed steps of step_size from t_near (with one random offset per ray when jitter), padded to the
    longest ray; samples past t_far are not valid. Returns (n_rays, n_steps) samples."""
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    n_rays = t_near.shape[0]
    longest = float((t_far - t_near).max()) if n_rays else 0.0
    n_steps = max(1, math.ceil(longest / step_size))
    if jitter:
        offsets = torch.rand(n_rays, 1, generator=generator, device=t_near.device)
    else:
        offsets = torch.full((n_rays, 1), 0.5, device=t_near.device)
    t = t_near[:, None] + (torch.arange(n_steps, device=t_near.device) + offsets) * step_size
    valid = t < t_far[:, None]
    deltas = torch.full_like(t, step_size)
    return RaySamples(t=t, deltas=deltas, valid=valid)


def compact_samples(samples: RaySamples) -> RaySamples:
    """Move each ray's valid samples to the front and drop columns no ray uses: compositing cost then
    follows the samples that matter, not the longest ray. Order along each ray is kept."""
    if samples.valid is None:
        return samples
    valid = samples.valid
    n_rays = valid.shape[0]
    width = int(valid.sum(dim=-1).max()) if n_rays else 0
    width = max(width, 1)
    ray_index, sample_index = valid.nonzero(as_tuple=True)
    column = (torch.cumsum(valid, dim=-1) - 1)[ray_index, sample_index]
    t = torch.zeros(n_rays, width, dtype=samples.t.dtype, device=valid.device)
    deltas = torch.zeros_like(t)
    new_valid = torch.zeros(n_rays, width, dtype=torch.bool, device=valid.device)
    t[ray_index, column] = samples.t[ray_index, sample_index]
    deltas[ray_index, column] = samples.deltas[ray_index, sample_index]
    new_valid[ray_index, column] = True
    return RaySamples(t=t, deltas=deltas, valid=new_valid)
