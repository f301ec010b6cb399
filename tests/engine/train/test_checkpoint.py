"""Checkpoints that are not what the trainer wrote are refused by name, never a KeyError or a pickle."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.train.checkpoint import load_checkpoint, save_checkpoint

CPU = torch.device("cpu")


def complete_payload() -> dict[str, object]:
    return {
        "step": 20,
        "train_seconds": 1.5,
        "model": {"weight": torch.ones(2)},
        "optimizer": {"state": {}, "param_groups": []},
        "generator": torch.Generator().get_state(),
    }


def test_a_complete_checkpoint_loads(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "checkpoint.pt", complete_payload())
    payload = load_checkpoint(path, CPU)
    assert payload["step"] == 20 and torch.equal(payload["model"]["weight"], torch.ones(2))


def test_a_checkpoint_holding_only_its_format_names_the_file_and_the_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1}, path)
    with pytest.raises(ValueError, match=rf"{path}: incomplete checkpoint, missing 'step', 'train_seconds', 'model'"):
        load_checkpoint(path, CPU)


def test_a_mistyped_key_is_named(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "checkpoint.pt", {**complete_payload(), "step": "20"})
    with pytest.raises(ValueError, match=rf"{path}: checkpoint key 'step' must be int, got str"):
        load_checkpoint(path, CPU)


def test_other_files_and_formats_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=rf"{garbage}: not a readable Fieldwork checkpoint"):
        load_checkpoint(garbage, CPU)
    future = tmp_path / "future.pt"
    torch.save({"format": 2, **complete_payload()}, future)
    with pytest.raises(ValueError, match=rf"{future}: not a Fieldwork checkpoint of format 1"):
        load_checkpoint(future, CPU)
