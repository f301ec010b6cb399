"""NeuS and UNISURF fields: the sphere they start from, their two kinds of gradient, their losses."""

from __future__ import annotations

import pytest
import torch

from engine.fields.base import MethodContext
from engine.fields.neus import NeusModel, SurfaceField, eikonal_loss
from engine.fields.unisurf import UnisurfModel, interval_samples
from engine.methods.neus import NeusConfig
from engine.methods.unisurf import UnisurfConfig

TINY = {"levels": 4, "log2_table_size": 12, "base_resolution": 4}


def test_eikonal_loss_is_zero_for_an_exact_sphere_sdf() -> None:
    points = torch.rand(200, 3, generator=torch.Generator().manual_seed(0))
    points.requires_grad_(True)
    sdf = (points - 0.5).norm(dim=-1) - 0.3
    (gradient,) = torch.autograd.grad(sdf.sum(), points)
    assert float(eikonal_loss(gradient)) < 1e-10
    assert float(eikonal_loss(2.0 * gradient)) == pytest.approx(1.0)  # |grad| = 2: (2 - 1)^2


@pytest.mark.parametrize("normals", ["analytic", "autograd", "finite"])
def test_a_new_neus_field_is_the_sphere_and_its_eikonal_loss_vanishes(normals: str) -> None:
    field = SurfaceField(NeusConfig(normals=normals, sphere_radius=0.3, **TINY), finest_resolution=32)
    points = 0.2 + 0.6 * torch.rand(300, 3, generator=torch.Generator().manual_seed(1))
    geometry = field.geometry(points, gradient=True)
    expected = (points - 0.5).norm(dim=-1) - 0.3
    assert torch.allclose(geometry.scalar, expected, atol=1e-5)
    assert geometry.gradient is not None
    # central differences of |x - c| err by O(h^2 / r) at step h = 0.5 / 32: a few 1e-6 after squaring
    assert float(eikonal_loss(geometry.gradient).detach()) < (1e-5 if normals == "finite" else 1e-10)


def perturbed_field(normals: str) -> SurfaceField:
    torch.manual_seed(2)
    field = SurfaceField(NeusConfig(normals=normals, finite_difference_cells=0.01, **TINY), finest_resolution=32)
    with torch.no_grad():
        field.encoding.table.normal_(0.0, 0.05)
        field.scalar_mlp[-1].weight.normal_(0.0, 0.1)
    return field


def test_the_written_out_chain_rule_matches_autograd_values_and_parameter_gradients() -> None:
    analytic, autograd = perturbed_field("analytic"), perturbed_field("autograd")
    points = torch.rand(64, 3, generator=torch.Generator().manual_seed(3))
    grads = []
    for field in (analytic, autograd):
        geometry = field.geometry(points, gradient=True, create_graph=True)
        assert geometry.gradient is not None
        loss = eikonal_loss(geometry.gradient) + geometry.scalar.sum()
        grads.append(torch.autograd.grad(loss, [field.encoding.table, field.scalar_mlp[0].weight]))
        grads.append(geometry.gradient.detach())
    assert torch.allclose(grads[1], grads[3], atol=1e-5)  # the SDF gradients
    for mine, reference in zip(grads[0], grads[2], strict=True):  # d eikonal / d parameters
        assert torch.allclose(mine, reference, atol=1e-5, rtol=1e-4)


def test_analytic_and_finite_difference_gradients_agree_on_a_perturbed_field() -> None:
    torch.manual_seed(2)
    analytic = SurfaceField(NeusConfig(normals="analytic", **TINY), finest_resolution=32)
    finite = SurfaceField(NeusConfig(normals="finite", finite_difference_cells=0.01, **TINY), finest_resolution=32)
    with torch.no_grad():
        analytic.encoding.table.normal_(0.0, 0.05)
        analytic.scalar_mlp[-1].weight.normal_(0.0, 0.1)
    finite.load_state_dict(analytic.state_dict())
    # points away from grid-cell faces, where the trilinear gradient jumps
    points = (torch.randint(2, 30, (100, 3)) + 0.5) / 32
    exact = analytic.geometry(points, gradient=True).gradient
    estimated = finite.geometry(points, gradient=True).gradient
    assert exact is not None and estimated is not None
    assert torch.allclose(exact, estimated, atol=2e-3)
    assert float(exact.norm(dim=-1).sub(1.0).abs().max()) > 0.01  # the perturbation did change the gradient


def test_neus_losses_reach_the_sharpness_and_the_field() -> None:
    model = NeusModel(NeusConfig(**TINY), MethodContext(device=torch.device("cpu"), finest_resolution=32))
    origins = torch.tensor([[0.5, 0.5, -0.5]]).repeat(8, 1) + 0.02 * torch.randn(8, 3)
    directions = torch.tensor([[0.0, 0.0, 1.0]]).repeat(8, 1)
    from engine.fields.base import RayBundle

    rays = RayBundle(origins, directions, t_near=torch.full((8,), 0.5), t_far=torch.full((8,), 1.5))
    output = model.render_rays(rays, training=True, generator=None)
    # every ray crosses the initial sphere (radius 0.4) head on: with s = 20 most of its light stops there
    assert bool((output.main.opacity > 0.9).all())
    depth = output.main.depth  # the sphere's near side is at t = 0.5 + (0.5 - 0.4) = 0.6
    assert bool(((depth - 0.6).abs() < 0.1).all())
    output.main.opacity.sum().backward()
    assert model.variance.grad is not None and float(model.variance.grad.abs()) > 0
    # the SDF's output row starts at zero (the exact sphere), so its weights get the first gradient
    assert float(model.field.scalar_mlp[-1].weight.grad[0].abs().sum()) > 0


def test_unisurf_samples_crowd_the_interval_around_the_surface() -> None:
    t_near, t_far = torch.zeros(2), torch.ones(2)
    t = interval_samples(t_near, t_far, torch.tensor([0.6, 1.0]), torch.tensor([True, False]), 0.05, 8, 4, jitter=False)
    # hit: 4 samples in [0, 0.55], 8 in [0.55, 0.65]; no hit: 12 evenly over [0, 1]
    assert bool(((t[0, 4:] >= 0.55) & (t[0, 4:] <= 0.65)).all()) and bool((t[0, :4] <= 0.55).all())
    assert torch.allclose(t[1], (torch.arange(12) + 0.5) / 12)


def test_unisurf_starts_as_a_soft_sphere_and_renders_it() -> None:
    model = UnisurfModel(UnisurfConfig(**TINY), MethodContext(device=torch.device("cpu"), finest_resolution=32))
    centre = torch.tensor([[0.5, 0.5, 0.5]])
    assert float(torch.sigmoid(model.surface(centre))) > 0.99  # logit 30 * 0.4 = 12 at the centre
    assert float(torch.sigmoid(model.surface(torch.tensor([[0.05, 0.05, 0.05]])))) < 0.01  # 30 * (0.4 - 0.78)
    from engine.fields.base import RayBundle

    rays = RayBundle(
        torch.tensor([[0.5, 0.5, -0.5]]), torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([0.5]), torch.tensor([1.5])
    )
    output = model.render_rays(rays, training=False, generator=None)
    assert float(output.main.opacity) > 0.99
    # o = 0.5 on the sphere of radius 0.4 (t = 0.6); alpha = o, so the soft start stops light a little before it
    assert 0.5 < float(output.main.depth) < 0.62
