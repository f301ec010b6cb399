"""scripts/export_shapes.py headless with the bpy module: a .blend's objects in, a shape dataset out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.shapes import read_shape_dataset
from tests.conftest import REPO

pytest.importorskip("bpy", reason="export_shapes.py needs Blender as a module (bpy)")

# Builds the scene in its own Blender: a subdivided, rotated Suzanne in a collection with a camera.
MAKE_BLEND = """
import sys, bpy
bpy.ops.wm.read_homefile(use_empty=True)
shapes = bpy.data.collections.new("Shapes")
bpy.context.scene.collection.children.link(shapes)
bpy.ops.mesh.primitive_monkey_add(location=(2.0, -1.0, 0.5), rotation=(0.4, 0.0, 1.2), scale=(1.5, 1.5, 1.5))
monkey = bpy.context.active_object
monkey.modifiers.new("Subdivision", "SUBSURF").levels = 1
bpy.context.scene.collection.objects.unlink(monkey)
shapes.objects.link(monkey)
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
shapes.objects.link(camera)
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
"""


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, check=False, cwd=REPO
    )


def test_the_script_exports_a_collection_and_refuses_a_camera_writing_nothing(tmp_path: Path) -> None:
    blend = tmp_path / "scene.blend"
    made = _run("-c", MAKE_BLEND, str(blend), tmp_path=tmp_path)
    assert made.returncode == 0 and blend.is_file(), made.stdout + made.stderr
    script = str(REPO / "scripts" / "export_shapes.py")

    refused = _run(
        script,
        "--",
        "--blend",
        str(blend),
        "--out",
        str(tmp_path / "bad"),
        "--objects",
        "Suzanne",
        "Camera",
        tmp_path=tmp_path,
    )
    assert refused.returncode == 1
    assert "object 'Camera' is a camera, not a mesh or point cloud" in refused.stderr
    assert not (tmp_path / "bad").exists()

    done = _run(
        script,
        "--",
        "--blend",
        str(blend),
        "--out",
        str(tmp_path / "shapes"),
        "--collection",
        "Shapes",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "shapes" / "shapes.json")
    assert "skipped (no geometry): 'Camera' (camera)" in done.stderr
    dataset = read_shape_dataset(tmp_path / "shapes")
    (suzanne,) = dataset.shapes
    # Suzanne has 500 faces (quads and triangles); one level of subdivision makes 1968 quads = 3936 triangles.
    assert (suzanne.source, suzanne.face_count, suzanne.point_cloud) == ("Suzanne", 3936, False)
    geometry = dataset.geometry(suzanne)
    centre = (np.asarray(suzanne.box_min) + np.asarray(suzanne.box_max)) / 2
    assert np.linalg.norm(centre - (2.0, -1.0, 0.5)) < 1.0, "the monkey is where the object is, not at the origin"
    assert geometry.normals is not None and np.allclose(np.linalg.norm(geometry.normals, axis=1), 1.0)
