"""Analytic fields with known surfaces, in world units, for testing extraction without training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.data.transforms import Frame, Intrinsics


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


def cameras_around(centre: np.ndarray, half_size: float, count: int, distance: float = 4.0) -> list[Frame]:
    """``count`` 64-pixel cameras on a Fibonacci sphere around ``centre``, each framing the cube of ``half_size``."""
    size = 64
    focal = 0.5 * size * distance / (1.8 * half_size)
    frames = []
    for index in range(count):
        z = 1.0 - 2.0 * (index + 0.5) / count
        angle = index * math.pi * (3.0 - math.sqrt(5.0))
        backward = np.array([math.sqrt(1 - z * z) * math.cos(angle), math.sqrt(1 - z * z) * math.sin(angle), z])
        up_hint = np.array([0.0, 0.0, 1.0]) if abs(backward[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
        right = np.cross(up_hint, backward)
        right /= np.linalg.norm(right)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, np.cross(backward, right), backward
        pose[:3, 3] = centre + distance * backward
        frames.append(Frame(f"{index}.png", pose.tolist(), Intrinsics(focal, focal, size / 2, size / 2, size, size)))
    return frames
