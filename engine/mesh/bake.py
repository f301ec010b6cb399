"""Texture baking: a UV atlas (xatlas), the surface sampled at every texel, padded seams, a PNG.

Any colour function can feed it: ``colour_fn(points (n, 3) world, normals (n, 3) unit) -> (n, 3)``
sRGB in [0, 1]. Extraction passes the training images that see each texel
(:func:`engine.mesh.view_colours.colour_function_from_views`, the default) or the radiance field seen along
each normal (:func:`engine.mesh.colour.colour_function_from_radiance`); a texture field passes its t(p).

The steps: xatlas cuts the mesh into charts and packs them into the square; every texel
whose centre lies in a chart's triangle gets that triangle's barycentric 3D point and
interpolated normal; the colour function colours those points; chart colours are pushed
outwards into the gutter (nearest chart texel, chessboard distance) so bilinear filtering and
mip-maps never average in background.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .triangle_mesh import TriangleMesh

log = logging.getLogger(__name__)

# The share of triangles xatlas may leave out of every chart before the bake fails (see uv_atlas).
MAX_LEFT_OUT_SHARE = 0.001

# points (n, 3) world, unit normals (n, 3) -> (n, 3) sRGB in [0, 1]
ColourFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE = 256, 8192
# Background texels (outside every chart and its padding): black, so a bleed would show.
BACKGROUND = 0
# Texels per rasterisation chunk: bounds the memory of the candidate texels of a batch of faces.
RASTER_CHUNK_TEXELS = 1 << 21


class BakeError(ValueError):
    """A bake cannot start or finish; the message names the value or mesh at fault."""


def check_texture_size(size: int) -> int:
    """``size`` when it is a power of two in [256, 8192], else :class:`BakeError` naming it."""
    if (
        isinstance(size, bool)
        or not isinstance(size, int | np.integer)
        or not MIN_TEXTURE_SIZE <= size <= MAX_TEXTURE_SIZE
        or size & (size - 1)
    ):
        raise BakeError(
            f"texture size must be a power of two between {MIN_TEXTURE_SIZE} and {MAX_TEXTURE_SIZE} "
            f"(256, 512, 1024, 2048, 4096, 8192), got {size!r}"
        )
    return int(size)


@dataclass(frozen=True)
class BakeSettings:
    size: int = 2048  # texture width and height, texels
    # Texels each chart's colours are pushed outwards. Mip level k averages 2^k x 2^k blocks, so a
    # padding of 2^k - 1 keeps level k free of background; 0: size / 128 (16 at 2k: levels 0-4).
    padding: int = 0
    # Empty texels xatlas leaves between charts; 0: size / 512, at least 2 (bilinear needs one each side).
    chart_gap: int = 0
    batch_points: int = 1 << 17  # colour-function points per call

    def __post_init__(self) -> None:
        check_texture_size(self.size)
        if self.padding < 0 or self.chart_gap < 0:
            raise BakeError(f"padding and chart_gap must be >= 0, got {self.padding} and {self.chart_gap}")
        if self.batch_points < 1:
            raise BakeError(f"batch_points must be >= 1, got {self.batch_points}")

    @property
    def padding_texels(self) -> int:
        return self.padding or max(4, self.size // 128)

    @property
    def chart_gap_texels(self) -> int:
        return self.chart_gap or max(2, self.size // 512)


@dataclass(frozen=True)
class BakedTexture:
    """``mesh`` carries the atlas' UVs (vertices split at seams, positions unchanged, world units);
    ``image`` (size, size, 3) uint8 sRGB, row 0 at the top (as PNG stores it); ``coverage``
    (size, size) bool, the texels whose centre lies inside a chart."""

    mesh: TriangleMesh
    image: np.ndarray
    coverage: np.ndarray
    atlas_seconds: float
    raster_seconds: float
    colour_seconds: float
    total_seconds: float

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


def uv_atlas(mesh: TriangleMesh, size: int, chart_gap: int) -> TriangleMesh:
    """``mesh`` with xatlas UVs packed into a ``size``-texel square; vertices split where charts meet.

    Vertex colours follow their vertices; positions are copied, never moved.
    """
    if mesh.n_faces == 0:
        raise BakeError("cannot bake a texture on a mesh without faces")
    import xatlas  # engine side only

    # xatlas leaves out of every chart (corners at UV (0, 0)) the triangles whose area is below
    # float epsilon, in its own units: marching cubes' slivers on a small object are. UVs do not
    # depend on scale, so it sees the mesh scaled to a 1000-unit diagonal, slivers and all.
    low, high = mesh.bounds()
    scale = 1000.0 / max(float(np.linalg.norm(high - low)), 1e-12)
    atlas = xatlas.Atlas()
    atlas.add_mesh(
        np.ascontiguousarray((mesh.vertices - low) * scale, dtype=np.float32),
        np.ascontiguousarray(mesh.faces, dtype=np.uint32),
        np.ascontiguousarray(mesh.vertex_normals(), dtype=np.float32),
    )
    # Packing is most of xatlas' time and each try recomputes the charts, so it runs once: at a
    # texel density for which charts fill about 60% of the square, then the UVs are scaled
    # (uniformly, so texels stay square) to fit when the packing came out larger. The gap asked
    # for has a texel to spare for that shrink.
    pack = xatlas.PackOptions()
    pack.padding = chart_gap + 1
    pack.bilinear = True
    pack.blockAlign = False
    pack.texels_per_unit = float(np.sqrt(0.6 * size * size / max(mesh.surface_area(), 1e-20))) / scale
    atlas.generate(pack_options=pack)
    if atlas.atlas_count != 1:
        raise BakeError(f"xatlas split the charts of {mesh.n_faces} faces over {atlas.atlas_count} atlases")
    vertex_map, faces, uvs = atlas[0]
    vertex_map = vertex_map.astype(np.int64)
    uv_corners = uvs[faces.reshape(-1, 3)]
    uv_area = np.cross(uv_corners[:, 1] - uv_corners[:, 0], uv_corners[:, 2] - uv_corners[:, 0])
    left_out = int((uv_area == 0).sum())
    # A few slivers of marching cubes that xatlas drops even at this scale own no texel (the rasteriser skips
    # them) and show their corner's colour; many would mean the atlas failed.
    if left_out > MAX_LEFT_OUT_SHARE * mesh.n_faces:
        raise BakeError(f"xatlas left {left_out} of {mesh.n_faces} triangles out of every chart")
    if left_out:
        log.warning(
            "xatlas left %d of %d sliver triangles out of every chart; they own no texel", left_out, mesh.n_faces
        )
    # xatlas normalises by its own width and height; back to texels, then into the square.
    extent = np.array([atlas.width, atlas.height], dtype=np.float64)
    uvs = uvs * extent / max(size, float(extent.max()))
    colors = None if mesh.vertex_colors is None else mesh.vertex_colors[vertex_map]
    # xatlas' v runs down the image (row 0 at v = 0); ours runs up (OBJ, Blender).
    uv_up = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1).astype(np.float32)
    return TriangleMesh(mesh.vertices[vertex_map], faces.astype(np.int64).reshape(-1, 3), colors, uv_up)


@dataclass(frozen=True)
class TexelSamples:
    """The texels inside charts: ``rows``, ``columns`` (n,) int64 image indices (row 0 at the top),
    ``faces`` (n,) the triangle each centre lies in, ``barycentric`` (n, 3) its weights there."""

    rows: np.ndarray
    columns: np.ndarray
    faces: np.ndarray
    barycentric: np.ndarray


def rasterise_uvs(mesh: TriangleMesh, size: int) -> TexelSamples:
    """Every texel centre of a ``size`` square that lies inside a UV triangle of ``mesh`` (needs uvs).

    Vectorised by bounding box: each triangle's box of texels is tested at once, a chunk of
    triangles at a time. A texel on an edge shared by two triangles goes to one of them.
    """
    if mesh.uvs is None:
        raise BakeError("cannot rasterise a mesh without UVs; make an atlas first (uv_atlas)")
    # Texel space: x = u * size (columns), y = (1 - v) * size (rows down); centres at +0.5.
    corners = np.stack([mesh.uvs[:, 0] * size, (1.0 - mesh.uvs[:, 1]) * size], axis=1).astype(np.float64)
    triangles = corners[mesh.faces]  # (n_faces, 3, 2)
    low = np.clip(np.floor(triangles.min(axis=1) - 0.5).astype(np.int64), 0, size - 1)
    high = np.clip(np.ceil(triangles.max(axis=1) - 0.5).astype(np.int64), 0, size - 1)
    widths, heights = high[:, 0] - low[:, 0] + 1, high[:, 1] - low[:, 1] + 1
    counts = widths * heights
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    usable = np.abs(area) > 1e-12  # a triangle with no UV area owns no texel
    # The texel under each corner belongs to the chart even when no texel centre of a thin triangle
    # does (a sliver's tip would otherwise sit in background): it gets the corner's own vertex.
    # Listed first, so a texel whose centre a triangle does cover takes that sample instead.
    corner_texels = np.clip(np.floor(triangles.reshape(-1, 2)).astype(np.int64), 0, size - 1)
    results: list[tuple[np.ndarray, ...]] = [
        (
            corner_texels[:, 1],
            corner_texels[:, 0],
            np.repeat(np.arange(mesh.n_faces), 3),
            np.tile(np.eye(3), (mesh.n_faces, 1)),
        )
    ]
    cumulative = np.cumsum(counts)
    start = 0
    while start < mesh.n_faces:
        budget = (cumulative[start - 1] if start else 0) + RASTER_CHUNK_TEXELS
        stop = max(start + 1, int(np.searchsorted(cumulative, budget, side="right")))
        chunk = np.arange(start, min(stop, mesh.n_faces))
        chunk = chunk[usable[chunk]]
        start = stop
        if len(chunk) == 0:
            continue
        face = np.repeat(chunk, counts[chunk])
        first = np.repeat(np.cumsum(counts[chunk]) - counts[chunk], counts[chunk])
        local = np.arange(len(face)) - first
        column = low[face, 0] + local % widths[face]
        row = low[face, 1] + local // widths[face]
        x, y = column + 0.5, row + 0.5
        fa, fb, fc = a[face], b[face], c[face]
        # Barycentric weights of the texel centre: signed sub-areas over the triangle's area.
        w_a = ((fb[:, 0] - x) * (fc[:, 1] - y) - (fb[:, 1] - y) * (fc[:, 0] - x)) / area[face]
        w_b = ((fc[:, 0] - x) * (fa[:, 1] - y) - (fc[:, 1] - y) * (fa[:, 0] - x)) / area[face]
        w_c = 1.0 - w_a - w_b
        inside = (w_a >= -1e-9) & (w_b >= -1e-9) & (w_c >= -1e-9)
        weights = np.stack([w_a, w_b, w_c], axis=1)[inside]
        results.append((row[inside], column[inside], face[inside], np.clip(weights, 0.0, 1.0)))
    if len(results) == 1:
        raise BakeError("the UV atlas covers no texel centre: every triangle has zero UV area")
    rows, columns, faces, barycentric = (np.concatenate(parts) for parts in zip(*results, strict=True))
    # One sample per texel (edges shared by two triangles give two): keep the last, as a z-less raster would.
    flat = rows * size + columns
    _, last = np.unique(flat[::-1], return_index=True)
    keep = len(flat) - 1 - last
    barycentric = barycentric[keep]
    return TexelSamples(rows[keep], columns[keep], faces[keep], barycentric / barycentric.sum(1, keepdims=True))


def surface_points(mesh: TriangleMesh, samples: TexelSamples) -> tuple[np.ndarray, np.ndarray]:
    """World points (n, 3) and unit interpolated vertex normals (n, 3) at the texel samples."""
    corners = mesh.faces[samples.faces]  # (n, 3)
    weights = samples.barycentric[:, :, None]
    points = (mesh.vertices[corners] * weights).sum(axis=1)
    # The unsplit mesh's normals: a seam splits vertices but not the surface, so both sides agree.
    normals = (mesh.seamless_vertex_normals()[corners] * weights).sum(axis=1)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    face_normals = mesh.face_normals()[samples.faces]
    face_normals = face_normals / np.maximum(np.linalg.norm(face_normals, axis=1, keepdims=True), 1e-20)
    # Opposite normals can cancel at a crease: fall back on the face's own.
    normals = np.where(lengths > 1e-6, normals / np.maximum(lengths, 1e-20), face_normals)
    return points, normals


def pad_charts(image: np.ndarray, coverage: np.ndarray, padding: int) -> np.ndarray:
    """``image`` (h, w, 3) with every texel within ``padding`` (chessboard distance) of a chart
    given its nearest chart texel's colour; texels further out keep the background."""
    from scipy.ndimage import distance_transform_cdt

    distance, (nearest_rows, nearest_columns) = distance_transform_cdt(
        ~coverage, metric="chessboard", return_indices=True
    )
    padded = image.copy()
    fill = ~coverage & (distance <= padding)
    padded[fill] = image[nearest_rows[fill], nearest_columns[fill]]
    return padded


