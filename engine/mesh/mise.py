"""Multiresolution IsoSurface Extraction (Occupancy Networks, Mescheder et al. 2019). numpy only.

Evaluate the field on a coarse lattice; split every cell whose corners straddle the level
into eight and evaluate only the new corners; repeat until the finest lattice. Points that
were never evaluated take the trilinear interpolation of the coarser lattice, which keeps
their sign wherever the coarse cell was entirely inside or outside, so marching cubes on the
filled lattice sees exactly the surface the refined cells found.

Unlike the original, activity is re-decided on the filled lattice at every level, so a fine
cell next to a refined one whose shared corners turned out to change sign is refined too.
A surface feature smaller than a coarse cell that no coarse corner sees is missed, as in the
original: that is the price of MISE, and the reason the initial resolution is a setting.
"""

from __future__ import annotations

import itertools

import numpy as np

from .grid import Grid, InsideFunction, SampledGrid, query_in_batches


def refinement_steps(resolution: int, initial_resolution: int) -> int:
    """How many times MISE halves the cells to go from ``initial_resolution`` to ``resolution``."""
    if initial_resolution < 1 or resolution < initial_resolution:
        raise ValueError(f"MISE needs 1 <= initial resolution ({initial_resolution}) <= resolution ({resolution})")
    steps = 0
    while initial_resolution << steps < resolution:
        steps += 1
    if initial_resolution << steps != resolution:
        raise ValueError(
            f"MISE resolution {resolution} must be initial resolution {initial_resolution} times a power of two"
        )
    return steps


def initial_resolution_for(resolution: int, coarsest: int = 32) -> int:
    """The initial resolution MISE starts from: ``resolution`` halved while it stays >= ``coarsest``."""
    initial = resolution
    while initial % 2 == 0 and initial // 2 >= coarsest:
        initial //= 2
    return initial


def _upsample_trilinear(coarse: np.ndarray) -> np.ndarray:
    """Lattice values (a+1, b+1, c+1) -> (2a+1, 2b+1, 2c+1); new points are trilinear midpoints."""
    fine_shape = tuple(2 * (size - 1) + 1 for size in coarse.shape)
    fine = np.empty(fine_shape, dtype=coarse.dtype)
    fine[::2, ::2, ::2] = coarse
    fine[1::2, ::2, ::2] = 0.5 * (fine[0:-1:2, ::2, ::2] + fine[2::2, ::2, ::2])
    fine[:, 1::2, ::2] = 0.5 * (fine[:, 0:-1:2, ::2] + fine[:, 2::2, ::2])
    fine[:, :, 1::2] = 0.5 * (fine[:, :, 0:-1:2] + fine[:, :, 2::2])
    return fine


def straddling_cells(values: np.ndarray) -> np.ndarray:
    """Cells whose eight corners are not all on one side of the level: (a, b, c) bool for (a+1, b+1, c+1) values."""
    inside = values > 0
    corners = [
        inside[dx : inside.shape[0] - 1 + dx, dy : inside.shape[1] - 1 + dy, dz : inside.shape[2] - 1 + dz]
        for dx, dy, dz in itertools.product((0, 1), repeat=3)
    ]
    any_inside = np.logical_or.reduce(corners)
    all_inside = np.logical_and.reduce(corners)
    return any_inside & ~all_inside


def sample_mise(inside: InsideFunction, grid: Grid, initial_resolution: int, batch_points: int) -> SampledGrid:
    """Fill ``grid`` with inside-ness by MISE, starting ``initial_resolution`` cells along its longest side.

    ``grid.cells`` must all be multiples of ``2 ** steps`` (use ``Grid.covering_box(...,
    multiple_of=2 ** steps)``).
    """
    steps = refinement_steps(max(grid.cells), initial_resolution)
    stride = 1 << steps
    if any(cells % stride for cells in grid.cells):
        raise ValueError(f"grid cells {grid.cells} must be multiples of {stride} for {steps} MISE steps")

    coarse_shape = tuple(cells // stride + 1 for cells in grid.cells)
    coarse_indices = np.indices(coarse_shape).reshape(3, -1).T
    values = query_in_batches(inside, grid.world_points(coarse_indices * stride), batch_points).reshape(coarse_shape)
    evaluated = np.ones(coarse_shape, dtype=bool)
    n_queries = values.size

    for level in range(steps):
        active = np.argwhere(straddling_cells(values))
        values = _upsample_trilinear(values)
        was_evaluated = evaluated
        evaluated = np.zeros(values.shape, dtype=bool)
        evaluated[::2, ::2, ::2] = was_evaluated
        # The 27 lattice points of each split cell; those not known yet are asked for.
        wanted = np.zeros(values.shape, dtype=bool)
        for offset in itertools.product((0, 1, 2), repeat=3):
            corner = 2 * active + np.asarray(offset)
            wanted[corner[:, 0], corner[:, 1], corner[:, 2]] = True
        new_indices = np.argwhere(wanted & ~evaluated)
        if len(new_indices):
            level_stride = stride >> (level + 1)
            new_values = query_in_batches(inside, grid.world_points(new_indices * level_stride), batch_points)
            values[new_indices[:, 0], new_indices[:, 1], new_indices[:, 2]] = new_values
            evaluated[new_indices[:, 0], new_indices[:, 1], new_indices[:, 2]] = True
            n_queries += len(new_indices)

    return SampledGrid(grid=grid, values=values, n_queries=n_queries)
