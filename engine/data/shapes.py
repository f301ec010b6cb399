"""Shape datasets: world-space meshes and point clouds from Blender, and the training samples made from them.

The data of the shape-fitting methods (IGR, Occupancy Networks, DeepSDF). Importing this module
needs only numpy (the add-on's exporter uses it inside Blender); libigl is imported when samples
are made.

Format (version 1)
------------------
A shape dataset is a folder::

    shapes.json
    <file>.npz          one per shape
    cache/              training samples, made by the engine (safe to delete)

``shapes.json``::

    {
      "format": "fieldwork-shapes",
      "version": 1,
      "collection": "Chairs",          # the Blender collection exported, or null
      "shapes": [
        {
          "name": "Chair.003",            # unique in the dataset
          "source": "Chair.003",          # the Blender object it came from
          "file": "Chair.003.npz",        # relative to the folder
          "box": {"min": [x, y, z], "max": [x, y, z]},   # world-space bounds of the vertices
          "watertight": true,             # closed and consistently oriented: every edge in exactly
                                          # two triangles, once each way
          "has_normals": true,
          "point_cloud": false,
          "vertex_count": 507,
          "face_count": 968
        }
      ]
    }

``<file>.npz`` (read with ``allow_pickle=False``: nothing in a dataset is executed):

- ``vertices``: (n, 3) float64, Blender world space (``matrix_world`` applied), Blender units.
- ``faces``: (m, 3) int64 triangles, counter-clockwise seen from outside (Blender's winding; an
  object whose ``matrix_world`` mirrors has its triangles reversed so they still face out).
  Absent for a point cloud.
- ``normals``: (n, 3) float64 unit vertex normals in world space (area-weighted face normals).
  Absent when unknown (point clouds and vertex-only meshes).

Training samples
----------------
:func:`shape_samples` makes, per shape, in the shape's normalised space (:class:`ShapeNormalization`:
the padded bounding box's bounding cube is [-1, 1]^3, one isotropic scale, so distances convert
with one factor and a mesh goes back to world space exactly):

- surface points with normals: area-weighted on the triangles, each point the normal of its
  triangle; for a point cloud, its points (no normals);
- for meshes, labelled points: uniform in [-1, 1]^3 plus near-surface points (surface points plus
  Gaussian noise at each of a few scales), inside/outside by the generalised winding number
  (libigl's fast winding number; right also for meshes with holes or self-intersections, inside is
  winding > 0.5) and signed distances (libigl's exact point-to-triangle distance, negative inside,
  DeepSDF's convention).

They are cached in ``cache/`` keyed by the settings and the shape file's content. A shape collection
trained together can share one normalisation (:func:`collection_normalization`, the union of the
boxes) so its shapes keep their relative sizes and places.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import current_umask, replace_folder, write_atomic, write_text_atomic

SHAPES_NAME = "shapes.json"
FORMAT_NAME = "fieldwork-shapes"
FORMAT_VERSION = 1
CACHE_FOLDER = "cache"
# Bumped when the sampling code changes what it makes from the same settings: old caches are not reused.
SAMPLES_VERSION = 1


class ShapeError(ValueError):
    """Shapes that cannot be exported, read or sampled; the message names the object, file or key."""


# --- geometry -----------------------------------------------------------------------------------


@dataclass
class ShapeGeometry:
    """One shape in world space.

    vertices: (n, 3) float64; faces: (m, 3) int64 or None (a point cloud); normals: (n, 3) float64
    unit vertex normals or None.
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    normals: np.ndarray | None = None

    @property
    def is_point_cloud(self) -> bool:
        return self.faces is None

    @property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """World-space (minimum, maximum), each (3,)."""
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


