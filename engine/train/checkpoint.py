"""Checkpoints: written to a temporary file in the run folder and renamed into place (a crash never leaves
a half file where a good one stood); read with ``torch.load(weights_only=True)`` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
# What the trainer writes (Trainer.save_checkpoint) and reads back, with the type each must have: a
# checkpoint cut short or written by something else is named here instead of failing as a KeyError.
TRAINER_KEYS: dict[str, type | tuple[type, ...]] = {
    "step": int,
    "train_seconds": (int, float),
    "model": dict,
    "optimizers": dict,  # one state per named optimiser of the method
    "generator": torch.Tensor,
}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Atomically write payload (tensors, numbers, strings, lists and dicts of them) to path."""
    return write_atomic(Path(path), lambda temporary: torch.save({"format": CHECKPOINT_FORMAT, **payload}, temporary))


def load_checkpoint(
    path: Path, device: torch.device, required: dict[str, type | tuple[type, ...]] | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint, tensors mapped onto device. ``required`` (default
    TRAINER_KEYS) names the keys it must hold and their types; a missing or mistyped one is a ValueError
    naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable Fieldwork checkpoint: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a Fieldwork checkpoint of format {CHECKPOINT_FORMAT}")
    required = TRAINER_KEYS if required is None else required
    if "optimizers" in required and "optimizers" not in payload and isinstance(payload.get("optimizer"), dict):
        payload["optimizers"] = {"main": payload.pop("optimizer")}  # engine 0.1: the one optimiser of ngp/nerf
    missing = [key for key in required if key not in payload]
    if missing:
        raise ValueError(
            f"{path}: incomplete checkpoint, missing {', '.join(repr(key) for key in missing)}; "
            "it cannot be resumed or used (move it away to start the run over)"
        )
    for key, expected in required.items():
        value = payload[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(kind.__name__ for kind in (expected if isinstance(expected, tuple) else (expected,)))
            raise ValueError(f"{path}: checkpoint key {key!r} must be {names}, got {type(value).__name__}")
    return payload
