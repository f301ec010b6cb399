"""The image-collection reader: the prior as typed ranges, images as floats, errors that name file and key.

The collections here are written by hand (no Blender): the generator's own test checks that what
scripts/make_collection.py writes is read back by this reader.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest

from engine.data.collection import CollectionError, load_collection
from tests.engine.tiny_collection import OFFSET_FLOOR_PRIOR


def _document(count: int, size: int) -> dict[str, Any]:
    return {
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
        "prior": copy.deepcopy(OFFSET_FLOOR_PRIOR),  # tests edit their copy
        "images": [{"image": f"images/{i:06d}.png", "params": f"params/{i:06d}.json"} for i in range(count)],
    }


def _write_collection(root: Path, count: int = 3, size: int = 32) -> dict[str, Any]:
    (root / "images").mkdir(parents=True)
    (root / "params").mkdir()
    for index in range(count):
        pixels = np.full((size, size, 3), 50 * index, dtype=np.uint8)
        pixels[0, 0] = (255, 0, 128)
        iio.imwrite(root / "images" / f"{index:06d}.png", pixels)
        (root / "params" / f"{index:06d}.json").write_text(json.dumps({"index": index, "objects": []}))
    document = _document(count, size)
    (root / "collection.json").write_text(json.dumps(document))
    return document


def test_prior_ranges_images_and_params_read_back(tmp_path: Path) -> None:
    _write_collection(tmp_path)
    collection = load_collection(tmp_path)
    assert len(collection) == 3
    prior = collection.prior
    assert prior.object_count == (1, 3)
    assert 0.7 in prior.object_scale and 0.4 not in prior.object_scale
    assert (prior.object_translation_x.low, prior.object_translation_x.high) == (-1.0, 3.0)
    assert prior.object_rotation_z_deg.rad.high == pytest.approx(math.pi)
    assert prior.floor.height == 0.5 and prior.floor.center == (1.0, 0.0)
    assert prior.camera.look_at == (1.0, 0.0, 0.5)
    assert prior.camera.elevation_deg.low == 25.0
    images = collection.images()
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.float32
    # Grey level 50 * index everywhere but the first pixel, scaled from 8 bits to [0, 1].
    np.testing.assert_allclose(images[2, 5, 5], 100 / 255, atol=1e-6)
    np.testing.assert_allclose(images[1, 0, 0], (1.0, 0.0, 128 / 255), atol=1e-6)
    np.testing.assert_array_equal(collection.images([2, 0])[1], images[0])
    assert collection.params(1)["index"] == 1


def test_missing_key_is_named_with_its_file(tmp_path: Path) -> None:
    document = _write_collection(tmp_path)
    del document["prior"]["camera"]["radius"]
    (tmp_path / "collection.json").write_text(json.dumps(document))
    with pytest.raises(CollectionError, match=r"collection\.json: missing key 'prior\.camera\.radius'"):
        load_collection(tmp_path)


def test_wrong_type_and_reversed_range_are_named(tmp_path: Path) -> None:
    document = _write_collection(tmp_path)
    document["width"] = "32"
    (tmp_path / "collection.json").write_text(json.dumps(document))
    with pytest.raises(CollectionError, match=r"collection\.json: key 'width' must be int, got '32'"):
        load_collection(tmp_path)
    document["width"] = 32
    document["prior"]["object_scale"] = {"min": 0.9, "max": 0.5}
    (tmp_path / "collection.json").write_text(json.dumps(document))
    with pytest.raises(CollectionError, match=r"key 'prior\.object_scale' has min 0\.9 > max 0\.5"):
        load_collection(tmp_path)


def test_wrong_image_size_names_the_image_and_the_sizes(tmp_path: Path) -> None:
    _write_collection(tmp_path)
    iio.imwrite(tmp_path / "images" / "000001.png", np.zeros((16, 32, 3), dtype=np.uint8))
    with pytest.raises(
        CollectionError, match=r"000001\.png: image is 32x16, .*collection\.json keys 'width'/'height' say 32x32"
    ):
        load_collection(tmp_path)
    # Without the header check up front, reading the pixels finds it.
    collection = load_collection(tmp_path, check_images=False)
    with pytest.raises(CollectionError, match=r"000001\.png: image is 32x16"):
        collection.images()


def test_missing_image_unfinished_collection_and_count_mismatch(tmp_path: Path) -> None:
    document = _write_collection(tmp_path)
    (tmp_path / "images" / "000002.png").unlink()
    with pytest.raises(CollectionError, match=r"collection\.json lists an image that cannot be read: .*000002\.png"):
        load_collection(tmp_path)
    document["complete"] = False
    (tmp_path / "collection.json").write_text(json.dumps(document))
    with pytest.raises(CollectionError, match=r"key 'complete' is false"):
        load_collection(tmp_path)
    document["complete"] = True
    document["count"] = 5
    (tmp_path / "collection.json").write_text(json.dumps(document))
    with pytest.raises(CollectionError, match=r"key 'images' lists 3 images, key 'count' says 5"):
        load_collection(tmp_path / "collection.json")
    with pytest.raises(CollectionError, match=r"nowhere[/\\]collection\.json: no such file"):
        load_collection(tmp_path / "nowhere")


def test_reader_never_imports_torch() -> None:
    code = "import sys; import engine.data.collection; print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    assert completed.stdout.strip() == "False"
