"""The shape methods' losses against exact functions and hand-worked numbers, and DeepSDF's code fitting."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from engine.fields.deepsdf import SdfDecoder, clamped_l1, fit_code
from engine.fields.igr import GeometricMlp, eikonal_samples, igr_loss
from engine.fields.onet import ConditionalBatchNorm, ConditionalBatchNormDecoder, kl_to_standard_normal, occupancy_bce
from engine.methods.onet import frequencies_for


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sphere_points(count: int, radius: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    directions = torch.randn(count, 3, generator=generator)
    normals = directions / directions.norm(dim=-1, keepdim=True)
    return radius * normals, normals


def test_igr_loss_is_zero_for_the_exact_sdf_of_a_sphere() -> None:
    generator = torch.Generator().manual_seed(0)
    surface, normals = _sphere_points(512, 0.6, generator)
    samples = eikonal_samples(surface, torch.full((512,), 0.05), 0.125, generator)

    def sphere(points: torch.Tensor) -> torch.Tensor:
        return points.norm(dim=-1) - 0.6

    loss, parts = igr_loss(sphere, surface, normals, samples, eikonal_weight=0.1, normal_weight=1.0)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-5)
    assert set(parts) == {"surface", "normal", "eikonal"}

    # the same surface, but twice as steep and with inward normals: every term says so
    def steep(points: torch.Tensor) -> torch.Tensor:
        return 2.0 * (points.norm(dim=-1) - 0.6)

    _, wrong = igr_loss(steep, surface, -normals, samples, eikonal_weight=0.1, normal_weight=1.0)
    assert float(wrong["surface"]) == pytest.approx(0.0, abs=1e-5)
    assert float(wrong["eikonal"]) == pytest.approx(1.0, abs=1e-4)  # (|grad| - 1)^2 = (2 - 1)^2
    assert float(wrong["normal"]) == pytest.approx(3.0, abs=1e-4)  # |2 n - (-n)| = 3


def test_geometric_initialisation_starts_as_a_sphere() -> None:
    """Negative near the centre, positive far out, growing with the radius, with or without Fourier inputs."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    for frequencies in (0, 4):
        network = GeometricMlp(128, 4, 2, beta=100.0, radius=0.5, frequencies=frequencies)
        directions, _ = _sphere_points(512, 1.0, generator)
        near, far = network(0.1 * directions).detach(), network(0.95 * directions).detach()
        assert (near < 0).all() and (far > 0).all()
        radii = torch.linspace(0.05, 1.0, 20)
        along = network(radii[:, None] * directions[0]).detach()
        assert torch.corrcoef(torch.stack([along, radii]))[0, 1] > 0.95


def test_onet_bce_and_kl_match_hand_computed_values() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    occupancy = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # per point: -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2); -log(1 - sigmoid(-1)) =
    # log(1 + e^-1); -log sigmoid(3) = log(1 + e^-3); summed per shape, averaged over the two shapes
    expected = (math.log(2) + math.log(1 + math.e**2) + math.log(1 + math.e**-1) + math.log(1 + math.e**-3)) / 2
    assert float(occupancy_bce(logits, occupancy)) == pytest.approx(expected, rel=1e-6)

    mean = torch.tensor([[0.0, 1.0], [0.5, 0.0]])
    log_std = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s: 0, 1/2 for the first shape; 1/8, 3/2 - log 2
    expected_kl = (0.0 + 0.5 + 0.125 + (1.5 - math.log(2.0))) / 2
    assert float(kl_to_standard_normal(mean, log_std)) == pytest.approx(expected_kl, rel=1e-6)


def test_onet_frequencies_for_auto_and_given_settings() -> None:
    assert frequencies_for(-1, 1) == 4 and frequencies_for(-1, 60) == 0
    assert frequencies_for(0, 1) == 0 and frequencies_for(6, 60) == 6  # a number given is a number used
    with pytest.raises(ValueError, match="'encoding_frequencies' must be -1 \\(auto\\) or >= 0, got -2"):
        frequencies_for(-2, 1)