def world_geometry(
    local_vertices: np.ndarray, triangles: np.ndarray | None, matrix_world: np.ndarray, object_name: str
) -> ShapeGeometry:
    """An object's evaluated geometry in world space, checked.

    local_vertices: (n, 3) object-space positions (Blender's float32 is fine: the transform is done
    in float64); triangles: (m, 3) vertex indices, or None / empty for a point cloud or vertex-only
    mesh; matrix_world: (4, 4). Vertices no triangle uses are dropped from a mesh. A mirroring
    matrix (negative determinant) reverses each triangle so it still faces out.
    """
    where = f"object {object_name!r}"
    local = np.asarray(local_vertices, dtype=np.float64).reshape(-1, 3)
    if len(local) == 0:
        raise ShapeError(f"{where} has no vertices (an empty mesh or point cloud)")
    _check_finite(local, f"{where}: vertex")
    matrix = np.asarray(matrix_world, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise ShapeError(f"{where}: its world matrix is not a finite 4x4 matrix")
    linear = matrix[:3, :3]
    determinant = float(np.linalg.det(linear))
    if determinant == 0.0:
        raise ShapeError(f"{where} is scaled to zero on some axis: its world matrix is singular")
    vertices = local @ linear.T + matrix[:3, 3]
    _check_finite(vertices, f"{where}: world-space vertex")
    faces = None if triangles is None else np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    if faces is None or len(faces) == 0:
        return ShapeGeometry(vertices=vertices)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ShapeError(f"{where}: a triangle uses vertex {int(faces.max())} but it has {len(vertices)} vertices")
    if determinant < 0.0:
        faces = faces[:, ::-1].copy()
    used, faces = np.unique(faces, return_inverse=True)
    vertices = vertices[used]
    faces = faces.reshape(-1, 3)
    return ShapeGeometry(vertices=vertices, faces=faces, normals=vertex_normals(vertices, faces))


def _check_finite(points: np.ndarray, what: str) -> None:
    bad = ~np.all(np.isfinite(points), axis=1)
    if np.any(bad):
        index = int(np.argmax(bad))
        raise ShapeError(f"{what} {index} is not finite ({', '.join(repr(float(v)) for v in points[index])})")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(n, 3) unit area-weighted vertex normals of a triangle mesh; a vertex only on degenerate triangles gets 0."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = 2 * area
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def is_watertight(faces: np.ndarray) -> bool:
    """True when every edge is in exactly two triangles, once in each direction (closed, consistently oriented)."""
    if len(faces) == 0:
        return False
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = directed[directed[:, 0] != directed[:, 1]]
    unique_directed, counts = np.unique(directed, axis=0, return_counts=True)
    if np.any(counts != 1):
        return False
    reversed_edges = unique_directed[:, ::-1]
    # Every directed edge needs its reverse: sorted rows of the set and of its reverse must match.
    order = np.lexsort((unique_directed[:, 1], unique_directed[:, 0]))
    reverse_order = np.lexsort((reversed_edges[:, 1], reversed_edges[:, 0]))
    return bool(np.array_equal(unique_directed[order], reversed_edges[reverse_order]))


# --- the dataset on disk -------------------------------------------------------------------------


@dataclass
class ShapeEntry:
    """One shape's line in ``shapes.json``."""

    name: str
    source: str
    file: str
    box_min: tuple[float, float, float]
    box_max: tuple[float, float, float]
    watertight: bool
    has_normals: bool
    point_cloud: bool
    vertex_count: int
    face_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "file": self.file,
            "box": {"min": list(self.box_min), "max": list(self.box_max)},
            "watertight": self.watertight,
            "has_normals": self.has_normals,
            "point_cloud": self.point_cloud,
            "vertex_count": self.vertex_count,
            "face_count": self.face_count,
        }


@dataclass
class ShapeDataset:
    """A shape dataset folder: its entries, and their geometry read on demand."""

    root: Path
    shapes: list[ShapeEntry]
    collection: str | None = None

    def entry(self, name: str) -> ShapeEntry:
        for entry in self.shapes:
            if entry.name == name:
                return entry
        raise ShapeError(f"{self.root / SHAPES_NAME}: no shape named {name!r} (it has {self.names()})")

    def names(self) -> list[str]:
        return [entry.name for entry in self.shapes]

    def geometry(self, entry: ShapeEntry) -> ShapeGeometry:
        return read_geometry(self.root / entry.file, entry)


