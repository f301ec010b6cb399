"""Fit Surface against real Blender and a real engine child: a closed surface where the source is, the source
untouched; bad input names the object and creates nothing."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from engine.data.shapes import is_watertight
from tests.conftest import addon_module


def _world_vertices(obj: bpy.types.Object) -> np.ndarray:
    matrix = np.array(obj.matrix_world)
    local = np.array([vertex.co for vertex in obj.data.vertices])
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def _fieldwork_objects() -> list[str]:
    collection = bpy.data.collections.get("Fieldwork")
    return [] if collection is None else sorted(obj.name for obj in collection.objects)


@pytest.fixture
def shape_scene(empty_scene: bpy.types.Scene, tmp_path: Path) -> bpy.types.Scene:
    empty_scene.fieldwork.output_dir = str(tmp_path / "out")  # type: ignore[attr-defined]
    return empty_scene


def test_fit_surface_makes_a_closed_mesh_where_the_source_is(shape_scene: bpy.types.Scene) -> None:
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2, radius=0.6, location=(3.0, -1.0, 0.5))
    source = bpy.context.active_object
    source.rotation_euler = (0.3, 0.2, 0.9)
    source.scale = (1.0, 1.2, 0.8)
    bpy.context.view_layer.update()
    before_matrix = np.array(source.matrix_world)
    before_vertices = _world_vertices(source)

    result = bpy.ops.fieldwork.fit_surface(
        method="igr", resolution=32, minutes=1.0, steps=60, settings="surface_samples=5000 labelled_samples=2000"
    )

    assert result == {"FINISHED"}
    (name,) = _fieldwork_objects()
    fitted = bpy.data.objects[name]
    assert name == "Icosphere Surface"
    assert np.allclose(np.array(fitted.matrix_world), before_matrix, atol=1e-6)  # at the source's transform
    faces = np.array([polygon.vertices[:] for polygon in fitted.data.polygons])
    assert faces.shape[1] == 3 and is_watertight(faces)
    fitted_world = _world_vertices(fitted)
    assert np.allclose(fitted_world.mean(axis=0), before_vertices.mean(axis=0), atol=0.1)
    extent = before_vertices.max(axis=0) - before_vertices.min(axis=0)
    assert np.allclose(fitted_world.max(axis=0) - fitted_world.min(axis=0), extent, rtol=0.25)
    # the source is as it was
    assert np.array_equal(_world_vertices(source), before_vertices)
    assert source.name == "Icosphere" and len(source.data.vertices) == len(before_vertices)


def _nan_mesh() -> bpy.types.Object:
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.name = "Broken"
    cube.data.vertices[3].co = (float("nan"), 0.0, 0.0)
    return cube


def _empty_mesh() -> bpy.types.Object:
    obj = bpy.data.objects.new("Hollow", bpy.data.meshes.new("Hollow"))
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _camera() -> bpy.types.Object:
    bpy.ops.object.camera_add()
    bpy.context.active_object.name = "Lens"
    return bpy.context.active_object


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "No objects selected"),
        (_empty_mesh, "'Hollow' has an empty mesh"),
        (_camera, "'Lens' is a camera"),
        (_nan_mesh, "'Broken'.* not finite"),
    ],
)
def test_bad_input_names_the_object_and_creates_nothing(shape_scene: bpy.types.Scene, make, message: str) -> None:  # type: ignore[no-untyped-def]
    bpy.ops.object.select_all(action="DESELECT")
    if make is not None:
        obj = make()
        bpy.ops.object.select_all(action="DESELECT")
        obj.select_set(True)
    objects_before = sorted(obj.name for obj in bpy.data.objects)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.fieldwork.fit_surface(method="igr", resolution=32, minutes=0.01, steps=1)
    assert sorted(obj.name for obj in bpy.data.objects) == objects_before
    assert not (Path(shape_scene.fieldwork.output_dir) / "surfaces").exists()  # type: ignore[attr-defined]


def test_the_shapes_panel_and_operators_are_registered(fieldwork_addon: str) -> None:
    panels = addon_module("panels")
    assert "VIEW3D_PT_fieldwork_shapes" in [cls.__name__ for cls in panels._CLASSES]
    for name in ("fit_surface", "shape_space", "new_shape", "blend_shapes", "complete_shape"):
        assert hasattr(bpy.ops.fieldwork, name)


TINY_DEEPSDF = "surface_samples=2000 labelled_samples=4000 hidden_width=32 hidden_layers=3 inference_steps=20"


def test_a_shape_space_makes_new_blended_and_completed_shapes(shape_scene: bpy.types.Scene) -> None:
    family = bpy.data.collections.new("Family")
    shape_scene.collection.children.link(family)
    for index, radius in enumerate((0.4, 0.6, 0.8)):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, location=(2.0 * index, 0.0, 0.0), segments=12, ring_count=6)
        sphere = bpy.context.active_object
        sphere.name = f"Ball.{index}"
        for collection in sphere.users_collection:
            collection.objects.unlink(sphere)
        family.objects.link(sphere)
    settings = {"resolution": 16}

    assert bpy.ops.fieldwork.shape_space(
        collection="Family", method="deepsdf", minutes=1.0, steps=3, settings=TINY_DEEPSDF
    ) == {"FINISHED"}
    run = Path(shape_scene["fieldwork_shape_space"])
    assert (run / "checkpoint.pt").is_file() and family["fieldwork_shape_space"] == str(run)

    shape_scene.cursor.location = (0.0, 5.0, 1.0)
    assert bpy.ops.fieldwork.new_shape(seed=2, **settings) == {"FINISHED"}
    new = bpy.data.objects["New Shape 2"]
    assert np.allclose(np.array(new.matrix_world)[:3, 3], (0.0, 5.0, 1.0))

    assert bpy.ops.fieldwork.blend_shapes(first="Ball.0", second="Ball.2", count=2, **settings) == {"FINISHED"}
    assert {"Blend Ball.0-Ball.2 0", "Blend Ball.0-Ball.2 1"} <= set(_fieldwork_objects())
    # animated: one mesh shows at a time, each for its frames, the ends held
    shape_scene.frame_set(20)
    assert bpy.ops.fieldwork.blend_shapes(
        first="Ball.2", second="Ball.0", count=3, animate=True, frames_per_step=5, **settings
    ) == {"FINISHED"}
    steps = [bpy.data.objects[f"Blend Ball.2-Ball.0 {index}"] for index in range(3)]
    for frame, shown in ((10, 0), (20, 0), (24, 0), (25, 1), (29, 1), (30, 2), (90, 2)):
        shape_scene.frame_set(frame)
        assert [not obj.hide_render for obj in steps] == [index == shown for index in range(3)], frame
        assert [not obj.hide_viewport for obj in steps] == [index == shown for index in range(3)], frame

    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(0.0, -3.0, 0.0), segments=12, ring_count=6)
    partial = bpy.context.active_object
    partial.name = "Half"
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="DESELECT")
    bpy.ops.object.mode_set(mode="OBJECT")
    for vertex in partial.data.vertices:
        vertex.select = vertex.co.z > 0.1
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.delete(type="VERT")
    bpy.ops.object.mode_set(mode="OBJECT")
    assert bpy.ops.fieldwork.complete_shape(**settings) == {"FINISHED"}
    completed = bpy.data.objects["Half Completed"]
    assert np.allclose(np.array(completed.matrix_world), np.array(partial.matrix_world))
    assert len(completed.data.polygons) > 0
