"""Vertex colours from a radiance field: what a camera looking straight at each vertex would see."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .triangle_mesh import TriangleMesh

# world points (n, 3) -> (n,) density; world points (n, 3), unit view directions (n, 3) -> (n, 3) colour
DensityFunction = Callable[[np.ndarray], np.ndarray]
ColorFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def colours_along_normals(
    mesh: TriangleMesh,
    query_density: DensityFunction,
    query_color: ColorFunction,
    depth: float,
    n_samples: int = 16,
    batch_points: int = 1 << 16,
) -> np.ndarray:
    """(n_vertices, 3) colour volume-rendered along a short ray down each vertex normal.

    The ray starts ``depth`` outside the vertex and ends ``depth`` inside it, looking along
    -normal. A density level set sits where the field becomes opaque, not necessarily where
    its colour is trained, so compositing over the band, rather than reading the colour at
    the vertex, gives the colour the training views actually saw there. Weights are
    normalised: a ray that never gets opaque still returns its surface's colour, not black.
    """
    normals = mesh.vertex_normals()
    offsets = depth * (1.0 - (np.arange(n_samples) + 0.5) * 2.0 / n_samples)  # (n_samples,) from +depth to -depth
    step = 2.0 * depth / n_samples
    colours = np.empty((mesh.n_vertices, 3), dtype=np.float32)
    vertices_per_batch = max(1, batch_points // n_samples)
    for start in range(0, mesh.n_vertices, vertices_per_batch):
        vertices = mesh.vertices[start : start + vertices_per_batch]
        normal = normals[start : start + vertices_per_batch]
        points = vertices[:, None, :] + offsets[None, :, None] * normal[:, None, :]  # (n, n_samples, 3)
        directions = np.broadcast_to(-normal[:, None, :], points.shape)
        flat_points = points.reshape(-1, 3)
        density = np.asarray(query_density(flat_points), dtype=np.float64).reshape(len(vertices), n_samples)
        colour = np.asarray(query_color(flat_points, directions.reshape(-1, 3)), dtype=np.float64)
        colour = colour.reshape(len(vertices), n_samples, 3)
        alpha = 1.0 - np.exp(-np.maximum(density, 0.0) * step)
        transmittance = np.cumprod(np.concatenate([np.ones((len(vertices), 1)), 1.0 - alpha[:, :-1]], axis=1), axis=1)
        weights = transmittance * alpha + 1e-8  # the epsilon falls back to a plain mean where nothing is opaque
        colours[start : start + len(vertices)] = (weights[..., None] * colour).sum(1) / weights.sum(1, keepdims=True)
    return np.clip(colours, 0.0, 1.0)


def colours_at_vertices(mesh: TriangleMesh, query_color: ColorFunction, batch_points: int = 1 << 16) -> np.ndarray:
    """(n_vertices, 3) colour at each vertex seen along -normal: for surface fields (SDF, occupancy)."""
    normals = mesh.vertex_normals()
    colours = np.empty((mesh.n_vertices, 3), dtype=np.float32)
    for start in range(0, mesh.n_vertices, batch_points):
        stop = start + batch_points
        colours[start:stop] = np.asarray(query_color(mesh.vertices[start:stop], -normals[start:stop])).reshape(-1, 3)
    return np.clip(colours, 0.0, 1.0)
