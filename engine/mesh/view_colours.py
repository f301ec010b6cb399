"""Colours of surface points from the training images that see them: vertex colours, or the texels of a bake.

A radiance field trained for a few minutes renders blurrier colours than its training images hold, so the
sharpest colour for a point of the extracted surface is the images' own, where they see it. Each view gets a
depth map of the mesh once: a ray through every opaque pixel, cast against the mesh (engine/mesh/raycast.py),
so visibility is exact for any mesh, a decimated one too. A point is seen by a view when it faces the camera
(not at a grazing angle, where pixels show what lies behind a silhouette), lands on an opaque pixel and lies
no more than ``depth_tolerance`` (plus the depth its surface's slope spans over a pixel and a half) behind
the depth map there. Its colour is each view's bilinear sample over the pixels that see the same surface
(an occluder or the background next to it does not bleed in), weighted by the cosine between normal and view
direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .io import linear_to_srgb
from .triangle_mesh import TriangleMesh

# A view at a more grazing angle than this cosine puts the point on its silhouette.
MIN_COSINE = 0.25
# world points (n, 3), unit normals (n, 3) -> (n, 3) colours in 0..1: the bake's callback (engine/mesh/bake.py)
ColourFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


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


@dataclass(frozen=True)
class SeenView:
    """A view ready to colour points: premultiplied (h, w, 3) and alpha (h, w) float32, depth (h, w) float32
    along the camera's axis to the mesh through each pixel centre (inf where the pixel is transparent or its
    ray misses), rotation (3, 3) with unit columns, centre (3,), focal and principal (2,)."""

    premultiplied: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    rotation: np.ndarray
    centre: np.ndarray
    focal: np.ndarray
    principal: np.ndarray


def seen_views(mesh: TriangleMesh, views: Iterable[ViewImage], device: str = "cpu") -> list[SeenView]:
    """Each view with the depth map of ``mesh`` through its opaque pixels (one ray cast a pixel)."""
    import torch  # only here: the rest of the colouring is numpy

    from .raycast import MeshRaycaster

    caster = MeshRaycaster(
        torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device),
        torch.as_tensor(mesh.faces, dtype=torch.int64, device=device),
    )
    out = []
    for view in views:
        height, width = view.alpha.shape
        rotation = view.camera_to_world[:3, :3] / np.linalg.norm(view.camera_to_world[:3, :3], axis=0, keepdims=True)
        centre = view.camera_to_world[:3, 3].astype(np.float64)
        rows, columns = np.nonzero(view.alpha > 0.5)
        # Directions with a camera-axis component of one: the caster's t is then the depth along the axis.
        local = np.stack(
            [
                (columns + 0.5 - view.principal[0]) / view.focal[0],
                (view.principal[1] - rows - 0.5) / view.focal[1],
                -np.ones(len(rows)),
            ],
            axis=1,
        )
        directions = local @ rotation.T
        depth = np.full((height, width), np.inf, dtype=np.float32)
        if len(rows):
            hits = caster.intersect(
                torch.tensor(centre, dtype=torch.float32, device=device).expand(len(directions), 3),
                torch.as_tensor(directions, dtype=torch.float32, device=device),
            )
            depth[rows, columns] = np.where(hits.hit.cpu().numpy(), hits.t.cpu().numpy(), np.inf)
        alpha = view.alpha.astype(np.float32)
        premultiplied = (view.image * view.alpha[..., None]).astype(np.float32)
        out.append(SeenView(premultiplied, alpha, depth, rotation, centre, view.focal, view.principal))
    return out


def colours_seen_from(
    points: np.ndarray, normals: np.ndarray, views: Iterable[SeenView], depth_tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) colours of surface points (n, 3) with unit normals (n, 3) from the views that see them, and
    seen (n,) bool; unseen points are black."""
    colour_sum = np.zeros((len(points), 3))
    weight_sum = np.zeros(len(points))
    for view in views:
        height, width = view.alpha.shape
        local = (points - view.centre) @ view.rotation  # camera axes
        depth = -local[:, 2]
        in_front = depth > 1e-9
        safe_depth = np.where(in_front, depth, 1.0)
        x = view.focal[0] * local[:, 0] / safe_depth + view.principal[0]  # continuous pixel coordinates
        y = view.principal[1] - view.focal[1] * local[:, 1] / safe_depth
        column, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        on_image = in_front & (column >= 0) & (column < width) & (row >= 0) & (row < height)
        to_camera = view.centre - points
        cosine = np.einsum("ij,ij->i", normals, to_camera) / np.maximum(np.linalg.norm(to_camera, axis=1), 1e-12)
        candidates = np.flatnonzero(on_image & (cosine > MIN_COSINE))
        if len(candidates) == 0:
            continue
        nearest = view.depth[row[candidates], column[candidates]]
        footprint = depth[candidates] / float(np.mean(view.focal))
        slack = depth_tolerance + 1.5 * footprint / np.maximum(cosine[candidates], 0.2)
        keep = np.isfinite(nearest) & (depth[candidates] <= nearest + slack)
        visible, slack = candidates[keep], slack[keep]
        colour, support = _bilinear(view, x[visible], y[visible], depth[visible], slack)
        sampled = support > 1e-3
        visible, colour = visible[sampled], colour[sampled]
        weights = cosine[visible]
        colour_sum[visible] += weights[:, None] * colour
        weight_sum[visible] += weights
    seen = weight_sum > 0
    colours = np.zeros((len(points), 3), dtype=np.float32)
    colours[seen] = colour_sum[seen] / weight_sum[seen, None]
    return np.clip(colours, 0.0, 1.0), seen


