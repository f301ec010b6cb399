"""Positional encoding: the frequencies of NeRF's gamma(x)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.encodings.positional import PositionalEncoding


def test_positional_encoding_frequencies() -> None:
    encoding = PositionalEncoding(1, 2)
    # gamma(x) = (x, sin(pi x), sin(2 pi x), cos(pi x), cos(2 pi x)) at x = 1/4
    value = encoding(torch.tensor([[0.25]]))[0].tolist()
    expected = [0.25, math.sin(math.pi / 4), math.sin(math.pi / 2), math.cos(math.pi / 4), math.cos(math.pi / 2)]
    assert value == pytest.approx(expected, abs=1e-6)
    assert encoding.out_dim == 5
