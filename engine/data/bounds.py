"""The scene box of a dataset that has none. numpy only (no torch, no image readers), so the add-on can
import it and show in Blender the box the engine will choose.

Three rules, tried in order (:func:`choose_scene_box`):

1. ``visual_hull``: the images have alpha. Cells of a coarse grid over the cameras' region are carved
   away where a camera that sees them sees only background, then the kept cells' box is padded. The
   carving is conservative: a cell goes only when the whole square its bounding sphere projects to is
   background, so a cell that touches the object in any view is kept. A second pass on a grid over the
   first box sharpens it.
2. ``view_convergence``: no usable alpha. The least-squares point closest to every camera's viewing
   axis, in a cube whose half side is the views' footprint there (the median over the cameras of the
   half width of the image at the point's depth).
3. ``camera_box``: the box around the camera positions (cameras that look inwards surround what they
   look at), as before these rules existed.

Cameras follow the dataset conventions: camera_to_world is Blender's ``matrix_world`` (camera looks
down -Z, +Y up), intrinsics are pinhole pixels with a pixel centre at +0.5 (pixel column i covers image
x in [i, i + 1)); the torch twin of :func:`project` is ``engine.data.dataset.project_points``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .transforms import Intrinsics, SceneBox, Transforms, split_indices

log = logging.getLogger(__name__)

RULES = ("override", "dataset", "visual_hull", "view_convergence", "camera_box")
# Grid cells per side of each carving pass: 64^3 cells cost about a second for 100 views.
HULL_GRID = 64
# A pixel with alpha above this is object: low, because a cell is carved only when every pixel of its
# footprint is background in some view, so a stray faint pixel keeps nothing that other views carve.
SILHOUETTE_ALPHA = 0.05
# The hull's box is padded by this fraction of its largest side on every side (and by one cell at least).
HULL_PAD_FRACTION = 0.05
# The viewing axes must spread: the smallest eigenvalue of mean(I - d d^T) is (1 - cos angle) / 2 for two
# axes at that angle, so 0.01 asks for about 11 degrees of spread.
MIN_AXIS_SPREAD = 0.01


class EmptyHullError(ValueError):
    """The silhouettes never overlap: no grid cell is inside every view's silhouette."""


@dataclass(frozen=True)
class BoxChoice:
    """A scene box, the rule that chose it (one of RULES) and why, in words for the log."""

    box: SceneBox
    rule: str
    reason: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"scene box rule must be one of {RULES}, got {self.rule!r}")


def scene_box_from_values(values: Sequence[float], source: str = "--scene-box") -> SceneBox:
    """minx miny minz maxx maxy maxz -> SceneBox; the error names ``source`` and the bad value or axis."""
    if len(values) != 6:
        raise ValueError(f"{source} needs 6 numbers (minx miny minz maxx maxy maxz), got {len(values)}")
    numbers = [float(value) for value in values]
    names = ("minx", "miny", "minz", "maxx", "maxy", "maxz")
    for name, value in zip(names, numbers, strict=True):
        if not math.isfinite(value):
            raise ValueError(f"{source}: {name} must be a finite number, got {value}")
    for axis, lo, hi in zip("xyz", numbers[:3], numbers[3:], strict=True):
        if not lo < hi:
            raise ValueError(f"{source}: min{axis} {lo:g} must be below max{axis} {hi:g}")
    return SceneBox(minimum=(numbers[0], numbers[1], numbers[2]), maximum=(numbers[3], numbers[4], numbers[5]))


def project(camera_to_world: np.ndarray, intrinsics: Intrinsics, points: np.ndarray) -> np.ndarray:
    """World points (n, 3) -> (n, 3): image x, y in pixels ((0, 0) the top-left corner, rows grow
    downwards) and depth along the camera's viewing axis (<= 0 behind the camera)."""
    rotation = camera_to_world[:3, :3] / np.linalg.norm(camera_to_world[:3, :3], axis=0, keepdims=True)
    local = (points - camera_to_world[:3, 3]) @ rotation
    depth = -local[:, 2]
    safe = np.maximum(depth, 1e-9)
    x = intrinsics.cx + intrinsics.fl_x * local[:, 0] / safe
    y = intrinsics.cy - intrinsics.fl_y * local[:, 1] / safe
    return np.stack([x, y, depth], axis=-1)


