"""The collection generator in real Blender: a real subprocess with two workers renders 4 images at 32x32.

Checks that images, parameters and the prior agree, that the reader accepts what was written, and
that a second run renders nothing new while a run after a lost image renders exactly that one again.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.collection import load_collection

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_collection.py"

pytest.importorskip("bpy", reason="the collection generator renders with Blender as a module (bpy)")


def _make(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def test_four_images_in_two_workers_agree_with_their_prior_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "clevr"
    options = ["--out", str(out), "--count", "4", "--size", "32", "--samples", "2"]
    options += ["--min-objects", "2", "--max-objects", "3", "--floor-height", "0.25", "--floor-center", "1", "-1"]
    first = _make(*options, "--workers", "2")
    assert "rendered 4 images" in first.stdout and "images/s" in first.stdout, first.stdout

    collection = load_collection(out)
    prior = collection.prior
    assert len(collection) == 4 and (collection.width, collection.height) == (32, 32)
    assert collection.renderer["engine"] == "CYCLES", "auto is the faster renderer"
    assert prior.floor.height == 0.25 and prior.floor.center == (1.0, -1.0)
    images = collection.images()
    assert images.shape == (4, 32, 32, 3)
    assert images.std(axis=(1, 2)).max() > 0.02, "the images show something besides a flat colour"
    for index in range(4):
        params = collection.params(index)
        assert params["index"] == index
        count = len(params["objects"])
        assert prior.object_count[0] <= count <= prior.object_count[1]
        for obj in params["objects"]:
            x, y, z = obj["translation"]
            assert x in prior.object_translation_x and y in prior.object_translation_y, obj
            assert obj["scale"] in prior.object_scale
            assert obj["rotation_z_deg"] in prior.object_rotation_z_deg
            # Every primitive is 2 * scale tall and stands on the floor.
            assert z == pytest.approx(prior.floor.height + obj["scale"]), obj
            assert obj["shape"] in ("cube", "sphere", "cylinder") and obj["material"] in ("rubber", "metal")
        for a in range(count):
            for b in range(a + 1, count):
                first_object, second_object = params["objects"][a], params["objects"][b]
                gap = math.dist(first_object["translation"][:2], second_object["translation"][:2])
                assert gap >= first_object["footprint_radius"] + second_object["footprint_radius"] + prior.min_gap
        camera = params["camera"]
        camera_to_world = np.array(camera["camera_to_world"])
        position = camera_to_world[:3, 3]
        offset = position - np.array(prior.camera.look_at)
        assert np.linalg.norm(offset) == pytest.approx(camera["radius"]) and camera["radius"] in prior.camera.radius
        elevation = math.degrees(math.asin(offset[2] / np.linalg.norm(offset)))
        assert elevation == pytest.approx(camera["elevation_deg"]) and elevation in prior.camera.elevation_deg
        # The camera looks down its -Z at the floor centre.
        looking = -camera_to_world[:3, 2]
        assert np.dot(looking, -offset / np.linalg.norm(offset)) == pytest.approx(1.0, abs=1e-6)
        assert (camera["w"], camera["h"], camera["cx"]) == (32, 32, 16.0)
        # Every object's centre projects into the image through the stated pose and pinhole intrinsics.
        world_to_camera = np.linalg.inv(camera_to_world)
        for obj in params["objects"]:
            x, y, z = world_to_camera[:3, :3] @ np.array(obj["translation"]) + world_to_camera[:3, 3]
            assert z < 0, "in front of the camera (it looks down -Z)"
            column, row = camera["cx"] + camera["fl_x"] * x / -z, camera["cy"] - camera["fl_y"] * y / -z
            assert 0 <= column < 32 and 0 <= row < 32, (obj, column, row)

    stamps = {path: path.stat().st_mtime_ns for path in (out / "images").iterdir()}
    second = _make(*options, "--workers", "2")
    assert "0 of 4 images to render" in second.stdout and "4 were already there" in second.stdout, second.stdout
    assert {path: path.stat().st_mtime_ns for path in (out / "images").iterdir()} == stamps

    # A lost image is rendered again from the same draws: same parameters, one image rendered.
    lost_params = (out / "params" / "000002.json").read_text()
    (out / "images" / "000002.png").unlink()
    (out / "params" / "000002.json").unlink()
    third = _make(*options)
    assert "rendered 1 images" in third.stdout, third.stdout
    assert (out / "params" / "000002.json").read_text() == lost_params
    np.testing.assert_allclose(load_collection(out).image(2), images[2], atol=2 / 255)

    changed = subprocess.run([sys.executable, str(SCRIPT), "--", *options, "--size", "64"], capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert changed.returncode == 1
    assert "collection.json: 'width' is 32, this command asks for 64" in changed.stderr


def test_user_assets_from_a_blend_collection(tmp_path: Path) -> None:
    blend = tmp_path / "props.blend"
    build = (
        "import bpy\n"
        "bpy.ops.wm.read_homefile(use_empty=True)\n"
        "props = bpy.data.collections.new('Props'); bpy.context.scene.collection.children.link(props)\n"
        "bpy.ops.mesh.primitive_monkey_add(); monkey = bpy.context.object; monkey.name = 'Monkey'\n"
        "bpy.ops.mesh.primitive_cone_add(depth=4.0); cone = bpy.context.object; cone.name = 'Tall Cone'\n"
        "for obj in (monkey, cone):\n"
        "    bpy.context.scene.collection.objects.unlink(obj); props.objects.link(obj)\n"
        f"bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})\n"
    )
    subprocess.run([sys.executable, "-c", build], capture_output=True, text=True, timeout=120, check=True)
    # A worker that fails says why through the parent, which exits 1 (its pipe was read, nothing hangs).
    missing = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "--out", str(tmp_path / "missing"), "--count", "2", "--workers", "2",
         "--blend", str(blend), "--assets", "Nothing"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert re.search(r"worker [01] failed", missing.stderr), missing.stderr
    assert "no collection named 'Nothing'" in missing.stderr, missing.stderr
    out = tmp_path / "props"
    _make("--out", str(out), "--count", "2", "--samples", "2", "--blend", str(blend), "--assets", "Props",
          "--max-objects", "2")  # fmt: skip
    collection = load_collection(out)
    assert collection.source == {"kind": "assets", "blend": str(blend.resolve()), "collection": "Props"}
    shapes = set()
    for index in range(2):
        for obj in collection.params(index)["objects"]:
            shapes.add(obj["shape"])
            assert obj["translation"][0] in collection.prior.object_translation_x
            assert obj["color"] is None, "a user's asset keeps its own materials"
            if obj["shape"] == "Tall Cone":
                # The cone is 4 tall and 2 wide: half-extent 2 is the scale, its base is 2 * (scale / 2) below.
                assert obj["translation"][2] == pytest.approx(obj["scale"]), obj
    assert shapes <= {"Monkey", "Tall Cone"} and shapes
