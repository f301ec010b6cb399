"""Volume compositing against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from engine.render.volume import (
    accumulated_opacity,
    blend_background,
    compositing_weights,
    expected_depth,
    transmittance,
    volume_render,
)


def test_weights_of_three_samples_by_hand() -> None:
    # sigma * delta = ln 2, ln 4, ln 2, so alpha = 1 - e^(-sigma delta) = 1/2, 3/4, 1/2.
    densities = torch.tensor([[math.log(2.0) / 0.5, math.log(4.0) / 0.25, math.log(2.0) / 1.0]])
    deltas = torch.tensor([[0.5, 0.25, 1.0]])
    # T_1 = 1 (nothing in front); T_2 = 1 - 1/2 = 1/2; T_3 = 1/2 * (1 - 3/4) = 1/8
    assert torch.allclose(transmittance(densities, deltas), torch.tensor([[1.0, 0.5, 0.125]]))
    # w_i = T_i alpha_i = 1 * 1/2, 1/2 * 3/4, 1/8 * 1/2
    weights = compositing_weights(densities, deltas)
    assert torch.allclose(weights, torch.tensor([[0.5, 0.375, 0.0625]]))
    # opacity = 1 - prod(1 - alpha) = 1 - 1/2 * 1/4 * 1/2 = 15/16
    assert accumulated_opacity(weights).item() == pytest.approx(15.0 / 16.0)
    # depth = sum w t / opacity = (0.5 * 1 + 0.375 * 2 + 0.0625 * 3) / (15/16) = 1.4375 / 0.9375
    depth = expected_depth(weights, torch.tensor([[1.0, 2.0, 3.0]]))
    assert depth.item() == pytest.approx(1.4375 / 0.9375)


def test_empty_ray_is_background_and_opaque_sample_hides_the_rest() -> None:
    densities = torch.tensor([[0.0, 0.0], [1e4, 5.0]])
    deltas = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    weights = compositing_weights(densities, deltas)
    # ray 0: nothing there, so no weight anywhere and the background shows fully
    assert torch.equal(weights[0], torch.zeros(2))
    # ray 1: alpha_1 = 1 - e^-10000 = 1, so T_2 = 0 and the second sample is hidden
    assert weights[1].tolist() == pytest.approx([1.0, 0.0])
    colours = torch.tensor([[[0.2, 0.4, 0.6], [0.9, 0.9, 0.9]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    rgb = (weights[..., None] * colours).sum(dim=1)
    background = torch.tensor([0.0, 0.0, 1.0])
    blended = blend_background(rgb, accumulated_opacity(weights), background)
    assert blended.tolist() == [pytest.approx([0.0, 0.0, 1.0]), pytest.approx([1.0, 0.0, 0.0])]
    assert expected_depth(weights, torch.tensor([[1.0, 2.0], [1.0, 2.0]])).tolist() == pytest.approx([0.0, 1.0])


def test_volume_render_skips_invalid_samples() -> None:
    # a constant field of density ln 2 per unit and colour (1, 0.5, 0): each unit segment has alpha 1/2
    calls = []

    def field(points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(points.shape[0])
        return torch.full((points.shape[0],), math.log(2.0)), torch.tensor([1.0, 0.5, 0.0]).expand(len(points), 3)

    origins = torch.zeros(2, 3)
    directions = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t = torch.tensor([[0.5, 1.5, 2.5], [0.5, 1.5, 2.5]])
    valid = torch.tensor([[True, True, False], [False, False, False]])
    rendered = volume_render(field, origins, directions, t, torch.ones_like(t), valid)
    assert calls == [2]  # only the two valid samples reach the field
    # ray 0: weights 1/2 and 1/4 (the third sample is invalid), opacity 3/4, depth (0.5/2 + 1.5/4) / (3/4)
    assert rendered.weights[0].tolist() == pytest.approx([0.5, 0.25, 0.0])
    assert rendered.opacity.tolist() == pytest.approx([0.75, 0.0])
    assert rendered.rgb[0].tolist() == pytest.approx([0.75, 0.375, 0.0])
    assert rendered.depth[0].item() == pytest.approx((0.25 + 0.375) / 0.75)
    assert torch.isfinite(rendered.depth).all()


def test_mismatched_shapes_are_named() -> None:
    with pytest.raises(ValueError, match=r"densities \(1, 3\) and deltas \(1, 2\)"):
        compositing_weights(torch.ones(1, 3), torch.ones(1, 2))
