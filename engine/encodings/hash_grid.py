"""Multiresolution hash encoding (instant-NGP, Mueller et al. 2022), in plain PyTorch.

Level l has a grid of resolution N_l = floor(N_min * b^l) cells per axis, with
b = exp((ln N_max - ln N_min) / (L - 1)). A level whose (N_l + 1)^3 vertices fit into the table
is indexed densely (one entry per vertex, no collisions); finer levels hash the integer vertex
coordinates with the spatial hash h(x) = (x_0 * 1 XOR x_1 * 2654435761 XOR x_2 * 805459861) mod T.
Each level interpolates the 8 corner feature vectors trilinearly; the levels' features are
concatenated. Everything is vectorised over points and levels: no python loop over rays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# The primes of the instant-NGP paper; the first is 1 for better cache coherence along x.
HASH_PRIMES = (1, 2654435761, 805459861)

# The 8 corners of a cell as (dx, dy, dz) in {0, 1}^3, ordered x fastest.
CORNER_OFFSETS = torch.tensor([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=torch.int64)


@dataclass(frozen=True)
class CornerLookup:
    """Where each point reads the table: flat table rows (n, n_levels, 8) and trilinear weights (n, n_levels, 8)."""

    rows: torch.Tensor
    weights: torch.Tensor


def level_resolutions(n_levels: int, base_resolution: int, finest_resolution: int) -> list[int]:
    """Cells per axis of each level, growing geometrically from base to finest."""
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if base_resolution < 1 or finest_resolution < base_resolution:
        raise ValueError(
            f"need 1 <= base_resolution <= finest_resolution, got base {base_resolution}, finest {finest_resolution}"
        )
    if n_levels == 1:
        return [base_resolution]
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return [math.floor(base_resolution * growth**level + 1e-6) for level in range(n_levels)]


class HashGrid(nn.Module):
    """Encodes points in the unit cube [0, 1]^3, (n, 3), into features (n, n_levels * features_per_level)."""

    def __init__(
        self,
        n_levels: int = 16,
        features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
    ) -> None:
        super().__init__()
        if features_per_level < 1:
            raise ValueError(f"features_per_level must be >= 1, got {features_per_level}")
        if not 4 <= log2_table_size <= 30:
            raise ValueError(f"log2_table_size must be in 4..30, got {log2_table_size}")
        self.n_levels = n_levels
        self.features_per_level = features_per_level
        self.table_size = 2**log2_table_size
        self.resolutions = level_resolutions(n_levels, base_resolution, finest_resolution)
        self.out_dim = n_levels * features_per_level

        # A level never needs more rows than it has vertices (tiny-cuda-nn does the same).
        level_rows = [min(self.table_size, (resolution + 1) ** 3) for resolution in self.resolutions]
        offsets = [0]
        for rows in level_rows:
            offsets.append(offsets[-1] + rows)
        self.level_rows = level_rows
        self.register_buffer("level_offsets", torch.tensor(offsets[:-1], dtype=torch.int64), persistent=False)
        self.register_buffer("level_scale", torch.tensor(self.resolutions, dtype=torch.float32), persistent=False)
        # Levels grow, so the dense ones come first: levels [0, n_dense_levels) are dense, the rest hashed.
        self.n_dense_levels = sum(rows < self.table_size for rows in level_rows)
        # Strides of the dense layout x + y (N+1) + z (N+1)^2, per level.
        strides = [[1, resolution + 1, (resolution + 1) ** 2] for resolution in self.resolutions]
        self.register_buffer("dense_strides", torch.tensor(strides, dtype=torch.int64), persistent=False)
        self.register_buffer("hash_primes", torch.tensor(HASH_PRIMES, dtype=torch.int64), persistent=False)
        self.register_buffer("corner_offsets", CORNER_OFFSETS.clone(), persistent=False)

        # Small uniform init as in the paper: features start near zero so the MLP starts smooth.
        self.table = nn.Parameter(torch.empty(offsets[-1], features_per_level).uniform_(-1e-4, 1e-4))

    def lookup(self, points: torch.Tensor) -> CornerLookup:
        """Table rows and trilinear weights of the 8 cell corners around each point, at every level.

        points: (n, 3) in [0, 1]^3 (clamped). Returns rows and weights of shape (n, n_levels, 8), corners
        ordered as CORNER_OFFSETS (x fastest).
        """
        n_points = points.shape[0]
        points = points.clamp(0.0, 1.0)
        # (n, n_levels, 3) continuous vertex coordinates; the cell's low corner is clamped so x = 1 stays inside
        scaled = points[:, None, :] * self.level_scale[None, :, None]
        cell = scaled.floor().clamp(max=self.level_scale[None, :, None] - 1)
        fraction = scaled - cell
        cell_index = cell.to(torch.int64)

        # (n, n_levels, 8, 3) integer corner coordinates
        corners = cell_index[:, :, None, :] + self.corner_offsets[None, None, :, :]
        n_dense = self.n_dense_levels
        dense_rows = (corners[:, :n_dense] * self.dense_strides[None, :n_dense, None, :]).sum(dim=-1)
        hashed = corners[:, n_dense:] * self.hash_primes
        hashed_rows = (hashed[..., 0] ^ hashed[..., 1] ^ hashed[..., 2]) & (self.table_size - 1)
        rows = torch.cat([dense_rows, hashed_rows], dim=1) + self.level_offsets[None, :, None]
        offsets = self.corner_offsets.to(fraction.dtype)
        per_axis = fraction[:, :, None, :] * offsets + (1.0 - fraction[:, :, None, :]) * (1.0 - offsets)
        weights = per_axis.prod(dim=-1)
        return CornerLookup(rows=rows.view(n_points, self.n_levels, 8), weights=weights)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) in [0, 1]^3 -> (n, n_levels * features_per_level)."""
        lookup = self.lookup(points)
        n_points = points.shape[0]
        flat_rows = lookup.rows.view(-1)
        if torch.compiler.is_compiling():
            # inductor fuses plain indexing and writes its own scatter for the backward
            corner_features = self.table[flat_rows]
        else:
            corner_features = _GatherRows.apply(self.table, flat_rows)
        corner_features = corner_features.view(n_points, self.n_levels, 8, self.features_per_level)
        features = (corner_features * lookup.weights[..., None].to(corner_features.dtype)).sum(dim=2)
        return features.reshape(n_points, self.out_dim)


class _GatherRows(torch.autograd.Function):
    """table[rows] whose backward is index_add_: several times faster on CPU than embedding's backward."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.table_shape = table.shape
        return table.index_select(0, rows)

    @staticmethod
    def backward(ctx: Any, grad_rows: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        grad_table = torch.zeros(ctx.table_shape, dtype=grad_rows.dtype, device=grad_rows.device)
        grad_table.index_add_(0, rows, grad_rows)
        return grad_table, None
