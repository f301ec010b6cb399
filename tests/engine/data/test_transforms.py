"""transforms.json read/write: NeRF synthetic, nerfstudio and instant-ngp variants, and our own output."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.data.transforms import (
    Frame,
    Intrinsics,
    SceneBox,
    Transforms,
    TransformsError,
    read_image_info,
    read_transforms,
    write_transforms,
)
from tests.conftest import REPO

# A camera 4 units out on -Y looking at the origin, +Z up: a typical Blender pose.
LOOK_AT_ORIGIN = [
    [1.0, 0.0, 0.0, 0.25],
    [0.0, 0.0, -1.0, -4.0],
    [0.0, 1.0, 0.0, 0.5],
    [0.0, 0.0, 0.0, 1.0],
]


def _write_png(path: Path, width: int, height: int, channels: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.zeros((height, width, channels), dtype=np.uint8))


def _dataset(root: Path, intrinsics: list[Intrinsics], splits: list[str] | None = None) -> Transforms:
    frames = []
    for index, camera in enumerate(intrinsics):
        pose = [row[:] for row in LOOK_AT_ORIGIN]
        pose[0][3] = 0.1 * index + 1 / 3  # thirds do not survive a careless float format
        frames.append(
            Frame(
                file_path=f"images/cam_{index}.png",
                camera_to_world=pose,
                intrinsics=camera,
                name=f"Camera.{index:03d}",
                split=splits[index] if splits else "train",
            )
        )
    return Transforms(
        frames=frames,
        root=root,
        scene_box=SceneBox(minimum=(-1.0, -2.0, 0.0), maximum=(1.0, 2.0, 1.5)),
        color_space="linear",
        has_alpha=True,
    )


CAMERA = Intrinsics(fl_x=70.0, fl_y=71.5, cx=32.25, cy=23.75, width=64, height=48)


def test_write_then_read_gives_back_every_number(tmp_path: Path) -> None:
    written = _dataset(tmp_path, [CAMERA, CAMERA])
    path = write_transforms(tmp_path, written)

    assert path == tmp_path / "transforms.json"
    read = read_transforms(path)
    assert read.frames == written.frames  # exact: floats go through JSON as repr
    assert read.scene_box == written.scene_box
    assert (read.color_space, read.has_alpha) == ("linear", True)
    assert read.root == tmp_path
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_shared_intrinsics_go_on_top_and_different_ones_in_every_frame(tmp_path: Path) -> None:
    write_transforms(tmp_path / "same", _dataset(tmp_path / "same", [CAMERA, CAMERA]))
    same = json.loads((tmp_path / "same" / "transforms.json").read_text())
    shared = [same[key] for key in ("fl_x", "fl_y", "cx", "cy", "w", "h")]
    assert shared == [70.0, 71.5, 32.25, 23.75, 64, 48]
    assert same["camera_angle_x"] == pytest.approx(2 * math.atan(32 / 70.0))
    assert all("fl_x" not in frame for frame in same["frames"])

    portrait = Intrinsics(fl_x=50.0, fl_y=50.0, cx=16.0, cy=32.0, width=32, height=64)
    write_transforms(tmp_path / "mixed", _dataset(tmp_path / "mixed", [CAMERA, portrait]))
    mixed = json.loads((tmp_path / "mixed" / "transforms.json").read_text())
    # nerfstudio takes a top-level key for every frame: per-frame keys must stand alone.
    assert not {"fl_x", "fl_y", "cx", "cy", "w", "h"} & mixed.keys()
    assert [frame["w"] for frame in mixed["frames"]] == [64, 32]
    assert read_transforms(tmp_path / "mixed").frames[1].intrinsics == portrait


def test_scene_box_also_written_as_instant_ngp_scale_and_offset(tmp_path: Path) -> None:
    write_transforms(tmp_path, _dataset(tmp_path, [CAMERA]))
    document = json.loads((tmp_path / "transforms.json").read_text())
    # The box is 2 x 4 x 1.5 around (0, 0, 0.75): its bounding cube (side 4) maps onto ngp's unit cube.
    assert document["aabb_scale"] == 1
    assert document["scale"] == pytest.approx(0.25)
    assert document["offset"] == pytest.approx([0.5, 0.5, 0.5 - 0.75 * 0.25])
    # Without our own key, instant-ngp's keys alone give that bounding cube back.
    del document["fieldwork"]
    (tmp_path / "transforms.json").write_text(json.dumps(document))
    box = read_transforms(tmp_path).scene_box
    assert box is not None
    assert box.minimum == pytest.approx((-2.0, -2.0, -1.25))
    assert box.maximum == pytest.approx((2.0, 2.0, 2.75))


def test_holdout_writes_nerfstudio_split_lists_and_split_files(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, [CAMERA] * 4, splits=["train", "test", "train", "train"])
    write_transforms(tmp_path, dataset, split_files=True)

    document = json.loads((tmp_path / "transforms.json").read_text())
    assert document["train_filenames"] == ["images/cam_0.png", "images/cam_2.png", "images/cam_3.png"]
    assert document["test_filenames"] == ["images/cam_1.png"]
    # nerfstudio asks for "val" too and refuses a file that lists other splits but not that one.
    assert document["val_filenames"] == ["images/cam_1.png"]
    assert [frame.split for frame in read_transforms(tmp_path).frames] == ["train", "test", "train", "train"]

    train = json.loads((tmp_path / "transforms_train.json").read_text())
    assert [frame["file_path"] for frame in train["frames"]] == document["train_filenames"]
    assert (tmp_path / "transforms_val.json").is_file() and (tmp_path / "transforms_test.json").is_file()


def test_reads_nerf_synthetic_split_files(tmp_path: Path) -> None:
    # As in the original NeRF scenes: camera_angle_x only, file_path without extension, RGBA PNGs.
    angle = 0.6911112070083618
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        frames = []
        for index in range(count):
            _write_png(tmp_path / split / f"r_{index}.png", 40, 40)
            frames.append({"file_path": f"./{split}/r_{index}", "rotation": 0.0126, "transform_matrix": LOOK_AT_ORIGIN})
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))

    dataset = read_transforms(tmp_path)

    assert [frame.split for frame in dataset.frames] == ["train", "train", "val", "test"]
    focal = 0.5 * 40 / math.tan(0.5 * angle)
    assert dataset.frames[0].intrinsics == Intrinsics(fl_x=focal, fl_y=focal, cx=20.0, cy=20.0, width=40, height=40)
    assert dataset.image_path(dataset.frames[2]) == tmp_path / "val" / "r_0.png"
    assert dataset.frames[0].name == "r_0"
    assert dataset.has_alpha and dataset.color_space == "srgb"
    assert dataset.scene_box is None


def test_reads_instant_ngp_and_nerfstudio_variants(tmp_path: Path) -> None:
    _write_png(tmp_path / "images" / "a.jpg", 1, 1, channels=3)  # the name is all that matters here
    document = {
        "fl_x": 100.0,
        "w": 80,
        "h": 60,
        "k1": 0,
        "p1": 0.0,
        "camera_model": "OPENCV",
        "aabb_scale": 4,
        "scale": 0.5,
        "offset": [0.5, 0.5, 0.5],
        "frames": [
            {"file_path": "images/a.jpg", "transform_matrix": LOOK_AT_ORIGIN[:3]},
            {"file_path": "images/b.jpg", "transform_matrix": LOOK_AT_ORIGIN, "fl_x": 90.0, "cx": 41.0, "h": 50},
        ],
        "train_filenames": ["./images/a.jpg"],
        "val_filenames": ["images/b.jpg"],
        "test_filenames": [],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(document))

    dataset = read_transforms(tmp_path / "transforms.json")

    first, second = dataset.frames
    assert first.intrinsics == Intrinsics(fl_x=100.0, fl_y=100.0, cx=40.0, cy=30.0, width=80, height=60)
    assert first.camera_to_world[3] == [0.0, 0.0, 0.0, 1.0]
    # Per-frame values override the shared ones.
    assert second.intrinsics == Intrinsics(fl_x=90.0, fl_y=90.0, cx=41.0, cy=25.0, width=80, height=50)
    assert [first.split, second.split] == ["train", "val"]
    # aabb_scale 4 around 0.5 in ngp space, scale 0.5, offset 0.5: world cube of side 8 on the origin.
    assert dataset.scene_box == SceneBox(minimum=(-4.0, -4.0, -4.0), maximum=(4.0, 4.0, 4.0))


def test_reads_instant_ngp_fov_in_degrees_and_aabb(tmp_path: Path) -> None:
    document = {
        "x_fov": 90.0,  # degrees, and it wins over fl_x as in instant-ngp
        "fl_x": 1.0,
        "camera_angle_y": math.pi / 2,
        "w": 64,
        "h": 32,
        "aabb": [[-1.0, 0.0, 2.0], [3.0, 1.0, 3.0]],
        "aabb_scale": 2,
        "offset": 0.25,  # overridden by aabb
        "frames": [{"file_path": "a.png", "transform_matrix": LOOK_AT_ORIGIN}],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(document))

    dataset = read_transforms(tmp_path)

    intrinsics = dataset.frames[0].intrinsics
    assert (intrinsics.fl_x, intrinsics.fl_y) == pytest.approx((32.0, 16.0))  # tan(45 deg) = 1
    # aabb's bounding cube (side 4 around (1, 0.5, 2.5)) times aabb_scale 2.
    assert dataset.scene_box is not None
    assert dataset.scene_box.minimum == pytest.approx((-3.0, -3.5, -1.5))
    assert dataset.scene_box.maximum == pytest.approx((5.0, 4.5, 6.5))

    document.pop("aabb")
    (tmp_path / "transforms.json").write_text(json.dumps(document))
    box = read_transforms(tmp_path).scene_box  # scale 0.33 by default, offset 0.25 on every axis
    assert box is not None and box.minimum == pytest.approx(((0.5 - 1 - 0.25) / 0.33,) * 3)


def test_image_headers(tmp_path: Path) -> None:
    _write_png(tmp_path / "rgba.png", 7, 5, channels=4)
    _write_png(tmp_path / "rgb.png", 7, 5, channels=3)
    iio.imwrite(tmp_path / "photo.jpg", np.zeros((9, 11, 3), dtype=np.uint8))
    info = read_image_info(tmp_path / "rgba.png")
    assert (info.width, info.height, info.has_alpha) == (7, 5, True)
    assert not read_image_info(tmp_path / "rgb.png").has_alpha
    jpeg = read_image_info(tmp_path / "photo.jpg")
    assert (jpeg.width, jpeg.height, jpeg.has_alpha) == (11, 9, False)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(TransformsError, match="notes.png: not a PNG, JPEG or OpenEXR"):
        read_image_info(tmp_path / "notes.png")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"frames": [', r"transforms.json: not valid JSON: .* line 1"),
        ("[1, 2]", "transforms.json: expected a JSON object"),
        ('{"fl_x": 10, "w": 8, "h": 8}', "transforms.json: 'frames' must be a non-empty list"),
        (
            '{"fl_x": 10, "w": 8, "h": 8, "frames": [{"file_path": "a.png", '
            '"transform_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}]}',
            r"transforms.json: frame 0 \(a.png\): 'transform_matrix' rows must have 4 numbers",
        ),
        (
            '{"w": 8, "h": 8, "frames": [{"file_path": "a.png", "transform_matrix": '
            + json.dumps(LOOK_AT_ORIGIN)
            + "}]}",
            r"frame 0 \(a.png\): no focal length",
        ),
        (
            '{"fl_x": 10, "frames": [{"file_path": "a.png", "transform_matrix": ' + json.dumps(LOOK_AT_ORIGIN) + "}]}",
            r"frame 0 \(a.png\): no 'w'/'h' given and the image .*a.png to take them from is missing",
        ),
        (
            '{"fl_x": 10, "w": 8, "h": 8, "k1": 0.1, "frames": [{"file_path": "a.png", "transform_matrix": '
            + json.dumps(LOOK_AT_ORIGIN)
            + "}]}",
            "transforms.json: lens distortion k1=0.1 is not supported",
        ),
        (
            '{"camera_model": "OPENCV_FISHEYE", "frames": [{}]}',
            "camera_model 'OPENCV_FISHEYE' is not a pinhole camera",
        ),
        ('{"is_fisheye": true, "frames": [{}]}', "transforms.json: fisheye cameras"),
        ('{"frames": [{"file_path": "a.png", "latlong": true}]}', r"frame 0 \(a.png\): 'latlong' marks a non-pinhole"),
        (
            '{"camera_model": "EQUIRECTANGULAR", "frames": [{}]}',
            "camera_model 'EQUIRECTANGULAR' is not a pinhole camera",
        ),
        (
            '{"fl_x": 10, "w": 8, "h": 8, "frames": [{"file_path": "a.png", "transform_matrix": '
            + json.dumps([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 2, 1]])
            + "}]}",
            r"frame 0 \(a.png\): 'transform_matrix' last row must be 0 0 0 1",
        ),
    ],
)
def test_unreadable_transforms_name_the_file_and_frame(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "transforms.json").write_text(content)
    with pytest.raises(TransformsError, match=message):
        read_transforms(tmp_path)


def test_missing_dataset_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(TransformsError, match=f"{tmp_path}: no transforms.json"):
        read_transforms(tmp_path)
    with pytest.raises(TransformsError, match="nothing.json: no such file"):
        read_transforms(tmp_path / "nothing.json")


def test_failed_write_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    write_transforms(tmp_path, _dataset(tmp_path, [CAMERA]))
    before = (tmp_path / "transforms.json").read_bytes()
    broken = _dataset(tmp_path, [CAMERA, CAMERA])
    broken.frames[1].camera_to_world[0][0] = math.nan  # JSON cannot hold NaN: the write must fail

    with pytest.raises(ValueError, match="Out of range float"):
        write_transforms(tmp_path, broken)

    assert (tmp_path / "transforms.json").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["transforms.json"]


def test_writing_two_frames_with_one_image_is_refused(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, [CAMERA, CAMERA])
    dataset.frames[1].file_path = "./images/cam_0.png"
    with pytest.raises(TransformsError, match="frames 0 and 1 share the image"):
        write_transforms(tmp_path, dataset)
    assert not (tmp_path / "transforms.json").exists()


def test_file_paths_are_rebased_when_written_elsewhere(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "source", [CAMERA])
    write_transforms(tmp_path / "copy", dataset)
    copied = read_transforms(tmp_path / "copy", allow_outside_paths=True)  # the images stay outside "copy"
    assert copied.frames[0].file_path == "../source/images/cam_0.png"
    assert copied.image_path(copied.frames[0]).resolve() == (tmp_path / "source" / "images" / "cam_0.png").resolve()


def test_importing_transforms_needs_neither_torch_nor_numpy() -> None:
    code = "import sys, engine.data.transforms; print(sorted({'torch', 'numpy', 'bpy'} & set(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"


def _one_frame_file(folder: Path, **frame: object) -> Path:
    """A transforms.json with one frame (fl_x 50, 8x8) whose keys ``frame`` overrides."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"file_path": "images/a.png", "transform_matrix": LOOK_AT_ORIGIN, **frame}
    path = folder / "transforms.json"
    path.write_text(json.dumps({"fl_x": 50.0, "w": 8, "h": 8, "frames": [entry]}))
    return path


