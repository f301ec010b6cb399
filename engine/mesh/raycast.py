"""Rays against a triangle mesh, in torch: the first triangle each ray hits, its distance and barycentrics.

A texture field is trained on the surface of a given mesh: every training ray must find where it meets
that mesh, thousands of rays a step, on the CPU or the GPU. Brute force (every ray against every
triangle) costs n_rays x n_faces tests; a uniform grid over the mesh's box cuts that to the few
triangles in the cells a ray crosses.

Building: every triangle is listed in the cells its bounding box touches, dilated by a quarter cell
(and not in cells whose centre lies farther from its plane than a cell's half-diagonal plus that
dilation). Casting: each ray is sampled every half cell between where it enters and leaves the grid;
the hit point lies within a quarter cell of some sample, so the dilated lists of the samples' cells
hold the hit triangle: the search is conservative, never a miss. The (ray, triangle) candidates are
tested with Moeller-Trumbore and the nearest hit per ray is kept. Everything is vectorised; no
python loop over rays or triangles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Rays per internal chunk: bounds the (ray, sample) and (ray, triangle) candidate tensors.
CHUNK_RAYS = 1 << 13
# Cells per side at most (the dense cell table then has 2M entries).
MAX_RESOLUTION = 128
# A quarter of a cell: samples every half cell are within this of every point of the ray.
DILATION = 0.25 + 1e-3


@dataclass
class RayHits:
    """Per ray: hit (n,) bool; t (n,) distance along the ray in units of its direction's length (inf where it
    misses); face (n,) int64 index of the triangle hit (-1 where it misses); barycentric (n, 3) weights of the
    triangle's three corners at the hit point (zero where it misses)."""

    hit: torch.Tensor
    t: torch.Tensor
    face: torch.Tensor
    barycentric: torch.Tensor


