"""Colours from training views, for vertices and for any surface points (a bake's texels): the right colour
where seen, nothing from the front on hidden sides, the field's colour where no view sees."""

from __future__ import annotations

import numpy as np

from engine.mesh.bake import BakeSettings, bake_texture
from engine.mesh.view_colours import ViewImage, colour_function_from_views, colours_from_views

from .conftest import merge, sphere_mesh

CENTRE = np.array([0.5, -0.25, 1.0])
RADIUS = 0.5
SIZE = 48
FOCAL = 60.0
BLOCKER_CENTRE = CENTRE + np.array([0.85, 0.0, 0.0])  # between the +x camera and the sphere
BLOCKER_RADIUS = 0.2


def _look_at(eye: np.ndarray) -> np.ndarray:
    """camera_to_world (4, 4) at ``eye`` looking at the sphere's centre, Blender convention (-Z forward)."""
    backward = (eye - CENTRE) / np.linalg.norm(eye - CENTRE)
    up_hint = np.array([0.0, 0.0, 1.0]) if abs(backward[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    right = np.cross(up_hint, backward)
    right /= np.linalg.norm(right)
    up = np.cross(backward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, backward, eye
    return pose


def _trace(pose: np.ndarray, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays through pixel centres against one sphere: hit (h, w) bool, distance (h, w), hit points (h, w, 3)."""
    column, row = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5)
    directions = np.stack([(column - SIZE / 2) / FOCAL, -(row - SIZE / 2) / FOCAL, -np.ones_like(column)], -1)
    directions = directions @ pose[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    offset = pose[:3, 3] - centre
    half_b = directions @ offset
    discriminant = half_b**2 - (offset @ offset - radius**2)
    hit = discriminant > 0
    distance = np.where(hit, -half_b - np.sqrt(np.where(hit, discriminant, 0.0)), np.inf)
    return hit, distance, pose[:3, 3] + np.where(hit, distance, 0.0)[..., None] * directions


def _render(pose: np.ndarray, blocker: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 3) colours of the nearest hit (the ramp on the sphere, blue on the blocker) and (h, w) alpha."""
    hit, distance, points = _trace(pose, CENTRE, RADIUS)
    image = np.where(hit[..., None], _ramp(points.reshape(-1, 3)).reshape(SIZE, SIZE, 3), 0.0)
    if blocker:
        blocker_hit, blocker_distance, _ = _trace(pose, BLOCKER_CENTRE, BLOCKER_RADIUS)
        in_front = blocker_hit & (blocker_distance < distance)
        image[in_front] = (0.0, 0.0, 1.0)
        hit = hit | blocker_hit
    return image, hit.astype(np.float32)


def _views(poses: np.ndarray, blocker: bool) -> list[ViewImage]:
    views = []
    for pose in poses:
        image, alpha = _render(pose, blocker)
        views.append(ViewImage(image, alpha, pose, np.full(2, FOCAL), np.full(2, SIZE / 2)))
    return views


def _ramp(points: np.ndarray) -> np.ndarray:
    """Red grows with x across the sphere; green is 1 on the +y half and 0 on the -y half."""
    red = (points[:, 0] - CENTRE[0] + RADIUS) / (2 * RADIUS)
    green = (points[:, 1] > CENTRE[1]).astype(np.float64)
    return np.stack([red, green, np.full_like(red, 0.3)], axis=1)


def test_colours_come_from_the_views_that_see_each_vertex() -> None:
    mesh = sphere_mesh(centre=tuple(CENTRE), radius=RADIUS, resolution=32)
    eyes = [CENTRE + 2.0 * np.array(direction) for direction in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0.2))]
    poses = np.stack([_look_at(eye) for eye in eyes])
    colours, seen = colours_from_views(mesh, _views(poses, blocker=False), depth_tolerance=0.02)

    # The four cameras circle the equator: the poles are never seen at a useful angle.
    assert seen.mean() > 0.8
    expected = _ramp(mesh.vertices)
    red_error = np.abs(colours[seen, 0] - expected[seen, 0])
    # A pixel is 2 / 60 = 0.033 wide at the sphere: the red ramp moves 0.033 per pixel.
    assert np.median(red_error) < 0.04
    # Green flips between halves: a vertex coloured through the sphere from the wrong side would
    # be wrong by 1. Only vertices near the dividing plane (within a pixel) may blend.
    far_from_plane = np.abs(mesh.vertices[:, 1] - CENTRE[1]) > 0.05
    assert np.abs(colours[seen & far_from_plane, 1] - expected[seen & far_from_plane, 1]).max() < 0.2


def test_a_vertex_hidden_behind_something_takes_no_colour_from_it() -> None:
    """A blue ball sits between the +x camera and the sphere: the sphere behind it must not turn blue."""
    sphere = sphere_mesh(centre=tuple(CENTRE), radius=RADIUS, resolution=32)
    blocker = sphere_mesh(centre=tuple(BLOCKER_CENTRE), radius=BLOCKER_RADIUS, resolution=16)
    scene = merge(sphere, blocker)
    eyes = [CENTRE + 2.0 * np.array(direction) for direction in ((1, 0, 0), (0, 1, 0), (0, -1, 0.2))]
    poses = np.stack([_look_at(eye) for eye in eyes])
    colours, seen = colours_from_views(scene, _views(poses, blocker=True), depth_tolerance=0.02)

    on_sphere = np.arange(scene.n_vertices) < sphere.n_vertices
    behind_blocker = on_sphere & (scene.vertices[:, 0] > CENTRE[0] + 0.4)
    assert behind_blocker.sum() > 10
    # The ramp's blue is 0.3; a vertex coloured through the blocker would be pulled towards 1.
    assert colours[behind_blocker & seen, 2].max() < 0.35
    # The blocker's own camera-facing vertices are blue, except a few on its silhouette, where a
    # pixel's footprint overlaps what lies behind.
    facing_camera = ~on_sphere & seen & (scene.vertices[:, 0] > BLOCKER_CENTRE[0] + 0.5 * BLOCKER_RADIUS)
    blue_error = np.abs(colours[facing_camera] - np.array([0.0, 0.0, 1.0])).max(axis=1)
    assert facing_camera.sum() > 10 and (blue_error < 0.1).mean() > 0.95


def test_points_between_vertices_take_the_views_colours_and_unseen_ones_the_fallback() -> None:
    """Texels lie anywhere on the faces, not on vertices: their colour is sampled where they project."""
    mesh = sphere_mesh(centre=tuple(CENTRE), radius=RADIUS, resolution=32)
    eyes = [CENTRE + 2.0 * np.array(direction) for direction in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0.2))]
    views = _views(np.stack([_look_at(eye) for eye in eyes]), blocker=False)
    fallback = np.array([0.9, 0.1, 0.9])
    colour = colour_function_from_views(
        mesh, views, 0.02, unseen=lambda points, _normals: np.tile(fallback, (len(points), 1)), colours_are_linear=False
    )
    # points in the middle of the faces, on the mesh
    triangles = mesh.vertices[mesh.faces]
    points = triangles.mean(axis=1)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colours = colour(points, normals)
    expected = _ramp(points)
    at_fallback = np.abs(colours - fallback).max(axis=1) < 1e-6
    poles = np.abs(points[:, 2] - CENTRE[2]) > 0.45
    assert at_fallback[poles].mean() > 0.9 and at_fallback.mean() < 0.2, "the poles only are unseen"
    seen = ~at_fallback
    assert np.median(np.abs(colours[seen, 0] - expected[seen, 0])) < 0.03  # bilinear: under a pixel's step
    far_from_plane = np.abs(points[:, 1] - CENTRE[1]) > 0.05
    assert np.abs(colours[seen & far_from_plane, 1] - expected[seen & far_from_plane, 1]).max() < 0.2
    # through the bake: every chart texel gets a colour, the charts average what the cameras saw
    baked = bake_texture(mesh, colour, BakeSettings(size=256))
    texels = baked.image[baked.coverage].astype(np.float64) / 255.0
    assert np.abs(texels.mean(axis=0) - colours.mean(axis=0)).max() < 0.05
