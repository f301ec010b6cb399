"""A radiance-field dataset in memory: images as tensors, cameras, held-out frames, and the map between
world units and the engine's internal unit cube.

Images are kept with premultiplied colour (colour * alpha) and alpha, so downscaling (an area average)
and compositing over any background stay correct: target = premultiplied + (1 - alpha) * background.
Colours stay in the space the dataset states (sRGB or linear); the trainer says which it trains in.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .bounds import BoxChoice, choose_scene_box
from .transforms import (
    Frame,
    Intrinsics,
    SceneBox,
    Transforms,
    TransformsError,
    read_image_info,
    read_transforms,
    split_indices,
)

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset the engine cannot train on; the message names the file, frame or value at fault."""


@dataclass(frozen=True)
class SceneNormalization:
    """The engine's unit cube [0, 1]^3 is the scene box's bounding cube: world = origin + size * unit.

    One isotropic scale keeps angles and ratios of distances, so directions are the same in both spaces
    and a distance along a ray converts with a single factor."""

    origin: tuple[float, float, float]
    size: float

    @classmethod
    def from_box(cls, box: SceneBox) -> SceneNormalization:
        size = max(box.size)
        center = box.center
        x, y, z = (c - size / 2.0 for c in center)
        return cls(origin=(x, y, z), size=size)

    def to_unit(self, points_world: torch.Tensor) -> torch.Tensor:
        """(..., 3) world -> (..., 3) unit cube."""
        origin = torch.tensor(self.origin, dtype=points_world.dtype, device=points_world.device)
        return (points_world - origin) / self.size

    def to_world(self, points_unit: torch.Tensor) -> torch.Tensor:
        """(..., 3) unit cube -> (..., 3) world."""
        origin = torch.tensor(self.origin, dtype=points_unit.dtype, device=points_unit.device)
        return points_unit * self.size + origin


@dataclass
class Cameras:
    """camera_to_world: (n, 4, 4) world (camera looks down -Z, +Y up); focal, principal: (n, 2) pixels (x, y)."""

    camera_to_world: torch.Tensor
    focal: torch.Tensor
    principal: torch.Tensor

    @classmethod
    def from_intrinsics(cls, camera_to_world: torch.Tensor, intrinsics: list[Intrinsics]) -> Cameras:
        focal = torch.tensor([[k.fl_x, k.fl_y] for k in intrinsics], dtype=torch.float32)
        principal = torch.tensor([[k.cx, k.cy] for k in intrinsics], dtype=torch.float32)
        return cls(camera_to_world.float(), focal.to(camera_to_world.device), principal.to(camera_to_world.device))


@dataclass
class WorldRays:
    """origins: (n, 3) world; directions: (n, 3) world, NOT unit length: their camera-space form is
    (x, y, -1), so a distance t along them is the depth along the camera's viewing axis."""

    origins: torch.Tensor
    directions: torch.Tensor


def pixel_rays(cameras: Cameras, camera_index: torch.Tensor, pixel_x: torch.Tensor, pixel_y: torch.Tensor) -> WorldRays:
    """Rays through pixel centres: pixel (column i, row j) is at (i + 0.5, j + 0.5).
    camera_index, pixel_x, pixel_y: (n,) integer tensors."""
    return image_rays(cameras, camera_index, pixel_x.float() + 0.5, pixel_y.float() + 0.5)


