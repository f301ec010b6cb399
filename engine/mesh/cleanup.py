"""Clean-up users expect: largest components, no floaters, fewer faces, triangles facing outwards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .decimate import decimate
from .triangle_mesh import TriangleMesh


@dataclass(frozen=True)
class CleanupConfig:
    """All off by default except orientation, which is always safe."""

    keep_largest_components: int = 0  # keep the N components with most faces; 0 keeps all
    min_component_size: float = 0.0  # drop components whose box diagonal is below this fraction of the scene's
    target_faces: int = 0  # quadric decimation (decimate.py) to at most this many faces; 0 keeps all
    orient_outward: bool = True

    def __post_init__(self) -> None:
        if self.keep_largest_components < 0:
            raise ValueError(f"keep_largest_components must be >= 0, got {self.keep_largest_components}")
        if not 0.0 <= self.min_component_size < 1.0:
            raise ValueError(
                f"min_component_size is a fraction of the scene diagonal in [0, 1), got {self.min_component_size}"
            )
        if self.target_faces < 0:
            raise ValueError(f"target_faces must be >= 0, got {self.target_faces}")


def face_components(mesh: TriangleMesh) -> np.ndarray:
    """(n_faces,) component label of each face; faces sharing a vertex are connected."""
    corners = mesh.faces
    rows = np.concatenate([corners[:, 0], corners[:, 1]])
    cols = np.concatenate([corners[:, 1], corners[:, 2]])
    adjacency = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(mesh.n_vertices,) * 2)
    _, vertex_labels = connected_components(adjacency, directed=False)
    return vertex_labels[corners[:, 0]]


def keep_largest_components(mesh: TriangleMesh, count: int) -> TriangleMesh:
    labels = face_components(mesh)
    sizes = np.bincount(labels)
    kept = np.argsort(sizes)[::-1][:count]
    return mesh.submesh(np.isin(labels, kept))


def remove_small_components(mesh: TriangleMesh, min_diagonal: float) -> TriangleMesh:
    """Drop components whose bounding-box diagonal is below ``min_diagonal`` (world units)."""
    labels = face_components(mesh)
    n_components = labels.max() + 1
    corners = mesh.vertices[mesh.faces]  # (n_faces, 3, 3)
    low = np.full((n_components, 3), np.inf)
    high = np.full((n_components, 3), -np.inf)
    np.minimum.at(low, labels, corners.min(axis=1))
    np.maximum.at(high, labels, corners.max(axis=1))
    big = np.linalg.norm(high - low, axis=1) >= min_diagonal
    return mesh.submesh(big[labels])


def orient_outward(mesh: TriangleMesh) -> TriangleMesh:
    """Flip every component whose volume, measured from its own centroid, is negative.

    Marching cubes already faces outwards; this repairs meshes from elsewhere and keeps the
    promise after decimation. For an open component the sign is still the majority vote of
    its triangles' orientation seen from its centre.
    """
    labels = face_components(mesh)
    n_components = labels.max() + 1
    corners = mesh.vertices[mesh.faces]
    centroid_sum = np.zeros((n_components, 3))
    np.add.at(centroid_sum, labels, corners.mean(axis=1))
    centroids = centroid_sum / np.bincount(labels, minlength=n_components)[:, None]
    relative = corners - centroids[labels][:, None, :]
    volumes = np.einsum("ij,ij->i", relative[:, 0], np.cross(relative[:, 1], relative[:, 2]))
    component_volume = np.bincount(labels, weights=volumes, minlength=n_components)
    flip = component_volume[labels] < 0
    faces = mesh.faces.copy()
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return TriangleMesh(mesh.vertices, faces, mesh.vertex_colors)


def clean_mesh(mesh: TriangleMesh, config: CleanupConfig, scene_diagonal: float) -> TriangleMesh:
    """Apply ``config``: floaters, then largest components, then decimation, then orientation."""
    if config.min_component_size > 0:
        mesh = remove_small_components(mesh, config.min_component_size * scene_diagonal)
    if config.keep_largest_components > 0:
        mesh = keep_largest_components(mesh, config.keep_largest_components)
    if config.target_faces > 0:
        mesh = decimate(mesh, config.target_faces)
    if config.orient_outward and mesh.n_faces:
        mesh = orient_outward(mesh)
    return mesh