def choose_scene_box(
    camera_to_world: np.ndarray,
    intrinsics: Sequence[Intrinsics],
    alpha: Sequence[np.ndarray] | None = None,
    grid: int = HULL_GRID,
) -> BoxChoice:
    """The scene box of views without one. camera_to_world: (n, 4, 4); intrinsics: n; alpha: n (h, w)
    arrays 0..1 matching the intrinsics' sizes, or None when the images have no alpha."""
    camera_to_world = np.asarray(camera_to_world, dtype=np.float64)
    if camera_to_world.ndim != 3 or camera_to_world.shape[1:] != (4, 4) or len(camera_to_world) == 0:
        raise ValueError(f"camera_to_world must be (n, 4, 4) with n >= 1, got shape {camera_to_world.shape}")
    if len(intrinsics) != len(camera_to_world):
        raise ValueError(f"{len(camera_to_world)} cameras but {len(intrinsics)} intrinsics")
    n_views = len(camera_to_world)
    fallback_note = ""
    if alpha is not None:
        silhouettes = [np.asarray(a) > SILHOUETTE_ALPHA for a in alpha]
        if len(silhouettes) != n_views:
            raise ValueError(f"{n_views} cameras but {len(silhouettes)} alpha images")
        if all(mask.all() for mask in silhouettes):
            fallback_note = "the images have alpha but no background pixel, so their silhouettes say nothing; "
        else:
            region = _carving_region(camera_to_world, intrinsics)
            try:
                box, detail = visual_hull_box(camera_to_world, intrinsics, silhouettes, region, grid)
                return BoxChoice(box, "visual_hull", detail)
            except EmptyHullError as error:
                fallback_note = f"{error}; "
                log.warning("%s: falling back to the viewing axes' convergence, then the camera box", error)
    else:
        fallback_note = "the images have no alpha; "
    try:
        box, detail = convergence_box(camera_to_world, intrinsics)
        return BoxChoice(box, "view_convergence", fallback_note + detail)
    except ValueError as error:
        box = camera_box(camera_to_world)
        return BoxChoice(box, "camera_box", f"{fallback_note}{error}; box around the {n_views} camera positions")


def choose_for_transforms(transforms: Transforms, read_alpha: Callable[[Path], np.ndarray]) -> BoxChoice:
    """The box the engine chooses for a dataset without one, at full image size: the training views'
    cameras, and their alpha (``read_alpha(image path)`` -> (h, w) 0..1) when the dataset has alpha."""
    train, _ = split_indices(transforms.frames, transforms.root)
    frames = [transforms.frames[index] for index in train]
    matrices = np.array([frame.camera_to_world for frame in frames], dtype=np.float64)
    alpha = [read_alpha(transforms.image_path(frame)) for frame in frames] if transforms.has_alpha else None
    return choose_scene_box(matrices, [frame.intrinsics for frame in frames], alpha)


