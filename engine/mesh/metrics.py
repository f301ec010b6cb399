"""Mesh against ground truth: Chamfer-L1 and F-score on points sampled uniformly over both surfaces.

As in Occupancy Networks' evaluation: accuracy = mean distance from predicted points to the
ground truth, completeness = the other way round, Chamfer-L1 = their mean; F-score at a
threshold tau = harmonic mean of precision (predicted points within tau of the truth) and
recall (true points within tau of the prediction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .triangle_mesh import TriangleMesh


@dataclass(frozen=True)
class SurfaceDistances:
    chamfer_l1: float  # world units
    accuracy: float  # mean distance, prediction -> truth
    completeness: float  # mean distance, truth -> prediction
    precision: float
    recall: float
    f_score: float
    threshold: float  # tau, world units


def sample_surface(mesh: TriangleMesh, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """(n_points, 3) points uniform by area over the mesh's triangles."""
    areas = 0.5 * np.linalg.norm(mesh.face_normals(), axis=1)
    if areas.sum() <= 0:
        raise ValueError("cannot sample a mesh whose triangles have no area")
    faces = rng.choice(mesh.n_faces, size=n_points, p=areas / areas.sum())
    # Uniform barycentric coordinates: reflect the samples that fall outside the triangle.
    u, v = rng.random(n_points), rng.random(n_points)
    outside = u + v > 1
    u[outside], v[outside] = 1 - u[outside], 1 - v[outside]
    corners = mesh.vertices[mesh.faces[faces]]
    return corners[:, 0] + u[:, None] * (corners[:, 1] - corners[:, 0]) + v[:, None] * (corners[:, 2] - corners[:, 0])


def surface_distances(
    predicted: TriangleMesh, truth: TriangleMesh, threshold: float, n_points: int = 100_000, seed: int = 0
) -> SurfaceDistances:
    rng = np.random.default_rng(seed)
    predicted_points = sample_surface(predicted, n_points, rng)
    true_points = sample_surface(truth, n_points, rng)
    to_truth, _ = cKDTree(true_points).query(predicted_points)
    to_prediction, _ = cKDTree(predicted_points).query(true_points)
    precision = float((to_truth < threshold).mean())
    recall = float((to_prediction < threshold).mean())
    f_score = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    accuracy, completeness = float(to_truth.mean()), float(to_prediction.mean())
    return SurfaceDistances(
        chamfer_l1=0.5 * (accuracy + completeness),
        accuracy=accuracy,
        completeness=completeness,
        precision=precision,
        recall=recall,
        f_score=f_score,
        threshold=threshold,
    )


def point_distances(predicted_points: np.ndarray, true_points: np.ndarray, threshold: float) -> SurfaceDistances:
    """Chamfer-L1 and F-score between two point sets (a point-cloud ground truth has no triangles to sample)."""
    to_truth, _ = cKDTree(true_points).query(predicted_points)
    to_prediction, _ = cKDTree(predicted_points).query(true_points)
    precision = float((to_truth < threshold).mean())
    recall = float((to_prediction < threshold).mean())
    f_score = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    accuracy, completeness = float(to_truth.mean()), float(to_prediction.mean())
    return SurfaceDistances(
        0.5 * (accuracy + completeness), accuracy, completeness, precision, recall, f_score, threshold
    )


def normal_consistency(predicted: TriangleMesh, truth: TriangleMesh, n_points: int = 100_000, seed: int = 0) -> float:
    """Occupancy Networks' normal consistency: the mean |cos| between the face normal at a point sampled on
    one mesh and the face normal of the nearest sample on the other, both ways averaged. 1 is perfect; the
    absolute value makes it blind to orientation, so it measures the shape of the surface, not its facing."""
    rng = np.random.default_rng(seed)

    def samples(mesh: TriangleMesh) -> tuple[np.ndarray, np.ndarray]:
        normals = mesh.face_normals()
        areas = np.linalg.norm(normals, axis=1)
        if areas.sum() <= 0:
            raise ValueError("cannot sample a mesh whose triangles have no area")
        faces = rng.choice(mesh.n_faces, size=n_points, p=areas / areas.sum())
        u, v = rng.random(n_points), rng.random(n_points)
        outside = u + v > 1
        u[outside], v[outside] = 1 - u[outside], 1 - v[outside]
        corners = mesh.vertices[mesh.faces[faces]]
        points = (
            corners[:, 0] + u[:, None] * (corners[:, 1] - corners[:, 0]) + v[:, None] * (corners[:, 2] - corners[:, 0])
        )
        return points, normals[faces] / np.maximum(areas[faces, None], 1e-30)

    predicted_points, predicted_normals = samples(predicted)
    true_points, true_normals = samples(truth)
    _, nearest_truth = cKDTree(true_points).query(predicted_points)
    _, nearest_prediction = cKDTree(predicted_points).query(true_points)
    forward = np.abs(np.einsum("ij,ij->i", predicted_normals, true_normals[nearest_truth])).mean()
    backward = np.abs(np.einsum("ij,ij->i", true_normals, predicted_normals[nearest_prediction])).mean()
    return float(0.5 * (forward + backward))
