"""Mesh files: PLY round trip, OBJ and GLB structure, axes, atomic writes, no silent overwrite."""

from __future__ import annotations

import json
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.atomic import current_umask
from engine.mesh.io import MeshFileError, read_ply, srgb_to_linear, write_mesh

from .conftest import sphere_mesh

MESH = sphere_mesh(centre=(1.5, -2.0, 0.75), radius=0.4, resolution=16)


def test_ply_round_trip_keeps_positions_faces_and_colours(tmp_path: Path) -> None:
    path = write_mesh(MESH, tmp_path / "mesh.ply")
    back = read_ply(path)
    np.testing.assert_allclose(back.vertices, MESH.vertices, atol=1e-6)  # float32 in the file
    np.testing.assert_array_equal(back.faces, MESH.faces)
    assert back.vertex_colors is not None and MESH.vertex_colors is not None
    np.testing.assert_allclose(back.vertex_colors, MESH.vertex_colors, atol=0.5 / 255 + 1e-6)


def test_writes_are_atomic_and_never_overwrite_silently(tmp_path: Path) -> None:
    path = tmp_path / "mesh.ply"
    path.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match=r"mesh\.ply already exists"):
        write_mesh(MESH, path)
    assert path.read_bytes() == b"the user's file"
    write_mesh(MESH, path, overwrite=True)
    assert read_ply(path).n_faces == MESH.n_faces
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.ply"], "no temporary file may be left behind"
    # A mesh is the user's file, not a private temporary: the usual permissions for the umask.
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    with pytest.raises(ValueError, match=r"mesh\.stl.*\.ply, \.obj, \.glb"):
        write_mesh(MESH, tmp_path / "mesh.stl")


def test_obj_is_y_up_with_vertex_colours(tmp_path: Path) -> None:
    lines = write_mesh(MESH, tmp_path / "mesh.obj").read_text().splitlines()
    vertex_rows = np.array([[float(v) for v in line.split()[1:]] for line in lines if line.startswith("v ")])
    face_rows = np.array([[int(v) for v in line.split()[1:]] for line in lines if line.startswith("f ")])
    # OBJ (x, y, z) = Blender (x, z, -y)
    np.testing.assert_allclose(vertex_rows[:, 0], MESH.vertices[:, 0], atol=1e-5)
    np.testing.assert_allclose(vertex_rows[:, 1], MESH.vertices[:, 2], atol=1e-5)
    np.testing.assert_allclose(vertex_rows[:, 2], -MESH.vertices[:, 1], atol=1e-5)
    np.testing.assert_allclose(vertex_rows[:, 3:], MESH.vertex_colors, atol=1e-4)
    np.testing.assert_array_equal(face_rows, MESH.faces + 1)


def test_glb_is_valid_gltf_with_linear_colours(tmp_path: Path) -> None:
    data = write_mesh(MESH, tmp_path / "mesh.glb").read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    document = json.loads(data[20 : 20 + json_length])
    binary = data[20 + json_length + 8 :]
    primitive = document["meshes"][0]["primitives"][0]

    def accessor_array(index: int, dtype: str, width: int) -> np.ndarray:
        accessor = document["accessors"][index]
        view = document["bufferViews"][accessor["bufferView"]]
        return np.frombuffer(binary, dtype=dtype, count=accessor["count"] * width, offset=view["byteOffset"]).reshape(
            accessor["count"], width
        )

    positions = accessor_array(primitive["attributes"]["POSITION"], "<f4", 3)
    np.testing.assert_allclose(positions, MESH.vertices[:, [0, 2, 1]] * [1, 1, -1], atol=1e-5)
    position_accessor = document["accessors"][primitive["attributes"]["POSITION"]]
    np.testing.assert_allclose(position_accessor["min"], positions.min(axis=0))
    colours = accessor_array(primitive["attributes"]["COLOR_0"], "<f4", 3)
    np.testing.assert_allclose(colours, srgb_to_linear(MESH.vertex_colors), atol=1e-6)  # type: ignore[arg-type]
    indices = accessor_array(primitive["indices"], "<u4", 1).reshape(-1, 3)
    np.testing.assert_array_equal(indices, MESH.faces)


def test_read_ply_names_the_file_when_it_is_not_a_ply(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ply"
    bad.write_text("solid stl\n")
    with pytest.raises(MeshFileError, match=r"broken\.ply is not a PLY file"):
        read_ply(bad)
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(write_mesh(MESH, tmp_path / "whole.ply").read_bytes()[:-100])
    with pytest.raises(MeshFileError, match=r"truncated\.ply"):
        read_ply(truncated)


def test_mesh_io_imports_neither_torch_nor_scipy() -> None:
    """Blender's Python imports engine.mesh.io to read meshes: numpy and stdlib only."""
    code = "import sys, engine.mesh.io; print(sorted({'torch', 'scipy', 'mcubes'} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_an_obj_written_y_up_reads_back_in_blender_axes(tmp_path: Path) -> None:
    from engine.mesh.io import MeshFileError, read_mesh, write_mesh
    from engine.mesh.triangle_mesh import TriangleMesh

    mesh = TriangleMesh(
        vertices=np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]),
        faces=np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]),
    )
    write_mesh(mesh, tmp_path / "mesh.obj")
    read = read_mesh(tmp_path / "mesh.obj")
    assert np.allclose(read.vertices, mesh.vertices) and np.array_equal(read.faces, mesh.faces)
    # a quad is fanned into two triangles; v/vt/vn corners keep their position
    (tmp_path / "quad.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 0 -1\nv 0 0 -1\nvt 0 0\nf 1/1 2/1 3/1 4/1\n")
    quad = read_mesh(tmp_path / "quad.obj")
    assert quad.n_faces == 2 and np.allclose(quad.vertices[2], [1.0, 1.0, 0.0])
    (tmp_path / "bad.obj").write_text("v 0 0\n")
    with pytest.raises(MeshFileError, match="bad.obj line 1"):
        read_mesh(tmp_path / "bad.obj")
