"""Where the surface is, per kind of field: inside-ness is positive inside, zero on the surface."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np


class FieldKind(enum.Enum):
    """What a field's scalar means, which fixes how its surface level is read."""

    DENSITY = "density"  # radiance fields: volume density sigma >= 0, per world unit
    SDF = "sdf"  # signed distance: negative inside, zero on the surface
    OCCUPANCY = "occupancy"  # occupancy networks: the field returns logits of the probability


# Radiance fields have no surface, only density. The default level makes a slab 5% of the scene
# box's diagonal thick 50% opaque: sigma = ln 2 / (0.05 * diagonal). A field only needs enough
# density to make the object opaque along a ray through it, so trained densities stay modest and
# the level must too: in a [0, 1] cube around a scene this is about 8, in the range of the usual
# marching-cubes thresholds for NeRF-style fields (instant-ngp 2.5, torch-ngp 10).
DEFAULT_HALF_OPAQUE_SLAB_FRACTION = 0.05


@dataclass(frozen=True)
class SurfaceLevel:
    """A field kind and its level: a density threshold, 0 for SDF, a probability for occupancy."""

    kind: FieldKind
    value: float

    def __post_init__(self) -> None:
        if self.kind is FieldKind.OCCUPANCY and not 0.0 < self.value < 1.0:
            raise ValueError(f"occupancy level is a probability strictly between 0 and 1, got {self.value}")
        if self.kind is FieldKind.DENSITY and not self.value > 0.0:
            raise ValueError(f"density level must be positive (sigma per world unit), got {self.value}")
        if not math.isfinite(self.value):
            raise ValueError(f"surface level must be finite, got {self.value}")

    @classmethod
    def default_for(cls, kind: FieldKind, box_diagonal: float) -> SurfaceLevel:
        if kind is FieldKind.DENSITY:
            slab = DEFAULT_HALF_OPAQUE_SLAB_FRACTION * box_diagonal
            return cls(kind, math.log(2.0) / slab)
        if kind is FieldKind.OCCUPANCY:
            return cls(kind, 0.5)
        return cls(kind, 0.0)

    def inside(self, raw: np.ndarray) -> np.ndarray:
        """Field values (n,) -> inside-ness (n,): positive inside, zero on the level.

        Occupancy compares logits with logit(level) (the Occupancy Networks threshold), so
        marching cubes interpolates in logit space, where a trained occupancy field is
        close to linear across the surface.
        """
        raw = np.asarray(raw, dtype=np.float32)
        if self.kind is FieldKind.SDF:
            return self.value - raw
        if self.kind is FieldKind.OCCUPANCY:
            return raw - np.float32(math.log(self.value / (1.0 - self.value)))
        return raw - np.float32(self.value)

    def describe(self) -> str:
        if self.kind is FieldKind.DENSITY:
            return f"density {self.value:g} per world unit"
        if self.kind is FieldKind.OCCUPANCY:
            return f"occupancy probability {self.value:g}"
        return f"signed distance {self.value:g}"
