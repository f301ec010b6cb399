"""The conditional texture field on a tiny textured collection (no Blender): the data source's hits and batches,
2 steps through the trainer with a checkpoint and a held-out evaluation, resuming, and the loss going down."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.textured_collection import TexturedCollectionError, load_textured_collection
from engine.data.textured_source import CACHE_FOLDER, recolour, shape_views
from engine.train.config import TrainConfig
from engine.train.trainer import Trainer
from tests.engine.textured_fixtures import COLOURS, write_textured_collection

TINY = {
    "shape_code_size": 16,
    "encoder_width": 16,
    "encoder_points": 128,
    "image_code_size": 16,
    "image_channels": 4,
    "hidden_width": 32,
    "blocks": 2,
    "points_per_shape": 128,
    "shapes_per_batch": 2,
    "surface_samples": 512,
    "holdout_shapes": 1,
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_textured_collection(tmp_path_factory.mktemp("textured") / "collection")


def _train(dataset: Path, run: Path, steps: int, **settings: object) -> tuple[Trainer, dict]:
    config = TrainConfig(
        method="conditional_texture_field",
        steps=steps,
        warmup_steps=0,
        compile="off",
        log_every=1,
        settings={**TINY, **settings},
    )
    trainer = Trainer.create(dataset, run, config)
    return trainer, trainer.fit(progress=False)


def test_hits_lie_on_the_mesh_and_carry_their_pixels_colours(collection: Path) -> None:
    shape = load_textured_collection(collection).shapes[0]
    views = shape_views(shape, collection, surface_samples=256)
    assert len(views.view_start) == 5 and (np.diff(views.view_start) > 10).all(), "every view sees the shape"
    # normalised space: the box's longest side spans [-1, 1]
    assert np.abs(views.points).max() <= 1.0 + 1e-4 and views.encoder_points.shape == (256, 6)
    upper, lower = np.asarray(COLOURS[0][0]), np.asarray(COLOURS[0][1])
    expected = np.where((views.points[:, 2] > 0)[:, None], upper, lower)
    agree = np.abs(views.colours - expected).max(axis=1) < 0.01
    assert agree.mean() > 0.95, "a hit's colour is the colour of the surface where it lands"
    assert list((collection / CACHE_FOLDER).glob("shape_0000-*.npz")), "the hits are cached"
    again = shape_views(shape, collection, surface_samples=256)
    assert np.array_equal(again.points, views.points)


def test_trains_two_steps_checkpoints_evaluates_held_out_shapes_and_resumes(collection: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer, result = _train(collection, run, steps=2)
    assert (run / "checkpoint.pt").is_file() and trainer.step == 2
    source = trainer.source
    assert source.names() == ["shape_0000", "shape_0001", "shape_0002"]
    assert [source.names()[index] for index in source.train] == ["shape_0000", "shape_0001"]
    assert result["holdout_shapes"] == 1 and {view["shape"] for view in result["views"]} == {"shape_0002"}
    assert len(result["views"]) == 3, "every view but the conditioning one is predicted"
    assert np.isfinite(result["psnr"]) and -1.0 <= result["ssim"] <= 1.0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records if record["event"] == "train"] == [1, 2]
    assert all({"l1", "psnr"} <= set(record) for record in records if record["event"] == "train")
    resumed, _ = _train(collection, run, steps=3)
    assert resumed.step == 3


def test_the_loss_goes_down(collection: Path, tmp_path: Path) -> None:
    # one shape, in its own colours, to train on: what 30 steps can show (telling shapes or recoloured textures
    # apart by their images takes hundreds)
    _train(
        collection,
        tmp_path / "run",
        steps=30,
        holdout_shapes=2,
        colour_augmentation=False,
        learning_rate=1e-2,
        final_learning_rate=1e-2,
    )
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "train"
    ]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5]), losses


def test_a_bad_collection_is_named(tmp_path: Path) -> None:
    with pytest.raises(TexturedCollectionError, match="textured_collection.json: no such file"):
        load_textured_collection(tmp_path)
    folder = write_textured_collection(tmp_path / "c", count=2, views=2, size=8)
    (folder / "shapes" / "shape_0001" / "mesh.ply").unlink()
    with pytest.raises(TexturedCollectionError, match="shape_0001.*has no mesh"):
        load_textured_collection(folder)


def test_colour_augmentation_recolours_a_condition_and_its_target_alike() -> None:
    colours = torch.tensor([[[0.2, 0.4, 1.0]], [[0.0, 0.6, 0.8]]])  # (b=2, k=1, 3)
    images = torch.cat(
        [(colours[:, None] * 255).round().to(torch.uint8), torch.full((2, 1, 1, 1), 7, dtype=torch.uint8)], -1
    )
    order_keys = torch.tensor([[0.3, 0.1, 0.2], [0.1, 0.2, 0.3]])  # shape 0: channels (G, B, R); shape 1 as it is
    invert = torch.tensor([[False, False, True], [True, False, False]])
    recoloured_images, recoloured = recolour(images, colours, order_keys, invert)
    assert torch.allclose(recoloured[0, 0], torch.tensor([0.4, 1.0, 0.8]))  # G, B, 1 - R
    assert torch.allclose(recoloured[1, 0], torch.tensor([1.0, 0.6, 0.8]))  # 1 - R, G, B
    assert torch.allclose(recoloured_images[..., :3].float() / 255, recoloured[:, None], atol=1 / 255)
    assert (recoloured_images[..., 3] == 7).all(), "alpha is kept"


def test_batches_are_recoloured_only_when_asked(collection: Path, tmp_path: Path) -> None:
    batches = {}
    for augment in (False, True):
        config = TrainConfig(
            method="conditional_texture_field", compile="off", settings={**TINY, "colour_augmentation": augment}
        )
        source = Trainer.create(collection, tmp_path / f"run-{augment}", config).source
        batches[augment] = source.next_batch(torch.Generator().manual_seed(0))
    plain, recoloured = batches[False], batches[True]
    assert torch.equal(plain.points, recoloured.points), "the same draw of pixels"
    assert not torch.allclose(plain.colours, recoloured.colours)
    for shape in range(plain.colours.shape[0]):
        for channel in recoloured.colours[shape].T:
            sources = [*plain.colours[shape].T, *(1 - plain.colours[shape].T)]
            assert any(torch.allclose(channel, source) for source in sources), "a channel of the pixels, or 1 - it"
