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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# The primes of the instant-NGP paper; the first is 1 for better cache coherence along x.
HASH_PRIMES = (1, 2654435761, 805459861)


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

        # Small uniform init as in the paper: features start near zero so the MLP starts smooth.
        self.table = nn.Parameter(torch.empty(offsets[-1], features_per_level).uniform_(-1e-4, 1e-4))

    def lookup(self, points: torch.Tensor) -> CornerLookup:
        """Table rows and trilinear weights of the 8 cell corners around each point, at every level.

        points: (n, 3) in [0, 1]^3 (clamped). Returns rows and weights of shape (n, n_levels, 8); corner
        c = dx + 2 dy + 4 dz is the cell's low corner plus (dx, dy, dz) in {0, 1}^3.
        """
        n_points = points.shape[0]
        points = points.clamp(0.0, 1.0)
        # (n, n_levels, 3) continuous vertex coordinates; the cell's low corner is clamped so x = 1 stays inside
        scaled = points[:, None, :] * self.level_scale[None, :, None]
        cell = scaled.floor().clamp(max=self.level_scale[None, :, None] - 1)
        fraction = scaled - cell
        cell_index = cell.to(torch.int64)

        # Per axis, the contribution of the low and the high corner, (n, levels, 2, 3); the 8 corners are then
        # combined by broadcasting, which costs far less than materialising (n, levels, 8, 3) coordinates.
        n_dense = self.n_dense_levels
        dense_low = cell_index[:, :n_dense] * self.dense_strides[None, :n_dense]
        dense_axes = torch.stack([dense_low, dense_low + self.dense_strides[None, :n_dense]], dim=-2)
        dense_rows = combine_corners(dense_axes, torch.add)
        hashed_low = cell_index[:, n_dense:] * self.hash_primes
        hashed_axes = torch.stack([hashed_low, hashed_low + self.hash_primes], dim=-2)
        hashed_rows = combine_corners(hashed_axes, torch.bitwise_xor) & (self.table_size - 1)
        rows = torch.cat([dense_rows, hashed_rows], dim=1) + self.level_offsets[None, :, None]

        # weight of a corner = product over axes of (fraction if on the high side else 1 - fraction)
        axis_weights = torch.stack([1.0 - fraction, fraction], dim=-2)
        weights = combine_corners(axis_weights, torch.mul)
        return CornerLookup(rows=rows.view(n_points, self.n_levels, 8), weights=weights)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) in [0, 1]^3 -> (n, n_levels * features_per_level). Gradients reach the table, not the points."""
        lookup = self.lookup(points)
        n_points = points.shape[0]
        rows = lookup.rows.view(-1, 8)
        weights = lookup.weights.view(-1, 8).to(self.table.dtype)
        if torch.compiler.is_compiling():
            # inductor fuses plain indexing with the weighted sum and writes its own scatter for the backward
            features = (self.table[rows] * weights[..., None]).sum(dim=1)
        else:
            features = _InterpolateRows.apply(self.table, rows, weights)
        return features.reshape(n_points, self.out_dim)


def combine_corners(axes: torch.Tensor, combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """(n, levels, 2, 3) low/high values per axis -> (n, levels, 8) values per corner, x fastest."""
    x_part = axes[:, :, None, None, :, 0]
    y_part = axes[:, :, None, :, None, 1]
    z_part = axes[:, :, :, None, None, 2]
    return combine(combine(x_part, y_part), z_part).flatten(start_dim=2)


class _InterpolateRows(torch.autograd.Function):
    """sum_c weights[:, c] * table[rows[:, c]]: (m, 8) rows and weights -> (m, features).

    The forward is one embedding_bag (a fused gather and weighted sum, several times faster on CPU than
    gathering (m, 8, features) and reducing); the backward scatters the weighted gradient with index_add_,
    several times faster on CPU than embedding_bag's own backward."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows, weights)
        ctx.table_shape = table.shape
        return nn.functional.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad_features: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        rows, weights = ctx.saved_tensors
        grad_table = torch.zeros(ctx.table_shape, dtype=grad_features.dtype, device=grad_features.device)
        weighted = (weights[..., None] * grad_features[:, None, :]).view(-1, grad_features.shape[-1])
        grad_table.index_add_(0, rows.view(-1), weighted)
        return grad_table, None, None
