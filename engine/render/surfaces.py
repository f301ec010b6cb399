"""Rendering surface fields: NeuS's opacity from signed distances, UNISURF's surface search along rays.

NeuS (Wang et al. 2021): the surface is the zero level of an SDF f, and a ray's opacity between two points
p_i, p_{i+1} comes from the logistic CDF Phi_s(x) = 1 / (1 + exp(-s x)) of sharpness s:

    alpha_i = max((Phi_s(f(p_i)) - Phi_s(f(p_{i+1}))) / Phi_s(f(p_i)), 0)

which is unbiased (the weight peaks on the surface) and occlusion-aware. UNISURF (Oechsle et al. 2021):
an occupancy field o(x) rendered with alpha_i = o(p_i); its surface, the first crossing of o = 0.5 along
a ray, is found by stepping uniformly to the first sign change and refining by the secant method.

Functions take values and callbacks, never a field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# scalar_fn(points (n, 3)) -> (n,) a field's value whose zero level is the surface (positive outside)
ScalarFn = Callable[[torch.Tensor], torch.Tensor]


def neus_alpha(sdf_start: torch.Tensor, sdf_end: torch.Tensor, inverse_s: torch.Tensor | float) -> torch.Tensor:
    """NeuS's discrete opacity of the segments [p_i, p_{i+1}] from the signed distances at their ends.

    sdf_start, sdf_end: (...) f(p_i), f(p_{i+1}); inverse_s: the sharpness s (a scalar, > 0).
    Returns alpha (...) in [0, 1]. A segment moving away from the surface (f growing) gets 0; a segment
    that crosses it from outside in with large s gets about 1."""
    cdf_start = torch.sigmoid(sdf_start * inverse_s)
    cdf_end = torch.sigmoid(sdf_end * inverse_s)
    # the epsilons keep 0/0 finite deep inside (both CDFs vanish), where the ratio's limit is 1 - exp(-s df)
    return ((cdf_start - cdf_end + 1e-5) / (cdf_start + 1e-5)).clamp(0.0, 1.0)


def neus_section_sdf(
    sdf: torch.Tensor, cosine: torch.Tensor, deltas: torch.Tensor, anneal: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distances at the two ends of each sample's segment, estimated from the sample (its middle)
    and the directional derivative along the ray, as the NeuS code does (one field evaluation per sample).

    sdf, cosine (dot of ray direction and SDF gradient), deltas: (...). ``anneal`` in [0, 1] blends the
    derivative from a relaxed one, -relu(-cos/2 + 1/2), that lets every sample see some slope early in
    training (surfaces can still move through it) to the true -relu(-cos) (NeuS's cos_anneal_ratio)."""
    slope = -(torch.relu(-cosine * 0.5 + 0.5) * (1.0 - anneal) + torch.relu(-cosine) * anneal)
    half = slope * deltas * 0.5
    return sdf - half, sdf + half


def weights_from_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """w_i = alpha_i prod_{j<i} (1 - alpha_j): (n_rays, n_samples) -> (n_rays, n_samples)."""
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1] + 1e-7], dim=-1), -1)
    return alpha * transmittance


def logistic_density(sdf: torch.Tensor, inverse_s: torch.Tensor | float) -> torch.Tensor:
    """The volume density NeuS's opacity equals for a ray entering the surface head-on: s * Phi_s(-f),
    per unit length; (...) -> (...). Used where a density is asked of an SDF field (mesh colours)."""
    return inverse_s * torch.sigmoid(-sdf * inverse_s)


@dataclass
class SurfaceHits:
    """The first surface crossing along each ray. t: (n_rays,) distance of the crossing (t_far where
    none); hit: (n_rays,) bool, a crossing from outside to inside was found; marched_t, marched_values:
    (n_rays, n_steps) the uniform samples and the scalar there, from find_surface (DVR's losses pick points
    among them), None from a search that takes no uniform steps (a sphere tracer)."""

    t: torch.Tensor
    hit: torch.Tensor
    marched_t: torch.Tensor | None = None
    marched_values: torch.Tensor | None = None


@torch.no_grad()
def find_surface(
    scalar_fn: ScalarFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    n_steps: int = 64,
    secant_steps: int = 8,
    from_outside_only: bool = False,
) -> SurfaceHits:
    """UNISURF's and DVR's root finding: ``n_steps`` uniform points in [t_near, t_far] per ray, the first
    interval whose scalar goes from positive (outside) to non-positive (inside), then ``secant_steps`` of
    the secant method (regula falsi: the bracket is kept, so it never leaves the interval) on the rays
    that have one. ``from_outside_only``: a ray whose first point is inside has no crossing (DVR: it
    enters no surface), rather than its first re-entry.

    scalar_fn: (n, 3) -> (n,), zero on the surface, positive outside (for an occupancy o: 0.5 - o or
    -logit(o)); origins, directions: (n_rays, 3); t_near, t_far: (n_rays,)."""
    if n_steps < 2:
        raise ValueError(f"root finding needs n_steps >= 2, got {n_steps}")
    n_rays = origins.shape[0]
    fraction = torch.linspace(0.0, 1.0, n_steps, device=origins.device)
    t = t_near[:, None] + (t_far - t_near)[:, None] * fraction  # (n_rays, n_steps)
    points = origins[:, None, :] + directions[:, None, :] * t[..., None]
    values = scalar_fn(points.view(-1, 3)).view(n_rays, n_steps).float()
    crossing = (values[:, :-1] > 0) & (values[:, 1:] <= 0)
    hit = crossing.any(dim=-1) & (t_far > t_near)
    if from_outside_only:
        hit &= values[:, 0] > 0
    first = torch.argmax(crossing.to(torch.int8), dim=-1)  # first True (0 where none, masked by hit)
    index = hit.nonzero(as_tuple=True)[0]
    t_low, t_high = t[index, first[index]], t[index, first[index] + 1]
    value_low, value_high = values[index, first[index]], values[index, first[index] + 1]
    origins_hit, directions_hit = origins[index], directions[index]
    for _ in range(secant_steps):
        t_mid = _secant(t_low, t_high, value_low, value_high)
        value_mid = scalar_fn(origins_hit + directions_hit * t_mid[:, None]).float()
        outside = value_mid > 0
        t_low, value_low = torch.where(outside, t_mid, t_low), torch.where(outside, value_mid, value_low)
        t_high, value_high = torch.where(outside, t_high, t_mid), torch.where(outside, value_high, value_mid)
    surface_t = t_far.clone()
    surface_t[index] = _secant(t_low, t_high, value_low, value_high).to(surface_t.dtype)
    return SurfaceHits(t=surface_t, hit=hit, marched_t=t, marched_values=values)


def _secant(
    t_low: torch.Tensor, t_high: torch.Tensor, value_low: torch.Tensor, value_high: torch.Tensor
) -> torch.Tensor:
    """Where the line through (t_low, value_low > 0) and (t_high, value_high <= 0) crosses zero, inside the
    bracket."""
    span = (value_low - value_high).clamp(min=1e-12)
    return torch.minimum(torch.maximum(t_low + (t_high - t_low) * value_low / span, t_low), t_high)