def image_rays(cameras: Cameras, camera_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> WorldRays:
    """Rays through image points (x, y) in pixels, (0, 0) the top-left corner; rows grow downwards, so
    image y points along camera -Y. camera_index: (n,) integers; x, y: (n,) floats."""
    focal = cameras.focal[camera_index]
    principal = cameras.principal[camera_index]
    camera_x = (x - principal[:, 0]) / focal[:, 0]
    camera_y = -(y - principal[:, 1]) / focal[:, 1]
    camera_directions = torch.stack([camera_x, camera_y, -torch.ones_like(camera_x)], dim=-1)
    camera_to_world = cameras.camera_to_world[camera_index]
    rotation = camera_rotation(camera_to_world)
    directions = (rotation @ camera_directions[..., None]).squeeze(-1)
    return WorldRays(origins=camera_to_world[:, :3, 3], directions=directions)


def camera_rotation(camera_to_world: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) -> (..., 3, 3) rotation with unit columns: a scaled Blender camera object must not
    stretch its rays."""
    rotation = camera_to_world[..., :3, :3]
    return rotation / rotation.norm(dim=-2, keepdim=True)


def project_points(
    cameras: Cameras, index: int, points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World points (n, 3) -> image x, y in pixels (as image_rays takes them) and depth along camera
    ``index``'s viewing axis, (n,) each; depth <= 0 is behind the camera."""
    camera_to_world = cameras.camera_to_world[index]
    local = (points - camera_to_world[:3, 3]) @ camera_rotation(camera_to_world)
    depth = -local[:, 2]
    safe_depth = depth.clamp(min=1e-6)
    focal, principal = cameras.focal[index], cameras.principal[index]
    return principal[0] + focal[0] * local[:, 0] / safe_depth, principal[1] - focal[1] * local[:, 1] / safe_depth, depth


def background_colors(kind: str, n_rays: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n_rays, 3) background colours: white, black, or uniform random per ray (so that empty space has
    to learn zero density rather than the colour of a fixed background)."""
    if kind == "white":
        return torch.ones(n_rays, 3, device=device)
    if kind == "black":
        return torch.zeros(n_rays, 3, device=device)
    if kind == "random":
        return torch.rand(n_rays, 3, generator=generator, device=device)
    raise ValueError(f"unknown background {kind!r}; choose white, black or random")


@dataclass
class RadianceDataset:
    """premultiplied: (n_frames, h, w, 3) float32 colour * alpha; alpha: (n_frames, h, w) float32 (1 for
    images without alpha); cameras for all frames; train_indices / holdout_indices into the frames."""

    path: Path
    frames: list[Frame]
    premultiplied: torch.Tensor
    alpha: torch.Tensor
    cameras: Cameras
    intrinsics: list[Intrinsics]
    train_indices: list[int]
    holdout_indices: list[int]
    scene_box: SceneBox
    normalization: SceneNormalization
    color_space: str
    has_alpha: bool
    scene_box_rule: str = "dataset"  # which rule of engine.data.bounds.RULES chose scene_box
    scene_box_reason: str = ""

    @property
    def height(self) -> int:
        return int(self.premultiplied.shape[1])

    @property
    def width(self) -> int:
        return int(self.premultiplied.shape[2])

    def to(self, device: torch.device) -> RadianceDataset:
        self.premultiplied = self.premultiplied.to(device)
        self.alpha = self.alpha.to(device)
        self.cameras = Cameras(
            self.cameras.camera_to_world.to(device), self.cameras.focal.to(device), self.cameras.principal.to(device)
        )
        return self

    def composited(self, frame_index: int, background: torch.Tensor) -> torch.Tensor:
        """(h, w, 3) image of a frame over a background colour (3,)."""
        return self.premultiplied[frame_index] + (1.0 - self.alpha[frame_index, ..., None]) * background

    def suggested_finest_resolution(self, minimum: int = 16, maximum: int = 4096) -> int:
        """Grid cells per unit-cube side so that a cell is about half the footprint of a pixel at the
        scene box's centre, as seen by the training cameras (median over them)."""
        center = torch.tensor(self.scene_box.center)
        positions = self.cameras.camera_to_world[self.train_indices, :3, 3].cpu()
        distances = (positions - center).norm(dim=-1)
        focal = self.cameras.focal[self.train_indices].cpu().amax(dim=-1)
        footprint = float((distances / focal).median())
        if footprint <= 0:
            return maximum
        return int(min(maximum, max(minimum, math.ceil(2.0 * self.normalization.size / footprint))))


def load_dataset(
    path: Path | str, downscale: int = 1, scene_box: SceneBox | None = None, allow_outside_paths: bool = False
) -> RadianceDataset:
    """Read ``transforms.json`` (or a folder with it, or NeRF-synthetic split files) and its images.

    ``scene_box`` overrides the dataset's box; without either, engine.data.bounds chooses one. A frame's image
    outside the dataset's folder is refused unless ``allow_outside_paths`` (see read_transforms)."""
    path = Path(path)
    return dataset_from_transforms(read_transforms(path, allow_outside_paths), path, downscale, scene_box)


def dataset_from_transforms(
    transforms: Transforms, path: Path, downscale: int = 1, scene_box: SceneBox | None = None
) -> RadianceDataset:
    if downscale < 1:
        raise DatasetError(f"downscale must be a whole number >= 1, got {downscale}")
    if not transforms.frames:
        raise DatasetError(f"{path}: the dataset has no frames")
    frames = transforms.frames
    for index, frame in enumerate(frames):
        matrix = np.asarray(frame.camera_to_world, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise DatasetError(f"{path}: frame {index} ({frame.file_path}): camera_to_world is not a finite 4x4 matrix")
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise DatasetError(f"{path}: frame {index} ({frame.file_path}): camera_to_world has a singular rotation")

    premultiplied, alpha = [], []
    first_size = None
    for index, frame in enumerate(frames):
        image_path = transforms.image_path(frame)
        colour, frame_alpha = _read_image(image_path)
        height, width = colour.shape[:2]
        if (width, height) != (frame.intrinsics.width, frame.intrinsics.height):
            raise DatasetError(
                f"{image_path}: image is {width}x{height} pixels but frame {index} says "
                f"{frame.intrinsics.width}x{frame.intrinsics.height}"
            )
        if first_size is None:
            first_size = (width, height)
        elif (width, height) != first_size:
            raise DatasetError(
                f"{image_path}: image is {width}x{height} pixels but {transforms.image_path(frames[0])} is "
                f"{first_size[0]}x{first_size[1]}; all images of a dataset must have the same size"
            )
        if downscale > min(width, height):
            raise DatasetError(f"downscale {downscale} is larger than the {width}x{height} images of {path}")
        premultiplied.append(colour * frame_alpha[..., None])
        alpha.append(frame_alpha)

    premultiplied_images = _area_downscale(torch.from_numpy(np.stack(premultiplied)), downscale)
    alpha_images = _area_downscale(torch.from_numpy(np.stack(alpha))[..., None], downscale)[..., 0]
    intrinsics = [_downscaled(frame.intrinsics, downscale) for frame in frames]
    camera_to_world = torch.tensor([frame.camera_to_world for frame in frames], dtype=torch.float32)

    train, holdout = split_indices(frames, path)

    choice = _scene_box_choice(
        transforms,
        scene_box,
        np.array([frames[i].camera_to_world for i in train], dtype=np.float64),
        [intrinsics[i] for i in train],
        alpha_images[train],
    )
    log.info("scene box %s..%s by rule %s: %s", choice.box.minimum, choice.box.maximum, choice.rule, choice.reason)
    scene_box = choice.box
    return RadianceDataset(
        path=path,
        frames=frames,
        premultiplied=premultiplied_images.contiguous(),
        alpha=alpha_images.contiguous(),
        cameras=Cameras.from_intrinsics(camera_to_world, intrinsics),
        intrinsics=intrinsics,
        train_indices=train,
        holdout_indices=holdout,
        scene_box=scene_box,
        normalization=SceneNormalization.from_box(scene_box),
        color_space=transforms.color_space,
        has_alpha=transforms.has_alpha,
        scene_box_rule=choice.rule,
        scene_box_reason=choice.reason,
    )


def _scene_box_choice(
    transforms: Transforms,
    override: SceneBox | None,
    camera_to_world: np.ndarray,
    intrinsics: list[Intrinsics],
    alpha: torch.Tensor,
) -> BoxChoice:
    """The caller's box, else the dataset's, else the rule of engine.data.bounds on the training views
    (camera_to_world: (n, 4, 4); alpha: (n, h, w), used only when the dataset has alpha)."""
    if override is not None:
        return BoxChoice(override, "override", "given by the caller (--scene-box)")
    if transforms.scene_box is not None:
        return BoxChoice(
            transforms.scene_box, "dataset", "the dataset's own box (fieldwork scene_box or instant-ngp aabb)"
        )
    silhouettes = list(alpha.numpy()) if transforms.has_alpha else None
    return choose_scene_box(camera_to_world, intrinsics, silhouettes)


def _read_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 3) colour and (h, w) alpha as float32; integer images are scaled to 0..1."""
    try:
        image = iio.imread(path)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: cannot read image: {_image_problem(path, error)}") from error
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if image.ndim != 3 or channels not in (1, 2, 3, 4):
        raise DatasetError(f"{path}: expected a grey, grey+alpha, RGB or RGBA image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise DatasetError(f"{path}: image holds NaN or infinite values")
    colour = np.repeat(image[..., :1], 3, axis=-1) if channels in (1, 2) else image[..., :3]
    alpha = image[..., -1] if channels in (2, 4) else np.ones(image.shape[:2], dtype=np.float32)
    return colour, alpha.copy()


def _image_problem(path: Path, error: Exception) -> str:
    """Why an image did not read, in one line: imageio's own message lists every plugin it tried."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    try:
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
        read_image_info(path)  # names a file that is no PNG, JPEG or OpenEXR at all
    except TransformsError as header_error:
        return str(header_error).removeprefix(f"{path}: ")
    except OSError as os_error:
        return os_error.strerror or str(os_error)
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _area_downscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(n, h, w, c) -> (n, h // factor, w // factor, c) by averaging factor x factor blocks; a remainder
    at the right and bottom is dropped, which keeps pixel centres where the intrinsics put them."""
    if factor == 1:
        return images
    pooled = torch.nn.functional.avg_pool2d(images.permute(0, 3, 1, 2), kernel_size=factor, stride=factor)
    return pooled.permute(0, 2, 3, 1)


def _downscaled(intrinsics: Intrinsics, factor: int) -> Intrinsics:
    return Intrinsics(
        fl_x=intrinsics.fl_x / factor,
        fl_y=intrinsics.fl_y / factor,
        cx=intrinsics.cx / factor,
        cy=intrinsics.cy / factor,
        width=intrinsics.width // factor,
        height=intrinsics.height // factor,
    )