class MeshRaycaster:
    """A triangle mesh, vertices (n_vertices, 3) and faces (n_faces, 3), bucketed for ray casting.

    ``resolution``: cells along the longest side of the mesh's box; 0 picks about sqrt(n_faces) / 2, a
    few triangles per surface cell.
    """

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, resolution: int = 0) -> None:
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (n, 3), got {tuple(vertices.shape)}")
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
            raise ValueError(f"faces must be (m, 3) with m > 0, got {tuple(faces.shape)}")
        if resolution < 0:
            raise ValueError(f"resolution must be >= 0, got {resolution}")
        device = vertices.device
        corners = vertices.float()[faces.long()]  # (m, 3, 3)
        self.origin_corner = corners[:, 0].contiguous()
        self.edge_1 = (corners[:, 1] - corners[:, 0]).contiguous()
        self.edge_2 = (corners[:, 2] - corners[:, 0]).contiguous()
        n_faces = faces.shape[0]
        if resolution == 0:
            resolution = min(MAX_RESOLUTION, max(4, math.ceil(math.sqrt(n_faces) / 2)))
        low, high = corners.reshape(-1, 3).amin(0), corners.reshape(-1, 3).amax(0)
        extent = float((high - low).max())
        if not extent > 0.0 or not math.isfinite(extent):
            raise ValueError(f"the mesh has no extent (its box is {low.tolist()}..{high.tolist()})")
        self.cell_size = extent / resolution
        # one cell of margin on every side, so points on the box's faces stay inside
        self.box_min = low - self.cell_size
        self.dims = torch.ceil((high - low) / self.cell_size).long().clamp(min=1) + 2
        self.box_max = self.box_min + self.dims.float() * self.cell_size
        self._bucket(corners, device)

    def _bucket(self, corners: torch.Tensor, device: torch.device) -> None:
        dims = self.dims
        low = torch.floor((corners.amin(1) - self.box_min) / self.cell_size - DILATION).long()
        high = torch.floor((corners.amax(1) - self.box_min) / self.cell_size + DILATION).long()
        low = torch.minimum(torch.maximum(low, torch.zeros_like(low)), dims - 1)
        high = torch.minimum(torch.maximum(high, low), dims - 1)
        span = high - low + 1  # (m, 3) cells per axis
        counts = span.prod(dim=1)
        face_ids = torch.repeat_interleave(torch.arange(len(corners), device=device), counts)
        starts = torch.cumsum(counts, 0) - counts
        local = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(starts, counts)
        span_f, low_f = span[face_ids], low[face_ids]
        x = low_f[:, 0] + local % span_f[:, 0]
        y = low_f[:, 1] + (local // span_f[:, 0]) % span_f[:, 1]
        z = low_f[:, 2] + local // (span_f[:, 0] * span_f[:, 1])
        # drop cells far from the triangle's plane (a long diagonal triangle's box holds many of those)
        centres = self.box_min + (torch.stack([x, y, z], dim=1).float() + 0.5) * self.cell_size
        normals = torch.linalg.cross(self.edge_1, self.edge_2)
        normals = normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-30)
        distance = ((centres - self.origin_corner[face_ids]) * normals[face_ids]).sum(1).abs()
        near = distance <= (math.sqrt(3.0) / 2.0 + DILATION) * self.cell_size
        cell_ids = (x + dims[0] * (y + dims[1] * z))[near]
        face_ids = face_ids[near]
        order = torch.argsort(cell_ids)
        self.cell_faces = face_ids[order]
        n_cells = int(dims.prod())
        per_cell = torch.bincount(cell_ids, minlength=n_cells)
        self.cell_start = torch.cumsum(per_cell, 0) - per_cell
        self.cell_count = per_cell

    @property
    def triangles_per_occupied_cell(self) -> float:
        occupied = int((self.cell_count > 0).sum())
        return float(self.cell_faces.numel()) / max(1, occupied)

    def intersect(self, origins: torch.Tensor, directions: torch.Tensor, t_min: float = 0.0) -> RayHits:
        """The first hit of each ray (origins, directions (n, 3), any non-zero length) beyond ``t_min``."""
        if origins.shape != directions.shape or origins.ndim != 2 or origins.shape[1] != 3:
            raise ValueError(
                f"origins and directions must both be (n, 3), got {tuple(origins.shape)}, {tuple(directions.shape)}"
            )
        parts = [
            self._intersect_chunk(origins[start : start + CHUNK_RAYS], directions[start : start + CHUNK_RAYS], t_min)
            for start in range(0, origins.shape[0], CHUNK_RAYS)
        ]
        if not parts:
            empty = origins.new_zeros(0)
            return RayHits(empty.bool(), empty, empty.long(), origins.new_zeros(0, 3))
        return RayHits(*(torch.cat([getattr(part, name) for part in parts]) for name in RayHits.__annotations__))

    def _intersect_chunk(self, origins: torch.Tensor, directions: torch.Tensor, t_min: float) -> RayHits:
        origins, directions = origins.float(), directions.float()
        n_rays = origins.shape[0]
        device = origins.device
        lengths = directions.norm(dim=1).clamp(min=1e-30)
        unit = directions / lengths[:, None]
        safe = torch.where(unit.abs() < 1e-12, torch.full_like(unit, 1e-12), unit)
        t_low, t_high = (self.box_min - origins) / safe, (self.box_max - origins) / safe
        t_near = torch.minimum(t_low, t_high).amax(1).clamp(min=0.0)
        t_far = torch.maximum(t_low, t_high).amin(1)
        crosses = t_far >= t_near
        t = torch.full((n_rays,), math.inf, device=device)
        face = torch.full((n_rays,), -1, dtype=torch.long, device=device)
        barycentric = torch.zeros(n_rays, 3, device=device)
        if not bool(crosses.any()):
            return RayHits(t < math.inf, t, face, barycentric)
        step = 0.5 * self.cell_size
        length = (t_far - t_near).clamp(min=0.0)
        n_samples = int(torch.ceil(length[crosses].max() / step)) + 2
        offsets = torch.arange(n_samples, device=device, dtype=torch.float32) * step
        valid = crosses[:, None] & (offsets[None, :] <= length[:, None] + step)
        # sample positions in cell units, one axis at a time (cheaper than (n, s, 3) tensors), kept in the box
        t_samples = torch.minimum(t_near[:, None] + offsets[None, :], t_far[:, None]) / self.cell_size
        start = (origins - self.box_min) / self.cell_size
        cell_ids = torch.zeros(valid.shape, dtype=torch.long, device=device)
        for axis in (2, 1, 0):
            size = int(self.dims[axis])
            index = torch.addcmul(start[:, axis, None], unit[:, axis, None], t_samples).floor_().clamp_(0, size - 1)
            cell_ids = cell_ids * size + index.long()
        # a cell met by consecutive samples is searched once
        repeated = torch.zeros_like(valid)
        repeated[:, 1:] = cell_ids[:, 1:] == cell_ids[:, :-1]
        keep = valid & ~repeated & (self.cell_count[cell_ids] > 0)
        ray_index, sample_index = keep.nonzero(as_tuple=True)
        if ray_index.numel() == 0:
            return RayHits(t < math.inf, t, face, barycentric)
        pair_cells = cell_ids[ray_index, sample_index]
        counts = self.cell_count[pair_cells]
        candidate_rays = torch.repeat_interleave(ray_index, counts)
        starts = torch.repeat_interleave(self.cell_start[pair_cells], counts)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(first, counts)
        candidate_faces = self.cell_faces[starts + local]
        distance, u, v = _moller_trumbore(
            origins[candidate_rays],
            unit[candidate_rays],
            self.origin_corner[candidate_faces],
            self.edge_1[candidate_faces],
            self.edge_2[candidate_faces],
        )
        lower = max(0.0, t_min) * lengths[candidate_rays]
        good = torch.isfinite(distance) & (distance > lower)
        distance = torch.where(good, distance, torch.full_like(distance, math.inf))
        t = t.scatter_reduce(0, candidate_rays, distance, reduce="amin")
        nearest = good & (distance == t[candidate_rays])
        winner = torch.full((n_rays,), -1, dtype=torch.long, device=device)
        winner[candidate_rays[nearest]] = nearest.nonzero(as_tuple=True)[0]
        hit = winner >= 0
        chosen = winner[hit]
        face[hit] = candidate_faces[chosen]
        uv = torch.stack([u[chosen], v[chosen]], dim=1)
        barycentric[hit] = torch.cat([1.0 - uv.sum(1, keepdim=True), uv], dim=1)
        # back to units of the caller's direction length
        return RayHits(hit, t / lengths, face, barycentric)


def _moller_trumbore(
    origins: torch.Tensor, directions: torch.Tensor, corner: torch.Tensor, edge_1: torch.Tensor, edge_2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ray-triangle tests, all (k, 3): distance (k,) along the unit direction (inf where it misses) and the
    barycentric weights u, v (k,) of the second and third corner."""
    p = torch.linalg.cross(directions, edge_2)
    determinant = (edge_1 * p).sum(1)
    parallel = determinant.abs() < 1e-12
    inverse = 1.0 / torch.where(parallel, torch.ones_like(determinant), determinant)
    to_origin = origins - corner
    u = (to_origin * p).sum(1) * inverse
    q = torch.linalg.cross(to_origin, edge_1)
    v = (directions * q).sum(1) * inverse
    distance = (edge_2 * q).sum(1) * inverse
    epsilon = 1e-6
    inside = ~parallel & (u >= -epsilon) & (v >= -epsilon) & (u + v <= 1.0 + epsilon)
    return torch.where(inside, distance, torch.full_like(distance, math.inf)), u, v