def write_shape_dataset(
    out_dir: Path,
    shapes: Sequence[tuple[str, ShapeGeometry]],
    *,
    collection: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``(source object name, geometry)`` pairs as a dataset folder; return its ``shapes.json``.

    The folder is built beside ``out_dir`` and swapped in at the end, so a failure leaves what stood
    there untouched. A folder holding anything but a shape dataset is never replaced, and neither is
    a dataset holding files of its own that it does not list (only ``shapes.json``, its shape files
    and ``cache/`` may go); an existing dataset is replaced only with ``overwrite``.
    """
    out_dir = Path(out_dir)
    if not shapes:
        raise ShapeError("no shapes to export: select mesh or point-cloud objects")
    check_target(out_dir, overwrite)
    files = _file_names([source for source, _ in shapes])
    entries = []
    for (source, geometry), file_name in zip(shapes, files, strict=True):
        low, high = geometry.box
        entries.append(
            ShapeEntry(
                name=source,
                source=source,
                file=file_name,
                box_min=(float(low[0]), float(low[1]), float(low[2])),
                box_max=(float(high[0]), float(high[1]), float(high[2])),
                watertight=geometry.faces is not None and is_watertight(geometry.faces),
                has_normals=geometry.normals is not None,
                point_cloud=geometry.is_point_cloud,
                vertex_count=len(geometry.vertices),
                face_count=0 if geometry.faces is None else len(geometry.faces),
            )
        )
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "collection": collection,
        "shapes": [entry.to_json() for entry in entries],
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it private; a dataset is not
        for (_, geometry), entry in zip(shapes, entries, strict=True):
            _write_geometry(staging / entry.file, geometry)
        write_text_atomic(staging / SHAPES_NAME, json.dumps(document, indent=2) + "\n")
        replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / SHAPES_NAME


def check_target(out_dir: Path, overwrite: bool) -> None:
    """A ShapeError unless ``out_dir`` is absent, empty, or (with ``overwrite``) a dataset of only its own files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ShapeError(f"{out_dir} is a file, not a folder")
    present = sorted(out_dir.iterdir())
    if not present:
        return
    if not (out_dir / SHAPES_NAME).is_file():
        raise ShapeError(f"{out_dir} holds files but no {SHAPES_NAME}: pick an empty or new folder")
    if not overwrite:
        raise ShapeError(f"{out_dir} already holds a shape dataset: allow overwrite (--overwrite in scripts)")
    try:
        listed = {entry.file for entry in read_shape_dataset(out_dir).shapes}
    except ShapeError as error:
        raise ShapeError(f"{out_dir} is not replaced: {error}") from error
    ours = listed | {SHAPES_NAME, CACHE_FOLDER}
    foreign = [path.name for path in present if path.name not in ours]
    if foreign:
        raise ShapeError(
            f"{out_dir} is not replaced: it holds {', '.join(foreign)}, which the dataset does not list; "
            "move them out or pick another folder"
        )


def _file_names(sources: Sequence[str]) -> list[str]:
    duplicates = {source for source in sources if sources.count(source) > 1}
    if duplicates:
        raise ShapeError(f"shape names must be unique: {sorted(duplicates)} given more than once")
    taken: set[str] = set()
    names = []
    for source in sources:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("._") or "shape"
        candidate, number = stem, 1
        while candidate.lower() in taken:  # case-insensitive file systems
            number += 1
            candidate = f"{stem}_{number}"
        taken.add(candidate.lower())
        names.append(f"{candidate}.npz")
    return names


def _write_geometry(path: Path, geometry: ShapeGeometry) -> None:
    arrays = {"vertices": np.ascontiguousarray(geometry.vertices, dtype=np.float64)}
    if geometry.faces is not None:
        arrays["faces"] = np.ascontiguousarray(geometry.faces, dtype=np.int64)
    if geometry.normals is not None:
        arrays["normals"] = np.ascontiguousarray(geometry.normals, dtype=np.float64)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a path would get ".npz" appended to the temporary name
            np.savez(handle, **arrays)

    write_atomic(path, write)


def read_shape_dataset(path: Path) -> ShapeDataset:
    """Read a dataset folder (or its ``shapes.json``); errors name the file and key at fault."""
    path = Path(path)
    json_path = path if path.name == SHAPES_NAME and path.is_file() else path / SHAPES_NAME
    if not json_path.is_file():
        raise ShapeError(f"{path}: no {SHAPES_NAME} (is this a shape dataset folder?)")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShapeError(f"{json_path}: cannot read it as JSON ({error})") from error
    if not isinstance(document, dict):
        raise ShapeError(f"{json_path}: the top level must be an object")
    if document.get("format") != FORMAT_NAME:
        raise ShapeError(f"{json_path}: key 'format' must be {FORMAT_NAME!r}, got {document.get('format')!r}")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION or version < 1:
        raise ShapeError(
            f"{json_path}: key 'version' is {version!r}; this Fieldwork reads versions 1..{FORMAT_VERSION}"
        )
    shapes = document.get("shapes")
    if not isinstance(shapes, list) or not shapes:
        raise ShapeError(f"{json_path}: key 'shapes' must be a non-empty list")
    collection = document.get("collection")
    if collection is not None and not isinstance(collection, str):
        raise ShapeError(f"{json_path}: key 'collection' must be a string or null")
    entries = [_entry(item, f"{json_path}: shapes[{index}]") for index, item in enumerate(shapes)]
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.name in seen:
            raise ShapeError(f"{json_path}: shapes[{index}]: name {entry.name!r} is used twice")
        seen.add(entry.name)
    return ShapeDataset(root=json_path.parent, shapes=entries, collection=collection)


def _entry(item: Any, where: str) -> ShapeEntry:
    if not isinstance(item, dict):
        raise ShapeError(f"{where} must be an object")

    def value(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in item:
            raise ShapeError(f"{where}: key {key!r} is missing")
        found = item[key]
        if not isinstance(found, kind) or (kind is int and isinstance(found, bool)):
            raise ShapeError(f"{where}: key {key!r} has the wrong type ({type(found).__name__}: {found!r})")
        return found

    file_name = value("file", str)
    if Path(file_name).is_absolute() or ".." in Path(file_name).parts or not file_name:
        raise ShapeError(f"{where}: key 'file' must be a path inside the dataset folder, got {file_name!r}")
    box = value("box", dict)
    corners = []
    for key in ("min", "max"):
        corner = box.get(key)
        if (
            not isinstance(corner, list)
            or len(corner) != 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in corner)
        ):
            raise ShapeError(f"{where}: key 'box.{key}' must be three finite numbers, got {corner!r}")
        corners.append((float(corner[0]), float(corner[1]), float(corner[2])))
    if any(low > high for low, high in zip(corners[0], corners[1], strict=True)):
        raise ShapeError(f"{where}: key 'box': min {corners[0]} is above max {corners[1]}")
    return ShapeEntry(
        name=value("name", str),
        source=value("source", str),
        file=file_name,
        box_min=corners[0],
        box_max=corners[1],
        watertight=value("watertight", bool),
        has_normals=value("has_normals", bool),
        point_cloud=value("point_cloud", bool),
        vertex_count=value("vertex_count", int),
        face_count=value("face_count", int),
    )


def read_geometry(path: Path, entry: ShapeEntry | None = None) -> ShapeGeometry:
    """Read and check one shape file; with ``entry``, it must agree with what ``shapes.json`` says."""
    path = Path(path)
    if not path.is_file():
        raise ShapeError(f"{path}: the shape file is missing")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise ShapeError(f"{path}: cannot read it as .npz ({error})") from error
    if "vertices" not in arrays:
        raise ShapeError(f"{path}: key 'vertices' is missing")
    vertices = _array(arrays["vertices"], path, "vertices", np.floating)
    if len(vertices) == 0:
        raise ShapeError(f"{path}: key 'vertices' is empty")
    _check_finite_in(vertices, path, "vertices")
    faces = None
    if "faces" in arrays:
        faces = _array(arrays["faces"], path, "faces", np.integer).astype(np.int64)
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ShapeError(f"{path}: key 'faces' indexes outside the {len(vertices)} vertices")
        if len(faces) == 0:
            faces = None
    normals = None
    if "normals" in arrays:
        normals = _array(arrays["normals"], path, "normals", np.floating)
        if len(normals) != len(vertices):
            raise ShapeError(f"{path}: key 'normals' has {len(normals)} rows for {len(vertices)} vertices")
        _check_finite_in(normals, path, "normals")
    geometry = ShapeGeometry(vertices=vertices.astype(np.float64), faces=faces, normals=normals)
    if entry is not None and (geometry.is_point_cloud != entry.point_cloud or len(vertices) != entry.vertex_count):
        kinds = {True: " (a point cloud)", False: ""}
        raise ShapeError(
            f"{path}: holds {len(vertices)} vertices{kinds[geometry.is_point_cloud]} but {SHAPES_NAME} says "
            f"{entry.vertex_count}{kinds[entry.point_cloud]} for {entry.name!r}"
        )
    return geometry


def _array(array: np.ndarray, path: Path, key: str, kind: type) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, kind):
        expected = "floats" if kind is np.floating else "integers"
        raise ShapeError(f"{path}: key {key!r} must be (n, 3) {expected}, got {array.shape} {array.dtype}")
    return array


