"""Meshes into Blender: the Fieldwork collection, world-aligned, colours shown, one undo step, replace on request."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from engine.mesh.io import write_mesh
from tests.conftest import addon_module
from tests.engine.mesh.conftest import sphere_mesh

# Off-centre and small, so a mesh that ignored world units or re-centred itself would show.
SPHERE = sphere_mesh(centre=(2.5, -1.25, 0.8), radius=0.3, resolution=16)


def _red_sphere_file(folder: Path, name: str = "sphere.ply") -> Path:
    colours = np.tile(np.array([[0.9, 0.1, 0.1]], dtype=np.float32), (SPHERE.n_vertices, 1))
    return write_mesh(SPHERE.with_colors(colours), folder / name)


def _world_bounds(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([obj.matrix_world @ vertex.co for vertex in obj.data.vertices])
    return corners.min(axis=0), corners.max(axis=0)


def test_import_lands_in_the_fieldwork_collection_where_the_mesh_is(
    empty_scene: bpy.types.Scene, tmp_path: Path
) -> None:
    path = write_mesh(SPHERE, tmp_path / "sphere.ply")
    assert bpy.ops.fieldwork.import_mesh(filepath=str(path)) == {"FINISHED"}

    collection = empty_scene.collection.children["Fieldwork"]
    (obj,) = collection.objects
    assert obj.type == "MESH" and len(obj.data.polygons) == SPHERE.n_faces
    low, high = _world_bounds(obj)
    expected_low, expected_high = SPHERE.bounds()
    np.testing.assert_allclose(low, expected_low, atol=1e-5)  # float32 positions, world units
    np.testing.assert_allclose(high, expected_high, atol=1e-5)

    colours = obj.data.color_attributes["Color"]
    assert obj.data.color_attributes.active_color_name == "Color"
    assert obj.data.color_attributes.default_color_name == "Color"
    stored = np.empty(4 * SPHERE.n_vertices, dtype=np.float32)
    colours.data.foreach_get("color_srgb", stored)
    np.testing.assert_allclose(stored.reshape(-1, 4)[:, :3], SPHERE.vertex_colors, atol=1.0 / 255 + 1e-6)

    material = obj.data.materials[0]
    base_colour = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED").inputs["Base Color"]
    (link,) = base_colour.links
    assert link.from_node.bl_idname == "ShaderNodeVertexColor" and link.from_node.layer_name == "Color"


def test_one_undo_step_removes_the_import(empty_scene: bpy.types.Scene, tmp_path: Path) -> None:
    """Blender pushes one undo step after an operator with UNDO in bl_options finishes.

    Operators called from Python in background mode push none themselves, so the test pushes
    the step the interface would push, then undoes it: everything the import made must go.
    """
    operator = addon_module("operators.import_mesh").FIELDWORK_OT_import_mesh
    assert {"REGISTER", "UNDO"} <= operator.bl_options
    path = write_mesh(SPHERE, tmp_path / "sphere.ply")
    bpy.ops.ed.undo_push(message="before import")
    bpy.ops.fieldwork.import_mesh(filepath=str(path))
    bpy.ops.ed.undo_push(message=operator.bl_label)
    assert "Fieldwork Mesh" in bpy.data.objects
    bpy.ops.ed.undo()
    assert "Fieldwork Mesh" not in bpy.data.objects and len(bpy.data.meshes) == 0
    assert "Fieldwork" not in bpy.context.scene.collection.children


def test_reimport_keeps_the_previous_result_unless_asked(empty_scene: bpy.types.Scene, tmp_path: Path) -> None:
    path = write_mesh(SPHERE, tmp_path / "sphere.ply")
    other = write_mesh(SPHERE, tmp_path / "other.ply")
    bpy.ops.fieldwork.import_mesh(filepath=str(other))
    bpy.ops.fieldwork.import_mesh(filepath=str(path))
    bpy.ops.fieldwork.import_mesh(filepath=str(path))
    collection = empty_scene.collection.children["Fieldwork"]
    assert len(collection.objects) == 3, "a second import of the same file must not replace the first by itself"
    bpy.ops.fieldwork.import_mesh(filepath=str(path), replace_previous=True)
    importers = addon_module("importers")
    sources = sorted(obj[importers.SOURCE_KEY] for obj in collection.objects)
    assert sources == sorted([str(other), str(path)]), "replace removes only that file's earlier results"


def test_a_mesh_with_no_faces_creates_nothing(empty_scene: bpy.types.Scene, tmp_path: Path) -> None:
    empty = tmp_path / "empty.ply"
    header = (
        "ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
        "property float z\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n"
    )
    empty.write_bytes(header.encode("ascii"))
    objects_before = len(bpy.data.objects)
    with pytest.raises(RuntimeError, match=r"empty\.ply has no faces"):
        bpy.ops.fieldwork.import_mesh(filepath=str(empty))
    assert len(bpy.data.objects) == objects_before and len(bpy.data.meshes) == 0
    assert "Fieldwork" not in empty_scene.collection.children


def test_cycles_renders_the_vertex_colours(empty_scene: bpy.types.Scene, tmp_path: Path) -> None:
    bpy.ops.fieldwork.import_mesh(filepath=str(_red_sphere_file(tmp_path)))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    empty_scene.collection.objects.link(camera)
    camera.location = (2.5, -3.25, 0.8)  # 2 units in front of the sphere along -y, looking at it along +y
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    empty_scene.camera = camera
    world = bpy.data.worlds.new("World")
    world.color = (1.0, 1.0, 1.0)  # flat white light from every side; no nodes, no lamp
    empty_scene.world = world
    empty_scene.render.engine = "CYCLES"
    empty_scene.cycles.device = "CPU"
    empty_scene.cycles.samples = 4
    empty_scene.cycles.use_denoising = False
    empty_scene.render.resolution_x = empty_scene.render.resolution_y = 16
    empty_scene.render.filepath = str(tmp_path / "render.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / "render.png"))
    pixels = np.asarray(image.pixels[:], dtype=np.float32).reshape(16, 16, 4)
    centre = pixels[6:10, 6:10, :3].mean(axis=(0, 1))
    assert centre[0] > 2 * centre[1] and centre[0] > 2 * centre[2], f"sphere should render red, got {centre}"


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_blenders_own_importers_put_every_format_in_place(
    empty_scene: bpy.types.Scene, tmp_path: Path, suffix: str
) -> None:
    """PLY is written Z-up, OBJ and glTF Y-up: each with its importer's default axes lands in place."""
    path = write_mesh(SPHERE, tmp_path / f"sphere{suffix}")
    if suffix == ".ply":
        bpy.ops.wm.ply_import(filepath=str(path))
    elif suffix == ".obj":
        bpy.ops.wm.obj_import(filepath=str(path))
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    (obj,) = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    bpy.context.view_layer.update()
    low, high = _world_bounds(obj)
    expected_low, expected_high = SPHERE.bounds()
    np.testing.assert_allclose(low, expected_low, atol=1e-4)
    np.testing.assert_allclose(high, expected_high, atol=1e-4)
    assert len(obj.data.color_attributes) == 1, f"{suffix}: the vertex colours must come along"
