"""Meshes made from analytic fields, shared by the mesh tests."""

from __future__ import annotations

import numpy as np

from engine.mesh.grid import Grid
from engine.mesh.levels import FieldKind, SurfaceLevel
from engine.mesh.mise import sample_mise
from engine.mesh.surface import marching_cubes
from engine.mesh.triangle_mesh import TriangleMesh

from .analytic import Sphere


def sphere_mesh(centre: tuple[float, float, float], radius: float, resolution: int = 32) -> TriangleMesh:
    """A marching-cubes sphere with a colour ramp along x, in a box just around it."""
    sphere = Sphere(np.asarray(centre, dtype=np.float64), radius)
    margin = 1.25 * radius
    grid = Grid.covering_box(sphere.centre - margin, sphere.centre + margin, resolution, multiple_of=2)
    level = SurfaceLevel(FieldKind.SDF, 0.0)
    mesh = marching_cubes(sample_mise(lambda p: level.inside(sphere.signed_distance(p)), grid, resolution // 2, 4096))
    ramp = (mesh.vertices[:, 0] - mesh.vertices[:, 0].min()) / np.ptp(mesh.vertices[:, 0])
    colours = np.stack([ramp, 1.0 - ramp, np.full_like(ramp, 0.25)], axis=1).astype(np.float32)
    return mesh.with_colors(colours)


def merge(*meshes: TriangleMesh) -> TriangleMesh:
    offsets = np.cumsum([0] + [mesh.n_vertices for mesh in meshes[:-1]])
    return TriangleMesh(
        vertices=np.concatenate([mesh.vertices for mesh in meshes]),
        faces=np.concatenate([mesh.faces + offset for mesh, offset in zip(meshes, offsets, strict=True)]),
        vertex_colors=np.concatenate([mesh.vertex_colors for mesh in meshes]),  # type: ignore[misc]
    )