def _check_finite_in(array: np.ndarray, path: Path, key: str) -> None:
    bad = ~np.all(np.isfinite(array), axis=1)
    if np.any(bad):
        raise ShapeError(f"{path}: key {key!r} row {int(np.argmax(bad))} is not finite")


# --- normalisation and training samples ----------------------------------------------------------


@dataclass(frozen=True)
class ShapeNormalization:
    """The shape's normalised space: world = center + scale * unit, the padded box's bounding cube is [-1, 1]^3.

    One isotropic scale: directions are the same in both spaces, and a distance converts with ``scale``.
    """

    center: tuple[float, float, float]
    scale: float

    @classmethod
    def from_box(
        cls, minimum: Sequence[float], maximum: Sequence[float], padding: float = 0.1, name: str = "shape"
    ) -> ShapeNormalization:
        """The cube centred on the box whose side is (1 + padding) times the box's longest side becomes [-1, 1]^3."""
        if padding < 0 or not math.isfinite(padding):
            raise ShapeError(f"padding must be a finite number >= 0, got {padding!r}")
        low, high = np.asarray(minimum, dtype=np.float64), np.asarray(maximum, dtype=np.float64)
        longest = float(np.max(high - low))
        if not longest > 0.0:
            raise ShapeError(f"shape {name!r} has no extent (its box is {low.tolist()}..{high.tolist()})")
        center = (low + high) / 2.0
        return cls(center=(float(center[0]), float(center[1]), float(center[2])), scale=longest / 2.0 * (1.0 + padding))

    def to_unit(self, points_world: np.ndarray) -> np.ndarray:
        """(..., 3) world -> (..., 3) normalised."""
        return (np.asarray(points_world, dtype=np.float64) - np.asarray(self.center)) / self.scale

    def to_world(self, points_unit: np.ndarray) -> np.ndarray:
        """(..., 3) normalised -> (..., 3) world."""
        return np.asarray(points_unit, dtype=np.float64) * self.scale + np.asarray(self.center)

    def unit_to_world_matrix(self) -> np.ndarray:
        """(4, 4) matrix taking normalised points to world points (a mesh's matrix_world)."""
        matrix = np.eye(4)
        matrix[:3, :3] *= self.scale
        matrix[:3, 3] = self.center
        return matrix


