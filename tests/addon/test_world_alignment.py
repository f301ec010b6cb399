"""A field trained on a Cycles-rendered scene comes back as a mesh exactly where the object is.

The object is deliberately off-centre, rotated and squashed (an ellipsoid: rotation changes
its bounding box), so a mesh that forgot the scene normalisation, swapped axes or was
re-centred would miss by about the object's own size. Real parts end to end: scenes built
and rendered in bpy, the add-on's capture, the engine's trainer on CPU, the add-on's Extract
operator running ``python -m engine extract`` as a child process, the importer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import imageio.v3 as imageio
import numpy as np
import pytest

from tests.conftest import addon_module

CAMERAS = 16
IMAGE_SIZE = 32
STEPS = 150
OBJECT_LOCATION = (1.2, -0.7, 0.4)
OBJECT_ROTATION = (0.4, 0.2, 0.9)
OBJECT_SCALE = (0.9, 0.5, 0.35)


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    bounds_min: np.ndarray
    bounds_max: np.ndarray
    pixel_footprint: float  # world size of one pixel at the object's distance
    mean_object_colour: np.ndarray  # (3,) sRGB mean of the opaque pixels of the training images


@pytest.fixture(scope="module")
def trained_run(fieldwork_addon: str, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    from engine.methods.nerf import NerfConfig
    from engine.train.config import TrainConfig
    from engine.train.trainer import Trainer
    from scripts.scenes import CAMERA_LENS_MM, CAMERA_SENSOR_MM, build_object_scene

    out = tmp_path_factory.mktemp("alignment")
    info = build_object_scene(
        camera_count=CAMERAS,
        resolution=IMAGE_SIZE,
        shape="sphere",
        samples=4,
        object_location=OBJECT_LOCATION,
        object_rotation_euler=OBJECT_ROTATION,
        object_scale=OBJECT_SCALE,
    )
    # A scene box half as large again as the object, so the box never clips the surface and the
    # mesh's bounds are the field's own.
    box = bpy.data.objects.new("Scene Box", None)
    box.empty_display_type = "CUBE"
    box.empty_display_size = 0.75 * float(np.max(np.subtract(info.bounds_max, info.bounds_min)))
    box.location = info.center
    info.scene.collection.objects.link(box)
    dataset = addon_module("capture").export_dataset(info.scene, out / "dataset", scene_box_object=box)

    # A small NeRF (4 x 64 MLP, 12 + 16 samples, 192 rays a step) learns this silhouette-defined
    # shape in about 150 steps; it is the cheapest of the trainer's fields per step on a CPU.
    small_nerf = NerfConfig(
        position_frequencies=6,
        hidden_width=64,
        hidden_layers=4,
        skip_layer=2,
        coarse_samples=12,
        fine_samples=16,
        learning_rate=5e-3,
        final_learning_rate=5e-4,
    )
    config = TrainConfig(
        method="nerf", steps=STEPS, device="cpu", compile="off", batch_rays=192, warmup_steps=10, settings=small_nerf
    )
    trainer = Trainer.create(dataset, out / "run", config)
    while not trainer.is_done():
        trainer.train_step()
    trainer.save_checkpoint()
    footprint = info.camera_distance * (CAMERA_SENSOR_MM / CAMERA_LENS_MM) / IMAGE_SIZE
    images = [imageio.imread(path) for path in sorted((out / "dataset" / "images").glob("*.png"))]
    opaque = np.concatenate([image[image[..., 3] > 128][:, :3] for image in images]) / 255.0
    return TrainedRun(
        out / "run", np.asarray(info.bounds_min), np.asarray(info.bounds_max), footprint, opaque.mean(axis=0)
    )


@pytest.mark.slow
def test_extracted_mesh_matches_the_objects_bounding_box(empty_scene: bpy.types.Scene, trained_run: TrainedRun) -> None:
    result = bpy.ops.fieldwork.extract_mesh(run_dir=str(trained_run.run_dir), resolution=64, colour_from="views")
    assert result == {"FINISHED"}
    (obj,) = empty_scene.collection.children["Fieldwork"].objects
    corners = np.array([obj.matrix_world @ vertex.co for vertex in obj.data.vertices])
    low, high = corners.min(axis=0), corners.max(axis=0)
    # Tolerance: 3 pixels at the object's distance (0.21 here; the object is 1.3 x 0.8 x 0.8).
    # 32-pixel views cannot place a silhouette better than about a pixel, and a 150-step field
    # still has a soft edge about two pixels wide, so where its density crosses the level moves
    # by that much; the 64^3 lattice adds at most half a cell (a third of a pixel here). Any
    # alignment mistake (normalisation not undone, axes swapped, re-centred) is off by 0.5 or more.
    tolerance = 3.0 * trained_run.pixel_footprint
    size = trained_run.bounds_max - trained_run.bounds_min
    assert tolerance < 0.3 * size.min(), "the test must be able to tell alignment from misalignment"
    np.testing.assert_allclose(low, trained_run.bounds_min, atol=tolerance)
    np.testing.assert_allclose(high, trained_run.bounds_max, atol=tolerance)
    # Colours from the training images: on average the colour the cameras saw on the object.
    stored = np.empty(4 * len(obj.data.vertices), dtype=np.float32)
    obj.data.color_attributes["Color"].data.foreach_get("color_srgb", stored)
    mean_colour = stored.reshape(-1, 4)[:, :3].mean(axis=0)
    np.testing.assert_allclose(mean_colour, trained_run.mean_object_colour, atol=0.1)
    assert Path(obj["fieldwork_source"]) == trained_run.run_dir.resolve()


@pytest.mark.slow
def test_a_field_with_nothing_above_the_level_creates_no_object(
    empty_scene: bpy.types.Scene, trained_run: TrainedRun
) -> None:
    meshes_before = sorted((trained_run.run_dir / "meshes").glob("*"))
    with pytest.raises(RuntimeError, match=r"no surface in .*nothing above the surface level \(density 1e\+09"):
        bpy.ops.fieldwork.extract_mesh(run_dir=str(trained_run.run_dir), resolution=32, level=1e9)
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0
    assert "Fieldwork" not in empty_scene.collection.children
    assert sorted((trained_run.run_dir / "meshes").glob("*")) == meshes_before, "no file may be left behind"


@pytest.mark.slow
@pytest.mark.parametrize("colour_from", ["field", "views"])
def test_extract_with_a_texture_after_decimation_imports_a_uv_mapped_textured_mesh(
    empty_scene: bpy.types.Scene, trained_run: TrainedRun, colour_from: str
) -> None:
    result = bpy.ops.fieldwork.extract_mesh(
        run_dir=str(trained_run.run_dir),
        resolution=48,
        target_faces=1500,
        colours="TEXTURE",
        texture_size="1024",
        colour_from=colour_from,
    )
    assert result == {"FINISHED"}
    (obj,) = empty_scene.collection.children["Fieldwork"].objects
    assert 0 < len(obj.data.polygons) <= 1500 and len(obj.data.uv_layers) == 1
    mesh_file = Path(obj["fieldwork_file"])
    assert mesh_file.with_suffix(".png").is_file(), "the PNG lies beside the mesh"
    principled = next(node for node in obj.data.materials[0].node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    (link,) = principled.inputs["Base Color"].links
    image = link.from_node.image
    assert tuple(image.size) == (1024, 1024) and image.packed_file is not None
    # Still where the object is, as the vertex-coloured mesh is (see above).
    corners = np.array([obj.matrix_world @ vertex.co for vertex in obj.data.vertices])
    tolerance = 3.0 * trained_run.pixel_footprint
    np.testing.assert_allclose(corners.min(axis=0), trained_run.bounds_min, atol=tolerance)
    np.testing.assert_allclose(corners.max(axis=0), trained_run.bounds_max, atol=tolerance)
    # The texture holds the colour the cameras saw: its chart texels average it.
    pixels = np.asarray(image.pixels[:], dtype=np.float32).reshape(1024, 1024, 4)[..., :3]
    lit = pixels[pixels.sum(axis=2) > 0]
    np.testing.assert_allclose(lit.mean(axis=0), trained_run.mean_object_colour, atol=0.15)
