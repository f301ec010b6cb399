"""Capture against real Blender: Cycles renders reprojected, round trips, bad input, atomic writes, operators."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.data.transforms import Frame, Intrinsics, SceneBox, Transforms, read_transforms, write_transforms
from scripts.capture_probe import (
    MARKERS,
    REPROJECTION_CASES,
    add_camera,
    build_marker_scene,
    detect_markers,
    look_at,
    marker_errors,
    set_up_probe,
)
from tests.conftest import REPO, addon_module, blender_leg_pythons, require_leg


@pytest.mark.parametrize("case", list(REPROJECTION_CASES))
def test_markers_in_cycles_renders_land_where_the_exported_cameras_project_them(
    empty_scene, tmp_path: Path, case: str
) -> None:
    capture, camera_math = addon_module("capture"), addon_module("camera_math")
    scene = empty_scene
    build_marker_scene(scene)
    camera = set_up_probe(scene, REPROJECTION_CASES[case])

    transforms = read_transforms(capture.export_dataset(scene, tmp_path / "dataset", cameras=[camera]))

    (frame,) = transforms.frames
    projected = camera_math.project_points(frame.intrinsics, frame.camera_to_world, MARKERS)
    # The test means something only if every marker is whole inside the image and apart from the others.
    margin = 3.0
    assert np.all(
        (projected > margin) & (projected < (frame.intrinsics.width - margin, frame.intrinsics.height - margin))
    )
    gaps = np.linalg.norm(projected[:, None] - projected[None], axis=-1) + np.eye(len(MARKERS)) * 1e9
    assert gaps.min() > 5.0, f"markers only {gaps.min():.1f} px apart in {case}"
    detected = detect_markers(transforms.image_path(frame))
    assert len(detected) == len(MARKERS), f"{case}: found {len(detected)} blobs"
    errors = marker_errors(detected, projected)
    print(
        f"REPROJECTION {case}: {frame.intrinsics.width}x{frame.intrinsics.height} px, "
        f"mean {errors.mean():.3f} px, max {errors.max():.3f} px"
    )
    assert errors.max() < 0.5, f"{case}: reprojection errors {np.round(errors, 3)} px"


def _two_camera_scene(scene):  # type: ignore[no-untyped-def]
    import bpy

    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.resolution_x, scene.render.resolution_y = 16, 12
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    first = add_camera(scene, "Cam A", look_at((3.0, -3.0, 1.0)))
    second = add_camera(scene, "Cam B", look_at((-3.0, -3.0, 1.0)))
    return first, second


def test_a_failed_render_restores_settings_and_leaves_the_previous_dataset(empty_scene, tmp_path: Path) -> None:
    capture = addon_module("capture")
    scene = empty_scene
    first, second = _two_camera_scene(scene)
    out_dir = tmp_path / "dataset"
    capture.export_dataset(scene, out_dir, cameras=[first])
    before = {path.relative_to(out_dir): path.read_bytes() for path in out_dir.rglob("*") if path.is_file()}
    scene.camera = second
    scene.render.resolution_percentage = 50
    scene.render.image_settings.file_format = "JPEG"
    scene.render.image_settings.color_mode = "BW"

    def fail_on_second_frame(done: int, total: int) -> None:
        if done == 1:
            raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        capture.export_dataset(scene, out_dir, cameras=[first, second], progress=fail_on_second_frame, overwrite=True)

    assert scene.camera == second
    assert scene.render.resolution_percentage == 50
    assert (scene.render.image_settings.file_format, scene.render.image_settings.color_mode) == ("JPEG", "BW")
    after = {path.relative_to(out_dir): path.read_bytes() for path in out_dir.rglob("*") if path.is_file()}
    assert after == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset"], "a half-built dataset was left behind"


def test_holdout_transparent_film_and_the_scene_box(empty_scene, tmp_path: Path) -> None:
    import bpy

    capture = addon_module("capture")
    scene = empty_scene
    _two_camera_scene(scene)
    third = add_camera(scene, "Cam C", look_at((0.0, 4.0, 1.0)))
    scene.render.film_transparent = True
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(10.0, 0.0, 0.0))
    bpy.context.active_object["fieldwork_source"] = "an earlier run"  # a result brought back: not scene geometry

    path = capture.export_dataset(scene, tmp_path / "dataset", holdout_every=2)

    dataset = read_transforms(path)
    assert [(frame.name, frame.split) for frame in dataset.frames] == [
        ("Cam A", "test"),
        ("Cam B", "train"),
        ("Cam C", "test"),
    ]
    assert dataset.has_alpha and iio.imread(dataset.image_path(dataset.frames[0])).shape == (12, 16, 4)
    # The visible geometry is the unit cube at the origin; the imported result does not count.
    assert dataset.scene_box == SceneBox(minimum=(-0.5, -0.5, -0.5), maximum=(0.5, 0.5, 0.5))
    # A picked object's bounds win: an empty cube of size 2 scaled along x.
    box = bpy.data.objects.new("Box", None)
    box.empty_display_type = "CUBE"
    box.empty_display_size = 2.0
    box.scale = (3.0, 1.0, 1.0)
    scene.collection.objects.link(box)
    path = capture.export_dataset(
        scene, tmp_path / "dataset", cameras=[third], scene_box_object=box, image_source="render", overwrite=True
    )
    assert read_transforms(path).scene_box == SceneBox(minimum=(-6.0, -2.0, -2.0), maximum=(6.0, 2.0, 2.0))


def _dataset_on_disk(root: Path) -> Transforms:
    """A dataset with two image sizes, non-square pixels, float64 numbers Blender cannot hold, and a test split."""
    frames = []
    intrinsics = [
        Intrinsics(fl_x=41.123456789012, fl_y=43.98765432101, cx=17.3333333333, cy=11.9876543211, width=32, height=24),
        Intrinsics(fl_x=55.5555555555, fl_y=55.5555555555, cx=12.1111111111, cy=20.7777777777, width=24, height=40),
    ]
    eyes = [(3.1234567891, -2.9876543219, 1.1111111111), (-2.2222222222, 3.3333333333, -1.4444444444)]
    for index in range(4):
        camera = intrinsics[index % 2]
        file_path = f"images/frame_{index}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        iio.imwrite(root / file_path, np.full((camera.height, camera.width, 3), 40 * index, dtype=np.uint8))
        frames.append(
            Frame(
                file_path=file_path,
                camera_to_world=look_at(eyes[index % 2], roll=0.1 * index),
                intrinsics=camera,
                name=f"frame {index}",
                split="test" if index == 3 else "train",
            )
        )
    transforms = Transforms(
        frames=frames, root=root, scene_box=SceneBox(minimum=(-1.25, -0.5, -0.75), maximum=(1.5, 0.5, 0.25))
    )
    write_transforms(root, transforms)
    return transforms


def test_import_then_export_gives_back_the_same_numbers(empty_scene, tmp_path: Path) -> None:
    import bpy

    capture = addon_module("capture")
    scene = empty_scene
    original = _dataset_on_disk(tmp_path / "original")

    cameras = capture.import_dataset(scene, tmp_path / "original" / "transforms.json")

    assert [camera.name for camera in cameras] == ["frame 0", "frame 1", "frame 2", "frame 3"]
    collection = cameras[0].users_collection[0]
    assert collection.name == "original cameras"
    assert collection.name in {child.name for child in bpy.data.collections["Fieldwork"].children}
    assert all(camera.data.background_images[0].image.size[:] == (f.intrinsics.width, f.intrinsics.height)
               for camera, f in zip(cameras, original.frames, strict=True))  # fmt: skip
    assert (scene.render.resolution_x, scene.render.resolution_y) == (32, 24)
    box_object = bpy.data.objects["original scene box"]

    path = capture.export_dataset(
        scene, tmp_path / "again", cameras=cameras, image_source="background", scene_box_object=box_object
    )

    again = read_transforms(path)
    for before, after in zip(original.frames, again.frames, strict=True):
        assert np.max(np.abs(np.subtract(before.camera_to_world, after.camera_to_world))) <= 1e-6
        assert np.max(np.abs(np.subtract(astuple(before.intrinsics), astuple(after.intrinsics)))) <= 1e-6
        assert (after.split, after.name) == (before.split, before.name)
    assert np.max(np.abs(np.subtract(original.scene_box.minimum, again.scene_box.minimum))) <= 1e-6
    assert np.max(np.abs(np.subtract(original.scene_box.maximum, again.scene_box.maximum))) <= 1e-6

    # Blender's own float32 numbers, without the kept float64 ones, are within float32 precision too.
    for camera in cameras:
        del camera[capture.SOURCE_POSE_PROPERTY]
        del camera.data[capture.SOURCE_INTRINSICS_PROPERTY]
    path = capture.export_dataset(scene, tmp_path / "float32", cameras=cameras, image_source="background")
    for before, after in zip(original.frames, read_transforms(path).frames, strict=True):
        assert np.max(np.abs(np.subtract(before.camera_to_world, after.camera_to_world))) <= 1e-5
        assert np.subtract(astuple(before.intrinsics), astuple(after.intrinsics)) == pytest.approx(0, abs=1e-4)


def astuple(intrinsics: Intrinsics) -> tuple[float, ...]:
    return (intrinsics.fl_x, intrinsics.fl_y, intrinsics.cx, intrinsics.cy, intrinsics.width, intrinsics.height)


def test_an_edited_imported_camera_exports_its_new_pose(empty_scene, tmp_path: Path) -> None:
    capture = addon_module("capture")
    _dataset_on_disk(tmp_path / "original")
    cameras = capture.import_dataset(empty_scene, tmp_path / "original")
    cameras[0].location.x += 0.01
    cameras[1].data.lens *= 1.01
    empty_scene.view_layers[0].update()

    path = capture.export_dataset(empty_scene, tmp_path / "edited", cameras=cameras[:2], image_source="background")

    frames = read_transforms(path).frames
    assert frames[0].camera_to_world[0][3] == pytest.approx(3.1234567891 + 0.01, abs=1e-6)
    assert frames[1].intrinsics.fl_x == pytest.approx(55.5555555555 * 1.01, rel=1e-6)


def test_photos_from_a_folder(empty_scene, tmp_path: Path) -> None:
    import bpy

    capture = addon_module("capture")
    scene = empty_scene
    _two_camera_scene(scene)
    photos = tmp_path / "photos"
    photos.mkdir()
    iio.imwrite(photos / "Cam A.jpg", np.zeros((12, 16, 3), dtype=np.uint8))
    iio.imwrite(photos / "Cam B.JPG", np.zeros((12, 16, 3), dtype=np.uint8))

    path = capture.export_dataset(scene, tmp_path / "dataset", image_source="folder", image_folder=photos)

    dataset = read_transforms(path)
    assert [frame.file_path for frame in dataset.frames] == ["images/Cam_A.jpg", "images/Cam_B.jpg"]
    assert all(dataset.image_path(frame).is_file() for frame in dataset.frames)
    assert (dataset.color_space, dataset.has_alpha) == ("srgb", False)

    # OpenEXR photos, as Blender writes them, make a linear dataset with alpha.
    exr_photos = tmp_path / "exr"
    exr_photos.mkdir()
    for name in ("Cam A", "Cam B"):
        image = bpy.data.images.new(name, 16, 12, alpha=True, float_buffer=True)
        image.filepath_raw = str(exr_photos / f"{name}.exr")
        image.file_format = "OPEN_EXR"
        image.save()
    path = capture.export_dataset(
        scene, tmp_path / "dataset", image_source="folder", image_folder=exr_photos, overwrite=True
    )
    dataset = read_transforms(path)
    assert [frame.file_path for frame in dataset.frames] == ["images/Cam_A.exr", "images/Cam_B.exr"]
    assert (dataset.color_space, dataset.has_alpha) == ("linear", True)


def _bad_input(kind: str, scene, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Set up one kind of bad input; return (export keyword arguments, expected message)."""
    if kind == "no cameras":
        return {}, "no perspective cameras in view layer"
    first, second = _two_camera_scene(scene)
    if kind == "orthographic":
        second.data.type = "ORTHO"
        return {"cameras": [first, second]}, "camera 'Cam B' is orthographic"
    if kind == "panoramic":
        first.data.type = "PANO"
        return {"cameras": [first, second]}, "camera 'Cam A' is panoramic"
    if kind == "only orthographic":
        first.data.type = second.data.type = "ORTHO"
        return {}, "no perspective cameras .* only 'Cam A' \\(ortho\\), 'Cam B' \\(ortho\\)"
    if kind == "no pixels":
        scene.render.resolution_percentage = 1
        return {}, r"camera 'Cam A': the render is 0x0 pixels \(16x12 at 1%\)"
    if kind == "scaled":
        second.scale = (2.0, 2.0, 2.0)
        return {}, r"camera 'Cam B' is scaled \(world scale 2, 2, 2\)"
    photos = tmp_path / "photos"
    photos.mkdir()
    iio.imwrite(photos / "Cam A.png", np.zeros((12, 16, 3), dtype=np.uint8))
    if kind == "missing photo":
        return {"image_source": "folder", "image_folder": photos}, "camera 'Cam B': no image named Cam B"
    if kind == "photo size":
        iio.imwrite(photos / "Cam B.png", np.zeros((16, 16, 3), dtype=np.uint8))
        return {"image_source": "folder", "image_folder": photos}, (
            "camera 'Cam B': image .*Cam B.png is 16x16 pixels but the camera renders 16x12"
        )
    if kind == "missing background image":
        import bpy

        image = bpy.data.images.new("gone", 16, 12)
        image.source = "FILE"
        image.filepath = str(tmp_path / "gone.png")
        for camera in (first, second):
            camera.data.background_images.new().image = image
        return {"image_source": "background"}, "camera 'Cam A': background image file .*gone.png is missing"
    raise AssertionError(kind)


