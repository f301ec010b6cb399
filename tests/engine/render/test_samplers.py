"""Samplers: box clipping, stratified bins, inverse-CDF sampling, marching and compaction."""

from __future__ import annotations

import pytest
import torch

from engine.render.samplers import (
    compact_samples,
    march_samples,
    ray_box_intersection,
    sample_pdf,
    stratified_samples,
)


def test_ray_box_intersection() -> None:
    origins = torch.tensor([[0.5, 0.5, -1.0], [0.5, 0.5, 0.5], [2.0, 2.0, -1.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    t_near, t_far = ray_box_intersection(origins, directions)
    # enters the unit cube at z = 0 (t = 1), leaves at z = 1 (t = 2); starts inside (t_near clamped to 0);
    # misses (t_far == t_near)
    assert t_near.tolist() == pytest.approx([1.0, 0.0, t_near[2].item()])
    assert t_far[:2].tolist() == pytest.approx([2.0, 0.5])
    assert t_far[2] == t_near[2]


def test_stratified_samples_one_per_bin() -> None:
    samples = stratified_samples(torch.tensor([2.0]), torch.tensor([4.0]), 4, jitter=False)
    assert samples.t.tolist() == [pytest.approx([2.25, 2.75, 3.25, 3.75])]
    assert samples.deltas.sum().item() == pytest.approx(2.0)
    jittered = stratified_samples(torch.zeros(100), torch.ones(100), 4, jitter=True, generator=torch.Generator())
    bins = (jittered.t * 4).floor()
    assert torch.equal(bins, torch.arange(4.0).expand(100, 4))


def test_sample_pdf_follows_the_weights() -> None:
    edges = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    weights = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    t = sample_pdf(edges, weights, 64, jitter=True, generator=torch.Generator().manual_seed(0))
    # all the mass is in bin [2, 3]: (almost) every sample must land there, sorted
    inside = ((t >= 2.0) & (t <= 3.0)).float().mean()
    assert inside > 0.95
    assert torch.all(t[:, 1:] >= t[:, :-1])


def test_march_and_compact() -> None:
    samples = march_samples(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.25]), 0.25, jitter=False)
    assert samples.t[0].tolist() == pytest.approx([0.125, 0.375, 0.625, 0.875])
    assert samples.valid is not None
    assert samples.valid.sum(dim=1).tolist() == [4, 1]
    samples.valid[0, 1] = False  # an empty cell, say
    compact = compact_samples(samples)
    assert compact.t.shape == (2, 3)
    assert compact.t[0].tolist() == pytest.approx([0.125, 0.625, 0.875])
    assert compact.valid is not None and compact.valid[1].tolist() == [True, False, False]
