"""``python -m engine texture`` as a user runs it: a real engine subprocess bakes a new mesh's texture from one
image with a run trained on a tiny textured collection; bad inputs are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.mesh.io import read_obj, read_ply_with_texture
from tests.engine.commands.test_radiance_commands import run_engine
from tests.engine.textured_fixtures import train_tiny_run
from tests.engine.train.test_conditional_texture_field import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("texture_command")
    collection, run = train_tiny_run(folder, TINY)
    return collection, run


def test_bakes_a_textured_mesh_that_loads(trained: tuple[Path, Path], tmp_path: Path) -> None:
    collection, run = trained
    shape = collection / "shapes" / "shape_0002"
    out = tmp_path / "new.ply"
    result = run_engine(
        "texture", str(run), "--mesh", str(shape / "mesh.ply"), "--image", str(shape / "images" / "001.png"),
        "--size", "256", "--out", str(out), "--json", "--progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert "PROGRESS 1.000 done" in result.stdout
    mesh, texture = read_ply_with_texture(out)
    assert texture == tmp_path / "new.png" and texture.is_file() and summary["texture_size"] == 256
    assert mesh.uvs is not None and mesh.n_faces > 0
    original = read_obj(_as_obj(shape / "mesh.ply", tmp_path))
    # the textured copy stands where the mesh stood
    assert np.allclose(mesh.bounds()[0], original.bounds()[0], atol=1e-5)
    again = run_engine(
        "texture", str(run), "--mesh", str(shape / "mesh.ply"), "--image", str(shape / "images" / "001.png"),
        "--size", "256", "--out", str(out),
    )  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr


def _as_obj(ply: Path, folder: Path) -> Path:
    from engine.mesh.io import read_ply, write_mesh

    return write_mesh(read_ply(ply), folder / "original.obj", overwrite=True)


def test_bad_inputs_are_named(trained: tuple[Path, Path], tmp_path: Path) -> None:
    collection, run = trained
    mesh = collection / "shapes" / "shape_0002" / "mesh.ply"
    image = collection / "shapes" / "shape_0002" / "images" / "000.png"
    (tmp_path / "faceless.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    cases = [
        (["--mesh", str(tmp_path / "missing.ply"), "--image", str(image)], "missing.ply: no such file"),
        (["--mesh", str(tmp_path / "faceless.obj"), "--image", str(image)], "faceless.obj"),
        (["--mesh", str(mesh), "--image", str(tmp_path / "junk.png")], "junk.png: cannot read the image"),
        (["--mesh", str(mesh), "--image", str(tmp_path / "gone.png")], "gone.png: no such image"),
    ]
    for options, message in cases:
        result = run_engine("texture", str(run), *options, "--out", str(tmp_path / "out.glb"))
        assert result.returncode == 2 and message in result.stderr, (options, result.stderr)
    assert not (tmp_path / "out.glb").exists()
