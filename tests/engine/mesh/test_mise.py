"""MISE against analytic fields: the surface lands where it should, for far fewer queries than dense."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.mesh.dense import sample_dense
from engine.mesh.grid import Grid
from engine.mesh.levels import FieldKind, SurfaceLevel
from engine.mesh.mise import initial_resolution_for, refinement_steps, sample_mise, straddling_cells
from engine.mesh.surface import marching_cubes

from .analytic import Sphere, Torus, occupancy_logits

# Deliberately off-centre, not unit-sized and not cubic, so index-to-world mistakes show.
BOX_MIN = np.array([-1.3, 0.4, -2.0])
BOX_MAX = np.array([1.1, 2.6, 0.1])
SPHERE = Sphere(centre=np.array([-0.1, 1.55, -0.95]), radius=0.8)
TORUS = Torus(centre=np.array([-0.1, 1.5, -0.9]), major=0.7, minor=0.25)
BATCH = 65536


def _grid(resolution: int, initial: int) -> Grid:
    return Grid.covering_box(BOX_MIN, BOX_MAX, resolution, multiple_of=resolution // initial)


def test_refinement_steps_and_initial_resolution() -> None:
    assert refinement_steps(256, 32) == 3
    assert refinement_steps(32, 32) == 0
    assert initial_resolution_for(256) == 32
    assert initial_resolution_for(200) == 50  # 200 -> 100 -> 50; 25 would be below 32
    with pytest.raises(ValueError, match="power of two"):
        refinement_steps(96, 32)


def test_straddling_cells_marks_only_cells_with_both_signs() -> None:
    values = -np.ones((3, 3, 3), dtype=np.float32)
    values[0, 0, 0] = 1.0  # only the corner cell (0, 0, 0) touches it
    active = straddling_cells(values)
    assert active.shape == (2, 2, 2)
    assert active[0, 0, 0] and active.sum() == 1


@pytest.mark.parametrize("shape", ["sphere", "torus"])
@pytest.mark.parametrize("kind", [FieldKind.SDF, FieldKind.OCCUPANCY])
def test_mise_surface_within_half_a_finest_cell(shape: str, kind: FieldKind) -> None:
    solid = SPHERE if shape == "sphere" else TORUS
    grid = _grid(64, 16)
    sharpness = 4.0 / grid.cell_size  # a soft occupancy edge about half a cell wide
    if kind is FieldKind.SDF:
        level = SurfaceLevel(kind, 0.0)

        def field(points: np.ndarray) -> np.ndarray:
            return solid.signed_distance(points)
    else:
        level = SurfaceLevel(kind, 0.5)

        def field(points: np.ndarray) -> np.ndarray:
            return occupancy_logits(solid.signed_distance(points), sharpness)

    sampled = sample_mise(lambda points: level.inside(field(points)), grid, 16, BATCH)
    mesh = marching_cubes(sampled)

    distance = np.abs(solid.signed_distance(mesh.vertices))
    assert distance.max() <= 0.5 * grid.cell_size, f"worst vertex {distance.max() / grid.cell_size:.3f} cells off"
    # The whole surface was found, not a patch of it: right topology and area.
    assert mesh.euler_characteristic() == (2 if shape == "sphere" else 0)
    true_area = 4 * math.pi * SPHERE.radius**2 if shape == "sphere" else 4 * math.pi**2 * TORUS.major * TORUS.minor
    assert mesh.surface_area() == pytest.approx(true_area, rel=0.03)
    assert mesh.signed_volume() > 0, "triangles must face outwards"


def test_occupancy_level_is_a_probability_read_in_logit_space() -> None:
    """p = sigmoid(-s * sdf) = 0.2 where sdf = ln(4) / s: the surface moves out by that much."""
    grid = _grid(64, 16)
    sharpness = 4.0 / grid.cell_size
    level = SurfaceLevel(FieldKind.OCCUPANCY, 0.2)
    sampled = sample_mise(
        lambda points: level.inside(occupancy_logits(SPHERE.signed_distance(points), sharpness)), grid, 16, BATCH
    )
    mesh = marching_cubes(sampled)
    expected_radius = SPHERE.radius + math.log(4.0) / sharpness
    radii = np.linalg.norm(mesh.vertices - SPHERE.centre, axis=1)
    assert np.abs(radii - expected_radius).max() <= 0.5 * grid.cell_size


def test_mise_matches_dense_with_far_fewer_queries() -> None:
    resolution, initial = 128, 16
    grid = _grid(resolution, initial)
    level = SurfaceLevel(FieldKind.SDF, 0.0)

    def inside(points: np.ndarray) -> np.ndarray:
        return level.inside(TORUS.signed_distance(points))

    mise = sample_mise(inside, grid, initial, BATCH)
    dense = sample_dense(inside, grid, BATCH)
    assert dense.n_queries == grid.n_points
    # A torus at 128^3 needs about a tenth of the lattice; 5x is the target at 256^3.
    assert dense.n_queries / mise.n_queries >= 5.0, f"only {dense.n_queries / mise.n_queries:.1f}x fewer queries"
    # Same signs everywhere, hence the same marching-cubes topology, and identical values
    # wherever a cell straddles the surface (those corners were all evaluated).
    np.testing.assert_array_equal(mise.values > 0, dense.values > 0)
    mise_mesh, dense_mesh = marching_cubes(mise), marching_cubes(dense)
    assert mise_mesh.n_faces == dense_mesh.n_faces
    np.testing.assert_allclose(mise_mesh.vertices, dense_mesh.vertices, atol=1e-5 * grid.cell_size * resolution)


def test_grid_covers_a_non_cubic_box_with_cubic_cells() -> None:
    grid = Grid.covering_box(BOX_MIN, BOX_MAX, 64, multiple_of=8)
    assert grid.cell_size == pytest.approx(2.4 / 64)
    assert all(cells % 8 == 0 for cells in grid.cells)
    far_corner = grid.origin + np.asarray(grid.cells) * grid.cell_size
    assert np.all(grid.origin <= BOX_MIN + 1e-9) and np.all(far_corner >= BOX_MAX - 1e-9)
    np.testing.assert_allclose((grid.origin + far_corner) / 2, (BOX_MIN + BOX_MAX) / 2)
    with pytest.raises(ValueError, match="minimum < maximum"):
        Grid.covering_box(BOX_MAX, BOX_MIN, 64)
