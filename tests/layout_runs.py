"""Tiny generative runs for the layout tests: a collection written with numpy in the collection format
(engine/data/collection.py; no Blender) and a 2-step GIRAFFE run trained on it by the real engine CLI, plus
a run folder of another method (ngp) that makes no layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tests.conftest import REPO
from tests.engine.tiny_collection import OFFSET_FLOOR_PRIOR as PRIOR


def write_collection(root: Path, count: int = 4, size: int = 32) -> Path:
    """Random-coloured square images and the prior above: enough for a model to be built and stepped."""
    (root / "images").mkdir(parents=True)
    (root / "params").mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        iio.imwrite(root / "images" / f"{index:06d}.png", pixels)
        (root / "params" / f"{index:06d}.json").write_text(json.dumps({"index": index, "objects": []}))
    document = {
        "format": "fieldwork-image-collection",
        "version": 1,
        "complete": True,
        "count": count,
        "width": size,
        "height": size,
        "color_space": "srgb",
        "renderer": {"engine": "CYCLES", "samples": 2, "denoise": False},
        "seed": 0,
        "source": {"kind": "primitives", "shapes": ["cube"], "materials": ["rubber"]},
        "prior": PRIOR,
        "images": [{"image": f"images/{i:06d}.png", "params": f"params/{i:06d}.json"} for i in range(count)],
    }
    (root / "collection.json").write_text(json.dumps(document))
    return root


def train_giraffe(root: Path, steps: int = 2) -> Path:
    """A ``steps``-step GIRAFFE run (tiny preset, batch 2) in root/run, trained by ``python -m engine train``."""
    collection = write_collection(root / "collection")
    run = root / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "engine", "train", str(collection), "--method", "giraffe"]
    command += ["--steps", str(steps), "--out", str(run), "--set", "batch_size=2", "--set", "sample_every=0"]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return run


def ngp_run_folder(root: Path) -> Path:
    """A run folder whose config says ngp (what Train writes for an image method), with a checkpoint file."""
    sys.path.insert(0, str(REPO))
    from engine.data.transforms import SceneBox
    from engine.train.config import TrainConfig
    from engine.train.trainer import RunInfo

    run = root / "ngp-run"
    run.mkdir(parents=True)
    info = RunInfo("dataset", SceneBox(minimum=(-1.0, -1.0, -1.0), maximum=(1.0, 1.0, 1.0)), 128, "srgb")
    (run / "config.json").write_text(json.dumps(info.to_dict(TrainConfig(method="ngp"))))
    (run / "checkpoint.pt").write_bytes(b"")
    return run
