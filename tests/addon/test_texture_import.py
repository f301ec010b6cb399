"""Baked textures into real Blender: OBJ/MTL and GLB through Blender's importers, the engine's PLY through
Fieldwork's, with a UV map and the image on the material; packed or beside the .blend; one undo removes it."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from engine.mesh.bake import BakeSettings, bake_texture, texture_path_for
from engine.mesh.io import write_mesh, write_png
from tests.conftest import addon_module
from tests.engine.mesh.conftest import sphere_mesh

SPHERE = sphere_mesh(centre=(2.5, -1.25, 0.8), radius=0.3, resolution=16)
# Red on the +x half, blue on the -x half: where the texture lands on the object can be checked.
BAKED = bake_texture(
    SPHERE.with_colors(None),
    lambda points, normals: np.where((points[:, :1] > 2.5), [[0.9, 0.1, 0.1]], [[0.1, 0.1, 0.9]]),
    BakeSettings(size=256),
)


def _write_textured(folder: Path, suffix: str) -> Path:
    path = folder / f"sphere{suffix}"
    texture = write_png(texture_path_for(path), BAKED.image)
    return write_mesh(BAKED.mesh, path, texture=texture)


def _image_of(obj: bpy.types.Object) -> bpy.types.Image:
    material = obj.data.materials[0]
    principled = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    (link,) = principled.inputs["Base Color"].links
    assert link.from_node.bl_idname == "ShaderNodeTexImage", link.from_node.bl_idname
    image = link.from_node.image
    assert image is not None and tuple(image.size) == (256, 256)
    return image


def _red_side_is_red(obj: bpy.types.Object, image: bpy.types.Image) -> None:
    """Look the image up at each face corner's UV: corners at x > 2.55 read red, x < 2.45 blue."""
    mesh = obj.data
    uvs = np.empty(2 * len(mesh.loops))
    mesh.uv_layers.active.data.foreach_get("uv", uvs)
    vertex_index = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", vertex_index)
    positions = np.array([obj.matrix_world @ mesh.vertices[i].co for i in range(len(mesh.vertices))])[vertex_index]
    pixels = np.asarray(image.pixels[:], dtype=np.float32).reshape(256, 256, 4)  # Blender's row 0 is the bottom
    uv = uvs.reshape(-1, 2)
    texels = pixels[np.clip((uv[:, 1] * 256).astype(int), 0, 255), np.clip((uv[:, 0] * 256).astype(int), 0, 255)]
    red, blue = positions[:, 0] > 2.55, positions[:, 0] < 2.45
    assert (texels[red, 0] > texels[red, 2]).all() and (texels[blue, 2] > texels[blue, 0]).all()


def _bounds(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([obj.matrix_world @ vertex.co for vertex in obj.data.vertices])
    return corners.min(axis=0), corners.max(axis=0)


@pytest.mark.parametrize("suffix", [".obj", ".glb"])
def test_blenders_importers_load_the_uvs_and_the_texture(
    empty_scene: bpy.types.Scene, tmp_path: Path, suffix: str
) -> None:
    path = _write_textured(tmp_path, suffix)
    if suffix == ".obj":
        assert (tmp_path / "sphere.mtl").read_text().splitlines()[-1] == "map_Kd sphere.png"
        bpy.ops.wm.obj_import(filepath=str(path))
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    (obj,) = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    bpy.context.view_layer.update()
    low, high = _bounds(obj)
    np.testing.assert_allclose(low, SPHERE.bounds()[0], atol=1e-4)  # Y-up files land where the scene is
    np.testing.assert_allclose(high, SPHERE.bounds()[1], atol=1e-4)
    assert len(obj.data.uv_layers) == 1 and len(obj.data.polygons) == SPHERE.n_faces
    _red_side_is_red(obj, _image_of(obj))


def test_fieldwork_import_packs_the_texture_and_one_undo_removes_it(
    empty_scene: bpy.types.Scene, tmp_path: Path
) -> None:
    path = _write_textured(tmp_path, ".ply")
    bpy.ops.ed.undo_push(message="before import")
    assert bpy.ops.fieldwork.import_mesh(filepath=str(path)) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="Import Fieldwork Mesh")
    (obj,) = empty_scene.collection.children["Fieldwork"].objects
    # The atlas split vertices at seams; the import welds them: one closed surface, as extracted.
    assert len(obj.data.vertices) == SPHERE.n_vertices and len(obj.data.uv_layers) == 1
    image = _image_of(obj)
    assert image.packed_file is not None
    _red_side_is_red(obj, image)
    bpy.ops.ed.undo()
    assert "Fieldwork Mesh" not in bpy.data.objects and len(bpy.data.meshes) == 0
    assert len(bpy.data.images) == 0 and "Fieldwork Texture" not in bpy.data.materials


def test_texture_saved_beside_the_blend(empty_scene: bpy.types.Scene, tmp_path: Path) -> None:
    importers = addon_module("importers")
    path = _write_textured(tmp_path / "run", ".ply")
    with pytest.raises(importers.MeshImportError, match="save the .blend first"):
        importers.import_mesh_file(empty_scene, path, texture_storage="BESIDE")
    assert len(bpy.data.objects) == 0, "nothing is created when the import fails"
    (tmp_path / "project").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "project" / "scene.blend"))
    scene = bpy.context.scene
    obj = importers.import_mesh_file(scene, path, texture_storage="BESIDE")
    image = _image_of(obj)
    assert image.packed_file is None and image.filepath == "//textures/sphere.png"
    assert (tmp_path / "project" / "textures" / "sphere.png").read_bytes() == (
        tmp_path / "run" / "sphere.png"
    ).read_bytes()
    again = _image_of(importers.import_mesh_file(scene, path, texture_storage="BESIDE"))
    assert again.filepath == "//textures/sphere-2.png", "a second import never overwrites the first's texture"
