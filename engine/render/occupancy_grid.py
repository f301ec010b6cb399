"""Occupancy grid (instant-NGP): a coarse voxel grid over the unit cube that remembers where the field
has density, so marching skips empty space.

Every few steps a subset of cells is re-measured at a random point inside each cell; the stored value
decays exponentially (new = max(old * decay, measured), as instant-NGP), and a cell is occupied when its value
exceeds min(threshold, mean of the grid). Taking the mean while the field is still near its initial
state keeps about half the cells open, so an untrained field is not declared empty.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# density_fn(points (n, 3) in the unit cube) -> densities (n,)
DensityFn = Callable[[torch.Tensor], torch.Tensor]


class OccupancyGrid(nn.Module):
    """resolution^3 cells over [0, 1]^3. Buffers (saved in checkpoints): densities (r, r, r) float,
    occupied (r, r, r) bool."""

    def __init__(self, resolution: int = 128, decay: float = 0.95, density_threshold: float = 0.01) -> None:
        super().__init__()
        if resolution < 1:
            raise ValueError(f"occupancy grid resolution must be >= 1, got {resolution}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"occupancy grid decay must be in (0, 1], got {decay}")
        if density_threshold <= 0.0:
            raise ValueError(f"occupancy density threshold must be > 0, got {density_threshold}")
        self.resolution = resolution
        self.decay = decay
        self.density_threshold = density_threshold
        self.register_buffer("densities", torch.zeros(resolution, resolution, resolution))
        self.register_buffer("occupied", torch.ones(resolution, resolution, resolution, dtype=torch.bool))

    def cell_index(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) points in the unit cube -> (n, 3) int64 cell coordinates, clamped into the grid."""
        return (points * self.resolution).long().clamp(0, self.resolution - 1)

    def is_occupied(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) -> (n,) bool; points outside the unit cube are never occupied."""
        inside = ((points >= 0.0) & (points <= 1.0)).all(dim=-1)
        cells = self.cell_index(points)
        return self.occupied[cells[:, 0], cells[:, 1], cells[:, 2]] & inside

    @torch.no_grad()
    def update(
        self,
        density_fn: DensityFn,
        all_cells: bool,
        generator: torch.Generator | None = None,
        chunk: int = 65536,
    ) -> None:
        """Re-measure every cell (all_cells, during warm-up) or a random quarter of the cells plus as many
        occupied ones, then decay, take the maximum and threshold."""
        n_cells = self.resolution**3
        device = self.densities.device
        if all_cells:
            cells = torch.arange(n_cells, device=device)
        else:
            random_cells = torch.randint(0, n_cells, (n_cells // 4,), generator=generator, device=device)
            occupied_cells = self.occupied.view(-1).nonzero(as_tuple=True)[0]
            pick = torch.randint(0, max(1, occupied_cells.numel()), (n_cells // 4,), generator=generator, device=device)
            cells = torch.cat([random_cells, occupied_cells[pick]]) if occupied_cells.numel() else random_cells
        coordinates = torch.stack(
            [cells // self.resolution**2, (cells // self.resolution) % self.resolution, cells % self.resolution], dim=-1
        )
        jitter = torch.rand(cells.shape[0], 3, generator=generator, device=device)
        points = (coordinates + jitter) / self.resolution
        measured = torch.cat(
            [density_fn(points[start : start + chunk]).float() for start in range(0, len(points), chunk)]
        )

        # only re-measured cells decay, so a cell is never forgotten without being looked at again;
        # a cell picked twice keeps the larger measurement
        updated = self.densities.view(-1).clone()
        updated[cells] = updated[cells] * self.decay
        updated.scatter_reduce_(0, cells, measured, reduce="amax", include_self=True)
        self.densities.copy_(updated.view_as(self.densities))
        threshold = min(self.density_threshold, float(self.densities.mean()))
        self.occupied.copy_(self.densities > threshold)

    @torch.no_grad()
    def update_near_surface(self, sdf_fn: DensityFn, band: float, chunk: int = 65536) -> None:
        """For signed distance fields (NeuS): a cell is occupied when |SDF| at its centre is within ``band``
        (unit-cube units) of the surface. Every cell is measured each time: the SDF is one cheap pass, and a
        surface that moved must open its new cells at once. ``densities`` keeps the measured |SDF|."""
        if band <= 0.0:
            raise ValueError(f"surface band must be > 0, got {band}")
        device = self.densities.device
        axis = (torch.arange(self.resolution, device=device, dtype=torch.float32) + 0.5) / self.resolution
        centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).view(-1, 3)
        distances = torch.cat(
            [sdf_fn(centres[start : start + chunk]).float().abs() for start in range(0, len(centres), chunk)]
        )
        self.densities.copy_(distances.view_as(self.densities))
        self.occupied.copy_(self.densities <= band)
