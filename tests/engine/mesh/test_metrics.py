"""Chamfer-L1 and F-score on spheres whose distances are known."""

from __future__ import annotations

import numpy as np
import pytest

from engine.mesh.metrics import sample_surface, surface_distances
from engine.mesh.triangle_mesh import TriangleMesh

from .conftest import sphere_mesh

UNIT = sphere_mesh(centre=(0.0, 0.0, 0.0), radius=1.0, resolution=32)


def _scaled(mesh: TriangleMesh, factor: float) -> TriangleMesh:
    return TriangleMesh(mesh.vertices * factor, mesh.faces)


def test_samples_lie_on_the_surface() -> None:
    points = sample_surface(UNIT, 5000, np.random.default_rng(1))
    assert np.abs(np.linalg.norm(points, axis=1) - 1.0).max() < 2.5 / 32  # within a cell of the true sphere


def test_concentric_spheres_are_their_radius_gap_apart() -> None:
    """Radius 1 vs 1.05: every point is 0.05 from the other surface, so Chamfer-L1 is 0.05."""
    distances = surface_distances(_scaled(UNIT, 1.05), UNIT, threshold=0.1, n_points=20_000)
    assert distances.chamfer_l1 == pytest.approx(0.05, abs=0.005)
    assert distances.f_score == 1.0
    tight = surface_distances(_scaled(UNIT, 1.05), UNIT, threshold=0.02, n_points=20_000)
    assert tight.f_score < 0.05  # no point is within 0.02 of the other sphere


def test_identical_meshes_score_perfectly() -> None:
    """Only sampling noise separates them: 20k points on 4 pi are ~0.025 apart, so nearest ~0.0125."""
    distances = surface_distances(UNIT, UNIT, threshold=0.06, n_points=20_000)
    assert distances.f_score > 0.99 and distances.chamfer_l1 < 0.015


def test_normal_consistency_is_one_for_matching_surfaces_and_drops_for_crossed_ones() -> None:
    from engine.mesh.metrics import normal_consistency

    # concentric spheres: the nearest point of the other sphere has the same radial normal
    assert normal_consistency(_scaled(UNIT, 1.05), UNIT, n_points=20_000) > 0.99
    # a square in z = 0 against one in x = 0 crossing it: nearest normals are perpendicular, |cos| = 0
    square = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    floor = TriangleMesh(square, faces)
    wall = TriangleMesh(square[:, [2, 0, 1]], faces)
    assert normal_consistency(floor, wall, n_points=5_000) < 1e-6
