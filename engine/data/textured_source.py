"""The TEXTURED_SHAPES family's data source: per step a batch of shapes, for each a conditioning view, the
shape's surface points (the shape encoder's input) and surface points seen in another view with their pixel
colours (the texture field's supervision), for conditional texture fields.

Opened by the trainer through ``FAMILY_OPENERS["textured_shapes"]``. Each shape lives in its own normalised
space: its box's centre at the origin, its longest side spanning [-1, 1] (:class:`ShapeFrame`), so the encoders
see every shape at one size and a new mesh is normalised the same way at inference. Where every pixel ray of a
view meets the mesh is found once (engine/mesh/raycast.py) and cached beside the collection
(``cache/<shape>-<key>.npz``, keyed by the mesh, the cameras and the images), so a collection opens fast the
second time. The last ``holdout_shapes`` shapes by name are never trained on; evaluation uses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch

from ..atomic import write_atomic
from ..mesh.io import MeshFileError, read_mesh
from ..mesh.raycast import MeshRaycaster
from ..mesh.triangle_mesh import TriangleMesh
from .shapes import ShapeError, sample_surface
from .textured_collection import TexturedCollection, TexturedShape, load_textured_collection
from .transforms import Frame, SceneBox

CACHE_FOLDER = "cache"
CACHE_VERSION = 1
# A pixel is the object's where its alpha is above this; its ray must also meet the mesh to be supervised.
ALPHA_THRESHOLD = 0.5


@dataclass(frozen=True)
class ShapeFrame:
    """A shape's normalised space: ``(world - center) / half_extent``; the longest side of its box spans [-1, 1]."""

    center: tuple[float, float, float]
    half_extent: float

    @classmethod
    def of_vertices(cls, vertices: np.ndarray, where: str) -> ShapeFrame:
        low, high = vertices.min(axis=0), vertices.max(axis=0)
        half_extent = float((high - low).max()) / 2.0
        if not half_extent > 0.0 or not math.isfinite(half_extent):
            raise ValueError(f"{where}: the mesh has no extent (its box is {low.tolist()}..{high.tolist()})")
        center = (low + high) / 2.0
        return cls(center=(float(center[0]), float(center[1]), float(center[2])), half_extent=half_extent)

    def to_local(self, points_world: np.ndarray) -> np.ndarray:
        return (np.asarray(points_world, dtype=np.float64) - np.asarray(self.center)) / self.half_extent


def check_textured_mesh(mesh: TriangleMesh, where: str) -> None:
    """A mesh a texture field can be conditioned on: faces with area, finite vertices."""
    if mesh.n_faces == 0:
        raise ValueError(f"{where}: the mesh has no faces (a point cloud cannot be textured)")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError(f"{where}: the mesh has NaN or infinite vertices")


def encoder_points(mesh: TriangleMesh, frame: ShapeFrame, count: int, seed: int, where: str) -> np.ndarray:
    """(count, 6) float32 surface points and their unit normals in the shape's normalised space: the shape
    encoder's input (training and inference draw it the same way)."""
    try:
        points, normals = sample_surface(mesh.vertices, mesh.faces, count, np.random.default_rng(seed), where)
    except ShapeError as error:
        raise ValueError(f"{where}: {error}") from error
    return np.concatenate([frame.to_local(points), normals], axis=1).astype(np.float32)


def read_rgba(path: Path) -> np.ndarray:
    """(h, w, 4) uint8 RGBA of an image file (RGB gets an opaque alpha; grey is repeated), errors naming it."""
    try:
        image = iio.imread(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image") from None
    except Exception as error:  # imageio's plugins raise what their parsers raise on junk (struct.error, ...)
        raise ValueError(f"{path}: cannot read the image ({type(error).__name__}: {str(error)[:200]})") from error
    if np.issubdtype(image.dtype, np.integer) and image.dtype != np.uint8:
        image = np.round(image.astype(np.float64) / np.iinfo(image.dtype).max * 255.0)
    elif np.issubdtype(image.dtype, np.floating):
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0)
    image = np.asarray(image).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{path}: expected a grey, RGB or RGBA image, got an array of shape {image.shape}")
    channels = image.shape[-1]
    colour = np.repeat(image[..., :1], 3, axis=-1) if channels in (1, 2) else image[..., :3]
    alpha = image[..., -1:] if channels in (2, 4) else np.full((*image.shape[:2], 1), 255, dtype=np.uint8)
    return np.concatenate([colour, alpha], axis=-1)