@dataclass(frozen=True)
class ShapeSampleConfig:
    """How many samples of each kind, in the normalised space ([-1, 1]^3 is the padded box's cube)."""

    surface_points: int = 100_000
    uniform_points: int = 100_000
    near_surface_points: int = 100_000  # split evenly over the scales
    near_surface_sigmas: tuple[float, ...] = (0.01, 0.05)  # Gaussian noise standard deviations, normalised units
    padding: float = 0.1
    signed_distance: bool = True  # DeepSDF's labels; costs a distance query per labelled point
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("surface_points", "uniform_points", "near_surface_points"):
            count = getattr(self, name)
            if not isinstance(count, int) or count < 0:
                raise ShapeError(f"{name} must be an integer >= 0, got {count!r}")
        if self.surface_points == 0:
            raise ShapeError("surface_points must be at least 1")
        if not self.near_surface_sigmas or any(not (s > 0 and math.isfinite(s)) for s in self.near_surface_sigmas):
            raise ShapeError(f"near_surface_sigmas must be positive numbers, got {self.near_surface_sigmas!r}")

    def key(self) -> str:
        return json.dumps({**asdict(self), "samples_version": SAMPLES_VERSION}, sort_keys=True)


@dataclass
class ShapeSamples:
    """One shape's training samples, all in its normalised space (``normalization.to_world`` goes back).

    surface_points: (s, 3) float32; surface_normals: (s, 3) float32 unit, or None (point clouds);
    points: (k, 3) float32 uniform then near-surface, or None for point clouds; occupancy: (k,) bool,
    True inside; sdf: (k,) float32 signed distance (negative inside, normalised units) or None.
    """

    name: str
    normalization: ShapeNormalization
    surface_points: np.ndarray
    surface_normals: np.ndarray | None = None
    points: np.ndarray | None = None
    occupancy: np.ndarray | None = None
    sdf: np.ndarray | None = None
    uniform_count: int = 0  # points[:uniform_count] are the uniform ones


