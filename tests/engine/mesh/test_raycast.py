"""The grid ray caster against an analytic sphere and against triangles far larger than its cells."""

from __future__ import annotations

import pytest
import torch

from engine.mesh.raycast import MeshRaycaster
from tests.engine.sphere_dataset import icosphere

pytestmark = pytest.mark.usefixtures("one_thread")

RADIUS = 0.5


def sphere_hits(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic first hits of the sphere at the origin: hit (n,), t (n,) in units of the direction's length."""
    a = (directions * directions).sum(1)
    half_b = (origins * directions).sum(1)
    c = (origins * origins).sum(1) - RADIUS**2
    discriminant = half_b**2 - a * c
    return discriminant > 0, (-half_b - discriminant.clamp(min=0).sqrt()) / a


def test_hits_match_an_analytic_sphere_within_the_meshing_error() -> None:
    vertices, faces = icosphere(4, RADIUS)  # 5120 faces
    caster = MeshRaycaster(torch.tensor(vertices), torch.tensor(faces))
    generator = torch.Generator().manual_seed(0)
    origins = torch.randn(4000, 3, generator=generator, dtype=torch.float64)
    origins = 1.5 * origins / origins.norm(dim=1, keepdim=True)
    targets = 0.45 * torch.randn(4000, 3, generator=generator, dtype=torch.float64)
    directions = 2.0 * (targets - origins)  # not unit length: t comes back in its units
    hits = caster.intersect(origins.float(), directions.float())
    expected_hit, expected_t = sphere_hits(origins, directions)
    # Only rays clear of the silhouette can be compared: near it the mesh's edge and the sphere's differ.
    clear = expected_hit & (targets.norm(dim=1) < 0.9 * RADIUS)
    assert bool(hits.hit[clear].all())
    assert (hits.hit == expected_hit).float().mean() > 0.995
    both = hits.hit & expected_hit & clear
    # The inscribed mesh lies between the sphere and its faces' closest planes: every hit point does too, and
    # it lies behind the sphere's own hit along the ray.
    corners = torch.tensor(vertices)[torch.tensor(faces)]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    plane_distance = ((corners[:, 0] * normals).sum(1) / normals.norm(dim=1)).abs()
    points = origins[both] + directions[both] * hits.t[both, None].double()
    assert float(points.norm(dim=1).max()) <= RADIUS + 1e-5
    assert float(points.norm(dim=1).min()) >= float(plane_distance.min()) - 1e-5
    assert bool((hits.t[both].double() >= expected_t[both] - 1e-5).all())
    # the face and barycentrics name the same point as t does
    corners = torch.tensor(vertices, dtype=torch.float32)[torch.tensor(faces)[hits.face[both]]]
    from_barycentric = (hits.barycentric[both, :, None] * corners).sum(1)
    along_ray = origins[both].float() + directions[both].float() * hits.t[both, None]
    assert torch.allclose(from_barycentric, along_ray, atol=1e-4)
    assert bool((hits.barycentric[both] >= -1e-5).all())
    # rays pointing away from the sphere miss it, and misses say so
    away = caster.intersect(origins.float(), origins.float())
    assert not bool(away.hit.any()) and bool(torch.isinf(away.t).all()) and bool((away.face == -1).all())


def test_a_few_large_triangles_are_found_from_every_cell() -> None:
    # a square of two triangles tilted across a grid of 32 cells, with a tiny triangle setting the resolution
    vertices = torch.tensor(
        [[-1.0, -1.0, -0.5], [1.0, -1.0, 0.5], [1.0, 1.0, 0.5], [-1.0, 1.0, -0.5], [0.0, 0.0, 2.0], [0.01, 0.0, 2.0]]
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 4]])
    caster = MeshRaycaster(vertices, faces, resolution=32)
    x, y = torch.meshgrid(torch.linspace(-0.95, 0.95, 40), torch.linspace(-0.95, 0.95, 40), indexing="ij")
    origins = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((1600,), -3.0)], dim=1)
    directions = torch.tensor([[0.0, 0.0, 1.0]]).expand(1600, 3)
    hits = caster.intersect(origins, directions)
    assert bool(hits.hit.all())
    plane_z = 0.5 * origins[:, 0]  # z = x / 2 on the square
    assert torch.allclose(origins[:, 2] + hits.t, plane_z, atol=1e-5)
    assert set(hits.face.tolist()) == {0, 1}
