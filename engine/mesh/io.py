"""Mesh files: PLY (with vertex colours), OBJ and GLB writers, and the PLY reader the add-on uses.

numpy and the standard library only: Blender's own Python imports this module to read the
meshes the engine writes. Every write is atomic (a temporary name in the same folder, then
``os.replace``), and an existing file is only replaced when the caller says so.

Axes: PLY keeps Blender's axes (Z up), which Blender's PLY importer expects. OBJ and glTF
are Y-up by convention and Blender's importers turn them back, so those files store
(x, z, -y): every route back into Blender lands the mesh where the scene is.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .triangle_mesh import TriangleMesh

SUFFIXES = (".ply", ".obj", ".glb")


class MeshFileError(ValueError):
    """A mesh file could not be read; the message names the file and what is wrong."""


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    srgb = np.clip(srgb, 0.0, 1.0)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _blender_to_y_up(vertices: np.ndarray) -> np.ndarray:
    return np.stack([vertices[:, 0], vertices[:, 2], -vertices[:, 1]], axis=1)


def write_mesh(mesh: TriangleMesh, path: Path, overwrite: bool = False) -> Path:
    """Write ``mesh`` as PLY, OBJ or GLB, chosen by ``path``'s suffix."""
    path = Path(path)
    writers = {".ply": _write_ply, ".obj": _write_obj, ".glb": _write_glb}
    suffix = path.suffix.lower()
    if suffix not in writers:
        raise ValueError(f"cannot write {path}: the suffix must be one of {', '.join(SUFFIXES)}")
    if mesh.n_faces == 0:
        raise ValueError(f"refusing to write {path}: the mesh has no faces")
    return write_atomic(path, lambda temporary: writers[suffix](mesh, temporary), overwrite=overwrite)


