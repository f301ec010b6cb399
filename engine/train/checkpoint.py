"""Checkpoints: written to a temporary file in the run folder and renamed into place (a crash never leaves
a half file where a good one stood); read with ``torch.load(weights_only=True)`` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Atomically write payload (tensors, numbers, strings, lists and dicts of them) to path."""
    return write_atomic(Path(path), lambda temporary: torch.save({"format": CHECKPOINT_FORMAT, **payload}, temporary))


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint, tensors mapped onto device."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable Fieldwork checkpoint: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a Fieldwork checkpoint of format {CHECKPOINT_FORMAT}")
    return payload
