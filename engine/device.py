"""Compute device choice: CUDA when present, then Apple MPS, else CPU."""

from __future__ import annotations

import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N (a GPU index), mps"


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks the fastest available device; anything else must exist. A name that is not a
    device, or names one this machine lacks, is a ValueError listing the choices."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device {name!r} is not a device; choose one of {DEVICE_CHOICES}") from error
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} cannot train or render here; choose one of {DEVICE_CHOICES}")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"device {name!r}: there is one CPU device; use cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available to torch {torch.__version__}")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but MPS is not available")
    return device