@pytest.mark.parametrize(
    "file_path", ["/etc/ssh/secret.png", "../outside.png", "images/../../outside.png", "C:/Users/x.png", "..\\x.png"]
)
def test_a_file_path_outside_the_dataset_is_refused_naming_the_frame_unless_allowed(
    tmp_path: Path, file_path: str
) -> None:
    path = _one_frame_file(tmp_path / "dataset", file_path=file_path)
    with pytest.raises(TransformsError, match=rf"frame 0 \({re.escape(file_path)}\): 'file_path' leaves the dataset"):
        read_transforms(path)
    assert read_transforms(path, allow_outside_paths=True).frames[0].file_path == file_path


def test_a_file_path_that_stays_inside_is_read(tmp_path: Path) -> None:
    path = _one_frame_file(tmp_path / "dataset", file_path="./images/../images/a.png")
    assert read_transforms(path).frames[0].file_path == "./images/../images/a.png"


@pytest.mark.parametrize(
    ("scale", "message"),
    [(1e30, "entries must be at most 1e\\+08"), (0.0, "zero rotation"), (float("nan"), "must be a finite number")],
)
def test_a_scaled_zero_or_nan_rotation_is_refused_naming_the_frame(tmp_path: Path, scale: float, message: str) -> None:
    matrix = [[value * scale if column < 3 else value for column, value in enumerate(row)] for row in LOOK_AT_ORIGIN]
    matrix[3] = [0.0, 0.0, 0.0, 1.0]
    path = _one_frame_file(tmp_path / "dataset", transform_matrix=matrix)
    with pytest.raises(TransformsError, match=rf"frame 0 \(images/a.png\): 'transform_matrix'.*{message}"):
        read_transforms(path)


def test_a_flat_rotation_is_refused(tmp_path: Path) -> None:
    matrix = [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    path = _one_frame_file(tmp_path / "dataset", transform_matrix=matrix)
    with pytest.raises(TransformsError, match="degenerate rotation"):
        read_transforms(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("fl_x", 1e308, "fl_x must be at most 1e\\+08"), ("cx", 1e300, "cx must be at most"),
     ("w", 1e9, "image size must be 1..65536")],
)  # fmt: skip
def test_camera_numbers_too_big_for_the_engine_are_refused(
    tmp_path: Path, key: str, value: float, message: str
) -> None:
    path = _one_frame_file(tmp_path / "dataset", **{key: value})
    with pytest.raises(TransformsError, match=rf"frame 0 \(images/a.png\): {message}"):
        read_transforms(path)