def condition_tensor(rgba: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(..., h, w, 4) uint8 RGBA -> (..., 4, size, size) float: premultiplied colour and alpha in 0..1, resized
    (area) to the image encoder's size."""
    image = torch.as_tensor(rgba).float() / 255.0
    image = torch.cat([image[..., :3] * image[..., 3:], image[..., 3:]], dim=-1)
    image = image.movedim(-1, -3)
    if image.shape[-1] != size or image.shape[-2] != size:
        flat = image.reshape(-1, *image.shape[-3:])
        flat = torch.nn.functional.interpolate(flat, size=(size, size), mode="area")
        image = flat.reshape(*image.shape[:-3], 4, size, size)
    return image


def pixel_rays_of(frame: Frame, columns: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World origins and unit directions of the rays through pixel centres (Blender camera: -Z forward, +Y up)."""
    intrinsics = frame.intrinsics
    matrix = np.asarray(frame.camera_to_world, dtype=np.float64)
    x = (columns + 0.5 - intrinsics.cx) / intrinsics.fl_x
    y = -(rows + 0.5 - intrinsics.cy) / intrinsics.fl_y
    local = np.stack([x, y, -np.ones_like(x)], axis=1)
    directions = local @ matrix[:3, :3].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.broadcast_to(matrix[:3, 3], directions.shape).copy(), directions


@dataclass
class ShapeViews:
    """One shape, everything training needs of it: its frame, encoder points (n, 6), images (v, h, w, 4) uint8,
    and per view the normalised surface points its object pixels see (concatenated: points (m, 3), colours
    (m, 3) in 0..1, pixel (m,) row-major pixel index; view_start (v + 1,) offsets)."""

    name: str
    frame: ShapeFrame
    encoder_points: np.ndarray
    images: np.ndarray
    points: np.ndarray
    colours: np.ndarray
    pixels: np.ndarray
    view_start: np.ndarray


def shape_views(
    shape: TexturedShape, cache_root: Path, surface_samples: int, raycast_resolution: int = 0
) -> ShapeViews:
    """A shape's views and hits, from the cache when made before from these files, else cast now and cached (an
    atomic write; a read-only collection just goes uncached)."""
    try:
        mesh = read_mesh(shape.mesh_path)
    except MeshFileError as error:
        raise ValueError(f"shape {shape.name!r}: {error}") from error
    check_textured_mesh(mesh, str(shape.mesh_path))
    frame = ShapeFrame.of_vertices(mesh.vertices, str(shape.mesh_path))
    image_paths = [shape.transforms.image_path(view) for view in shape.transforms.frames]
    images = np.stack([read_rgba(path) for path in image_paths])
    digest = hashlib.sha256(f"{CACHE_VERSION} {surface_samples} {raycast_resolution}".encode())
    for path in [shape.mesh_path, shape.transforms.root / "transforms.json", *image_paths]:
        digest.update(path.read_bytes())
    cache_path = cache_root / CACHE_FOLDER / f"{shape.name}-{digest.hexdigest()[:16]}.npz"
    cached = _read_cache(cache_path)
    if cached is not None:
        return ShapeViews(shape.name, frame, images=images, **cached)
    points_per_view, colours_per_view, pixels_per_view = [], [], []
    vertices = torch.as_tensor(frame.to_local(mesh.vertices), dtype=torch.float32)
    raycaster = MeshRaycaster(vertices, torch.as_tensor(mesh.faces), raycast_resolution)
    for view, image in zip(shape.transforms.frames, images, strict=True):
        height, width = image.shape[:2]
        if (width, height) != (view.intrinsics.width, view.intrinsics.height):
            raise ValueError(
                f"{shape.transforms.image_path(view)}: the image is {width}x{height}, its camera "
                f"{view.intrinsics.width}x{view.intrinsics.height}"
            )
        pixel = np.flatnonzero(image[..., 3].reshape(-1) > ALPHA_THRESHOLD * 255)
        origins, directions = pixel_rays_of(
            view, (pixel % width).astype(np.float64), (pixel // width).astype(np.float64)
        )
        hits = raycaster.intersect(
            torch.as_tensor(frame.to_local(origins), dtype=torch.float32),
            torch.as_tensor(directions, dtype=torch.float32),
        )
        hit = hits.hit.numpy()
        # directions are unit length in world units; the normalised space is 1 / half_extent of those
        local_origins, t = frame.to_local(origins[hit]), hits.t.numpy()[hit]
        points_per_view.append((local_origins + directions[hit] * t[:, None]).astype(np.float32))
        colours_per_view.append(image.reshape(-1, 4)[pixel[hit], :3].astype(np.float32) / 255.0)
        pixels_per_view.append(pixel[hit].astype(np.int64))
    counts = np.array([len(points) for points in points_per_view])
    if not (counts > 0).all():
        empty = [view.file_path for view, count in zip(shape.transforms.frames, counts, strict=True) if count == 0]
        raise ValueError(
            f"shape {shape.name!r}: the views {', '.join(empty)} show nothing of its mesh {shape.mesh_path}"
        )
    arrays = {
        "encoder_points": encoder_points(mesh, frame, surface_samples, seed=0, where=str(shape.mesh_path)),
        "points": np.concatenate(points_per_view),
        "colours": np.concatenate(colours_per_view),
        "pixels": np.concatenate(pixels_per_view),
        "view_start": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    }

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    with contextlib.suppress(OSError):
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_path, write)
    return ShapeViews(shape.name, frame, images=images, **arrays)


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in ("encoder_points", "points", "colours", "pixels", "view_start")}
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a damaged cache is cast again


@dataclass
class TexturedBatch:
    """shape (b,) indices into the source's shapes; condition (b, 4, s, s) conditioning images (premultiplied
    RGB, alpha); encoder_points (b, n, 6) points and normals; points (b, k, 3) normalised surface points of
    another view; colours (b, k, 3) their pixels' colours in 0..1."""

    shape: torch.Tensor
    condition: torch.Tensor
    encoder_points: torch.Tensor
    points: torch.Tensor
    colours: torch.Tensor