def _bilinear(
    view: SeenView, x: np.ndarray, y: np.ndarray, depth: np.ndarray, slack: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (n, 3) at continuous pixel coordinates (x, y) from the (up to) four nearest pixel centres whose
    depth map lies within ``slack`` of the point's ``depth`` (they see the same surface: an occluder's or a
    background pixel next to it must not blend in), bilinear weights times alpha renormalised; and the weight
    (n,) those pixels had (0 where none sees the point)."""
    height, width = view.alpha.shape
    u, v = x - 0.5, y - 0.5  # pixel centres at integers
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    colour_sum = np.zeros((len(x), 3))
    weight_sum = np.zeros(len(x))
    for d_row in (0, 1):
        for d_column in (0, 1):
            rows = np.clip(v0 + d_row, 0, height - 1)
            columns = np.clip(u0 + d_column, 0, width - 1)
            weight = (1.0 - np.abs(u - (u0 + d_column))) * (1.0 - np.abs(v - (v0 + d_row)))
            same_surface = np.abs(view.depth[rows, columns] - depth) <= slack
            weight = np.where(same_surface, weight * view.alpha[rows, columns], 0.0)
            colour_sum += (
                weight[:, None]
                * view.premultiplied[rows, columns]
                / np.maximum(view.alpha[rows, columns], 1e-6)[:, None]
            )
            weight_sum += weight
    return colour_sum / np.maximum(weight_sum, 1e-12)[:, None], weight_sum


def colours_from_views(
    mesh: TriangleMesh, views: Iterable[ViewImage], depth_tolerance: float, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex colours (n_vertices, 3) from the views that see each vertex, and seen (n_vertices,) bool."""
    return colours_seen_from(mesh.vertices, mesh.vertex_normals(), seen_views(mesh, views, device), depth_tolerance)


def colour_function_from_views(
    mesh: TriangleMesh,
    views: Iterable[ViewImage],
    depth_tolerance: float,
    unseen: ColourFunction,
    colours_are_linear: bool,
    device: str = "cpu",
) -> ColourFunction:
    """The bake's colour callback for texels of ``mesh``: the views' colours where they see a texel,
    ``unseen(points, normals)`` (the field) where none does, sRGB-encoded when the images are linear."""
    prepared = seen_views(mesh, views, device)

    def colour(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        colours, seen = colours_seen_from(points, normals, prepared, depth_tolerance)
        if not seen.all():
            colours[~seen] = unseen(points[~seen], normals[~seen])
        return linear_to_srgb(colours).astype(np.float32) if colours_are_linear else colours

    return colour
