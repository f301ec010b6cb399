"""A tiny image collection in the format scripts/make_collection.py writes, drawn with numpy (no Blender):
coloured squares standing for objects on a grey floor, with params/*.json of their true placement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

PRIOR: dict[str, Any] = {
    "object_count": {"min": 1, "max": 2},
    "object_scale": {"min": 0.5, "max": 0.8},
    "object_translation_x": {"min": -1.5, "max": 1.5},
    "object_translation_y": {"min": -1.5, "max": 1.5},
    "object_rotation_z_deg": {"min": 0.0, "max": 360.0},
    "min_gap": 0.1,
    "floor": {"height": 0.0, "center": [0.0, 0.0], "up": [0.0, 0.0, 1.0]},
    "camera": {
        "radius": {"min": 8.0, "max": 9.0},
        "elevation_deg": {"min": 25.0, "max": 40.0},
        "azimuth_deg": {"min": 0.0, "max": 360.0},
        "look_at": [0.0, 0.0, 0.0],
        "lens_mm": 35.0,
        "sensor_width_mm": 32.0,
        "fov_x_deg": 49.13,
        "fl_x": 35.0,
        "fl_y": 35.0,
        "cx": 16.0,
        "cy": 16.0,
    },
    "light": {},
}


# A prior whose floor is off the origin and raised (its frame must carry through), for the reader's and the
# layout tests.
OFFSET_FLOOR_PRIOR: dict[str, Any] = {
    "object_count": {"min": 1, "max": 3},
    "object_scale": {"min": 0.5, "max": 0.9},
    "object_translation_x": {"min": -1.0, "max": 3.0},
    "object_translation_y": {"min": -2.0, "max": 2.0},
    "object_rotation_z_deg": {"min": 0.0, "max": 180.0},
    "min_gap": 0.1,
    "floor": {"height": 0.5, "center": [1.0, 0.0], "up": [0.0, 0.0, 1.0]},
    "camera": {
        "radius": {"min": 8.0, "max": 9.0},
        "elevation_deg": {"min": 25.0, "max": 40.0},
        "azimuth_deg": {"min": 0.0, "max": 360.0},
        "look_at": [1.0, 0.0, 0.5],
        "lens_mm": 35.0,
        "sensor_width_mm": 32.0,
        "fov_x_deg": 49.1,
        "fl_x": 35.0,
        "fl_y": 35.0,
        "cx": 16.0,
        "cy": 16.0,
    },
    "light": {},
}


def write_tiny_collection(root: Path, count: int = 8, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "params").mkdir()
    entries = []
    for index in range(count):
        pixels = np.full((size, size, 3), 90, dtype=np.uint8)
        objects = []
        for _ in range(int(rng.integers(1, 3))):
            x, y = rng.uniform(-1.5, 1.5, 2)
            column, row = int((x + 2) / 4 * size), int((y + 2) / 4 * size)
            colour = rng.integers(0, 256, 3)
            pixels[max(0, row - 3) : row + 3, max(0, column - 3) : column + 3] = colour
            objects.append({"shape": "cube", "color": "red", "scale": 0.6, "rotation_z_deg": 0.0,
                            "translation": [float(x), float(y), 0.6]})  # fmt: skip
        name = f"{index:06d}"
        iio.imwrite(root / "images" / f"{name}.png", pixels)
        (root / "params" / f"{name}.json").write_text(json.dumps({"index": index, "objects": objects}))
        entries.append({"image": f"images/{name}.png", "params": f"params/{name}.json"})
    document = {
        "format": "fieldwork-image-collection", "version": 1, "complete": True, "count": count,
        "width": size, "height": size, "color_space": "srgb",
        "renderer": {"engine": "numpy"}, "seed": seed, "source": {"kind": "test"}, "prior": PRIOR,
        "images": entries,
    }  # fmt: skip
    (root / "collection.json").write_text(json.dumps(document))
    return root


def tiny_facts(size: int = 32) -> dict[str, Any]:
    """MethodContext.data of a run on such a collection."""
    return {"width": size, "height": size, "color_space": "srgb", "prior": PRIOR}
