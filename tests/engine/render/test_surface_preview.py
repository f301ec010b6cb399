"""The shaded surface picture of an analytic sphere, as an SDF and as an occupancy: where the rays hit, how
far, and which way the shade falls."""

from __future__ import annotations

import math

import pytest
import torch

from engine.render.samplers import ray_box_intersection
from engine.render.surface_preview import shade_surface, skip_empty_space, sphere_trace, tetrahedral_normals
from engine.render.surfaces import find_surface

CENTRE = torch.tensor([0.5, 0.5, 0.5])
RADIUS = 0.25
SIDE = 48


def sphere_sdf(points: torch.Tensor) -> torch.Tensor:
    return (points - CENTRE).norm(dim=-1) - RADIUS


def sphere_minus_logit(points: torch.Tensor) -> torch.Tensor:
    # an occupancy network's logit, positive inside: steep and not a distance (20 per unit), negated
    return -20.0 * (RADIUS - (points - CENTRE).norm(dim=-1))


def camera_rays() -> tuple[torch.Tensor, torch.Tensor]:
    """A pinhole camera at (0.5, 0.5, 2) looking down -Z at the cube, 40 degrees across."""
    half = math.tan(math.radians(20.0))
    axis = (torch.arange(SIDE) + 0.5) / SIDE * 2.0 - 1.0
    y, x = torch.meshgrid(-axis * half, axis * half, indexing="ij")
    directions = torch.stack([x, y, -torch.ones_like(x)], dim=-1).reshape(-1, 3)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = torch.tensor([0.5, 0.5, 2.0]).expand_as(directions)
    return origins, directions


def analytic_hits(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    offset = origins - CENTRE
    b = (offset * directions).sum(-1)
    discriminant = b**2 - ((offset**2).sum(-1) - RADIUS**2)
    hit = discriminant > 0
    return hit, -b - discriminant.clamp(min=0).sqrt()


@pytest.mark.parametrize(
    ("outside_fn", "is_distance"), [(sphere_sdf, True), (sphere_minus_logit, False)], ids=["sdf", "occupancy"]
)
def test_a_sphere_is_hit_where_and_as_far_as_it_is(outside_fn, is_distance: bool) -> None:  # type: ignore[no-untyped-def]
    origins, directions = camera_rays()
    image = shade_surface(outside_fn, origins, directions, torch.tensor([0.0, 1.0, 0.0]), is_distance=is_distance)
    hit, t = analytic_hits(origins, directions)
    # only rays grazing the silhouette may disagree (the march steps over a sliver thinner than a step)
    assert (image.hit != hit).float().mean() < 0.01
    both = image.hit & hit
    assert both.sum() > 0.3 * hit.sum()
    # sphere tracing stops within its epsilon (5e-4) of the surface: further than that along a grazing ray
    assert (image.t[both] - t[both]).abs().max() < (5e-3 if is_distance else 1e-3)
    assert (image.t[both] - t[both]).abs().median() < 1e-3
    assert (image.shade[~image.hit] == 0).all() and (image.t[~image.hit] == 0).all()


def test_faces_turned_to_the_camera_and_its_light_are_brighter() -> None:
    origins, directions = camera_rays()
    image = shade_surface(sphere_sdf, origins, directions, camera_up=torch.tensor([0.0, 1.0, 0.0]))
    shade = image.shade[:, 0].view(SIDE, SIDE)
    middle = SIDE // 2
    assert shade[middle, middle] > shade[middle, middle - 10] > 0.0  # the centre faces the camera
    assert shade[middle - 8, middle] > shade[middle + 8, middle]  # the key light is above the camera
    assert torch.allclose(image.shade[:, 0], image.shade[:, 2])  # grey


def test_tetrahedral_normals_point_outwards() -> None:
    directions = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    points = CENTRE + RADIUS * directions
    normals = tetrahedral_normals(sphere_sdf, points, 1e-3)
    assert torch.allclose(normals, directions, atol=5e-3)  # first order: off by about epsilon times the curvature


def counting(fn):  # type: ignore[no-untyped-def]
    calls = [0]

    def counted(points: torch.Tensor) -> torch.Tensor:
        calls[0] += points.shape[0]
        return fn(points)

    return counted, calls


def test_sphere_tracing_asks_few_points_and_survives_a_field_steeper_than_a_distance() -> None:
    origins, directions = camera_rays()
    t_near, t_far = ray_box_intersection(origins, directions)
    counted, calls = counting(sphere_sdf)
    hits = sphere_trace(counted, origins, directions, t_near, t_far)
    truth, t = analytic_hits(origins, directions)
    assert (hits.hit != truth).float().mean() < 0.01
    assert calls[0] < 25 * origins.shape[0]  # uniform marching would ask 32 or more per ray
    # 1.5 times the distance (an unfinished fit): steps overshoot into the sphere, the secant brings them back
    steep = sphere_trace(lambda p: 1.5 * sphere_sdf(p), origins, directions, t_near, t_far, step_scale=1.0)
    assert (steep.hit == truth).all() and (steep.t[truth] - t[truth]).abs().max() < 5e-3


def test_an_occupancy_is_marched_only_near_its_surface() -> None:
    origins, directions = camera_rays()
    t_near, t_far = ray_box_intersection(origins, directions)
    # a trained network's logit goes from confidently outside to inside over a few percent of the box
    steep = lambda p: 4.0 * sphere_minus_logit(p)  # noqa: E731
    counted, calls = counting(steep)
    near_surface = skip_empty_space(counted, origins.device)
    lattice_calls = calls[0]
    skipped = find_surface(near_surface, origins, directions, t_near, t_far, n_steps=32, secant_steps=4)
    full = find_surface(steep, origins, directions, t_near, t_far, n_steps=32, secant_steps=4)
    assert (skipped.hit == full.hit).all() and torch.allclose(skipped.t[full.hit], full.t[full.hit])
    assert lattice_calls == 17**3 and calls[0] - lattice_calls < 0.5 * 36 * origins.shape[0]
