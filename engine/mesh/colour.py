"""Colours from a radiance field: what a camera looking straight at each surface point would see (the training
images' own colours are engine/mesh/view_colours.py's)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .io import linear_to_srgb

# world points (n, 3), unit view directions (n, 3) -> (n,) density, (n, 3) colour: one pass through the field
RadianceFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def colours_along_normals(
    vertices: np.ndarray,
    normals: np.ndarray,
    query_radiance: RadianceFunction,
    depth: float,
    n_samples: int = 16,
    batch_points: int = 1 << 16,
) -> np.ndarray:
    """(n, 3) colour volume-rendered along a short ray down each vertex's unit normal (both (n, 3)).

    The ray starts ``depth`` outside the vertex and ends ``depth`` inside it, looking along
    -normal. A density level set sits where the field becomes opaque, not necessarily where
    its colour is trained, so compositing over the band, rather than reading the colour at
    the vertex, gives the colour the training views actually saw there. Weights are
    normalised: a ray that never gets opaque still returns its surface's colour, not black.
    """
    offsets = depth * (1.0 - (np.arange(n_samples) + 0.5) * 2.0 / n_samples)  # (n_samples,) from +depth to -depth
    step = 2.0 * depth / n_samples
    colours = np.empty((len(vertices), 3), dtype=np.float32)
    vertices_per_batch = max(1, batch_points // n_samples)
    for start in range(0, len(vertices), vertices_per_batch):
        batch = vertices[start : start + vertices_per_batch]
        normal = normals[start : start + vertices_per_batch]
        points = batch[:, None, :] + offsets[None, :, None] * normal[:, None, :]  # (n, n_samples, 3)
        directions = np.broadcast_to(-normal[:, None, :], points.shape)
        density, colour = query_radiance(points.reshape(-1, 3), directions.reshape(-1, 3))
        density = np.asarray(density, dtype=np.float64).reshape(len(batch), n_samples)
        colour = np.asarray(colour, dtype=np.float64).reshape(len(batch), n_samples, 3)
        alpha = 1.0 - np.exp(-np.maximum(density, 0.0) * step)
        transmittance = np.cumprod(np.concatenate([np.ones((len(batch), 1)), 1.0 - alpha[:, :-1]], axis=1), axis=1)
        weights = transmittance * alpha + 1e-8  # the epsilon falls back to a plain mean where nothing is opaque
        colours[start : start + len(batch)] = (weights[..., None] * colour).sum(1) / weights.sum(1, keepdims=True)
    return np.clip(colours, 0.0, 1.0)


def colour_function_from_radiance(
    query_radiance: RadianceFunction,
    depth: float,
    colours_are_linear: bool,
    batch_points: int = 1 << 16,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The bake's colour callback for a radiance field: :func:`colours_along_normals` at each
    texel's surface point, sRGB-encoded when the field was trained in linear colour."""

    def colour(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        colours = colours_along_normals(points, normals, query_radiance, depth=depth, batch_points=batch_points)
        return linear_to_srgb(colours).astype(np.float32) if colours_are_linear else colours

    return colour