def _write_ply(mesh: TriangleMesh, path: Path) -> None:
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.vertex_colors is not None:
        vertex_fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex_records = np.empty(mesh.n_vertices, dtype=vertex_fields)
    for axis, name in enumerate("xyz"):
        vertex_records[name] = mesh.vertices[:, axis]
    if mesh.vertex_colors is not None:
        bytes_rgb = np.round(np.clip(mesh.vertex_colors, 0, 1) * 255).astype(np.uint8)
        for channel, name in enumerate(("red", "green", "blue")):
            vertex_records[name] = bytes_rgb[:, channel]
    face_records = np.empty(mesh.n_faces, dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_records["count"] = 3
    face_records["indices"] = mesh.faces
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment Fieldwork mesh in Blender world units, Z up; colours sRGB",
        f"element vertex {mesh.n_vertices}",
        *(f"property float {name}" for name in "xyz"),
        *(f"property uchar {name}" for name in ("red", "green", "blue") if mesh.vertex_colors is not None),
        f"element face {mesh.n_faces}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(vertex_records.tobytes())
        handle.write(face_records.tobytes())


def _write_obj(mesh: TriangleMesh, path: Path) -> None:
    vertices = _blender_to_y_up(mesh.vertices)
    with open(path, "w", encoding="ascii") as handle:
        handle.write("# Fieldwork mesh in Blender world units, stored Y up (x, z, -y) as OBJ importers expect\n")
        if mesh.vertex_colors is None:
            np.savetxt(handle, vertices, fmt="v %.7g %.7g %.7g")
        else:
            # The widespread "v x y z r g b" extension (read by Blender, MeshLab, Open3D); sRGB.
            np.savetxt(handle, np.hstack([vertices, mesh.vertex_colors]), fmt="v %.7g %.7g %.7g %.4f %.4f %.4f")
        np.savetxt(handle, mesh.faces + 1, fmt="f %d %d %d")


_GLTF_FLOAT, _GLTF_UNSIGNED_INT = 5126, 5125
_GLTF_ARRAY_BUFFER, _GLTF_ELEMENT_ARRAY_BUFFER = 34962, 34963


def _write_glb(mesh: TriangleMesh, path: Path) -> None:
    """glTF 2.0 binary: one mesh, one primitive, POSITION, NORMAL, COLOR_0 (linear, as glTF says), indices."""
    positions = _blender_to_y_up(mesh.vertices).astype("<f4")
    normals = _blender_to_y_up(mesh.vertex_normals()).astype("<f4")
    indices = mesh.faces.astype("<u4").reshape(-1)
    arrays: list[tuple[np.ndarray, str, int | None]] = [
        (positions, "VEC3", _GLTF_ARRAY_BUFFER),
        (normals, "VEC3", _GLTF_ARRAY_BUFFER),
    ]
    if mesh.vertex_colors is not None:
        arrays.append((srgb_to_linear(mesh.vertex_colors).astype("<f4"), "VEC3", _GLTF_ARRAY_BUFFER))
    arrays.append((indices, "SCALAR", _GLTF_ELEMENT_ARRAY_BUFFER))

    binary = bytearray()
    buffer_views, accessors = [], []
    for array, accessor_type, target in arrays:
        offset = len(binary)
        binary += array.tobytes()
        binary += b"\0" * (-len(binary) % 4)
        buffer_views.append({"buffer": 0, "byteOffset": offset, "byteLength": array.nbytes, "target": target})
        accessor = {
            "bufferView": len(buffer_views) - 1,
            "componentType": _GLTF_UNSIGNED_INT if array.dtype == np.dtype("<u4") else _GLTF_FLOAT,
            "count": len(array),
            "type": accessor_type,
        }
        if array is positions:
            accessor["min"] = positions.min(axis=0).tolist()
            accessor["max"] = positions.max(axis=0).tolist()
        accessors.append(accessor)
    attributes = {"POSITION": 0, "NORMAL": 1}
    if mesh.vertex_colors is not None:
        attributes["COLOR_0"] = 2
    document = {
        "asset": {"version": "2.0", "generator": "Fieldwork"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "Fieldwork Mesh"}],
        "meshes": [
            {
                "name": "Fieldwork Mesh",
                "primitives": [{"attributes": attributes, "indices": len(accessors) - 1, "material": 0}],
            }
        ],
        # Vertex colours multiply the base colour: white, fully rough, not metallic.
        "materials": [
            {"name": "Fieldwork Vertex Colour", "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0}}
        ],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": buffer_views,
        "accessors": accessors,
    }
    json_bytes = json.dumps(document, separators=(",", ":")).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    total = 12 + 8 + len(json_bytes) + 8 + len(binary)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<4sII", b"glTF", 2, total))
        handle.write(struct.pack("<I4s", len(json_bytes), b"JSON"))
        handle.write(json_bytes)
        handle.write(struct.pack("<I4s", len(binary), b"BIN\0"))
        handle.write(bytes(binary))


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip


def read_ply(path: Path) -> TriangleMesh:
    """A binary little-endian PLY of triangles (as written here, or by Blender and MeshLab).

    Vertex properties other than x, y, z and red, green, blue are skipped; uchar colours
    are returned sRGB-encoded in [0, 1].
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshFileError(f"cannot read {path}: {exc.strerror}") from exc
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise MeshFileError(f"{path} is not a PLY file (no 'ply' ... 'end_header' header)")
    body_start = data.index(b"\n", end) + 1
    header_lines = data[:end].decode("ascii", errors="replace").splitlines()
    elements: list[tuple[str, int, list[list[str]]]] = []
    for line in header_lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "format" and words[1] != "binary_little_endian":
            raise MeshFileError(f"{path} is PLY '{words[1]}'; only binary_little_endian is read")
        if words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise MeshFileError(f"{path}: a property comes before any element")
            elements[-1][2].append(words[1:])

    vertex_records: np.ndarray | None = None
    faces: np.ndarray | None = None
    offset = body_start
    for name, count, properties in elements:
        try:
            if any(prop[0] == "list" for prop in properties):
                if name != "face" or len(properties) != 1:
                    raise MeshFileError(f"{path}: list property in element '{name}' is not supported")
                _, count_type, index_type, _ = properties[0]
                # Triangles only, so every record is the same size; checked right below.
                record = np.dtype([("count", _PLY_TYPES[count_type]), ("indices", _PLY_TYPES[index_type], (3,))])
            else:
                record = np.dtype([(prop[1], _PLY_TYPES[prop[0]]) for prop in properties])
        except (KeyError, ValueError) as exc:
            raise MeshFileError(f"{path}: unsupported property in element '{name}': {exc}") from exc
        if offset + record.itemsize * count > len(data):
            raise MeshFileError(
                f"{path} is truncated: element '{name}' needs {offset + record.itemsize * count} bytes, "
                f"the file has {len(data)}"
            )
        records = np.frombuffer(data, dtype=record, count=count, offset=offset)
        if record.names is not None and "indices" in record.names and name == "face":
            if count and not np.all(records["count"] == 3):
                raise MeshFileError(f"{path}: only triangle faces are read (found polygons with other corner counts)")
            faces = records["indices"].astype(np.int64)
        elif name == "vertex":
            vertex_records = records
        offset += record.itemsize * count
    if vertex_records is None or faces is None:
        raise MeshFileError(f"{path} has no vertex or no face element")
    vertices = np.stack([vertex_records[axis].astype(np.float64) for axis in "xyz"], axis=1)
    colors = None
    if vertex_records.dtype.names is not None and {"red", "green", "blue"} <= set(vertex_records.dtype.names):
        colors = np.stack([vertex_records[channel] for channel in ("red", "green", "blue")], axis=1)
        colors = colors.astype(np.float32) / 255.0
    try:
        return TriangleMesh(vertices=vertices, faces=faces, vertex_colors=colors)
    except ValueError as exc:
        raise MeshFileError(f"{path}: {exc}") from exc