def visual_hull_box(
    camera_to_world: np.ndarray,
    intrinsics: Sequence[Intrinsics],
    silhouettes: Sequence[np.ndarray],
    region: SceneBox,
    grid: int = HULL_GRID,
) -> tuple[SceneBox, str]:
    """The padded box of the visual hull inside ``region``, and a sentence saying how it was found.
    silhouettes: n (h, w) bool arrays, True on the object. Raises EmptyHullError when nothing is kept."""
    prepared = [_Silhouette.of(np.asarray(mask, dtype=bool)) for mask in silhouettes]
    low, high, kept = _carve(camera_to_world, intrinsics, prepared, region, grid)
    if kept == 0:
        raise EmptyHullError(
            f"the silhouettes of the {len(silhouettes)} views never overlap: no cell of a {grid}^3 grid over "
            f"{_format_box(region)} is inside every view that sees it (empty visual hull)"
        )
    coarse_cell = max(region.size) / grid
    # Second pass over the first box (plus a coarse cell): the kept cells of the first are conservative, so
    # the hull lies inside it, and its cells are a grid-th of the object rather than of the camera region.
    refined_region = SceneBox(tuple(low - coarse_cell), tuple(high + coarse_cell))  # type: ignore[arg-type]
    fine_low, fine_high, fine_kept = _carve(camera_to_world, intrinsics, prepared, refined_region, grid)
    if fine_kept > 0:
        low, high, kept = fine_low, fine_high, fine_kept
        cell = max(refined_region.size) / grid
    else:
        cell = coarse_cell
    pad = max(cell, HULL_PAD_FRACTION * float((high - low).max()))
    box = SceneBox(tuple(low - pad), tuple(high + pad))  # type: ignore[arg-type]
    detail = (
        f"visual hull of {len(silhouettes)} silhouettes (alpha > {SILHOUETTE_ALPHA}) on a {grid}^3 grid, "
        f"{kept} cells of {cell:.3g} kept, padded by {pad:.3g}; "
        f"{sum(view.frames_object for view in prepared)} views frame the whole object"
    )
    return box, detail


def convergence_box(camera_to_world: np.ndarray, intrinsics: Sequence[Intrinsics]) -> tuple[SceneBox, str]:
    """A cube around the least-squares point closest to every viewing axis, its half side the median
    half width of the views at that point's depth; a sentence saying so. ValueError (saying why) when
    the axes do not converge in front of the cameras."""
    origins = camera_to_world[:, :3, 3]
    axes = -camera_to_world[:, :3, 2]
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    # Distance of p to the axis through o along d is |(I - d d^T)(p - o)|: the normal equations sum those.
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    normal_matrix = projectors.mean(axis=0)
    spread = float(np.linalg.eigvalsh(normal_matrix)[0])
    if spread < MIN_AXIS_SPREAD:
        raise ValueError(
            f"the {len(axes)} viewing axes are nearly parallel (spread {spread:.2g}), so they meet nowhere"
        )
    point = np.linalg.solve(normal_matrix, (projectors @ origins[:, :, None]).mean(axis=0)[:, 0])
    depths = np.einsum("ij,ij->i", point - origins, axes)
    in_front = depths > 0
    if in_front.mean() < 0.5:
        raise ValueError(
            f"the viewing axes come closest at {_format_point(point)}, behind {int((~in_front).sum())} of the "
            f"{len(axes)} cameras"
        )
    # Half width of each view at the point's depth: the wider of its horizontal and vertical reach.
    reach = np.array([max(max(k.cx, k.width - k.cx) / k.fl_x, max(k.cy, k.height - k.cy) / k.fl_y) for k in intrinsics])
    half = float(np.median(depths[in_front] * reach[in_front]))
    miss = float(np.sqrt(np.mean(np.linalg.norm(np.einsum("nij,nj->ni", projectors, point - origins), axis=-1) ** 2)))
    box = SceneBox(tuple(point - half), tuple(point + half))  # type: ignore[arg-type]
    detail = (
        f"the {len(axes)} viewing axes converge at {_format_point(point)} (rms miss {miss:.3g}); "
        f"half side {half:.3g} is the views' median half width at depth {float(np.median(depths[in_front])):.3g}"
    )
    return box, detail


def camera_box(camera_to_world: np.ndarray) -> SceneBox:
    """The box around the camera positions; a flat extent is widened to the largest one."""
    positions = np.asarray(camera_to_world, dtype=np.float64)[:, :3, 3]
    low, high = positions.min(axis=0), positions.max(axis=0)
    extent = float((high - low).max())
    if extent <= 0:
        extent = 1.0
    center = (low + high) / 2
    half = np.maximum((high - low) / 2, extent / 2)
    return SceneBox(tuple(float(v) for v in center - half), tuple(float(v) for v in center + half))  # type: ignore[arg-type]


