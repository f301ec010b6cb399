"""Field to mesh file: sample (MISE or dense), fill hidden space, marching cubes, clean up, colour, write atomically.

The one entry point for the CLI (``python -m engine extract``) and the session's ``Extract``
command. Vertices leave in world units: the field is queried at world points, so whatever
normalisation the trainer does inside never reaches the mesh.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..methods import NO_SURFACE
from .bake import BakedTexture, BakeSettings, bake_texture, check_texture_size, texture_path_for
from .cleanup import CleanupConfig, clean_mesh
from .colour import colour_function_from_radiance, colours_along_normals
from .dense import sample_dense
from .grid import Grid, SampledGrid, pad_outside
from .io import linear_to_srgb, write_mesh, write_png
from .levels import FieldKind, SurfaceLevel
from .mise import initial_resolution_for, refinement_steps, sample_mise
from .surface import marching_cubes
from .triangle_mesh import TriangleMesh
from .view_colours import ViewImage, colour_function_from_views, colours_from_views

if TYPE_CHECKING:
    import torch

    from ..data.transforms import Frame
    from ..train.trainer import Trainer

log = logging.getLogger(__name__)


class SamplingMethod(enum.Enum):
    MISE = "mise"
    DENSE = "dense"


class ColourSource(enum.Enum):
    # VIEWS for a texture (sharper: see scripts/bench_texture.py), FIELD for vertex colours, FIELD where the
    # run's images cannot be read any more
    AUTO = "auto"
    FIELD = "field"  # the radiance field, volume-rendered along each vertex (texel) normal
    VIEWS = "views"  # the training images that see each vertex (texel); the field where none does


# Points per batch on a CPU: large enough to amortise Python overhead, small enough to stay in cache.
CPU_BATCH_POINTS = 1 << 17
# GPU batches use this share of the free memory, at this many bytes per point (a hash-grid or
# 256-wide MLP forward without gradients keeps a few kilobytes of activations per point).
GPU_MEMORY_SHARE = 0.25
GPU_BYTES_PER_POINT = 4096


@dataclass(frozen=True)
class ExtractSettings:
    resolution: int = 256  # finest cells along the scene box's longest side
    method: SamplingMethod = SamplingMethod.MISE
    initial_resolution: int = 0  # MISE's first lattice; 0: the resolution halved while it stays >= 32
    level: float | None = None  # density threshold / probability / distance; None: the field kind's default
    colour: bool = True
    colour_from: ColourSource = ColourSource.AUTO
    # Radiance fields: make solid the space the training cameras look towards but cannot see (behind
    # a surface). A trained field is hollow there, and the hollow's wall would be a second surface
    # inside the first. See visibility.py.
    fill_unseen: bool = True
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    batch_points: int = 0  # 0: sized to the device's memory
    overwrite: bool = False
    # Bake a UV texture of this many texels square (a power of two, 256-8192) instead of vertex
    # colours, after clean-up (and so after decimation); 0: vertex colours. See bake.py.
    texture_size: int = 0

    def __post_init__(self) -> None:
        if not 8 <= self.resolution <= 2048:
            raise ValueError(f"resolution must be between 8 and 2048 cells, got {self.resolution}")
        if self.texture_size:
            check_texture_size(self.texture_size)
        if self.batch_points < 0:
            raise ValueError(f"batch_points must be >= 0, got {self.batch_points}")
        if self.method is SamplingMethod.MISE:
            refinement_steps(self.resolution, self.mise_initial_resolution)

    @property
    def mise_initial_resolution(self) -> int:
        return self.initial_resolution or initial_resolution_for(self.resolution)

    @classmethod
    def from_options(cls, resolution: int, options: Mapping[str, Any]) -> ExtractSettings:
        """Settings from loose options (the protocol's ``Extract.settings``); unknown names are an error.

        Clean-up options sit at the top level: ``keep_largest_components``, ``min_component_size``,
        ``target_faces``, ``orient_outward``.
        """
        own = {f.name for f in dataclasses.fields(cls)} - {"cleanup", "resolution"}
        cleanup_names = {f.name for f in dataclasses.fields(CleanupConfig)}
        unknown = sorted(set(options) - own - cleanup_names)
        if unknown:
            raise ValueError(
                f"extract: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(own | cleanup_names))}"
            )
        values = {name: value for name, value in options.items() if name in own}
        if "method" in values:
            values["method"] = SamplingMethod(values["method"])
        if "colour_from" in values:
            values["colour_from"] = ColourSource(values["colour_from"])
        cleanup = CleanupConfig(**{name: value for name, value in options.items() if name in cleanup_names})
        return cls(resolution=int(resolution), cleanup=cleanup, **values)


@dataclass(frozen=True)
class MeshResult:
    mesh: TriangleMesh
    path: Path | None
    level: SurfaceLevel | None  # None: the mesh was given, not extracted (a texture field's)
    grid: Grid | None
    n_queries: int  # field queries to find the surface (colours not counted)
    sampling_seconds: float
    total_seconds: float
    unseen_points_filled: int = 0  # lattice points hidden behind a surface from every training camera, made inside
    texture: BakedTexture | None = None  # the bake, when settings.texture_size asked for one (mesh has its UVs)
    texture_path: Path | None = None

    @property
    def vertex_count(self) -> int:
        return self.mesh.n_vertices

    @property
    def face_count(self) -> int:
        return self.mesh.n_faces

    def summary(self) -> dict[str, Any]:
        """JSON-ready description, what the CLI prints with ``--json``."""
        minimum, maximum = self.mesh.bounds()
        return {
            "path": None if self.path is None else str(self.path),
            "vertex_count": self.vertex_count,
            "face_count": self.face_count,
            "level": "the given mesh" if self.level is None else self.level.describe(),
            "grid_cells": [] if self.grid is None else list(self.grid.cells),
            "cell_size": None if self.grid is None else self.grid.cell_size,
            "n_queries": self.n_queries,
            "unseen_points_filled": self.unseen_points_filled,
            "sampling_seconds": round(self.sampling_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "bounds_min": minimum.tolist(),
            "bounds_max": maximum.tolist(),
            "texture_path": None if self.texture_path is None else str(self.texture_path),
            "texture_size": None if self.texture is None else self.texture.size,
            "bake_seconds": None if self.texture is None else round(self.texture.total_seconds, 3),
        }


class RadianceField(Protocol):
    """What extraction needs from a trained field (the trainer provides it), world units."""

    def query_surface(self, points_world: np.ndarray) -> np.ndarray: ...  # (n, 3) -> (n,) of the surface kind

    def query_radiance(  # -> (n,) density, (n, 3) colour
        self, points_world: np.ndarray, view_dirs_world: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


def sample_field(
    scalar: Callable[[np.ndarray], np.ndarray],
    level: SurfaceLevel,
    box_min: np.ndarray,
    box_max: np.ndarray,
    settings: ExtractSettings,
    batch_points: int,
) -> SampledGrid:
    """The field's inside-ness on the extraction lattice, by the settings' method."""

    def inside(points: np.ndarray) -> np.ndarray:
        return level.inside(scalar(points))

    if settings.method is SamplingMethod.MISE:
        initial = settings.mise_initial_resolution
        grid = Grid.covering_box(box_min, box_max, settings.resolution, multiple_of=settings.resolution // initial)
        return sample_mise(inside, grid, initial, batch_points)
    grid = Grid.covering_box(box_min, box_max, settings.resolution)
    return sample_dense(inside, grid, batch_points)


def extract_radiance_mesh(
    field_queries: RadianceField,
    box_min: np.ndarray,
    box_max: np.ndarray,
    settings: ExtractSettings,
    batch_points: int,
    colours_are_linear: bool = False,
    what: str = "the field",
    cameras: Sequence[Frame] = (),
    device: torch.device | str = "cpu",
    kind: FieldKind = FieldKind.DENSITY,
    progress: Callable[[str, float], None] | None = None,
) -> MeshResult:
    """Mesh of a field's level set inside the box (density, signed distance or occupancy, by ``kind``),
    coloured, cleaned, not written.

    With ``settings.fill_unseen`` and ``cameras`` (the training views), space they look towards but
    none of them sees is made solid before marching cubes (``device`` runs the rays); density only: a
    surface field is solid inside by construction. ``progress(stage, fraction of the whole extraction)`` hears
    each stage start.
    """
    report = progress or (lambda _stage, _fraction: None)
    started = time.perf_counter()
    report("sampling the field", 0.0)
    box_min = np.asarray(box_min, dtype=np.float64)
    box_max = np.asarray(box_max, dtype=np.float64)
    diagonal = float(np.linalg.norm(box_max - box_min))
    level = (
        SurfaceLevel(kind, settings.level) if settings.level is not None else SurfaceLevel.default_for(kind, diagonal)
    )
    sampled = sample_field(field_queries.query_surface, level, box_min, box_max, settings, batch_points)
    sampling_seconds = time.perf_counter() - started
    filled = 0
    report("filling unseen space", 0.4)
    if settings.fill_unseen and cameras and kind is FieldKind.DENSITY:
        from .visibility import fill_unseen  # torch: only here, so the rest of extraction stays numpy

        visibility = fill_unseen(sampled, cameras, device)
        sampled, filled = visibility.sampled, visibility.filled_points
        log.info(
            "%d lattice points hidden from every training camera made inside (%d rays, %.1f s)",
            filled,
            visibility.rays,
            visibility.seconds,
        )
    report("marching cubes", 0.5)
    lattice = sampled.grid
    if kind is not FieldKind.DENSITY:
        # A surface field is solid inside by construction, so where the box cuts it the mesh is closed on the
        # box (as ONet pads its grid); a density field keeps its open cut, which fill_unseen may close.
        sampled = pad_outside(sampled)
    mesh = marching_cubes(sampled, what=what, level=level.describe())
    report("cleaning up", 0.55)
    mesh = clean_mesh(mesh, settings.cleanup, diagonal)
    if mesh.n_faces == 0:
        raise ValueError(f"clean-up removed every face of {what}'s mesh: loosen min_component_size")
    texture = None
    # VIEWS colours come after, from the trainer's images (extract_mesh_from_trainer); AUTO here is the field
    if settings.colour and settings.texture_size and settings.colour_from is not ColourSource.VIEWS:
        colour_fn = colour_function_from_radiance(
            field_queries.query_radiance, 2.0 * sampled.grid.cell_size, colours_are_linear, batch_points
        )
        texture = bake_texture(
            mesh,
            colour_fn,
            BakeSettings(size=settings.texture_size, batch_points=max(1, batch_points // 16)),
            progress=lambda stage, fraction: report(f"texture: {stage}", 0.6 + 0.4 * fraction),
        )
        mesh = texture.mesh
    elif settings.colour and settings.colour_from is not ColourSource.VIEWS:
        report("vertex colours", 0.6)
        normals = mesh.vertex_normals()
        if kind is not FieldKind.DENSITY:
            normals = field_normals(field_queries.query_surface, level, mesh.vertices, normals, lattice, batch_points)
        colours = colours_along_normals(
            mesh.vertices,
            normals,
            field_queries.query_radiance,
            depth=2.0 * sampled.grid.cell_size,
            batch_points=batch_points,
        )
        mesh = mesh.with_colors(linear_to_srgb(colours).astype(np.float32) if colours_are_linear else colours)
    return MeshResult(
        mesh=mesh,
        path=None,
        level=level,
        grid=sampled.grid,
        n_queries=sampled.n_queries,
        sampling_seconds=sampling_seconds,
        total_seconds=time.perf_counter() - started,
        unseen_points_filled=filled,
        texture=texture,
    )


def field_normals(
    scalar: Callable[[np.ndarray], np.ndarray],
    level: SurfaceLevel,
    vertices: np.ndarray,
    mesh_normals: np.ndarray,
    lattice: Grid,
    batch_points: int,
) -> np.ndarray:
    """(n, 3) unit outward normals of a surface field at mesh vertices (n, 3): minus the gradient of its
    inside-ness, by central differences of a quarter cell. A marching-cubes normal is only as good as the
    lattice; the field's own gradient is the surface's. Vertices on the faces that close the mesh at the box
    (within half a cell of the sampled lattice's bounds) and where the gradient vanishes keep ``mesh_normals``."""
    step = 0.25 * lattice.cell_size
    offsets = np.concatenate([np.eye(3), -np.eye(3)]) * step  # (6, 3)
    points = (vertices[:, None, :] + offsets[None]).reshape(-1, 3)
    values = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), batch_points):
        values[start : start + batch_points] = level.inside(scalar(points[start : start + batch_points]))
    values = values.reshape(len(vertices), 6)
    gradient = (values[:, :3] - values[:, 3:]) / (2.0 * step)
    length = np.linalg.norm(gradient, axis=1)
    low = lattice.origin + 0.5 * lattice.cell_size
    high = lattice.origin + (np.asarray(lattice.cells) - 0.5) * lattice.cell_size
    on_box = np.any((vertices < low) | (vertices > high), axis=1)
    use_field = (length > 1e-12) & ~on_box
    normals = mesh_normals.copy()
    normals[use_field] = -gradient[use_field] / length[use_field, None]
    return normals