class TexturedSource:
    """Batches of ``shapes_per_batch`` training shapes (with replacement), ``points_per_shape`` target pixels
    each, ``encoder_points`` encoder inputs each."""

    def __init__(
        self, shapes: list[ShapeViews], train: list[int], settings: Any, image_size: int, device: torch.device
    ) -> None:
        if not train:
            raise ValueError("no shape is left to train on (holdout_shapes holds them all out)")
        self.shapes = shapes
        self.train = train
        self.device = device
        self.image_size = image_size
        self.shapes_per_batch = int(settings.shapes_per_batch)
        self.points_per_shape = int(settings.points_per_shape)
        self.encoder_count = int(settings.encoder_points)
        self.colour_augmentation = bool(settings.colour_augmentation)
        self.views = torch.tensor([len(shape.view_start) - 1 for shape in shapes], device=device)
        self.images = torch.from_numpy(np.stack([shape.images for shape in shapes])).to(device)  # (n, v, h, w, 4)
        self.encoder_inputs = torch.from_numpy(np.stack([shape.encoder_points for shape in shapes])).to(device)
        offsets = np.cumsum([0] + [len(shape.points) for shape in shapes[:-1]])
        self.points = torch.from_numpy(np.concatenate([shape.points for shape in shapes])).to(device)
        self.colours = torch.from_numpy(np.concatenate([shape.colours for shape in shapes])).to(device)
        starts = [offset + shape.view_start for offset, shape in zip(offsets, shapes, strict=True)]
        width = max(len(start) for start in starts)
        padded = np.stack([np.pad(start, (0, width - len(start)), mode="edge") for start in starts])
        self.view_start = torch.from_numpy(padded).to(device)  # (n, v + 1) into the flat points

    def names(self) -> list[str]:
        return [shape.name for shape in self.shapes]

    def record(self, samples_used: int) -> None:
        """Batches do not adapt."""

    def next_batch(self, generator: torch.Generator | None) -> TexturedBatch:
        device = self.device

        def uniform(*size: int) -> torch.Tensor:
            return torch.rand(*size, generator=generator, device=device)

        batch = self.shapes_per_batch
        pick = (uniform(batch) * len(self.train)).long().clamp(max=len(self.train) - 1)
        shape = torch.as_tensor(self.train, device=device)[pick]
        views = self.views[shape]
        condition_view = torch.minimum((uniform(batch) * views).long(), views - 1)
        # the target is any other view: the field must carry the texture to sides the condition does not show
        target_view = (condition_view + 1 + (uniform(batch) * (views - 1)).long()) % views
        start = self.view_start[shape, target_view]
        count = self.view_start[shape, target_view + 1] - start
        index = start[:, None] + (uniform(batch, self.points_per_shape) * count[:, None]).long()
        encoder_index = (uniform(batch, self.encoder_count) * self.encoder_inputs.shape[1]).long()
        encoder = torch.gather(self.encoder_inputs[shape], 1, encoder_index[..., None].expand(-1, -1, 6))
        images, colours = self.images[shape, condition_view], self.colours[index]
        if self.colour_augmentation:
            images, colours = recolour(images, colours, uniform(batch, 3), uniform(batch, 3) < 0.5)
        return TexturedBatch(
            shape=shape,
            condition=condition_tensor(images, self.image_size),
            encoder_points=encoder,
            points=self.points[index],
            colours=colours,
        )


