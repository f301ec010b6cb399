"""Rays per step follow the sample budget; a time budget bounds the evaluation after it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from engine.data.dataset import load_dataset
from engine.data.ray_source import MAX_CHANGE, MIN_RAYS, RaySource
from engine.train.config import TrainConfig
from engine.train.trainer import Trainer
from tests.engine.sphere_dataset import make_sphere_dataset

TINY_NGP = {"log2_table_size": 12, "levels": 4, "occupancy_resolution": 16}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sphere_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sphere_dataset(tmp_path_factory.mktemp("sphere"), n_views=8, size=16)


def test_ray_count_scales_towards_the_sample_budget(sphere_dataset: Path) -> None:
    source = RaySource(load_dataset(sphere_dataset), "white", 0, 32768, torch.device("cpu"))
    first = source.n_rays
    assert first == 32768 // 128  # the first guess: 128 samples per ray
    source.record(samples_used=first * 8)  # 8 samples per ray: 16x too few, but one step moves at most 4x
    assert source.n_rays == round(first * MAX_CHANGE)
    source.record(samples_used=source.n_rays * 8)
    assert source.n_rays == 32768 // 8  # now on target: 4096 rays of 8 samples
    source.record(samples_used=10**9)
    assert source.n_rays == round(4096 / MAX_CHANGE)
    source.record(samples_used=10**12)
    source.record(samples_used=10**12)
    assert source.n_rays == MIN_RAYS
    fixed = RaySource(load_dataset(sphere_dataset), "white", 100, 4096, torch.device("cpu"))
    fixed.record(samples_used=1)
    assert fixed.n_rays == 100 and fixed.next_batch(None).target.shape == (100, 3)


def test_adaptive_training_stays_near_its_sample_budget(sphere_dataset: Path, tmp_path: Path) -> None:
    budget = 8192
    config = TrainConfig(steps=40, samples_per_step=budget, warmup_steps=0, compile="off", settings=TINY_NGP)
    trainer = Trainer.create(sphere_dataset, tmp_path / "run", config)
    samples = [trainer.train_step().samples for _ in range(40)]
    # after the first steps' correction, every step evaluates within the per-step change bound of the budget
    settled = samples[10:]
    assert all(budget / (2 * MAX_CHANGE) <= used <= 2 * MAX_CHANGE * budget for used in settled), settled
    assert abs(sum(settled) / len(settled) - budget) < 0.5 * budget, settled


def test_a_time_budget_bounds_the_evaluation(sphere_dataset: Path, tmp_path: Path) -> None:
    config = TrainConfig(steps=10**9, minutes=0.05, warmup_steps=0, compile="off", settings=TINY_NGP)
    trainer = Trainer.create(sphere_dataset, tmp_path / "run", config)
    started = time.perf_counter()
    result = trainer.fit(progress=False)
    elapsed = time.perf_counter() - started
    assert trainer.train_seconds >= 3.0  # 0.05 minutes
    # training (3 s, plus a step's overshoot) and an evaluation bounded by 5% of the budget (one view at least)
    assert elapsed < 3.0 + 5.0, elapsed
    assert result["views"] and result["views_skipped"] >= 0
    limited = trainer.evaluate(limit=1)
    assert len(limited["views"]) == 1
    assert trainer.evaluate(limit=0)["views"] == []