def points_per_batch(device: torch.device) -> int:
    """Points per field query for ``device`` (a torch.device): a share of free GPU memory, else a fixed size."""
    if device.type == "cuda":
        import torch

        free_bytes, _ = torch.cuda.mem_get_info(device)
        by_memory = int(free_bytes * GPU_MEMORY_SHARE) // GPU_BYTES_PER_POINT
        return max(1 << 16, min(by_memory, 1 << 22))
    return CPU_BATCH_POINTS


def extract_mesh_from_trainer(
    trainer: Trainer, settings: ExtractSettings, progress: Callable[[str, float], None] | None = None
) -> MeshResult:
    """Mesh of a trained field (``Trainer``) in world units, not written. See :func:`extract_to_file`."""
    method = trainer.config.method
    if trainer.spec.surface == NO_SURFACE and callable(getattr(trainer.model, "surface_mesh", None)):
        return colour_given_mesh(trainer, settings, progress)
    if trainer.spec.surface == NO_SURFACE:
        raise ValueError(f"method {method!r} has no surface to extract a mesh from")
    kind = FieldKind(trainer.spec.surface)
    box = trainer.scene_box
    batch_points = settings.batch_points or points_per_batch(trainer.device)
    settings = dataclasses.replace(settings, colour_from=resolved_colour_source(trainer, settings))
    cameras: list[Frame] = []
    if settings.fill_unseen and kind is FieldKind.DENSITY:
        try:
            cameras = trainer.training_frames()
        except (OSError, ValueError) as error:
            # The mesh is still worth having; say what it may hold.
            log.warning(
                "cannot read the run's cameras (%s): unseen space is not filled, the mesh may have inner walls", error
            )
    result = extract_radiance_mesh(
        trainer,
        np.asarray(box.minimum, dtype=np.float64),
        np.asarray(box.maximum, dtype=np.float64),
        settings,
        batch_points,
        colours_are_linear=trainer.color_space == "linear",
        what=f"the {method} field",
        cameras=cameras,
        device=trainer.device,
        kind=kind,
        progress=progress,
    )
    if settings.colour and settings.colour_from is ColourSource.VIEWS:
        started = time.perf_counter()
        assert result.grid is not None  # extracted, not given
        if settings.texture_size:
            texture = bake_from_training_views(
                trainer, result.mesh, result.grid.cell_size, settings.texture_size, batch_points, progress
            )
            result = dataclasses.replace(result, mesh=texture.mesh, texture=texture)
        else:
            colours = colours_from_training_views(trainer, result.mesh, result.grid.cell_size, batch_points)
            result = dataclasses.replace(result, mesh=result.mesh.with_colors(colours))
        result = dataclasses.replace(result, total_seconds=result.total_seconds + time.perf_counter() - started)
    return result