def recolour(
    images: torch.Tensor, colours: torch.Tensor, order_keys: torch.Tensor, invert: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour augmentation, one draw per shape of a batch and the same in its condition and its target: (b, h, w,
    4) uint8 RGBA conditioning images and (b, k, 3) target colours in 0..1 get their channels reordered (by the
    argsort of ``order_keys`` (b, 3)) and the ``invert`` (b, 3) ones turned to 1 - x; alpha is kept. 48 textures
    for each one rendered, so the image encoder must read colours off the image rather than recognise the few
    hundred textures of a training collection (without it a CPU run learned the training textures and
    predicted held-out ones below a mean-colour baseline)."""
    order = torch.argsort(order_keys, dim=1)
    rgb = torch.gather(images[..., :3], -1, order[:, None, None, :].expand(*images.shape[:3], 3))
    rgb = torch.where(invert[:, None, None, :], 255 - rgb, rgb)
    colours = torch.gather(colours, -1, order[:, None, :].expand_as(colours))
    colours = torch.where(invert[:, None, :], 1.0 - colours, colours)
    return torch.cat([rgb, images[..., 3:]], dim=-1), colours


def open_textured_shapes(path: Path, config: Any, device: torch.device) -> Any:
    """opener(path, TrainConfig, device) -> FamilyData of a textured collection folder (or its index)."""
    from ..train.trainer import FamilyData

    collection: TexturedCollection = load_textured_collection(path)
    settings = config.settings
    names = sorted(collection.names())
    holdout_count = int(settings.holdout_shapes)
    if not 0 <= holdout_count < len(names):
        raise ValueError(
            f"holdout_shapes must be 0..{len(names) - 1} (the collection has {len(names)} shapes), got {holdout_count}"
        )
    holdout = names[len(names) - holdout_count :] if holdout_count else []
    by_name = {shape.name: shape for shape in collection.shapes}
    shapes = [
        shape_views(by_name[name], collection.root, int(settings.surface_samples), int(settings.raycast_resolution))
        for name in names
    ]
    sizes = {shape.images.shape[1:3] for shape in shapes}
    if len(sizes) != 1:
        raise ValueError(f"{collection.root}: the shapes' images differ in size ({sorted(sizes)}); one size for all")
    train = [index for index, name in enumerate(names) if name not in holdout]
    image_size = int(settings.image_size) or int(shapes[0].images.shape[1])
    source = TexturedSource(shapes, train, settings, image_size, device)
    facts = {
        "shapes": names,
        "holdout": holdout,
        "image_size": image_size,
        "views": int(collection.views),
        "color_space": collection.color_space,
    }
    # the trainer's unit cube: the shapes' normalised space, [-1, 1]^3 (each shape is in its own)
    return FamilyData(source=source, scene_box=SceneBox((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)), facts=facts)
