"""Shape export against real Blender: world space, modifiers, point clouds, collections, bad input writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.shapes import read_shape_dataset, winding_numbers
from tests.conftest import addon_module


def _trs(location, rotation_xyz, scale) -> np.ndarray:  # type: ignore[no-untyped-def]
    """matrix_world from Blender's float32 location, XYZ Euler rotation and scale, worked out in float64."""
    x, y, z = (float(np.float32(angle)) for angle in rotation_xyz)
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rz @ ry @ rx @ np.diag(np.float32(scale).astype(np.float64))
    matrix[:3, 3] = np.float32(location)
    return matrix


def _cube(name: str, location, rotation, scale):  # type: ignore[no-untyped-def]
    import bpy

    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    cube.name = name
    cube.location, cube.rotation_euler, cube.scale = location, rotation, scale
    return cube


def test_a_rotated_scaled_off_centre_object_exports_in_world_space_with_its_modifiers(
    empty_scene, tmp_path: Path
) -> None:
    import bpy

    shapes = addon_module("shapes")
    location, rotation, scale = (4.0, -2.0, 1.5), (0.3, -0.7, 1.1), (1.0, 2.0, 0.5)
    cube = _cube("Box", location, rotation, scale)
    array = cube.modifiers.new("Array", "ARRAY")  # a second cube 3 units along local x: only after evaluation
    array.use_relative_offset, array.use_constant_offset = False, True
    array.constant_offset_displace = (3.0, 0.0, 0.0)
    mirrored = _cube("Mirrored", (-3.0, 1.0, 0.0), (0.0, 0.0, 0.4), (-1.0, 1.0, 1.0))
    bpy.ops.object.select_all(action="DESELECT")
    cube.select_set(True)
    mirrored.select_set(True)

    path, notes = shapes.export_shapes(tmp_path / "shapes")

    dataset = read_shape_dataset(path)
    assert notes == [] and dataset.names() == ["Box", "Mirrored"]
    box, mirror_entry = dataset.shapes
    assert (box.watertight, box.has_normals, box.point_cloud, box.face_count) == (True, True, False, 24)
    geometry = dataset.geometry(box)
    corners = np.array([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    local = np.concatenate([corners, corners + np.array([3.0, 0.0, 0.0])])
    matrix = _trs(location, rotation, scale)
    expected = local @ matrix[:3, :3].T + matrix[:3, 3]
    assert geometry.vertices.shape == (16, 3)
    gaps = np.linalg.norm(expected[:, None] - geometry.vertices[None], axis=-1).min(axis=1)
    assert gaps.max() < 1e-5, f"world-space vertices off by {gaps.max():.2e}"
    assert np.allclose(box.box_min, expected.min(axis=0), atol=1e-5)
    assert np.allclose(box.box_max, expected.max(axis=0), atol=1e-5)
    # Both cubes of the array are solid: their centres are inside, the gap between them is not.
    centres = np.array([[0.0, 0, 0], [3.0, 0, 0], [1.5, 0, 0]]) @ matrix[:3, :3].T + matrix[:3, 3]
    assert geometry.faces is not None
    assert np.allclose(winding_numbers(geometry.vertices, geometry.faces, centres), [1.0, 1.0, 0.0], atol=1e-6)
    # A mirroring transform keeps the triangles facing out (the winding number would be -1 inside).
    mirrored_geometry = dataset.geometry(mirror_entry)
    assert mirror_entry.watertight and mirrored_geometry.faces is not None
    inside = winding_numbers(mirrored_geometry.vertices, mirrored_geometry.faces, np.array([[-3.0, 1.0, 0.0]]))
    assert inside == pytest.approx([1.0], abs=1e-6)


def test_point_clouds_vertex_only_meshes_and_a_collection_export_one_entry_per_object(
    empty_scene, tmp_path: Path
) -> None:
    import bpy

    shapes = addon_module("shapes")
    family = bpy.data.collections.new("Family")
    empty_scene.collection.children.link(family)
    for index in range(2):
        cube = _cube(f"Member {index}", (3.0 * index, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0 + index))
        for owner in cube.users_collection:
            owner.objects.unlink(cube)
        family.objects.link(cube)
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=1, location=(0.0, 5.0, 0.0))
    cloud = bpy.context.active_object
    cloud.name = "Scan"
    assert bpy.ops.object.convert(target="POINTCLOUD") == {"FINISHED"} and cloud.type == "POINTCLOUD"
    dots = bpy.data.meshes.new("Dots")
    dots.from_pydata([(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], [(0, 1)], [])  # vertices and an edge
    child = bpy.data.collections.new("More")
    family.children.link(child)
    lamp = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT"))
    for obj in (cloud, bpy.data.objects.new("Dots", dots), lamp):
        for owner in obj.users_collection:
            owner.objects.unlink(obj)
        child.objects.link(obj)

    path, notes = shapes.export_shapes(tmp_path / "family", collection=family)

    dataset = read_shape_dataset(path)
    assert dataset.collection == "Family"
    assert dataset.names() == ["Dots", "Member 0", "Member 1", "Scan"]
    assert notes == ["skipped (no geometry): 'Lamp' (light)"]
    by_name = {entry.name: entry for entry in dataset.shapes}
    for name in ("Dots", "Scan"):
        entry = by_name[name]
        assert (entry.point_cloud, entry.has_normals, entry.watertight, entry.face_count) == (True, False, False, 0)
        assert dataset.geometry(entry).faces is None and dataset.geometry(entry).normals is None
    scan = dataset.geometry(by_name["Scan"])
    assert scan.vertices.shape == (12, 3)
    assert np.allclose(np.linalg.norm(scan.vertices - (0.0, 5.0, 0.0), axis=1), 1.0, atol=1e-5)
    assert np.allclose(by_name["Member 1"].box_max, (4.0, 1.0, 2.0), atol=1e-6)


def _nan_mesh_object():  # type: ignore[no-untyped-def]
    import bpy

    mesh = bpy.data.meshes.new("Broken")
    mesh.from_pydata([(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], [], [(0, 1, 2)])
    mesh.vertices[1].co = (float("nan"), 0.0, 0.0)
    return bpy.data.objects.new("Broken", mesh)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty mesh", r"object 'Hollow' has an empty mesh"),
        ("camera", r"object 'Camera' is a camera, not a mesh or point cloud"),
        ("no selection", r"no objects selected in view layer"),
        ("nan vertices", r"object 'Broken': vertex 1 is not finite \(nan"),
    ],
)
def test_bad_input_names_the_object_and_writes_nothing(empty_scene, tmp_path: Path, case: str, message: str) -> None:
    import bpy

    shapes = addon_module("shapes")
    good = _cube("Good", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    bad = {
        "empty mesh": lambda: bpy.data.objects.new("Hollow", bpy.data.meshes.new("Hollow")),
        "camera": lambda: bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera")),
        "no selection": lambda: None,
        "nan vertices": _nan_mesh_object,
    }[case]()
    bpy.ops.object.select_all(action="DESELECT")
    if bad is not None:
        empty_scene.collection.objects.link(bad)
        bad.select_set(True)
        good.select_set(True)

    with pytest.raises(shapes.ShapeError, match=message):
        shapes.export_shapes(tmp_path / "shapes")

    assert list(tmp_path.iterdir()) == []


def test_the_export_shapes_operator_writes_the_selection_and_reports_bad_input(empty_scene, tmp_path: Path) -> None:
    import bpy

    cube = _cube("Good", (1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    bpy.ops.object.select_all(action="DESELECT")
    cube.select_set(True)

    assert bpy.ops.fieldwork.export_shapes(directory=str(tmp_path / "shapes")) == {"FINISHED"}
    assert read_shape_dataset(tmp_path / "shapes").names() == ["Good"]
    with pytest.raises(RuntimeError, match="already holds a shape dataset"):
        bpy.ops.fieldwork.export_shapes(directory=str(tmp_path / "shapes"))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    empty_scene.collection.objects.link(camera)
    camera.select_set(True)
    with pytest.raises(RuntimeError, match="object 'Camera' is a camera"):
        bpy.ops.fieldwork.export_shapes(directory=str(tmp_path / "other"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shapes"]
