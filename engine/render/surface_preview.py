"""A shaded picture of an implicit surface (an SDF's zero level, an occupancy's 0.5) along camera rays:
what Fit Surface shows of a shape method while it trains, the look of Blender's Solid shading.

The field is the cost (a shape network takes 5-15 us per point on one CPU core), so each ray asks as few
points as it can. An SDF is sphere-traced: steps of 0.9 times the distance (a field still being fitted is
no exact distance, and a full step would overshoot where its gradient exceeds 1), rays that have stopped
drop out of the batch, and a ray that stepped inside is brought back by secant steps; a sphere takes about
a dozen queries per ray. An occupancy's logit is no distance, so its rays are marched uniformly to the
first crossing and refined by the secant method (UNISURF's root finding, engine/render/surfaces.py), and
only where a coarse lattice of the field (17^3 points) says the surface may be: the rest of the cube is
taken as outside without asking the field, which saves most of the march for an object in its box. The
normal is the scalar's gradient by four tetrahedral differences; the shade is a head light with a key
light above it, over a grey base, with an ambient floor so that faces turned away still read.

Functions take callbacks, never a field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .samplers import ray_box_intersection
from .surfaces import ScalarFn, SurfaceHits, find_surface

BASE_GREY = 0.8
AMBIENT = 0.2
# The key light comes from above the camera (in camera space +Y is up), like a studio light.
KEY_LIGHT_CAMERA = (0.3, 0.6, 0.75)


@dataclass
class SurfaceImage:
    """Per ray: shade (n, 3) in [0, 1] (0 where nothing was hit), t (n,) distance to the hit along the
    ray's direction (0 where none), hit (n,) bool."""

    shade: torch.Tensor
    t: torch.Tensor
    hit: torch.Tensor


@torch.no_grad()
def shade_surface(
    outside_fn: ScalarFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    camera_up: torch.Tensor,
    is_distance: bool = True,
    march_steps: int = 32,
    normal_epsilon: float = 1.0 / 512.0,
) -> SurfaceImage:
    """The first surface crossing of rays in the unit cube [0, 1]^3, shaded by its normal.

    outside_fn: (n, 3) unit-cube points -> (n,) positive outside, non-positive inside: a signed distance in
    unit-cube units when ``is_distance`` (sphere-traced), else any such scalar, e.g. minus an occupancy's
    logit (``march_steps`` uniform steps over the ray's span in the cube, so a wall thinner than the cube's
    side / march_steps may be stepped over); origins, directions (n, 3) in the unit cube's frame, directions
    of unit length; camera_up (3,) the camera's up axis there (places the key light)."""
    t_near, t_far = ray_box_intersection(origins, directions)
    if is_distance:
        hits = sphere_trace(outside_fn, origins, directions, t_near, t_far)
    else:
        near_surface = skip_empty_space(outside_fn, origins.device)
        hits = find_surface(near_surface, origins, directions, t_near, t_far, n_steps=march_steps, secant_steps=4)
    shade = torch.zeros_like(origins)
    t = torch.where(hits.hit, hits.t, torch.zeros_like(hits.t))
    if bool(hits.hit.any()):
        points = origins[hits.hit] + directions[hits.hit] * hits.t[hits.hit, None]
        normals = tetrahedral_normals(outside_fn, points, normal_epsilon)
        view = -directions[hits.hit]
        key = _key_light(view, camera_up.to(view))
        lambert = 0.55 * (normals * view).sum(-1).clamp(min=0.0) + 0.45 * (normals * key).sum(-1).clamp(min=0.0)
        shade[hits.hit] = (BASE_GREY * (AMBIENT + (1.0 - AMBIENT) * lambert))[:, None].expand(-1, 3)
    return SurfaceImage(shade=shade.clamp(0.0, 1.0), t=t, hit=hits.hit)