def bake_texture(
    mesh: TriangleMesh,
    colour_fn: ColourFunction,
    settings: BakeSettings | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> BakedTexture:
    """Atlas ``mesh``, colour every chart texel with ``colour_fn``, pad the seams. Nothing is written.

    ``progress(stage, fraction)`` is told how far the bake is (fraction in [0, 1]).
    """
    settings = settings or BakeSettings()
    report = progress or (lambda _stage, _fraction: None)
    if mesh.n_faces == 0:
        raise BakeError("cannot bake a texture on a mesh without faces")
    started = time.perf_counter()
    report("uv atlas", 0.0)
    atlased = uv_atlas(mesh, settings.size, settings.chart_gap_texels)
    atlas_done = time.perf_counter()
    report("rasterising", 0.2)
    samples = rasterise_uvs(atlased, settings.size)
    points, normals = surface_points(atlased, samples)
    raster_done = time.perf_counter()
    colours = np.empty((len(points), 3), dtype=np.float32)
    for start in range(0, len(points), settings.batch_points):
        stop = start + settings.batch_points
        batch = np.asarray(colour_fn(points[start:stop], normals[start:stop]), dtype=np.float32)
        expected = (len(points[start:stop]), 3)
        if batch.shape != expected:
            raise BakeError(f"the colour function returned shape {batch.shape}, expected {expected}")
        colours[start:stop] = batch
        report("colouring texels", 0.3 + 0.6 * min(stop, len(points)) / len(points))
    colour_done = time.perf_counter()
    image = np.full((settings.size, settings.size, 3), BACKGROUND, dtype=np.uint8)
    image[samples.rows, samples.columns] = np.round(np.clip(colours, 0.0, 1.0) * 255).astype(np.uint8)
    coverage = np.zeros((settings.size, settings.size), dtype=bool)
    coverage[samples.rows, samples.columns] = True
    report("padding seams", 0.95)
    image = pad_charts(image, coverage, settings.padding_texels)
    return BakedTexture(
        mesh=atlased,
        image=image,
        coverage=coverage,
        atlas_seconds=atlas_done - started,
        raster_seconds=raster_done - atlas_done,
        colour_seconds=colour_done - raster_done,
        total_seconds=time.perf_counter() - started,
    )


def texture_path_for(mesh_path: Path) -> Path:
    """Where a mesh file's baked texture goes: beside it, same name, ``.png``."""
    return Path(mesh_path).with_suffix(".png")
