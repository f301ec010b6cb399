"""Real spherical harmonics of unit directions, as instant-NGP encodes view directions: smooth in the
direction, so a colour MLP cannot memorise each training view the way high Fourier frequencies let it."""

from __future__ import annotations

import torch
from torch import nn


class SphericalHarmonics(nn.Module):
    """(n, 3) unit directions -> (n, degree^2) real SH basis values, bands 0 .. degree - 1 (degree 1..4)."""

    def __init__(self, degree: int = 4) -> None:
        super().__init__()
        if not 1 <= degree <= 4:
            raise ValueError(f"spherical harmonics degree must be 1..4, got {degree}")
        self.degree = degree
        self.out_dim = degree**2

    def forward(self, directions: torch.Tensor) -> torch.Tensor:
        x, y, z = directions.unbind(-1)
        values = [torch.full_like(x, 0.28209479177387814)]
        if self.degree > 1:
            values += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
        if self.degree > 2:
            xx, yy, zz = x * x, y * y, z * z
            values += [
                1.0925484305920792 * x * y,
                -1.0925484305920792 * y * z,
                0.94617469575755997 * zz - 0.31539156525251999,
                -1.0925484305920792 * x * z,
                0.54627421529603959 * (xx - yy),
            ]
        if self.degree > 3:
            values += [
                0.59004358992664352 * y * (-3.0 * xx + yy),
                2.8906114426405538 * x * y * z,
                0.45704579946446572 * y * (1.0 - 5.0 * zz),
                0.3731763325901154 * z * (5.0 * zz - 3.0),
                0.45704579946446572 * x * (1.0 - 5.0 * zz),
                1.4453057213202769 * z * (xx - yy),
                0.59004358992664352 * x * (-xx + 3.0 * yy),
            ]
        return torch.stack(values, dim=-1)
