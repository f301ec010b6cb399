"""The sampling lattice that MISE and the dense path fill, and batched field queries. numpy only."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A field seen through its surface level: world points (n, 3) -> inside-ness (n,), positive
# inside the surface, negative outside, zero on it (see engine/mesh/levels.py).
InsideFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Grid:
    """A vertex-centred lattice of cubic cells in world units.

    ``cells`` per axis (nx, ny, nz); the lattice has (nx + 1, ny + 1, nz + 1) points, point
    (i, j, k) at ``origin + (i, j, k) * cell_size``.
    """

    origin: np.ndarray
    cell_size: float
    cells: tuple[int, int, int]

    @classmethod
    def covering_box(cls, minimum: np.ndarray, maximum: np.ndarray, resolution: int, multiple_of: int = 1) -> Grid:
        """Cubic cells, ``resolution`` of them along the box's longest side.

        Every axis gets a cell count that is a multiple of ``multiple_of`` (MISE halves cells
        ``log2(multiple_of)`` times), so the lattice may reach slightly past a short side;
        it stays centred on the box.
        """
        minimum = np.asarray(minimum, dtype=np.float64)
        maximum = np.asarray(maximum, dtype=np.float64)
        extent = maximum - minimum
        if minimum.shape != (3,) or maximum.shape != (3,) or not np.all(extent > 0):
            raise ValueError(f"scene box must have minimum < maximum on every axis, got {minimum} .. {maximum}")
        if resolution < 1 or resolution % multiple_of:
            raise ValueError(f"resolution {resolution} must be a positive multiple of {multiple_of}")
        cell_size = float(extent.max()) / resolution
        cells = tuple(math.ceil(float(axis) / cell_size / multiple_of - 1e-9) * multiple_of for axis in extent)
        covered = np.asarray(cells, dtype=np.float64) * cell_size
        origin = minimum + 0.5 * (extent - covered)
        return cls(origin=origin, cell_size=cell_size, cells=(cells[0], cells[1], cells[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of lattice points per axis."""
        return (self.cells[0] + 1, self.cells[1] + 1, self.cells[2] + 1)

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    def world_points(self, indices: np.ndarray) -> np.ndarray:
        """Lattice indices (n, 3) int -> world positions (n, 3) float64."""
        return self.origin + indices.astype(np.float64) * self.cell_size


def query_in_batches(inside: InsideFunction, points: np.ndarray, batch_points: int) -> np.ndarray:
    """``inside`` over points (n, 3) in batches of at most ``batch_points``; returns (n,) float32."""
    if batch_points < 1:
        raise ValueError(f"batch_points must be at least 1, got {batch_points}")
    values = np.empty(len(points), dtype=np.float32)
    for start in range(0, len(points), batch_points):
        batch = points[start : start + batch_points]
        batch_values = np.asarray(inside(batch), dtype=np.float32).reshape(-1)
        if batch_values.shape != (len(batch),):
            raise ValueError(f"field returned {batch_values.shape[0]} values for {len(batch)} points")
        values[start : start + len(batch)] = batch_values
    if not np.all(np.isfinite(values)):
        raise ValueError(f"field returned {int((~np.isfinite(values)).sum())} non-finite values (NaN or inf)")
    return values


@dataclass(frozen=True)
class SampledGrid:
    """Inside-ness on every lattice point of ``grid``: (nx + 1, ny + 1, nz + 1) float32.

    ``n_queries`` counts the points the field was actually asked about; the rest were
    filled by interpolation (MISE) and are only trusted to have the right sign.
    """

    grid: Grid
    values: np.ndarray
    n_queries: int


# Inside-ness of the lattice layer added around a surface field's box: far outside, so marching cubes puts
# the closing faces on the box itself (a vertex sits at v / (v - pad) of the way to the pad point).
OUTSIDE_PAD = -1e6


def pad_outside(sampled: SampledGrid) -> SampledGrid:
    """``sampled`` with one more layer of lattice points on every side counted as outside (Occupancy
    Networks' padding): a surface the box cuts is closed by faces on the box, so meshes are watertight."""
    grid = sampled.grid
    values = np.pad(sampled.values, 1, mode="constant", constant_values=np.float32(OUTSIDE_PAD))
    padded = Grid(
        origin=grid.origin - grid.cell_size,
        cell_size=grid.cell_size,
        cells=(grid.cells[0] + 2, grid.cells[1] + 2, grid.cells[2] + 2),
    )
    return SampledGrid(grid=padded, values=values, n_queries=sampled.n_queries)
