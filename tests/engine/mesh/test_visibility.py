"""Filling what cameras look towards but cannot see: a hollow shell becomes one solid, a hole they see through
stays open, space outside every view is left alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.mesh.cleanup import face_components
from engine.mesh.grid import Grid, InsideFunction, SampledGrid
from engine.mesh.levels import FieldKind, SurfaceLevel
from engine.mesh.mise import sample_mise
from engine.mesh.surface import marching_cubes
from engine.mesh.visibility import fill_unseen

from .analytic import Sphere, Torus, cameras_around

CENTRE = np.array([0.3, -0.2, 1.1])
BOX_HALF = 1.0


def sampled(inside_of: InsideFunction, resolution: int = 48) -> SampledGrid:
    grid = Grid.covering_box(CENTRE - BOX_HALF, CENTRE + BOX_HALF, resolution, multiple_of=2)
    return sample_mise(inside_of, grid, resolution // 2, 1 << 16)


def test_a_hollow_shell_becomes_one_solid_bounded_by_its_outer_wall() -> None:
    # What a trained radiance field looks like: dense in a shell, empty again inside it.
    sphere, inner, outer = Sphere(CENTRE, 0.0), 0.45, 0.6

    def shell(points: np.ndarray) -> np.ndarray:
        radius = sphere.signed_distance(points)
        return np.minimum(radius - inner, outer - radius)

    hollow = sampled(shell)
    before = marching_cubes(hollow)
    assert face_components(before).max() + 1 == 2, "the unfilled shell has an inner and an outer wall"

    filled = fill_unseen(hollow, cameras_around(CENTRE, BOX_HALF, 24))
    after = marching_cubes(filled.sampled)
    assert face_components(after).max() + 1 == 1
    radii = np.linalg.norm(after.vertices - CENTRE, axis=1)
    assert np.abs(radii - outer).max() <= 0.5 * hollow.grid.cell_size + 1e-9
    assert filled.filled_points > 0.8 * (4 / 3 * math.pi * inner**3) / hollow.grid.cell_size**3
    assert filled.sampled.n_queries == hollow.n_queries, "filling asks the field nothing"
    assert after.signed_volume() == pytest.approx(4 / 3 * math.pi * outer**3, rel=0.03)


def test_a_hole_the_cameras_look_through_stays_open() -> None:
    torus = Torus(CENTRE, major=0.5, minor=0.2)
    level = SurfaceLevel(FieldKind.SDF, 0.0)
    solid = sampled(lambda points: level.inside(torus.signed_distance(points)))
    filled = fill_unseen(solid, cameras_around(CENTRE, BOX_HALF, 24))
    # Nothing of the outside is hidden from 24 cameras all round a torus: the mesh is unchanged.
    assert filled.filled_points == 0
    np.testing.assert_array_equal(filled.sampled.values, solid.values)


def test_space_only_behind_the_object_is_filled_when_cameras_see_one_side() -> None:
    # A slab seen only from above: below it is never seen, so it closes down to the box's floor.
    def slab(points: np.ndarray) -> np.ndarray:
        return 0.1 - np.abs(points[:, 2] - CENTRE[2])

    above = [frame for frame in cameras_around(CENTRE, BOX_HALF, 40) if frame.camera_to_world[2][3] > CENTRE[2] + 3.0]
    assert above
    filled = fill_unseen(sampled(slab), above)
    below = filled.sampled.grid.world_points(np.array([[24, 24, 2]]))
    assert below[0, 2] < CENTRE[2] - 0.5
    values = filled.sampled.values
    assert values[24, 24, 2] > 0, "unseen space under the slab is solid"
    assert values[24, 24, 45] < 0, "seen space above it stays empty"


def test_only_space_a_camera_looks_towards_is_filled() -> None:
    # One narrow camera that frames only the shell: behind the shell is filled, the box's corners
    # beside the view keep the field's value (filling them would wall the mesh in along the view's edges).
    sphere, inner, outer = Sphere(CENTRE, 0.0), 0.45, 0.6

    def shell(points: np.ndarray) -> np.ndarray:
        radius = sphere.signed_distance(points)
        return np.minimum(radius - inner, outer - radius)

    (camera,) = cameras_around(CENTRE, 0.4, 1)
    forward = -np.asarray(camera.camera_to_world)[:3, 2]
    hollow = sampled(shell)
    filled = fill_unseen(hollow, [camera])
    grid = hollow.grid

    def value_at(point: np.ndarray) -> float:
        index = np.round((point - grid.origin) / grid.cell_size).astype(int)
        return float(filled.sampled.values[tuple(index)])

    corners = CENTRE + BOX_HALF * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    beside = corners[np.argmin(np.abs((corners - CENTRE) @ forward))]
    assert value_at(CENTRE) > 0, "the hollow is filled"
    assert value_at(CENTRE + 0.85 * forward) > 0, "behind the shell, in view but hidden, is filled"
    assert value_at(CENTRE - 0.85 * forward) < 0, "in front of the shell stays empty"
    assert value_at(beside) < 0, "a corner outside the view stays as the field has it"


def test_no_cameras_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one camera"):
        fill_unseen(sampled(lambda points: -np.ones(len(points))), [])
