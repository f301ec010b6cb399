"""Fit Surface's live preview on real bpy and a real engine child: the viewport's view goes into the view file
as the engine reads it, the engine's picture of the surface it fits comes into the preview image, and a
new picture replaces it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import addon_module

bpy = pytest.importorskip("bpy", reason="the preview needs Blender as a module (bpy)")


def _camera_matrices(scene, location, rotation, size: int):  # type: ignore[no-untyped-def]
    data = bpy.data.cameras.new("Viewer")
    camera = bpy.data.objects.new("Viewer", data)
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = location, rotation
    bpy.context.view_layer.update()
    projection = camera.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=size, y=size)
    return camera.matrix_world.inverted(), projection


def test_the_view_file_is_the_viewports_view_and_is_written_only_when_it_moves(empty_scene) -> None:  # type: ignore[no-untyped-def]
    from engine.train.preview_file import read_view

    surface_preview = addon_module("surface_preview")
    view_matrix, projection = _camera_matrices(empty_scene, (1.0, -4.0, 2.0), (math.radians(70), 0.0, 0.3), 64)
    preview = surface_preview.SurfacePreview()
    try:
        assert preview.write_view(view_matrix, projection, 64, 48)
        assert not preview.write_view(view_matrix, projection, 64, 48)  # unchanged: not written again
        view = read_view(preview.view_path)  # what the engine makes of it
        np.testing.assert_allclose(view.camera_to_world, np.linalg.inv(np.asarray(view_matrix)), atol=1e-5)
        assert (view.width, view.height) == (64, 48) and view.fl_x == pytest.approx(projection[0][0] * 32)
        assert preview.write_view(view_matrix, projection, 80, 48)  # the region was resized
        assert read_view(preview.view_path).width == 80
    finally:
        preview.close()
    assert not preview.folder.exists()


def test_the_engines_picture_of_the_fit_comes_into_the_preview_image(empty_scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shapes = addon_module("shapes")
    shape_jobs = addon_module("operators.shape_jobs")
    surface_preview = addon_module("surface_preview")
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(2.0, 1.0, 0.0))
    sphere = bpy.context.active_object
    dataset, _ = shapes.export_shapes(tmp_path / "shapes", objects=[sphere], view_layer=bpy.context.view_layer)
    # a camera 3 units above the sphere, looking down at it
    view_matrix, projection = _camera_matrices(empty_scene, (2.0, 1.0, 3.0), (0.0, 0.0, 0.0), 32)
    preview = surface_preview.SurfacePreview()
    try:
        preview.write_view(view_matrix, projection, 32, 32)
        run = tmp_path / "run"
        arguments = shape_jobs.train_arguments(
            dataset.parent, run, "igr", "cpu", ["--steps", "10", "--set", "surface_samples=2000"], preview.view_path
        )
        assert arguments[arguments.index("--preview-view") + 1] == str(preview.view_path)
        shape_jobs.EngineSteps([shape_jobs.EngineStep(shape_jobs.engine(bpy.context, *arguments), "fit")]).run_all()
        picture = run / shape_jobs.PREVIEW_FILE_NAME
        image = preview.show(picture)
        assert image is not None and image.name == surface_preview.IMAGE_NAME
        assert tuple(image.size) == (32, 32)
        pixels = np.empty(32 * 32 * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        rgba = pixels.reshape(32, 32, 4)
        assert rgba[16, 16, 3] == 1.0 and rgba[16, 16, 0] > 0.15  # the sphere, lit, in the middle
        assert rgba[0, 0, 3] == 0.0  # and nothing in the corner
        assert preview.show(picture) is None  # the same picture is not loaded again
        # the engine's next picture (here: an empty one) replaces it in the same image
        import imageio.v3 as iio

        iio.imwrite(picture, np.zeros((16, 16, 4), dtype=np.uint8))
        again = preview.show(picture)
        assert again is not None and again.name == image.name and tuple(again.size) == (16, 16)
        assert len([im for im in bpy.data.images if im.get("fieldwork_role") == surface_preview.ROLE]) == 1
    finally:
        preview.close()