def sample_shape(
    geometry: ShapeGeometry,
    config: ShapeSampleConfig | None = None,
    name: str = "shape",
    normalization: ShapeNormalization | None = None,
) -> ShapeSamples:
    """Make a shape's training samples (no cache): see the module docstring.

    normalization: default the shape's own padded box; a shape collection trained together can pass
    one for all (:func:`collection_normalization`) so the shapes keep their relative sizes and places.
    """
    config = config or ShapeSampleConfig()
    if normalization is None:
        low, high = geometry.box
        normalization = ShapeNormalization.from_box(low, high, config.padding, name)
    rng = np.random.default_rng(config.seed)
    vertices = normalization.to_unit(geometry.vertices)
    if geometry.faces is None:
        return ShapeSamples(name=name, normalization=normalization, surface_points=vertices.astype(np.float32))
    faces = geometry.faces
    surface, normals = sample_surface(vertices, faces, config.surface_points, rng, name)
    uniform = rng.uniform(-1.0, 1.0, size=(config.uniform_points, 3))
    near = []
    sigmas = config.near_surface_sigmas
    for index, sigma in enumerate(sigmas):
        count = config.near_surface_points // len(sigmas) + (index < config.near_surface_points % len(sigmas))
        around, _ = sample_surface(vertices, faces, count, rng, name)
        near.append(around + rng.normal(scale=sigma, size=around.shape))
    points = np.concatenate([uniform, *near])
    winding = winding_numbers(vertices, faces, points)
    inside = winding > 0.5
    sdf = None
    if config.signed_distance:
        sdf = np.where(inside, -1.0, 1.0) * unsigned_distances(vertices, faces, points)
    return ShapeSamples(
        name=name,
        normalization=normalization,
        surface_points=surface.astype(np.float32),
        surface_normals=normals.astype(np.float32),
        points=points.astype(np.float32),
        occupancy=inside,
        sdf=None if sdf is None else sdf.astype(np.float32),
        uniform_count=config.uniform_points,
    )


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator, name: str = "shape"
) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3) points uniform over the triangles' area and (count, 3) their triangles' unit normals."""
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double_areas = np.linalg.norm(cross, axis=1)
    total = float(double_areas.sum())
    if not total > 0.0:
        raise ShapeError(f"shape {name!r}: its triangles have no area")
    chosen = rng.choice(len(faces), size=count, p=double_areas / total)
    # Uniform in a triangle: fold the unit square's upper half back onto the lower one.
    u, v = rng.random(count), rng.random(count)
    folded = u + v > 1.0
    u[folded], v[folded] = 1.0 - u[folded], 1.0 - v[folded]
    a, b, c = corners[chosen, 0], corners[chosen, 1], corners[chosen, 2]
    points = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    return points, cross[chosen] / double_areas[chosen, None]


def winding_numbers(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(k,) generalised winding number of the mesh at each of the (k, 3) points (about 1 inside, 0 outside)."""
    igl = _igl()
    return np.asarray(
        igl.fast_winding_number(
            np.ascontiguousarray(vertices, dtype=np.float64),
            np.ascontiguousarray(faces, dtype=np.int64),
            np.ascontiguousarray(points, dtype=np.float64),
        )
    )


