"""The triangle mesh that leaves the engine: world units, outward-facing triangles. numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TriangleMesh:
    """An indexed triangle mesh in Blender world units.

    ``vertices`` (n_vertices, 3) float64, ``faces`` (n_faces, 3) int64 indices into
    ``vertices``, counter-clockwise seen from outside; ``vertex_colors`` (n_vertices, 3)
    float32 sRGB-encoded in [0, 1] (as mesh files store colours), or None; ``uvs``
    (n_vertices, 2) float32 texture coordinates in [0, 1], u to the right and v up with
    (0, 0) at the image's bottom-left (the OBJ and Blender convention), or None. A UV atlas
    splits vertices along its seams, so two vertices may share a position.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    uvs: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape (n, 3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must have shape (m, 3), got {self.faces.shape}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError(
                f"face indices must lie in [0, {len(self.vertices)}), got [{self.faces.min()}, {self.faces.max()}]"
            )
        if self.vertex_colors is not None and self.vertex_colors.shape != self.vertices.shape:
            raise ValueError(
                f"vertex_colors must have shape {self.vertices.shape} like vertices, got {self.vertex_colors.shape}"
            )
        if self.uvs is not None and self.uvs.shape != (len(self.vertices), 2):
            raise ValueError(f"uvs must have shape ({len(self.vertices)}, 2), one per vertex, got {self.uvs.shape}")

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(minimum (3,), maximum (3,)) of the vertices, in world units."""
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def face_normals(self) -> np.ndarray:
        """(n_faces, 3) unnormalised normals; their length is twice the triangle's area."""
        corners = self.vertices[self.faces]
        return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])

    def vertex_normals(self) -> np.ndarray:
        """(n_vertices, 3) unit normals, area-weighted averages of the adjacent faces' normals."""
        normals = np.zeros_like(self.vertices)
        face_normals = self.face_normals()
        for corner in range(3):
            np.add.at(normals, self.faces[:, corner], face_normals)
        lengths = np.linalg.norm(normals, axis=1, keepdims=True)
        return normals / np.maximum(lengths, 1e-20)

    def welded(self) -> tuple[np.ndarray, np.ndarray]:
        """One vertex per distinct position: the first vertex (n_unique,) at each, and the index
        (n_vertices,) of each vertex's position among them. Undoes a UV atlas' seam split."""
        _, first, position_index = np.unique(self.vertices, axis=0, return_index=True, return_inverse=True)
        return first, position_index.reshape(-1)

    def seamless_vertex_normals(self) -> np.ndarray:
        """(n_vertices, 3) unit normals averaged over every face at a position, so vertices split at
        a UV seam get the same normal on both sides (no shading crease along seams)."""
        first, position_index = self.welded()
        welded = TriangleMesh(self.vertices[first], position_index[self.faces])
        return welded.vertex_normals()[position_index]

    def surface_area(self) -> float:
        return float(0.5 * np.linalg.norm(self.face_normals(), axis=1).sum())

    def signed_volume(self) -> float:
        """Enclosed volume; positive when a closed mesh's triangles face outwards."""
        corners = self.vertices[self.faces]
        return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0)

    def euler_characteristic(self) -> int:
        """V - E + F: 2 for a sphere, 0 for a torus (closed, manifold meshes)."""
        edges = np.sort(self.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        n_edges = len(np.unique(edges, axis=0))
        n_used_vertices = len(np.unique(self.faces))
        return n_used_vertices - n_edges + self.n_faces

    def with_colors(self, vertex_colors: np.ndarray | None) -> TriangleMesh:
        return TriangleMesh(self.vertices, self.faces, vertex_colors, self.uvs)

    def submesh(self, face_mask: np.ndarray) -> TriangleMesh:
        """The faces where ``face_mask`` (n_faces,) bool is set, with unused vertices dropped."""
        kept_faces = self.faces[face_mask]
        used = np.unique(kept_faces)
        new_index = np.full(self.n_vertices, -1, dtype=np.int64)
        new_index[used] = np.arange(len(used))
        colors = None if self.vertex_colors is None else self.vertex_colors[used]
        uvs = None if self.uvs is None else self.uvs[used]
        return TriangleMesh(self.vertices[used], new_index[kept_faces], colors, uvs)
