"""Positional (Fourier) encoding of NeRF: gamma(x) = (x, sin(2^k pi x) for k < L, cos(2^k pi x) for k < L)."""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """Maps (n, in_dim) to (n, out_dim) with out_dim = in_dim * (2 * n_frequencies + include_input).

    Frequencies are 2^k * pi for k = 0 .. n_frequencies - 1, as in the NeRF paper (L=10 for positions,
    L=4 for directions). Inputs should lie roughly in [-1, 1] so the lowest frequency does not alias.
    """

    def __init__(self, in_dim: int, n_frequencies: int, include_input: bool = True) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        if n_frequencies < 0:
            raise ValueError(f"n_frequencies must be >= 0, got {n_frequencies}")
        self.in_dim = in_dim
        self.n_frequencies = n_frequencies
        self.include_input = include_input
        self.out_dim = in_dim * (2 * n_frequencies + int(include_input))
        frequencies = math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32)
        self.register_buffer("frequencies", frequencies, persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(n, in_dim) -> (n, out_dim)."""
        # (n, in_dim, n_frequencies) -> (n, in_dim * n_frequencies)
        scaled = (inputs[..., None] * self.frequencies).flatten(start_dim=-2)
        parts = [inputs] if self.include_input else []
        parts += [torch.sin(scaled), torch.cos(scaled)]
        return torch.cat(parts, dim=-1)
