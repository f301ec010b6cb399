"""The COLLECTIONS family's data source: batches of real images of a collection, plus the facts a generative
model is built from (image size, the pose prior), for GRAF and GIRAFFE.

Opened by the trainer through ``FAMILY_OPENERS["collections"]``. Images are held on the training device as one
(n, 3, H, W) float tensor in [0, 1] (a 64^2 collection of 10k images is 500 MB in float32; fine for the
collections this is for). The last ``HOLDOUT_FRACTION`` of the images are never trained on: evaluation
(scripts/eval_generative.py) compares generated images with them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .collection import COLLECTION_NAME, PosePrior, load_collection, prior_from_dict
from .transforms import SceneBox

HOLDOUT_FRACTION = 0.1


@dataclass
class ImageBatch:
    """A batch of real images: images (n, 3, H, W) float in [0, 1]."""

    images: torch.Tensor


class CollectionSource:
    """Draws batches of ``batch_size`` training images uniformly with replacement."""

    def __init__(self, images: torch.Tensor, batch_size: int) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
            raise ValueError(f"images must be (n >= 1, 3, H, W), got {tuple(images.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images
        self.batch_size = batch_size

    def next_batch(self, generator: torch.Generator | None) -> ImageBatch:
        index = (
            torch.randint(0, self.images.shape[0], (self.batch_size,), generator=generator, device=generator.device)
            if generator is not None
            else torch.randint(0, self.images.shape[0], (self.batch_size,))
        )
        return ImageBatch(images=self.images[index.to(self.images.device)])

    def record(self, samples_used: int) -> None:
        """Batches do not adapt."""


def split(count: int) -> tuple[list[int], list[int]]:
    """(training, held-out) image indices: the last HOLDOUT_FRACTION (at least one when there are two)."""
    holdout = max(1, math.ceil(count * HOLDOUT_FRACTION)) if count >= 2 else 0
    return list(range(count - holdout)), list(range(count - holdout, count))


def prior_from_facts(facts: dict[str, Any], where: str = "config.json") -> PosePrior:
    """The PosePrior of a run's facts (``facts["prior"]`` is the collection.json prior as written)."""
    if "prior" not in facts:
        raise ValueError(f"{where}: the run's data facts hold no 'prior' (not a collection run)")
    return prior_from_dict(facts["prior"], where)


def scene_box_of(prior: PosePrior) -> SceneBox:
    """The world box every object of the prior fits in: the translation ranges grown by the largest
    footprint (sqrt 2 times the half-extent: a rotated cube), from the floor up to twice the largest scale."""
    reach = math.sqrt(2.0) * prior.object_scale.high
    floor = prior.floor.height
    return SceneBox(
        minimum=(prior.object_translation_x.low - reach, prior.object_translation_y.low - reach, floor),
        maximum=(
            prior.object_translation_x.high + reach,
            prior.object_translation_y.high + reach,
            floor + 2.0 * prior.object_scale.high,
        ),
    )


def open_collection(path: Path, config: Any, device: torch.device) -> Any:
    """opener(path, TrainConfig, device) -> FamilyData of a collection folder (or its collection.json)."""
    from ..train.trainer import FamilyData

    collection = load_collection(path)
    file = Path(path) if Path(path).suffix == ".json" else Path(path) / COLLECTION_NAME
    document = json.loads(file.read_text(encoding="utf-8"))
    train, holdout = split(len(collection))
    if not train:
        raise ValueError(f"{file}: a collection needs at least one image to train on")
    pixels = np.ascontiguousarray(collection.images(train).transpose(0, 3, 1, 2))
    images = torch.from_numpy(pixels).to(device)
    settings = config.settings.resolved() if hasattr(config.settings, "resolved") else config.settings
    batch_size = int(getattr(settings, "batch_size", 16))
    facts = {
        "width": collection.width,
        "height": collection.height,
        "color_space": collection.color_space,
        "count": len(collection),
        "train_count": len(train),
        "holdout": holdout,
        "prior": document["prior"],
    }
    return FamilyData(
        source=CollectionSource(images, batch_size), scene_box=scene_box_of(collection.prior), facts=facts
    )
