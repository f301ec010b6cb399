"""Tiny shape datasets for the shape methods' tests: analytic meshes made with marching cubes, no Blender."""

from __future__ import annotations

from pathlib import Path

import mcubes
import numpy as np

from engine.data.shapes import ShapeGeometry, vertex_normals, write_shape_dataset


def ellipsoid_mesh(
    radii: tuple[float, float, float], center: tuple[float, float, float] = (0.0, 0.0, 0.0), cells: int = 24
) -> ShapeGeometry:
    """A closed ellipsoid mesh in world space, triangles facing out (marching cubes of its implicit function)."""
    radii_array = np.asarray(radii, dtype=np.float64)
    axis = np.linspace(-1.2, 1.2, cells + 1)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    inside = 1.0 - np.sqrt(x**2 + y**2 + z**2)  # positive inside the unit sphere
    vertices, faces = mcubes.marching_cubes(inside, 0.0)
    unit = -1.2 + vertices * (2.4 / cells)
    world = unit * radii_array + np.asarray(center)
    faces = faces.astype(np.int64)
    return ShapeGeometry(vertices=world, faces=faces, normals=vertex_normals(world, faces))


def write_ellipsoids(folder: Path, count: int = 1, cells: int = 16) -> Path:
    """A shape dataset of ``count`` ellipsoids (Blob.000, Blob.001, ...) of growing elongation, off-centre."""
    shapes = [
        (f"Blob.{index:03d}", ellipsoid_mesh((0.5 + 0.15 * index, 0.4, 0.3), (1.0 + 2.0 * index, -0.5, 0.25), cells))
        for index in range(count)
    ]
    return write_shape_dataset(folder, shapes).parent
