"""Hash grid indices and trilinear interpolation against a direct, one-point-at-a-time computation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from engine.encodings.hash_grid import HashGrid, level_resolutions


def direct_encoding(grid: HashGrid, point: list[float]) -> list[float]:
    """The paper's definition written out with python integers, level by level, corner by corner."""
    features = []
    offset = 0
    for level, resolution in enumerate(grid.resolutions):
        rows_in_level = grid.level_rows[level]
        dense = rows_in_level < grid.table_size
        scaled = [coordinate * resolution for coordinate in point]
        low = [min(math.floor(value), resolution - 1) for value in scaled]
        fraction = [value - corner for value, corner in zip(scaled, low, strict=True)]
        level_features = [0.0] * grid.features_per_level
        for dx, dy, dz in itertools.product((0, 1), repeat=3):
            x, y, z = low[0] + dx, low[1] + dy, low[2] + dz
            if dense:
                row = x + y * (resolution + 1) + z * (resolution + 1) ** 2
            else:
                row = ((x * 1) ^ (y * 2654435761) ^ (z * 805459861)) % grid.table_size
            weight = 1.0
            for axis, bit in enumerate((dx, dy, dz)):
                weight *= fraction[axis] if bit else 1.0 - fraction[axis]
            for feature in range(grid.features_per_level):
                level_features[feature] += weight * float(grid.table.detach()[offset + row, feature])
        features.extend(level_features)
        offset += rows_in_level
    return features


def test_levels_grow_geometrically_from_base_to_finest() -> None:
    resolutions = level_resolutions(16, 16, 512)
    assert resolutions[0] == 16 and resolutions[-1] == 512
    # b = exp((ln 512 - ln 16) / 15) = 32^(1/15)
    assert resolutions[5] == math.floor(16 * 32 ** (5 / 15))
    with pytest.raises(ValueError, match="finest 8"):
        level_resolutions(16, 16, 8)


def test_encoding_matches_direct_computation_on_dense_and_hashed_levels() -> None:
    torch.manual_seed(0)
    # a table of 2^10 rows: levels up to 9 cells per side are dense ((9+1)^3 = 1000 rows), finer ones hash
    grid = HashGrid(n_levels=6, features_per_level=2, log2_table_size=10, base_resolution=4, finest_resolution=64)
    assert grid.n_dense_levels >= 1 and grid.n_dense_levels < grid.n_levels
    with torch.no_grad():
        grid.table.uniform_(-1.0, 1.0)
    points = torch.rand(20, 3, dtype=torch.float32)
    points[0] = torch.tensor([1.0, 0.0, 1.0])  # on the cube's boundary: the last cell, fraction 1
    encoded = grid(points)
    assert encoded.shape == (20, 12)
    for index in range(points.shape[0]):
        expected = direct_encoding(grid, points[index].tolist())
        assert encoded[index].tolist() == pytest.approx(expected, abs=1e-5)


def test_lookup_rows_stay_inside_their_level() -> None:
    grid = HashGrid(n_levels=4, log2_table_size=8, base_resolution=2, finest_resolution=40)
    lookup = grid.lookup(torch.rand(500, 3))
    starts = torch.tensor([0, *torch.tensor(grid.level_rows).cumsum(0).tolist()])
    for level in range(grid.n_levels):
        rows = lookup.rows[:, level]
        assert rows.min() >= starts[level] and rows.max() < starts[level + 1]
    assert torch.allclose(lookup.weights.sum(dim=-1), torch.ones(500, 4))


def test_gradient_reaches_only_the_looked_up_rows() -> None:
    grid = HashGrid(n_levels=2, log2_table_size=12, base_resolution=4, finest_resolution=8)
    point = torch.tensor([[0.3, 0.6, 0.2]])
    grid(point).sum().backward()
    assert grid.table.grad is not None
    touched = (grid.table.grad.abs().sum(dim=-1) > 0).nonzero().flatten()
    assert set(touched.tolist()) == set(grid.lookup(point).rows.flatten().tolist())
