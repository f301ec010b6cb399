"""Vertex colours from a radiance field: what a camera looking straight at each vertex would see."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .io import linear_to_srgb
from .triangle_mesh import TriangleMesh

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


@dataclass(frozen=True)
class ViewImage:
    """One training view. image (h, w, 3) in [0, 1], not premultiplied; alpha (h, w);
    camera_to_world (4, 4), Blender convention (camera looks down -Z, +Y up; image rows go down,
    pixel centres at +0.5); focal, principal (2,) in pixels (x, y)."""

    image: np.ndarray
    alpha: np.ndarray
    camera_to_world: np.ndarray
    focal: np.ndarray
    principal: np.ndarray


def colours_from_views(
    mesh: TriangleMesh, views: Iterable[ViewImage], depth_tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex colours averaged from the training images that see each vertex, one view at a time.

    A view sees a vertex when the vertex faces it, lands on an opaque pixel and is no more than
    ``depth_tolerance`` (plus what its surface's slope spans over a pixel and a half) behind the
    nearest vertex in that pixel's 3x3 neighbourhood: a z-buffer of the mesh's own vertices,
    dilated so a coarse mesh does not leave holes to see through.
    Views are weighted by the cosine between normal and view direction.
    Returns colours (n_vertices, 3) and seen (n_vertices,) bool; unseen vertices are black.
    """
    normals = mesh.vertex_normals()
    colour_sum = np.zeros((mesh.n_vertices, 3))
    weight_sum = np.zeros(mesh.n_vertices)
    for view in views:
        height, width = view.alpha.shape
        rotation = view.camera_to_world[:3, :3]
        rotation = rotation / np.linalg.norm(rotation, axis=0, keepdims=True)
        centre = view.camera_to_world[:3, 3]
        local = (mesh.vertices - centre) @ rotation  # (n_vertices, 3) in camera axes
        depth = -local[:, 2]
        in_front = depth > 1e-9
        safe_depth = np.where(in_front, depth, 1.0)
        column = np.floor(view.focal[0] * local[:, 0] / safe_depth + view.principal[0]).astype(np.int64)
        row = np.floor(view.principal[1] - view.focal[1] * local[:, 1] / safe_depth).astype(np.int64)
        on_image = in_front & (column >= 0) & (column < width) & (row >= 0) & (row < height)
        to_camera = centre - mesh.vertices
        cosine = np.einsum("ij,ij->i", normals, to_camera) / np.maximum(np.linalg.norm(to_camera, axis=1), 1e-12)
        # Grazing views put a vertex on its silhouette, where pixels show what lies behind it.
        candidates = np.flatnonzero(on_image & (cosine > 0.25))
        if len(candidates) == 0:
            continue
        # The z-buffer covers every on-image vertex, facing or not: back faces still occlude.
        depth_buffer = np.full((height + 2, width + 2), np.inf)
        occluders = np.flatnonzero(on_image)
        for d_row in (0, 1, 2):
            for d_column in (0, 1, 2):
                np.minimum.at(depth_buffer, (row[occluders] + d_row, column[occluders] + d_column), depth[occluders])
        nearest = depth_buffer[row[candidates] + 1, column[candidates] + 1]
        # The nearest vertex may be a neighbour up to 1.5 pixels away on the same, sloping surface:
        # allow the depth that slope spans (pixel footprint over the cosine) on top of the tolerance.
        footprint = depth[candidates] / view.focal.mean()
        slack = depth_tolerance + 1.5 * footprint / np.maximum(cosine[candidates], 0.2)
        visible = candidates[
            (depth[candidates] <= nearest + slack) & (view.alpha[row[candidates], column[candidates]] > 0.5)
        ]
        weights = cosine[visible]
        colour_sum[visible] += weights[:, None] * view.image[row[visible], column[visible]]
        weight_sum[visible] += weights
    seen = weight_sum > 0
    colours = np.zeros((mesh.n_vertices, 3), dtype=np.float32)
    colours[seen] = colour_sum[seen] / weight_sum[seen, None]
    return np.clip(colours, 0.0, 1.0), seen


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