@torch.no_grad()
def sphere_trace(
    sdf_fn: ScalarFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    max_steps: int = 64,
    step_scale: float = 0.9,
    epsilon: float = 5e-4,
    secant_steps: int = 4,
) -> SurfaceHits:
    """The first zero of a signed distance (positive outside) along rays, by sphere tracing from t_near.

    Only the rays still travelling are evaluated at each step. A ray is hit when its distance falls below
    ``epsilon``; one that stepped past the surface (a negative distance) is refined by ``secant_steps`` of
    regula falsi between its last point outside and the first inside. A ray that starts inside (an
    unfinished field fills the box's face) is a hit at t_near. Returns t (t_far where none) and hit."""
    t = t_near.clone()
    t_outside = t_near.clone()  # the last point known to be outside, and its distance
    value_outside = torch.full_like(t, float("inf"))
    hit = torch.zeros_like(t, dtype=torch.bool)
    crossed = torch.zeros_like(hit)
    active = torch.nonzero(t_far > t_near).squeeze(-1)
    for _ in range(max_steps):
        if active.numel() == 0:
            break
        values = sdf_fn(origins[active] + directions[active] * t[active, None]).float()
        close = values.abs() < epsilon
        inside = (values < 0) & ~close
        hit[active[close]] = True
        first_point = t[active] <= t_near[active]
        hit[active[inside & first_point]] = True
        crossed[active[inside & ~first_point]] = True
        travelling = ~(close | inside)
        moving = active[travelling]
        t_outside[moving], value_outside[moving] = t[moving], values[travelling]
        t[moving] = t[moving] + step_scale * values[travelling]
        active = moving[t[moving] < t_far[moving]]
    refine = torch.nonzero(crossed).squeeze(-1)
    if refine.numel():
        t_low, value_low = t_outside[refine], value_outside[refine]
        t_high = t[refine]
        value_high = sdf_fn(origins[refine] + directions[refine] * t_high[:, None]).float()
        for _ in range(secant_steps):
            span = (value_low - value_high).clamp(min=1e-12)
            t_mid = t_low + (t_high - t_low) * value_low / span
            value_mid = sdf_fn(origins[refine] + directions[refine] * t_mid[:, None]).float()
            outside = value_mid > 0
            t_low, value_low = torch.where(outside, t_mid, t_low), torch.where(outside, value_mid, value_low)
            t_high, value_high = torch.where(outside, t_high, t_mid), torch.where(outside, value_high, value_mid)
        span = (value_low - value_high).clamp(min=1e-12)
        t[refine] = t_low + (t_high - t_low) * value_low / span
        hit[refine] = True
    return SurfaceHits(t=torch.where(hit, t, t_far), hit=hit)


def skip_empty_space(
    outside_fn: ScalarFn, device: torch.device, cells: int = 16, margin: float = 3.0, far_value: float = 10.0
) -> ScalarFn:
    """``outside_fn`` asked only in the cells of a ``cells``^3 lattice over the unit cube that may hold the
    surface: those with a corner whose value is below ``margin`` (for minus a logit: a probability above
    5%), grown by one cell; elsewhere the answer is ``far_value`` (outside) without a query. A surface
    that passes between the lattice's points without bringing any of them near is not seen: a preview's
    price for asking a sixth of the points."""
    axis = torch.linspace(0.0, 1.0, cells + 1, device=device)
    corners = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    near = (outside_fn(corners).float() < margin).view(1, 1, cells + 1, cells + 1, cells + 1)
    # a cell is near when any of its 8 corners is; then one cell more all round
    cell_near = torch.nn.functional.max_pool3d(near.float(), kernel_size=2, stride=1)
    cell_near = torch.nn.functional.max_pool3d(cell_near, kernel_size=3, stride=1, padding=1)[0, 0] > 0

    def near_surface_fn(points: torch.Tensor) -> torch.Tensor:
        index = (points.clamp(0.0, 1.0 - 1e-6) * cells).long()
        asked = cell_near[index[:, 0], index[:, 1], index[:, 2]]
        values = torch.full((points.shape[0],), far_value, device=points.device)
        if bool(asked.any()):
            values[asked] = outside_fn(points[asked]).float()
        return values

    return near_surface_fn


# The corners of a tetrahedron: the gradient from four values instead of central differences' six.
_TETRAHEDRON = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))


def tetrahedral_normals(outside_fn: ScalarFn, points: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Unit outward normals (n, 3): the gradient of ``outside_fn`` by tetrahedral differences,
    sum_k c_k f(p + epsilon c_k) over the corners c_k of a tetrahedron (proportional to the gradient)."""
    corners = torch.tensor(_TETRAHEDRON, device=points.device, dtype=points.dtype)
    probes = points[:, None, :] + corners * epsilon  # (n, 4, 3)
    values = outside_fn(probes.reshape(-1, 3)).float().view(-1, 4)
    gradient = (values[..., None] * corners.float()).sum(dim=1)
    return gradient / gradient.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def _key_light(view: torch.Tensor, camera_up: torch.Tensor) -> torch.Tensor:
    """The key light's direction per hit: towards the camera, tilted towards its up axis and to its right."""
    right = torch.linalg.cross(camera_up.expand_as(view), view)
    right = right / right.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    x, y, z = KEY_LIGHT_CAMERA
    light = x * right + y * camera_up + z * view
    return light / light.norm(dim=-1, keepdim=True).clamp(min=1e-12)
