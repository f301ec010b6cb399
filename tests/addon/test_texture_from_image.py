"""Texture From Image against real Blender and a real engine child: a run trained on a tiny textured collection
textures the active mesh from one image; the textured copy lands in the Fieldwork collection at the source's
transform, the source untouched; bad input is named and creates nothing."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from tests.engine.textured_fixtures import train_tiny_run
from tests.engine.train.test_conditional_texture_field import TINY


@pytest.fixture(scope="module")
def texture_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("texture_from_image")
    collection, run = train_tiny_run(folder, TINY)
    return run, collection / "shapes" / "shape_0001" / "images" / "000.png"


@pytest.fixture
def texture_scene(empty_scene: bpy.types.Scene, tmp_path: Path) -> bpy.types.Scene:
    empty_scene.fieldwork.output_dir = str(tmp_path / "out")  # type: ignore[attr-defined]
    return empty_scene


def _world_vertices(obj: bpy.types.Object) -> np.ndarray:
    matrix = np.array(obj.matrix_world)
    local = np.array([vertex.co for vertex in obj.data.vertices])
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def test_a_textured_copy_lands_on_the_source(texture_scene: bpy.types.Scene, texture_run: tuple[Path, Path]) -> None:
    run, image = texture_run
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(1.0, -2.0, 0.5), segments=16, ring_count=8)
    source = bpy.context.active_object
    source.rotation_euler = (0.2, 0.0, 0.7)
    source.scale = (1.0, 1.3, 0.8)
    bpy.context.view_layer.update()
    before_matrix, before_vertices = np.array(source.matrix_world), _world_vertices(source)

    result = bpy.ops.fieldwork.texture_from_image(run_dir=str(run), image_path=str(image), size="256")

    assert result == {"FINISHED"}
    textured = bpy.data.objects["Sphere Textured"]
    assert textured.users_collection[0].name == "Fieldwork"
    assert np.allclose(np.array(textured.matrix_world), before_matrix, atol=1e-6)
    world = _world_vertices(textured)
    assert np.allclose(world.min(axis=0), before_vertices.min(axis=0), atol=1e-4)
    assert np.allclose(world.max(axis=0), before_vertices.max(axis=0), atol=1e-4)
    assert textured.data.uv_layers.active is not None
    nodes = textured.data.materials[0].node_tree.nodes
    (texture_node,) = [node for node in nodes if node.bl_idname == "ShaderNodeTexImage"]
    assert tuple(texture_node.image.size) == (256, 256)
    # the source is as it was
    assert np.array_equal(_world_vertices(source), before_vertices) and source.name == "Sphere"
    assert len(source.data.materials) == 0


def test_bad_input_is_named_and_creates_nothing(
    texture_scene: bpy.types.Scene, texture_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, image = texture_run
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cases = [
        (dict(run_dir=str(tmp_path / "nothing"), image_path=str(image)), "holds no trained run"),
        (dict(run_dir=str(run), image_path=str(tmp_path / "missing.png")), "missing.png: no such file"),
    ]
    for options, message in cases:
        objects_before = sorted(obj.name for obj in bpy.data.objects)
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.fieldwork.texture_from_image(**options)
        assert sorted(obj.name for obj in bpy.data.objects) == objects_before
    bpy.ops.object.camera_add()
    with pytest.raises(RuntimeError, match="'Camera' is a camera"):
        bpy.ops.fieldwork.texture_from_image(run_dir=str(run), image_path=str(image))
    assert cube.name == "Cube" and not bpy.data.collections.get("Fieldwork")
