"""Surface fields (SDF, occupancy) extract at their own level and close at the box: watertight meshes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.mesh.extract import ExtractSettings, extract_radiance_mesh
from engine.mesh.levels import FieldKind
from engine.mesh.triangle_mesh import TriangleMesh

from .analytic import Sphere, occupancy_logits

BOX_MIN = np.array([0.0, 0.0, 0.0])
BOX_MAX = np.array([2.0, 2.0, 2.0])
# the sphere pokes out of the box's +x face (x up to 2.3): the box cuts it open there
SPHERE = Sphere(centre=np.array([1.5, 1.0, 1.0]), radius=0.8)


class SphereField:
    """An analytic surface field of the kind asked for, coloured red."""

    def __init__(self, kind: FieldKind) -> None:
        self.kind = kind

    def query_surface(self, points_world: np.ndarray) -> np.ndarray:
        distance = SPHERE.signed_distance(points_world)
        return distance if self.kind is FieldKind.SDF else occupancy_logits(distance, 20.0)

    def query_radiance(self, points_world: np.ndarray, view_dirs_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        density = 50.0 / (1.0 + np.exp(np.clip(50.0 * SPHERE.signed_distance(points_world), -50, 50)))
        return density, np.tile([1.0, 0.0, 0.0], (len(points_world), 1))


def edge_use(mesh: TriangleMesh) -> np.ndarray:
    """How many faces use each undirected edge."""
    edges = np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]])
    _, counts = np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)
    return counts


@pytest.mark.parametrize("kind", [FieldKind.SDF, FieldKind.OCCUPANCY])
def test_a_sphere_cut_by_the_box_still_gives_a_watertight_mesh(kind: FieldKind) -> None:
    settings = ExtractSettings(resolution=64, colour=True)
    result = extract_radiance_mesh(SphereField(kind), BOX_MIN, BOX_MAX, settings, batch_points=1 << 16, kind=kind)
    mesh = result.mesh
    assert set(edge_use(mesh).tolist()) == {2}  # every edge shared by exactly two faces: closed
    assert mesh.euler_characteristic() == 2  # one closed genus-0 surface
    # the cut is closed on the box face x = 2 (the padding layer is outside it), not past it
    assert mesh.vertices[:, 0].max() == pytest.approx(2.0, abs=1e-3)
    # the level is the field kind's own: the sphere's radius where the box does not cut it
    inside_box = mesh.vertices[:, 0] < 1.9
    radii = np.linalg.norm(mesh.vertices[inside_box] - SPHERE.centre, axis=1)
    assert np.abs(radii - SPHERE.radius).max() < 0.02
    assert np.allclose(mesh.vertex_colors[:, 0], 1.0, atol=0.02)
