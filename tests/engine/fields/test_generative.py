"""GRAF/GIRAFFE pieces: composition, object space, the prior, R1, and geometry of an untrained GIRAFFE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import layouts, methods
from engine.data.collection_source import prior_from_facts
from engine.fields.base import MethodContext
from engine.fields.generative import (
    box_intervals,
    camera_rays,
    composite,
    object_to_world,
    r1_penalty,
    sample_cameras,
    sample_poses,
    volume_weights,
    world_to_object,
)
from engine.fields.giraffe import GiraffeModel
from tests.engine.tiny_collection import tiny_facts


def test_composition_sums_densities_and_weights_features_by_density() -> None:
    # two fields at two points; point 0: densities 1 and 3, features (1, 0) and (0, 1)
    # -> density 4, feature (1*1 + 3*0, 1*0 + 3*1) / 4 = (0.25, 0.75); point 1: no density anywhere -> 0
    densities = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[5.0, 5.0], [7.0, 7.0]]])
    density, feature = composite(densities, features)
    assert torch.allclose(density, torch.tensor([4.0, 0.0]))
    assert torch.allclose(feature, torch.tensor([[0.25, 0.75], [0.0, 0.0]]))


def test_volume_weights_by_hand() -> None:
    # density 1 on [0, 1), then 2 on [1, inf): alpha_0 = 1 - e^-1, T_1 = e^-1 and alpha_1 = 1 (infinite)
    weights = volume_weights(torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[0.0, 1.0]]]))
    assert torch.allclose(weights, torch.tensor([[[1 - math.exp(-1), math.exp(-1)]]]), atol=1e-6)


def test_object_space_round_trip_and_box() -> None:
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2, 3, 50, 3, generator=generator)
    scale = torch.rand(2, 3, generator=generator) + 0.5
    translation = torch.randn(2, 3, 3, generator=generator)
    rotation = torch.rand(2, 3, generator=generator) * 6.0
    local = world_to_object(points, scale, translation, rotation)
    assert torch.allclose(object_to_world(local, scale, translation, rotation), points, atol=1e-5)
    # the object's centre is the origin of its space; a point one scale along its rotated +X is (1, 0, 0)
    along = translation + scale[..., None] * torch.stack(
        [rotation.cos(), rotation.sin(), torch.zeros_like(rotation)], -1
    )
    corner = world_to_object(along[:, :, None, :], scale, translation, rotation)
    assert torch.allclose(corner[..., 0, :], torch.tensor([1.0, 0.0, 0.0]).expand(2, 3, 3), atol=1e-5)


def test_sampled_poses_and_cameras_lie_within_the_prior() -> None:
    prior = prior_from_facts(tiny_facts())
    poses = sample_poses(prior, 256, 2, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert ((poses.scale >= 0.5) & (poses.scale <= 0.8)).all()
    assert ((poses.translation[..., :2] >= -1.5) & (poses.translation[..., :2] <= 1.5)).all()
    # object_on_plane: the centre is one half-extent above the floor (height 0)
    assert torch.allclose(poses.translation[..., 2], poses.scale)
    assert ((poses.rotation >= 0) & (poses.rotation <= 2 * math.pi)).all()
    counts = poses.present.sum(dim=1)
    assert set(counts.tolist()) == {1, 2}
    cameras = sample_cameras(prior.camera, 64, torch.Generator().manual_seed(2), torch.device("cpu"))
    distance = cameras[:, :3, 3].norm(dim=-1)
    assert ((distance >= 8.0 - 1e-4) & (distance <= 9.0 + 1e-4)).all()
    elevation = torch.rad2deg(torch.asin(cameras[:, 2, 3] / distance))
    assert ((elevation >= 25.0 - 1e-3) & (elevation <= 40.0 + 1e-3)).all()
    # each camera looks down its -Z at look_at (the origin): -Z is the unit vector towards it
    assert torch.allclose(-cameras[:, :3, 2], -cameras[:, :3, 3] / distance[:, None], atol=1e-5)


def test_box_intervals_of_a_ray_through_a_cube() -> None:
    prior = prior_from_facts(tiny_facts())
    camera = sample_cameras(prior.camera, 1, torch.Generator().manual_seed(3), torch.device("cpu"))
    from engine.fields.generative import prior_intrinsics

    intrinsics = prior_intrinsics(prior, 32, 32)
    rays = camera_rays(camera, intrinsics, torch.tensor([[16.0]]), torch.tensor([[16.0]]))  # the centre ray
    distance = float(camera[0, :3, 3].norm())
    entry, exit_, hit = box_intervals(
        rays, torch.tensor([[0.5]]), torch.zeros(1, 1, 3), torch.zeros(1, 1), torch.tensor([[True]]), 0.1, 100.0
    )
    assert bool(hit[0, 0, 0])
    # the ray passes the origin, so the cube [-0.5, 0.5]^3 is entered before and left after it
    assert entry[0, 0, 0] < distance < exit_[0, 0, 0]
    assert float(exit_ - entry) >= 1.0 - 1e-5 and float(exit_ - entry) <= math.sqrt(3.0) + 1e-5


def test_r1_penalty_matches_autograd_on_a_known_function() -> None:
    # D(x) = sum(w * x^2) per sample: dD/dx = 2 w x, so R1 = mean over samples of sum((2 w x)^2)
    weights = torch.tensor([1.0, -2.0, 0.5])
    inputs = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], requires_grad=True)
    logits = (weights * inputs**2).sum(dim=1)
    expected = ((2 * weights * inputs.detach()) ** 2).sum(dim=1).mean()
    penalty = r1_penalty(logits, inputs)
    assert torch.allclose(penalty, expected)
    # differentiable: its gradient w.r.t. the inputs is d/dx mean(sum(4 w^2 x^2)) = 8 w^2 x / n
    (gradient,) = torch.autograd.grad(penalty, inputs)
    assert torch.allclose(gradient, 8 * weights**2 * inputs.detach() / 2)


def _centroid(alpha: np.ndarray) -> np.ndarray:
    rows, columns = np.mgrid[: alpha.shape[0], : alpha.shape[1]] + 0.5
    return np.array([(alpha * columns).sum() / alpha.sum(), (alpha * rows).sum() / alpha.sum()])


def _project(point: tuple[float, float, float], camera: layouts.LayoutCamera) -> np.ndarray:
    local = np.linalg.inv(np.array(camera.camera_to_world)) @ np.array([*point, 1.0])
    return np.array([camera.cx + camera.fl_x * local[0] / -local[2], camera.cy - camera.fl_y * local[1] / -local[2]])


@pytest.fixture(scope="module")
def untrained() -> GiraffeModel:
    torch.manual_seed(0)
    config = methods.get("giraffe").make_config({})
    return GiraffeModel(config, MethodContext(device=torch.device("cpu"), data=tiny_facts()))


def test_alpha_centroid_follows_translation_of_an_untrained_model(untrained: GiraffeModel) -> None:
    layout = untrained.sample_layout(seed=5, n_objects=1)
    base = untrained.render_layout(layout)
    assert base.colour.shape == (32, 32, 3) and base.alphas.shape == (1, 32, 32) and base.depth.shape == (32, 32)
    assert base.alphas[0].sum() > 2.0  # the object is seen before any training (geometry, not learning)
    start = layout.objects[0].translation
    for offset in ((0.4, 0.0, 0.0), (0.0, -0.4, 0.0)):
        moved = layouts.move(layout, "object_0", offset)
        alpha = untrained.render_layout(moved).alphas[0]
        shift = _centroid(alpha) - _centroid(base.alphas[0])
        predicted = _project(moved.objects[0].translation, layout.camera) - _project(start, layout.camera)
        assert np.linalg.norm(predicted) > 1.0  # the move is visible
        assert np.linalg.norm(shift - predicted) < 0.5, (shift, predicted)


def test_objects_alphas_and_depth_are_consistent(untrained: GiraffeModel) -> None:
    layout = untrained.sample_layout(seed=6, n_objects=2)
    rendered = untrained.render_layout(layout)
    assert rendered.alphas.shape == (2, 32, 32)
    assert (rendered.alphas >= 0).all() and (rendered.alphas.sum(axis=0) <= 1.0 + 1e-5).all()
    # removing an object removes its alpha and leaves the other's mask where it was (no occlusion change
    # where they do not overlap)
    alone = untrained.render_layout(layouts.remove_object(layout, "object_0"))
    assert alone.alphas.shape == (1, 32, 32)
    visible = rendered.alphas[1] > 0.2
    overlap = rendered.alphas[0] > 0.01
    assert np.allclose(alone.alphas[0][visible & ~overlap], rendered.alphas[1][visible & ~overlap], atol=0.05)
    # depth is finite and positive, within the camera's distance range
    assert np.isfinite(rendered.depth).all() and (rendered.depth > 0).all()


def test_render_layout_refuses_codes_of_the_wrong_size(untrained: GiraffeModel) -> None:
    layout = untrained.sample_layout(seed=7, n_objects=1)
    smaller = layouts.Layout.from_dict({**layout.to_dict(), "shape_code_size": 3, "objects": [
        {**layout.to_dict()["objects"][0], "shape_code": [0.0, 0.0, 0.0]}]})  # fmt: skip
    with pytest.raises(layouts.LayoutError, match="shape_code_size"):
        untrained.render_layout(smaller)
