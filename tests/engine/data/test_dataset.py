"""Dataset loading: alpha over backgrounds, downscaling, rays through pixel centres, the unit cube, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from engine.data.dataset import (
    Cameras,
    DatasetError,
    SceneNormalization,
    dataset_from_transforms,
    load_dataset,
    pixel_rays,
)
from engine.data.transforms import Frame, Intrinsics, SceneBox, Transforms, TransformsError, write_transforms
from tests.engine.sphere_dataset import look_at


def write_images(folder: Path, images: list[np.ndarray], matrices: list[np.ndarray] | None = None) -> Path:
    """A dataset of the given uint8 images (all frames use the first image's size in their intrinsics)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    height, width = images[0].shape[:2]
    intrinsics = Intrinsics(fl_x=10.0, fl_y=10.0, cx=width / 2, cy=height / 2, width=width, height=height)
    frames = []
    for index, image in enumerate(images):
        iio.imwrite(folder / f"images/{index}.png", image)
        matrix = matrices[index] if matrices else look_at(np.array([0.0, -3.0 - index * 0.1, 0.0]), np.zeros(3))
        frames.append(Frame(f"images/{index}.png", np.asarray(matrix).tolist(), intrinsics))
    box = SceneBox((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    return write_transforms(folder, Transforms(frames, folder, box, "srgb", has_alpha=True))


def test_alpha_premultiplied_and_area_downscale(tmp_path: Path) -> None:
    image = np.zeros((2, 2, 4), dtype=np.uint8)
    image[0, 0] = (255, 0, 0, 255)  # opaque red
    image[0, 1] = (0, 255, 0, 0)  # fully transparent: its colour must not count
    image[1, 0] = (0, 0, 255, 255)  # opaque blue
    image[1, 1] = (255, 255, 255, 51)  # white at alpha 0.2
    dataset = load_dataset(write_images(tmp_path, [image, image]), downscale=2)
    assert (dataset.height, dataset.width) == (1, 1)
    # mean premultiplied colour: red (1,0,0) + blue (0,0,1) + white * 0.2, over 4 pixels; mean alpha 2.2 / 4
    assert dataset.premultiplied[0, 0, 0].tolist() == pytest.approx([1.2 / 4, 0.2 / 4, 1.2 / 4], abs=1e-6)
    assert dataset.alpha[0, 0, 0].item() == pytest.approx(2.2 / 4, abs=1e-6)
    # over white: premultiplied + (1 - alpha) * 1
    over_white = dataset.composited(0, torch.ones(3))[0, 0]
    assert over_white.tolist() == pytest.approx([1.2 / 4 + 1.8 / 4, 0.2 / 4 + 1.8 / 4, 1.2 / 4 + 1.8 / 4], abs=1e-6)
    # intrinsics follow the downscale: focal and principal point halve
    assert dataset.intrinsics[0].fl_x == 5.0 and dataset.intrinsics[0].cx == 0.5


def test_rays_go_through_pixel_centres() -> None:
    # camera at the origin looking down -Z; 3x3 pixels, focal 1, principal point at the image centre
    cameras = Cameras.from_intrinsics(torch.eye(4)[None], [Intrinsics(1.0, 1.0, 1.5, 1.5, 3, 3)])
    index = torch.zeros(3, dtype=torch.long)
    rays = pixel_rays(cameras, index, torch.tensor([1, 0, 2]), torch.tensor([1, 0, 2]))
    # centre pixel (1, 1) has its centre at (1.5, 1.5) = the principal point: straight ahead
    assert rays.directions[0].tolist() == pytest.approx([0.0, 0.0, -1.0])
    # top-left pixel centre (0.5, 0.5) is one focal length left and up (image rows grow downwards)
    assert rays.directions[1].tolist() == pytest.approx([-1.0, 1.0, -1.0])
    assert rays.directions[2].tolist() == pytest.approx([1.0, -1.0, -1.0])
    assert torch.equal(rays.origins, torch.zeros(3, 3))


def test_scene_box_maps_to_unit_cube_and_back() -> None:
    normalization = SceneNormalization.from_box(SceneBox((0.0, -1.0, 2.0), (4.0, 1.0, 3.0)))
    # the bounding cube of the box: side 4 around the centre (2, 0, 2.5)
    assert normalization.size == 4.0
    corners = torch.tensor([[0.0, -2.0, 0.5], [4.0, 2.0, 4.5]])
    assert normalization.to_unit(corners).tolist() == [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    points = torch.randn(10, 3)
    assert torch.allclose(normalization.to_world(normalization.to_unit(points)), points, atol=1e-6)


def test_every_eighth_frame_is_held_out_without_splits(tmp_path: Path) -> None:
    image = np.full((4, 4, 3), 128, dtype=np.uint8)
    dataset = load_dataset(write_images(tmp_path, [image] * 10))
    assert dataset.holdout_indices == [0, 8]
    assert dataset.train_indices == [1, 2, 3, 4, 5, 6, 7, 9]
    assert dataset.alpha.min().item() == 1.0  # RGB images are opaque


def test_zero_frames_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))
    with pytest.raises(TransformsError, match="frames"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no frames"):
        dataset_from_transforms(Transforms(frames=[], root=tmp_path), tmp_path)


def test_mismatched_image_sizes_name_the_file(tmp_path: Path) -> None:
    path = write_images(tmp_path, [np.zeros((4, 4, 3), np.uint8)] * 3)
    iio.imwrite(tmp_path / "images/2.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"2\.png: image is 6x4 pixels but frame 2 says 4x4"):
        load_dataset(path)


def test_nan_in_a_matrix_names_the_frame(tmp_path: Path) -> None:
    path = write_images(tmp_path, [np.zeros((4, 4, 3), np.uint8)] * 2)
    document = json.loads(path.read_text())
    document["frames"][1]["transform_matrix"][0][3] = math.nan
    path.write_text(json.dumps(document))  # json writes NaN, as careless tools do
    with pytest.raises(TransformsError, match=r"frame 1 \(images/1\.png\).*finite"):
        load_dataset(path)
    # a Frame built in code (not read from a file) is checked by the dataset itself
    transforms = Transforms(
        frames=[Frame("images/0.png", [[math.nan] * 4] * 4, Intrinsics(10, 10, 2, 2, 4, 4))], root=tmp_path
    )
    with pytest.raises(DatasetError, match=r"frame 0 \(images/0\.png\): camera_to_world is not a finite"):
        dataset_from_transforms(transforms, tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty \\(0 bytes\\)"), (b"hello", "not a PNG, JPEG or OpenEXR image")],
    ids=["empty", "text"],
)
def test_an_unreadable_image_is_one_line_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = write_images(tmp_path, [np.zeros((4, 4, 3), np.uint8)] * 2)
    (tmp_path / "images/1.png").write_bytes(content)
    with pytest.raises(DatasetError, match=rf"1\.png: cannot read image: {message}$"):
        load_dataset(path)


def test_an_image_outside_the_dataset_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = write_images(tmp_path / "dataset", [np.zeros((4, 4, 3), np.uint8)] * 2)
    iio.imwrite(tmp_path / "private.png", np.full((4, 4, 3), 255, np.uint8))
    document = json.loads(path.read_text())
    document["frames"][1]["file_path"] = "../private.png"
    path.write_text(json.dumps(document))
    with pytest.raises(TransformsError, match=r"frame 1 \(\.\./private\.png\): 'file_path' leaves the dataset"):
        load_dataset(path)
    assert float(load_dataset(path, allow_outside_paths=True).premultiplied[1].min()) == 1.0


def test_a_scene_box_beyond_float32_is_named(tmp_path: Path) -> None:
    path = write_images(tmp_path, [np.zeros((4, 4, 3), np.uint8)] * 2)
    document = json.loads(path.read_text())
    document["fieldwork"]["scene_box"]["min"][0] = -1e300
    path.write_text(json.dumps(document))
    with pytest.raises(TransformsError, match="fieldwork.scene_box: scene box corners must be finite and at most"):
        load_dataset(path)