def test_conditional_batch_norm_normalises_over_the_batch_then_scales_and_shifts_by_the_code() -> None:
    torch.manual_seed(0)
    norm = ConditionalBatchNorm(code_size=2, width=3)
    features = torch.randn(4, 50, 3) * 5.0 + 2.0
    code = torch.randn(4, 2)
    # at the start: scale 1, shift 0 for every code, so plain batch norm: mean 0, std 1 over all 200 points
    out = norm(features, code).detach()
    assert torch.allclose(out.mean(dim=(0, 1)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.reshape(-1, 3).var(dim=0, unbiased=False), torch.ones(3), atol=1e-3)
    # scale = 1 + code[0], shift = code[1] per feature: shape b's output is (1 + c0) * x + c1
    with torch.no_grad():
        norm.fc_scale.weight.zero_()
        norm.fc_scale.weight[:, 0] = 1.0
        norm.fc_shift.weight.zero_()
        norm.fc_shift.weight[:, 1] = 1.0
    shaped = norm(features, code).detach()
    expected = (1.0 + code[:, 0, None, None]) * out + code[:, 1, None, None]
    assert torch.allclose(shaped, expected, atol=1e-4)


def test_cbatchnorm_decoder_in_eval_mode_answers_a_shape_alone_as_in_any_batch() -> None:
    """Training normalises by the batch's statistics; queries (one shape, eval mode) by the running ones, so a
    shape's field does not depend on which other shapes or points come with it."""
    torch.manual_seed(0)
    decoder = ConditionalBatchNormDecoder(width=16, blocks=2, code_size=4, latent_size=0, frequencies=2)
    points, codes = torch.rand(3, 64, 3) * 2 - 1, torch.randn(3, 4)
    decoder.train()
    for _ in range(3):  # running statistics that are not the initial (0, 1)
        decoder(points, codes)
    decoder.eval()
    with torch.no_grad():
        together = decoder(points, codes)
        alone = decoder(points[1:2, :10], codes[1:2])
    assert torch.allclose(alone, together[1:2, :10], atol=1e-5)
    decoder.train()
    with torch.no_grad():  # batch statistics: a different answer for the same shape in another batch
        assert not torch.allclose(decoder(points[1:2, :10], codes[1:2]), together[1:2, :10], atol=1e-3)


def test_clamped_l1_ignores_errors_beyond_the_clamp() -> None:
    predicted = torch.tensor([0.5, 0.05, -0.2])
    sdf = torch.tensor([0.3, 0.0, -0.05])
    # clamped to 0.1: |0.1 - 0.1| = 0, |0.05 - 0| = 0.05, |-0.1 + 0.05| = 0.05
    assert float(clamped_l1(predicted, sdf, 0.1)) == pytest.approx(0.1 / 3, rel=1e-6)


def _near_sphere(count: int, radius: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSDF-style samples: points near the sphere (where the clamped loss has gradients) and their SDF."""
    surface, _ = _sphere_points(count, radius, generator)
    points = surface + 0.05 * torch.randn(count, 3, generator=generator)
    return points, points.norm(dim=-1) - radius


def test_deepsdf_code_fitting_lowers_the_loss_on_a_held_out_shape() -> None:
    """A decoder trained on spheres of two radii, with their codes; a code fitted to a held-out radius."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    decoder = SdfDecoder(latent_size=4, width=32, layers=3, skip_layer=2, dropout=0.0)
    codes = torch.nn.Parameter(torch.randn(2, 4) * 0.01)
    optimizer = torch.optim.Adam([*decoder.parameters(), codes], lr=5e-3)
    for _ in range(300):
        samples = [_near_sphere(256, radius, generator) for radius in (0.3, 0.7)]
        points = torch.cat([points for points, _ in samples])
        sdf = torch.cat([sdf for _, sdf in samples])
        predicted = decoder(codes.repeat_interleave(256, dim=0), points)
        loss = clamped_l1(predicted, sdf, 0.1) + 1e-4 * codes.pow(2).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out, held_out_sdf = _near_sphere(2048, 0.6, generator)
    code, losses = fit_code(decoder, held_out, held_out_sdf, 4, steps=150, learning_rate=1e-2, generator=generator)
    assert code.shape == (4,)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    # the decoder stays as it was and trainable: only the code moved
    assert all(parameter.requires_grad for parameter in decoder.parameters())
