"""Marching cubes (pymcubes) on a sampled lattice, into world units. numpy only."""

from __future__ import annotations

import mcubes
import numpy as np

from .grid import SampledGrid
from .triangle_mesh import TriangleMesh


class EmptySurfaceError(ValueError):
    """The field has no surface at the chosen level inside the box. The message says which way to move."""


def marching_cubes(sampled: SampledGrid, what: str = "the field", level: str = "level 0") -> TriangleMesh:
    """The zero level set of ``sampled.values`` as a mesh in world units, triangles facing outwards.

    ``what`` and ``level`` only word the error when there is no surface. pymcubes returns
    vertices in lattice index units, axes in array order, and (with positive inside)
    counter-clockwise triangles seen from outside.
    """
    values = sampled.values
    n_inside = int((values > 0).sum())
    if n_inside == 0:
        raise EmptySurfaceError(
            f"{what} has nothing above the surface level ({level}) anywhere in the box: its highest sample is "
            f"{-float(values.max()):.4g} below the level. Lower the level, train longer, or check the scene box"
        )
    if n_inside == values.size:
        raise EmptySurfaceError(
            f"{what} is above the surface level ({level}) everywhere in the box, so there is no surface to "
            "extract: raise the level or check the scene box"
        )
    vertices, faces = mcubes.marching_cubes(values, 0.0)
    if len(faces) == 0:
        raise EmptySurfaceError(f"{what} gave no triangles at this level: try a higher resolution")
    world_vertices = sampled.grid.origin + vertices * sampled.grid.cell_size
    return TriangleMesh(vertices=world_vertices, faces=faces.astype(np.int64))