def resolved_colour_source(trainer: Trainer, settings: ExtractSettings) -> ColourSource:
    """FIELD or VIEWS: ``settings.colour_from``, with AUTO decided (a texture from the training images when
    they can still be read, else the field)."""
    if settings.colour_from is not ColourSource.AUTO:
        return settings.colour_from
    if not (settings.colour and settings.texture_size):
        return ColourSource.FIELD
    try:
        trainer.dataset  # noqa: B018  (loads the run's images, once)
    except (OSError, ValueError) as error:
        log.warning("the run's training images cannot be read (%s): the texture is coloured from the field", error)
        return ColourSource.FIELD
    return ColourSource.VIEWS


def colour_given_mesh(
    trainer: Trainer, settings: ExtractSettings, progress: Callable[[str, float], None] | None = None
) -> MeshResult:
    """A texture field's own mesh (the one it was trained on, ``model.surface_mesh()``) in world units, cleaned
    up (decimated) by the settings and coloured by its view-independent t(p): baked into a UV texture with
    ``texture_size``, else as vertex colours. Nothing is sampled: the mesh is given."""
    import torch

    from ..fields.texture_field import texture_colour_function

    report = progress or (lambda _stage, _fraction: None)
    started = time.perf_counter()
    if settings.colour_from is ColourSource.VIEWS:
        raise ValueError("a texture field colours its mesh from t(p); colour_from='views' is for radiance fields")
    report("reading the mesh", 0.0)
    vertices, faces = trainer.model.surface_mesh()
    with torch.no_grad():
        world = trainer.normalization.to_world(vertices.double().cpu()).numpy()
    mesh = TriangleMesh(world, faces.cpu().numpy().astype(np.int64))
    box = trainer.scene_box
    diagonal = float(np.linalg.norm(np.subtract(box.maximum, box.minimum)))
    report("cleaning up", 0.1)
    mesh = clean_mesh(mesh, settings.cleanup, diagonal)
    if mesh.n_faces == 0:
        raise ValueError("clean-up removed every face of the texture field's mesh: loosen min_component_size")
    batch_points = settings.batch_points or points_per_batch(trainer.device)
    colour_fn = texture_colour_function(
        trainer.model, trainer.normalization, trainer.color_space == "linear", batch_points
    )
    texture = None
    if settings.colour and settings.texture_size:
        texture = bake_texture(
            mesh,
            colour_fn,
            BakeSettings(size=settings.texture_size, batch_points=batch_points),
            progress=lambda stage, fraction: report(f"texture: {stage}", 0.2 + 0.8 * fraction),
        )
        mesh = texture.mesh
    elif settings.colour:
        report("vertex colours", 0.2)
        mesh = mesh.with_colors(colour_fn(mesh.vertices, mesh.vertex_normals()))
    return MeshResult(
        mesh=mesh,
        path=None,
        level=None,
        grid=None,
        n_queries=0,
        sampling_seconds=0.0,
        total_seconds=time.perf_counter() - started,
        texture=texture,
    )


