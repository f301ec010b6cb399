"""DVR's surface point: the root finder and the implicit gradient against finite differences, on analytic fields."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from engine.fields.dvr import implicit_surface_points
from engine.render.surfaces import find_surface

pytestmark = pytest.mark.usefixtures("one_thread")

CENTRE = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)


def sphere_occupancy(radius: torch.Tensor, slope: float = 10.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Occupancy logits of a ball: slope (radius - |p - c|), positive inside."""
    return lambda points: slope * (radius - (points - CENTRE).norm(dim=-1))


def rays() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    origins = torch.tensor(
        [[0.5, 0.5, -0.5], [0.1, 0.2, -0.3], [0.9, 0.7, 1.6], [-0.6, 0.4, 0.55]], dtype=torch.float64
    )
    aims = CENTRE + torch.tensor([[0.0, 0.0, 0.0], [0.05, -0.02, 0.0], [0.03, 0.02, 0.01], [0.0, 0.2, -0.1]])
    directions = aims - origins
    directions = directions / directions.norm(dim=1, keepdim=True)
    return origins, directions, torch.zeros(4, dtype=torch.float64), torch.full((4,), 3.0, dtype=torch.float64)


def outside_of(logit_fn):  # type: ignore[no-untyped-def]
    """DVR marches minus the logit: positive outside."""
    return lambda points: -logit_fn(points)


def analytic_t(origins: torch.Tensor, directions: torch.Tensor, radius: float) -> torch.Tensor:
    offset = origins - CENTRE
    half_b = (offset * directions).sum(1)
    return -half_b - (half_b**2 - (offset * offset).sum(1) + radius**2).sqrt()


def test_marching_and_secant_steps_find_the_first_crossing() -> None:
    origins, directions, t_near, t_far = rays()
    search = find_surface(
        outside_of(sphere_occupancy(torch.tensor(0.3, dtype=torch.float64))),
        origins,
        directions,
        t_near,
        t_far,
        32,
        8,
        from_outside_only=True,
    )
    assert bool(search.hit.all())
    # the logit is linear in |p - c| but not in t; 8 secant steps still land within a micrometre of the unit cube
    assert torch.allclose(search.t, analytic_t(origins, directions, 0.3), atol=1e-6)
    # a ray that starts inside has no crossing to enter by; one that passes by has none at all
    inside = find_surface(
        outside_of(sphere_occupancy(torch.tensor(0.3, dtype=torch.float64))),
        CENTRE[None],
        directions[:1],
        t_near[:1],
        t_far[:1],
        32,
        8,
        from_outside_only=True,
    )
    beside = find_surface(
        outside_of(sphere_occupancy(torch.tensor(0.3, dtype=torch.float64))),
        torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64),
        t_near[:1],
        t_far[:1],
        32,
        8,
        from_outside_only=True,
    )
    assert not bool(inside.hit.any()) and not bool(beside.hit.any())


def test_the_implicit_gradient_of_the_surface_point_matches_finite_differences() -> None:
    origins, directions, t_near, t_far = rays()
    radius = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    search = find_surface(outside_of(sphere_occupancy(radius)), origins, directions, t_near, t_far, 64, 8)
    points, value = implicit_surface_points(sphere_occupancy(radius), origins, directions, search.t)
    # the value is the surface point, and f there is tau (0) up to the root finder's precision
    assert torch.allclose(points, origins + directions * search.t[:, None]) and float(value.detach().abs().max()) < 1e-8
    jacobian = torch.stack(
        [torch.autograd.grad(points[ray, axis], radius, retain_graph=True)[0] for ray in range(4) for axis in range(3)]
    ).view(4, 3)

    def surface_point(value: float) -> torch.Tensor:
        moved = find_surface(
            outside_of(sphere_occupancy(torch.tensor(value, dtype=torch.float64))), origins, directions, t_near, t_far,
            64, 8,
        )  # fmt: skip
        return origins + directions * moved.t[:, None]

    step = 1e-4
    finite = (surface_point(0.3 + step) - surface_point(0.3 - step)) / (2 * step)
    assert torch.allclose(jacobian, finite, atol=5e-5)
    # a bigger ball meets the ray earlier: the point moves back along the ray
    assert bool(((jacobian * directions).sum(1) < 0).all())
