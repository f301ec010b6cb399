"""The textured-collection maker in real Blender: a real subprocess renders 2 shapes x 2 views at 16x16 with
Cycles; the engine's reader accepts them, the pixels are the texture's colours, and a second run renders nothing
while one with other options is refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.data.textured_collection import load_textured_collection
from engine.mesh.io import read_mesh

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_textured_collection.py"

pytest.importorskip("bpy", reason="the textured-collection maker renders with Blender as a module (bpy)")


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--", *args], capture_output=True, text=True, timeout=240, env=env, check=False
    )


def test_two_shapes_render_their_texture_colours_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "textured"
    options = ["--out", str(out), "--shapes", "2", "--views", "2", "--size", "16", "--samples", "2", "--threads", "1"]
    first = _make(*options, "--patterns", "checker", "stripes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "rendered 2 shapes (4 images)" in first.stdout, first.stdout

    collection = load_textured_collection(out)
    assert collection.names() == ["shape_0000", "shape_0001"] and collection.size == 16
    for shape in collection.shapes:
        mesh = read_mesh(shape.mesh_path)
        assert mesh.n_faces > 0
        params = json.loads((shape.mesh_path.parent / "texture.json").read_text())
        colours = np.asarray([params["texture"]["colour_a_srgb"], params["texture"]["colour_b_srgb"]])
        for frame in shape.transforms.frames:
            assert frame.intrinsics.width == 16 and frame.intrinsics.fl_x == pytest.approx(50 * 16 / 36)
            # the camera looks at the shape from outside its box
            assert np.linalg.norm(np.asarray(frame.camera_to_world)[:3, 3]) > np.abs(mesh.vertices).max()
            image = iio.imread(shape.transforms.image_path(frame))
            assert image.shape == (16, 16, 4)
            solid = image[..., 3] == 255
            assert 20 < solid.sum() < 256, "the shape fills part of the view, the rest is transparent"
            pixels = image[solid][:, :3] / 255.0
            nearest = np.abs(pixels[:, None, :] - colours[None]).max(axis=2).min(axis=1)
            assert np.median(nearest) < 0.03, "emission shading: a pixel is one of the texture's two colours"

    again = _make(*options, "--patterns", "checker", "stripes")
    assert again.returncode == 0 and "rendered 0 shapes" in again.stdout, again.stdout
    other = _make(*[option if option != "16" else "32" for option in options], "--patterns", "checker", "stripes")
    assert other.returncode == 1 and "'size' is 16" in other.stderr, other.stderr
