"""Analytic fields with known surfaces, in world units, for testing extraction without training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sphere:
    centre: np.ndarray
    radius: float

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) -> (n,), negative inside."""
        return np.linalg.norm(points - self.centre, axis=1) - self.radius


@dataclass(frozen=True)
class Torus:
    """A ring around the z axis through ``centre``: ``major`` radius to the tube's centre line."""

    centre: np.ndarray
    major: float
    minor: float

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        local = points - self.centre
        ring = np.hypot(local[:, 0], local[:, 1]) - self.major
        return np.hypot(ring, local[:, 2]) - self.minor


def occupancy_logits(signed_distance: np.ndarray, sharpness: float) -> np.ndarray:
    """Logits of a soft occupancy, p = sigmoid(-sharpness * sdf), read back from clipped probabilities.

    Going through the probability (as a network's sigmoid output would) saturates the logits
    away from the surface, so the field is not simply a scaled signed distance.
    """
    probability = 1.0 / (1.0 + np.exp(np.clip(sharpness * signed_distance, -60, 60)))
    probability = np.clip(probability, 1e-6, 1 - 1e-6)
    return np.log(probability / (1.0 - probability))