def unsigned_distances(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(k,) exact distance from each of the (k, 3) points to the nearest triangle."""
    igl = _igl()
    squared, _, _ = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
    )
    return np.sqrt(np.maximum(np.asarray(squared), 0.0))


def _igl() -> Any:
    try:
        import igl
    except ImportError as error:
        raise ShapeError(
            "inside/outside labels need libigl: pip install -r engine/requirements.txt in the engine's environment"
        ) from error
    return igl


_SAMPLE_ARRAYS = ("surface_points", "surface_normals", "points", "occupancy", "sdf")


def collection_normalization(dataset: ShapeDataset, padding: float = 0.1) -> ShapeNormalization:
    """One normalisation for every shape of a dataset: the padded union of their boxes."""
    low = np.min([entry.box_min for entry in dataset.shapes], axis=0)
    high = np.max([entry.box_max for entry in dataset.shapes], axis=0)
    return ShapeNormalization.from_box(low, high, padding, dataset.collection or str(dataset.root))


def shape_samples(
    dataset: ShapeDataset,
    entry: ShapeEntry,
    config: ShapeSampleConfig | None = None,
    normalization: ShapeNormalization | None = None,
) -> ShapeSamples:
    """A shape's samples (:func:`sample_shape`) from ``<dataset>/cache/`` when made before with these settings
    and this shape file, else made now and cached (an atomic write; a read-only dataset folder just goes
    uncached)."""
    config = config or ShapeSampleConfig()
    shape_file = dataset.root / entry.file
    try:
        content = hashlib.sha256(shape_file.read_bytes()).hexdigest()
    except OSError as error:
        raise ShapeError(f"{shape_file}: cannot read the shape file ({error})") from error
    shared = "own box" if normalization is None else repr((normalization.center, normalization.scale))
    key = hashlib.sha256(f"{config.key()}\n{shared}\n{content}".encode()).hexdigest()[:16]
    cache_path = dataset.root / CACHE_FOLDER / f"{Path(entry.file).stem}-{key}.npz"
    cached = _read_cached(cache_path, entry.name)
    if cached is not None:
        return cached
    samples = sample_shape(dataset.geometry(entry), config, entry.name, normalization)
    arrays = {name: getattr(samples, name) for name in _SAMPLE_ARRAYS if getattr(samples, name) is not None}
    arrays["center"] = np.asarray(samples.normalization.center)
    arrays["scale"] = np.asarray(samples.normalization.scale)
    arrays["uniform_count"] = np.asarray(samples.uniform_count)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    # A dataset on a read-only disk still trains; it samples again next time.
    with contextlib.suppress(OSError):
        write_atomic(cache_path, write)
    return samples


def _read_cached(path: Path, name: str) -> ShapeSamples | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        center = arrays.pop("center")
        return ShapeSamples(
            name=name,
            normalization=ShapeNormalization(
                center=(float(center[0]), float(center[1]), float(center[2])), scale=float(arrays.pop("scale"))
            ),
            uniform_count=int(arrays.pop("uniform_count")),
            **{key: arrays.get(key) for key in _SAMPLE_ARRAYS},
        )
    except (OSError, ValueError, KeyError, EOFError, TypeError):
        return None  # a damaged cache is made again