# --- carving -------------------------------------------------------------------------------------


def _carving_region(camera_to_world: np.ndarray, intrinsics: Sequence[Intrinsics]) -> SceneBox:
    """Where the object can be: the camera positions' box, grown to hold the convergence box when the
    axes converge (a camera row looking at something in front of it does not surround it)."""
    region = camera_box(camera_to_world)
    try:
        converged, _ = convergence_box(camera_to_world, intrinsics)
    except ValueError:
        return region
    low = np.minimum(region.minimum, converged.minimum)
    high = np.maximum(region.maximum, converged.maximum)
    return SceneBox(tuple(float(v) for v in low), tuple(float(v) for v in high))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Silhouette:
    """mask: (h, w) bool, True on the object; frames_object: no object pixel touches the image border."""

    mask: np.ndarray
    frames_object: bool

    @classmethod
    def of(cls, mask: np.ndarray) -> _Silhouette:
        border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        return cls(mask, not border)

    def integral(self) -> np.ndarray:
        """(h + 1, w + 1) summed-area table: [j, i] counts the object pixels above-left of pixel corner
        (i, j). Made per pass rather than kept: 100 tables of 800x800 images would hold 256 MB."""
        table = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), dtype=np.int32)
        np.cumsum(np.cumsum(self.mask, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
        return table


def _carve(
    camera_to_world: np.ndarray,
    intrinsics: Sequence[Intrinsics],
    silhouettes: Sequence[_Silhouette],
    region: SceneBox,
    grid: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Carve a grid^3 grid of cubic cells over region: (low, high) corners of the kept cells' box and
    how many were kept. A view carves a cell whose centre it sees when the square around the cell's
    projected bounding sphere holds only background. A view that frames the whole object (no object
    pixel on the image border) also carves every cell outside its frustum: the object is inside it."""
    cell = max(region.size) / grid
    counts = [max(1, math.ceil(side / cell)) for side in region.size]
    axes = [region.minimum[i] + (np.arange(counts[i]) + 0.5) * cell for i in range(3)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    seen = np.zeros(len(centres), dtype=bool)
    radius = cell * math.sqrt(3.0) / 2.0
    for matrix, k, silhouette in zip(camera_to_world, intrinsics, silhouettes, strict=True):
        table = silhouette.integral()
        x, y, depth = project(matrix, k, centres).T
        height, width = table.shape[0] - 1, table.shape[1] - 1
        in_front = depth > radius
        visible = in_front & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        # A framing view tests every cell in front of it; the others only the cells whose centre they see.
        tested = in_front if silhouette.frames_object else visible
        keep = ~(depth < -radius) if silhouette.frames_object else np.ones(len(centres), dtype=bool)
        if tested.any():
            reach = radius / depth[tested]
            # Pixel columns [left, right) and rows [top, bottom) under the square around the footprint.
            left = np.clip(np.floor(x[tested] - reach * k.fl_x), 0, width).astype(np.int64)
            right = np.clip(np.floor(x[tested] + reach * k.fl_x) + 1, 0, width).astype(np.int64)
            top = np.clip(np.floor(y[tested] - reach * k.fl_y), 0, height).astype(np.int64)
            bottom = np.clip(np.floor(y[tested] + reach * k.fl_y) + 1, 0, height).astype(np.int64)
            object_pixels = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
            keep[np.flatnonzero(tested)[object_pixels == 0]] = False
        seen |= visible
        centres, seen = centres[keep], seen[keep]
        if len(centres) == 0:
            break
    centres = centres[seen]
    if len(centres) == 0:
        return np.zeros(3), np.zeros(3), 0
    return centres.min(axis=0) - cell / 2, centres.max(axis=0) + cell / 2, len(centres)


def _format_point(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):.3g}" for v in point) + ")"


def _format_box(box: SceneBox) -> str:
    return f"{_format_point(np.asarray(box.minimum))}..{_format_point(np.asarray(box.maximum))}"
