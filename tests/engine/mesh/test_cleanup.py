"""Clean-up: components, floaters, outward orientation (decimation: test_decimate.py)."""

from __future__ import annotations

import numpy as np

from engine.mesh.cleanup import CleanupConfig, clean_mesh, face_components, orient_outward
from engine.mesh.triangle_mesh import TriangleMesh

from .conftest import merge, sphere_mesh

BIG = sphere_mesh(centre=(0.0, 0.0, 0.0), radius=1.0)
MEDIUM = sphere_mesh(centre=(3.0, 0.0, 0.0), radius=0.6)
FLOATER = sphere_mesh(centre=(0.0, 3.0, 0.0), radius=0.05, resolution=4)
SCENE_DIAGONAL = 6.0


def test_components_are_counted() -> None:
    labels = face_components(merge(BIG, MEDIUM, FLOATER))
    assert len(np.unique(labels)) == 3


def test_keep_largest_component_keeps_the_big_sphere() -> None:
    kept = clean_mesh(merge(FLOATER, MEDIUM, BIG), CleanupConfig(keep_largest_components=1), SCENE_DIAGONAL)
    assert kept.n_faces == BIG.n_faces
    np.testing.assert_allclose(kept.bounds()[0], BIG.bounds()[0])


def test_floaters_below_the_size_are_removed() -> None:
    # The floater's diagonal is ~0.17 (2.8% of the scene diagonal); the medium sphere's ~2.1.
    cleaned = clean_mesh(merge(BIG, FLOATER, MEDIUM), CleanupConfig(min_component_size=0.05), SCENE_DIAGONAL)
    assert cleaned.n_faces == BIG.n_faces + MEDIUM.n_faces
    assert len(np.unique(face_components(cleaned))) == 2


def test_inward_facing_components_are_flipped_outward() -> None:
    flipped_big = TriangleMesh(BIG.vertices, BIG.faces[:, [0, 2, 1]], BIG.vertex_colors)
    mixed = merge(flipped_big, MEDIUM)
    assert mixed.signed_volume() < 0
    repaired = orient_outward(mixed)
    assert repaired.signed_volume() > 0
    np.testing.assert_allclose(repaired.signed_volume(), BIG.signed_volume() + MEDIUM.signed_volume())