def training_views(trainer: Trainer) -> Iterator[ViewImage]:
    """The run's training images with their cameras, one at a time (a dataset may not fit in memory twice)."""
    dataset = trainer.dataset
    cameras = dataset.cameras
    for frame in dataset.train_indices:
        alpha = dataset.alpha[frame]
        # Premultiplied colour over alpha gives the surface's own colour at the object's edges.
        image = (dataset.premultiplied[frame] / alpha.clamp(min=1e-6)[..., None]).clamp(0.0, 1.0)
        yield ViewImage(
            image=image.cpu().numpy(),
            alpha=alpha.cpu().numpy(),
            camera_to_world=cameras.camera_to_world[frame].cpu().numpy().astype(np.float64),
            focal=cameras.focal[frame].cpu().numpy().astype(np.float64),
            principal=cameras.principal[frame].cpu().numpy().astype(np.float64),
        )


def bake_from_training_views(
    trainer: Trainer,
    mesh: TriangleMesh,
    cell_size: float,
    size: int,
    batch_points: int,
    progress: Callable[[str, float], None] | None = None,
) -> BakedTexture:
    """A ``size``-texel UV texture of ``mesh`` coloured from the training images (engine/mesh/view_colours.py);
    the field colours the texels no image sees."""
    report = progress or (lambda _stage, _fraction: None)
    total = max(1, len(trainer.dataset.train_indices))

    def views_told() -> Iterator[ViewImage]:
        for index, view in enumerate(training_views(trainer)):  # a ray cast of each view's opaque pixels
            report("texture: depth maps of the training views", 0.6 + 0.05 * index / total)
            yield view

    def along_normals(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        return colours_along_normals(
            points, normals, trainer.query_radiance, 2.0 * cell_size, batch_points=batch_points
        )

    colour_fn = colour_function_from_views(
        mesh,
        views_told(),
        depth_tolerance=2.0 * cell_size,
        unseen=along_normals,
        colours_are_linear=trainer.color_space == "linear",
        device=str(trainer.device),
    )
    return bake_texture(
        mesh,
        colour_fn,
        BakeSettings(size=size, batch_points=batch_points),
        progress=lambda stage, fraction: report(f"texture: {stage}", 0.65 + 0.35 * fraction),
    )


def colours_from_training_views(
    trainer: Trainer, mesh: TriangleMesh, cell_size: float, batch_points: int
) -> np.ndarray:
    """(n_vertices, 3) sRGB colours from the training images; the field colours what no image sees."""
    colours, seen = colours_from_views(
        mesh, training_views(trainer), depth_tolerance=2.0 * cell_size, device=str(trainer.device)
    )
    if not seen.all():
        unseen = ~seen
        colours[unseen] = colours_along_normals(
            mesh.vertices[unseen],
            mesh.vertex_normals()[unseen],
            trainer.query_radiance,
            depth=2.0 * cell_size,
            batch_points=batch_points,
        )
    return linear_to_srgb(colours).astype(np.float32) if trainer.color_space == "linear" else colours


def extract_to_file(trainer: Trainer, out_path: Path, resolution: int = 256, **options: Any) -> MeshResult:
    """Extract and write ``out_path`` (.ply, .obj or .glb) atomically; the session's ``Extract`` command.

    Raises ``EmptySurfaceError`` (nothing written) when the field has no surface at the level,
    ``FileExistsError`` when ``out_path`` exists and ``overwrite`` is not set.
    """
    out_path = Path(out_path)
    settings = ExtractSettings.from_options(resolution, options)
    if out_path.exists() and not settings.overwrite:
        raise FileExistsError(f"{out_path} already exists; choose another name or set overwrite")
    result = extract_mesh_from_trainer(trainer, settings)
    return write_result(result, out_path, overwrite=settings.overwrite)


def write_result(result: MeshResult, out_path: Path, overwrite: bool = False) -> MeshResult:
    """Write the mesh (and first its baked texture, ``NAME.png`` beside it) atomically; the result with paths."""
    texture_path = None
    if result.texture is not None:
        texture_path = write_png(texture_path_for(out_path), result.texture.image, overwrite=overwrite)
    path = write_mesh(result.mesh, out_path, overwrite=overwrite, texture=texture_path)
    return dataclasses.replace(result, path=path, texture_path=texture_path)
