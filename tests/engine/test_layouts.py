"""Layout JSON: round trip, edits, and bad layouts that name the field at fault (stdlib only)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from engine import layouts


def _layout() -> layouts.Layout:
    return layouts.Layout(
        method="giraffe",
        shape_code_size=2,
        appearance_code_size=3,
        background_code_size=1,
        objects=(
            layouts.LayoutObject("object_0", (0.1, 0.2), (0.3, 0.4, 0.5), 0.6, (1.0, 2.0, 0.6), 30.0),
            layouts.LayoutObject("object_1", (-0.1, -0.2), (-0.3, -0.4, -0.5), 0.5, (-1.0, 0.0, 0.5), 0.0),
        ),
        background_shape_code=(0.7,),
        background_appearance_code=(0.8,),
        camera=layouts.LayoutCamera(
            camera_to_world=((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 8.0), (0.0, 0.0, 0.0, 1.0)),
            fl_x=35.0,
            fl_y=35.0,
            cx=16.0,
            cy=16.0,
            w=32,
            h=32,
        ),
    )


def test_json_round_trip(tmp_path: Path) -> None:
    layout = _layout()
    path = layouts.write_layout(tmp_path / "layout.json", layout)
    assert layouts.read_layout(path) == layout
    assert json.loads(path.read_text())["objects"][0]["rotation_z_deg"] == 30.0
    # the camera block of a layout reads as a camera file
    assert layouts.read_camera(path) == layout.camera


def _broken(change: Any) -> dict[str, Any]:
    document = _layout().to_dict()
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["objects"][1]["translation"].__setitem__(2, math.nan), "objects[1].translation[2]"),
        (lambda d: d["objects"][0].__setitem__("scale", -1.0), "objects[0].scale"),
        (lambda d: d["objects"][0].__setitem__("shape_code", [0.0] * 5), "objects[0].shape_code"),
        (lambda d: d["objects"][1].__setitem__("appearance_code", [1.0]), "objects[1].appearance_code"),
        (lambda d: d["background"].__setitem__("shape_code", []), "background.shape_code"),
        (lambda d: d["objects"][0].pop("rotation_z_deg"), "objects[0].rotation_z_deg"),
        (lambda d: d["objects"][1].__setitem__("name", "object_0"), "objects[1].name"),
        (lambda d: d["camera"]["camera_to_world"][0].__setitem__(3, math.inf), "camera.camera_to_world[0]"),
        (lambda d: d["camera"].__setitem__("w", 0), "camera.w"),
        (lambda d: d.__setitem__("format", "something"), "format"),
    ],
)
def test_bad_layouts_name_the_field(change: Any, field: str) -> None:
    with pytest.raises(layouts.LayoutError) as caught:
        layouts.Layout.from_dict(_broken(change), "layout.json")
    assert field in str(caught.value) and "layout.json" in str(caught.value)


def test_edits_and_unknown_objects() -> None:
    layout = _layout()
    moved = layouts.move(layout, "object_0", (0.5, -1.0, 0.0))
    assert moved.object("object_0").translation == (1.5, 1.0, 0.6)
    assert moved.object("object_1") == layout.object("object_1")
    assert layouts.rotate(layout, "object_1", 45.0).object("object_1").rotation_z_deg == 45.0
    grown = layouts.rescale(layout, "object_0", 2.0, keep_on_floor=0.0).object("object_0")
    assert grown.scale == 1.2 and grown.translation[2] == 1.2
    swapped = layouts.swap_codes(layout, "object_0", "object_1", "appearance")
    assert swapped.object("object_0").appearance_code == layout.object("object_1").appearance_code
    assert swapped.object("object_0").shape_code == layout.object("object_0").shape_code
    resampled = layouts.resample_codes(layout, "object_1", seed=3, which="shape")
    assert resampled.object("object_1").shape_code != layout.object("object_1").shape_code
    assert (
        resampled.object("object_1").shape_code
        == layouts.resample_codes(layout, "object_1", 3, "shape").object("object_1").shape_code
    )
    assert len(layouts.remove_object(layout, "object_0").objects) == 1
    added = layouts.add_object(
        layout, layout.object("object_1").__class__("extra", (0.0, 0.0), (0.0, 0.0, 0.0), 1.0, (0.0, 0.0, 1.0), 0.0)
    )
    assert [obj.name for obj in added.objects] == ["object_0", "object_1", "extra"]
    halfway = layouts.interpolate_codes((0.0, 2.0), (1.0, 4.0), 0.5)
    assert halfway == (0.5, 3.0)
    with pytest.raises(layouts.LayoutError, match="no object named 'ghost'"):
        layouts.move(layout, "ghost", (1.0, 0.0, 0.0))
    with pytest.raises(layouts.LayoutError, match="objects\\[2\\].name"):
        layouts.add_object(layout, layout.object("object_0"))  # the name is taken
    with pytest.raises(layouts.LayoutError, match="objects\\[0\\].translation\\[0\\]"):
        layouts.move(layout, "object_0", (math.nan, 0.0, 0.0))


def test_layouts_import_without_torch() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = "import sys, engine.layouts; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60, check=False).returncode == 0
