"""NeuS opacity and UNISURF root finding against numbers worked out by hand."""

from __future__ import annotations

import math

import torch

from engine.render.surfaces import find_surface, neus_alpha, neus_section_sdf, weights_from_alpha


def test_neus_alpha_of_a_segment_crossing_the_surface_matches_the_hand_computed_value() -> None:
    # s = 10, f(p_i) = 0.1 (outside), f(p_{i+1}) = -0.1 (inside):
    # Phi(1) = 1 / (1 + e^-1) = 0.731059, Phi(-1) = 0.268941, alpha = (0.731059 - 0.268941) / 0.731059 = 0.632121
    # (which is 1 - e^-1: for a symmetric pair (Phi(a) - Phi(-a)) / Phi(a) = 1 - e^-a)
    alpha = neus_alpha(torch.tensor([0.1]), torch.tensor([-0.1]), 10.0)
    assert abs(float(alpha) - (1.0 - math.exp(-1.0))) < 1e-4


def test_neus_alpha_is_zero_leaving_the_surface_and_near_one_crossing_it_sharply() -> None:
    # f growing along the ray (leaving an inside region): the CDF grows, the ratio is negative, clamped to 0
    assert float(neus_alpha(torch.tensor([-0.1]), torch.tensor([0.1]), 10.0)) == 0.0
    # s = 1000, f from 0.05 to -0.05: Phi(50) ~ 1, Phi(-50) ~ e^-50, alpha = 1 - e^-50 ~ 1
    assert float(neus_alpha(torch.tensor([0.05]), torch.tensor([-0.05]), 1000.0)) > 0.999


def test_neus_section_sdf_uses_the_true_cosine_once_annealed() -> None:
    # a sample at f = 0.2 on a segment of length 0.1 whose ray meets the gradient at cos = -1 (head on):
    # the ends are f -+ (-1) * 0.1 / 2 = 0.25 and 0.15
    start, end = neus_section_sdf(torch.tensor([0.2]), torch.tensor([-1.0]), torch.tensor([0.1]), anneal=1.0)
    assert torch.allclose(start, torch.tensor([0.25])) and torch.allclose(end, torch.tensor([0.15]))
    # before annealing a ray running along the surface (cos = 0) still sees a slope of -1/2
    start, end = neus_section_sdf(torch.tensor([0.2]), torch.tensor([0.0]), torch.tensor([0.1]), anneal=0.0)
    assert torch.allclose(start - end, torch.tensor([0.05]))


def test_weights_from_alpha_compose_front_to_back() -> None:
    # alpha 0.5 then 0.5: w = 0.5 and 0.5 * (1 - 0.5) = 0.25
    weights = weights_from_alpha(torch.tensor([[0.5, 0.5]]))
    assert torch.allclose(weights, torch.tensor([[0.5, 0.25]]), atol=1e-6)


def test_root_finding_lands_on_an_analytic_occupancy_surface() -> None:
    # o(x) = sigmoid(20 (0.3 - |x - c|)): o = 0.5 on the sphere of radius 0.3 around c = (0.5, 0.5, 0.5).
    # A ray along +x at height y = 0.5 + 0.1 from x = 0 meets it at x = 0.5 - sqrt(0.3^2 - 0.1^2) = 0.217157.
    centre = torch.tensor([0.5, 0.5, 0.5])

    def outside(points: torch.Tensor) -> torch.Tensor:
        logit = 20.0 * (0.3 - (points - centre).norm(dim=-1))
        return 0.5 - torch.sigmoid(logit)

    origins = torch.tensor([[0.0, 0.6, 0.5], [0.0, 0.95, 0.5]])  # the second ray passes above the sphere
    directions = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    t_near, t_far = torch.zeros(2), torch.ones(2)
    hits = find_surface(outside, origins, directions, t_near, t_far, n_steps=16, secant_steps=8)
    assert hits.hit.tolist() == [True, False]
    assert abs(float(hits.t[0]) - (0.5 - math.sqrt(0.3**2 - 0.1**2))) < 1e-4
    assert float(hits.t[1]) == 1.0  # no root: t_far
