"""The dense path: every lattice point asked. The reference MISE is measured against. numpy only."""

from __future__ import annotations

import numpy as np

from .grid import Grid, InsideFunction, SampledGrid, query_in_batches


def sample_dense(inside: InsideFunction, grid: Grid, batch_points: int) -> SampledGrid:
    """Inside-ness at all (nx + 1) (ny + 1) (nz + 1) lattice points, built batch by batch.

    Points are made per batch from flat indices, so a 257^3 lattice never holds all its
    world positions (400 MB in float64) at once.
    """
    values = np.empty(grid.n_points, dtype=np.float32)
    for start in range(0, grid.n_points, batch_points):
        flat = np.arange(start, min(start + batch_points, grid.n_points))
        indices = np.stack(np.unravel_index(flat, grid.shape), axis=1)
        values[flat] = query_in_batches(inside, grid.world_points(indices), batch_points)
    return SampledGrid(grid=grid, values=values.reshape(grid.shape), n_queries=grid.n_points)