BAD_INPUTS = [
    "no cameras",
    "orthographic",
    "panoramic",
    "only orthographic",
    "no pixels",
    "scaled",
    "missing photo",
    "photo size",
    "missing background image",
]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_names_the_camera_or_file_and_writes_nothing(empty_scene, tmp_path: Path, kind: str) -> None:
    capture = addon_module("capture")
    arguments, message = _bad_input(kind, empty_scene, tmp_path)
    with pytest.raises(capture.CaptureError, match=message):
        capture.export_dataset(empty_scene, tmp_path / "dataset", **arguments)
    assert not (tmp_path / "dataset").exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")], "staging folder left behind"


def test_existing_folders_are_not_overwritten_silently(empty_scene, tmp_path: Path) -> None:
    capture = addon_module("capture")
    first, _ = _two_camera_scene(empty_scene)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(capture.CaptureError, match="notes holds files but no transforms.json"):
        capture.export_dataset(empty_scene, tmp_path / "notes", cameras=[first], overwrite=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    capture.export_dataset(empty_scene, tmp_path / "dataset", cameras=[first])
    with pytest.raises(capture.CaptureError, match="dataset already holds a dataset: allow overwrite"):
        capture.export_dataset(empty_scene, tmp_path / "dataset", cameras=[first])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_overwrite_replaces_only_the_datasets_own_files(empty_scene, tmp_path: Path) -> None:
    """The user's notes, an extra/ folder and an image the dataset does not name survive --overwrite
    byte for byte; the old dataset's images and split files go."""
    capture = addon_module("capture")
    first, second = _two_camera_scene(empty_scene)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("Cam A", "Cam B"):
        iio.imwrite(photos / f"{name}.jpg", np.zeros((12, 16, 3), dtype=np.uint8))
        iio.imwrite(photos / f"{name}.png", np.full((12, 16, 3), 200, dtype=np.uint8))
    dataset = tmp_path / "dataset"
    capture.export_dataset(empty_scene, dataset, image_source="folder", image_folder=photos, split_files=True)
    (dataset / "NOTES.txt").write_text("how I shot this\n")
    (dataset / "extra").mkdir()
    (dataset / "extra" / "scan.bin").write_bytes(bytes(range(256)))
    iio.imwrite(dataset / "images" / "reference.png", np.full((4, 4, 3), 7, dtype=np.uint8))
    own = ("transforms", "images/Cam")
    users = {name: data for name, data in _snapshot(dataset).items() if not name.startswith(own)}
    assert sorted(users) == ["NOTES.txt", "extra/scan.bin", "images/reference.png"]

    (photos / "Cam A.jpg").unlink()  # now the png is Cam A's photo
    capture.export_dataset(
        empty_scene, dataset, cameras=[first], image_source="folder", image_folder=photos, overwrite=True
    )

    after = _snapshot(dataset)
    assert {name: after[name] for name in users} == users
    assert sorted(set(after) - set(users)) == ["images/Cam_A.png", "transforms.json"]
    assert [frame.file_path for frame in read_transforms(dataset).frames] == ["images/Cam_A.png"]

    # A file of the user's where the new dataset writes one: refused by name, the folder as it was.
    iio.imwrite(dataset / "images" / "Cam_B.png", np.zeros((12, 16, 3), dtype=np.uint8))
    before = _snapshot(dataset)
    with pytest.raises(capture.CaptureError, match=r"images/Cam_B.png is not one of the dataset's files"):
        capture.export_dataset(
            empty_scene, dataset, cameras=[first, second], image_source="folder", image_folder=photos, overwrite=True
        )
    assert _snapshot(dataset) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset", "photos"], "staging left behind"


def test_unreadable_transforms_json_imports_nothing(empty_scene, tmp_path: Path) -> None:
    import bpy

    capture = addon_module("capture")
    (tmp_path / "transforms.json").write_text('{"frames": [{"file_path": "a.png"')
    objects_before = len(bpy.data.objects)
    resolution_before = (empty_scene.render.resolution_x, empty_scene.render.resolution_y)
    with pytest.raises(ValueError, match="transforms.json: not valid JSON"):
        capture.import_dataset(empty_scene, tmp_path / "transforms.json")
    transforms = _dataset_on_disk(tmp_path / "missing image")
    transforms.image_path(transforms.frames[2]).unlink()
    with pytest.raises(capture.CaptureError, match=r"frame 2 \(images/frame_2.png\): image .* is missing"):
        capture.import_dataset(empty_scene, tmp_path / "missing image")
    transforms = _dataset_on_disk(tmp_path / "wrong size")
    iio.imwrite(transforms.image_path(transforms.frames[1]), np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(capture.CaptureError, match=r"frame 1 .* is 4x4 pixels but the frame says 24x40"):
        capture.import_dataset(empty_scene, tmp_path / "wrong size")
    assert (empty_scene.render.resolution_x, empty_scene.render.resolution_y) == resolution_before
    assert len(bpy.data.objects) == objects_before
    assert "Fieldwork" not in bpy.data.collections


def test_operators_export_selected_cameras_in_edit_mode_and_import(empty_scene, tmp_path: Path) -> None:
    import bpy

    scene = empty_scene
    first, _ = _two_camera_scene(scene)
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.context.view_layer.objects.active = None  # and no active object
    first.select_set(True)
    scene.fieldwork.capture.camera_scope = "SELECTED"
    scene.fieldwork.capture.holdout_every = 0

    assert bpy.ops.fieldwork.export_dataset(directory=str(tmp_path / "dataset")) == {"FINISHED"}
    assert [frame.name for frame in read_transforms(tmp_path / "dataset").frames] == ["Cam A"]
    # A second export into the same folder needs the user's yes.
    with pytest.raises(RuntimeError, match="already holds a dataset"):
        bpy.ops.fieldwork.export_dataset(directory=str(tmp_path / "dataset"))

    assert bpy.ops.fieldwork.import_dataset(filepath=str(tmp_path / "dataset" / "transforms.json")) == {"FINISHED"}
    imported = bpy.data.collections["dataset cameras"].objects
    assert sorted(obj.name for obj in imported) == ["Cam A.001", "dataset scene box"]
    assert scene.fieldwork.capture.scene_box_object == imported["dataset scene box"]


@pytest.mark.parametrize("leg", list(blender_leg_pythons()))
def test_headless_script_with_the_bpy_module(empty_scene, tmp_path: Path, leg: str) -> None:
    import bpy

    python = str(require_leg(leg))
    scene = empty_scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.resolution_x, scene.render.resolution_y = 16, 12
    add_camera(scene, "Left", look_at((-3.0, -4.0, 0.0)))
    add_camera(scene, "Right", look_at((3.0, -4.0, 0.0)))
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)  # copy: this session's file stays untitled
    environment = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    script = [python, str(REPO / "scripts" / "export_dataset.py"), "--", "--blend", str(blend)]

    done = subprocess.run(
        [*script, "--out", str(tmp_path / "out"), "--holdout", "2", "--split-files"],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "out" / "transforms.json")
    assert json.loads((tmp_path / "out" / "transforms_test.json").read_text())["frames"][0]["file_path"] == (
        "images/Left.png"
    )

    refused = subprocess.run(
        [*script, "--out", str(tmp_path / "other"), "--cameras", "Left", "Nobody"],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "error: no object named 'Nobody' for --cameras" in refused.stderr
    assert not (tmp_path / "other").exists()

    # A folder that takes no new files fails before any view renders, with a message, not a traceback.
    if os.geteuid() == 0:
        locked = Path("/sys")  # sysfs refuses new files even to root, whom chmod does not stop
    else:
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o555)
    unwritable = subprocess.run(
        [*script, "--out", str(locked / "dataset")], capture_output=True, text=True, env=environment, timeout=120,
        check=False,
    )  # fmt: skip
    assert unwritable.returncode == 1, unwritable.stdout + unwritable.stderr
    assert f"error: cannot write {locked}: permission denied" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr and "frames 1/" not in unwritable.stdout
