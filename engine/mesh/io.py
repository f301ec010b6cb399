"""Mesh files: PLY (vertex colours or UVs), OBJ (+ MTL) and GLB writers, the PLY reader the add-on uses, PNG.

numpy and the standard library only: Blender's own Python imports this module to read the
meshes the engine writes. Every write is atomic (a temporary name in the same folder, then
``os.replace``), and an existing file is only replaced when the caller says so.

Axes: PLY keeps Blender's axes (Z up), which Blender's PLY importer expects. OBJ and glTF
are Y-up by convention and Blender's importers turn them back, so those files store
(x, z, -y): every route back into Blender lands the mesh where the scene is.

Textures: a mesh with UVs is written with the name of its texture PNG (which lies beside it):
PLY as per-vertex ``s, t`` and a ``comment TextureFile NAME.png`` (MeshLab's convention), OBJ
with ``vt`` and an MTL whose ``map_Kd`` is the PNG, GLB with the PNG embedded as the
material's ``baseColorTexture``. UVs have v up (OBJ, PLY, Blender); glTF's v runs down.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .triangle_mesh import TriangleMesh

SUFFIXES = (".ply", ".obj", ".glb")
TEXTURE_COMMENT = "TextureFile"


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


def write_mesh(mesh: TriangleMesh, path: Path, overwrite: bool = False, texture: Path | None = None) -> Path:
    """Write ``mesh`` as PLY, OBJ or GLB, chosen by ``path``'s suffix.

    ``texture``: the PNG a mesh with UVs wears (written beforehand, beside ``path``: files
    name it without a folder). OBJ gets ``NAME.mtl`` beside it too; GLB embeds the PNG's bytes.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".obj", ".glb"):
        raise ValueError(f"cannot write {path}: the suffix must be one of {', '.join(SUFFIXES)}")
    if mesh.n_faces == 0:
        raise ValueError(f"refusing to write {path}: the mesh has no faces")
    if texture is not None:
        texture = Path(texture)
        if mesh.uvs is None:
            raise ValueError(f"cannot write {path} with texture {texture.name}: the mesh has no UVs")
        if texture.parent.resolve() != path.parent.resolve():
            raise ValueError(f"the texture {texture} must lie beside {path}: mesh files name it without a folder")
        if not texture.is_file():
            raise ValueError(f"the texture {texture} for {path} does not exist: write it first")
    if suffix == ".ply":
        return write_atomic(path, lambda temporary: _write_ply(mesh, temporary, texture), overwrite=overwrite)
    if suffix == ".obj":
        if texture is not None:
            material_path = path.with_suffix(".mtl")
            write_atomic(material_path, lambda temporary: _write_mtl(texture, temporary), overwrite=overwrite)
        else:
            material_path = None
        return write_atomic(path, lambda temporary: _write_obj(mesh, temporary, material_path), overwrite=overwrite)
    png = None if texture is None else texture.read_bytes()
    return write_atomic(path, lambda temporary: _write_glb(mesh, temporary, png), overwrite=overwrite)


def encode_png(image: np.ndarray) -> bytes:
    """An 8-bit RGB (h, w, 3) or grey (h, w) uint8 image as PNG bytes (stdlib zlib; row 0 is the top)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"encode_png takes (h, w, 3) or (h, w) uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    rows = image.reshape(height, -1)
    # The "Up" filter (each byte minus the one above) on every row: baked textures are smooth
    # inside charts and flat outside, so the differences are mostly zero and compress well.
    up = np.empty_like(rows)
    up[0] = rows[0]
    up[1:] = rows[1:] - rows[:-1]  # uint8 wraps, as PNG's filters do
    raw = np.concatenate([np.full((height, 1), 2, dtype=np.uint8), up], axis=1).tobytes()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    colour_type = 2 if image.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def write_png(path: Path, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write an 8-bit image (see :func:`encode_png`) atomically."""
    data = encode_png(image)
    return write_atomic(Path(path), lambda temporary: temporary.write_bytes(data), overwrite=overwrite)


def _write_ply(mesh: TriangleMesh, path: Path, texture: Path | None = None) -> None:
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.vertex_colors is not None:
        vertex_fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if mesh.uvs is not None:
        vertex_fields += [("s", "<f4"), ("t", "<f4")]
    vertex_records = np.empty(mesh.n_vertices, dtype=vertex_fields)
    for axis, name in enumerate("xyz"):
        vertex_records[name] = mesh.vertices[:, axis]
    if mesh.vertex_colors is not None:
        bytes_rgb = np.round(np.clip(mesh.vertex_colors, 0, 1) * 255).astype(np.uint8)
        for channel, name in enumerate(("red", "green", "blue")):
            vertex_records[name] = bytes_rgb[:, channel]
    if mesh.uvs is not None:
        vertex_records["s"], vertex_records["t"] = mesh.uvs[:, 0], mesh.uvs[:, 1]
    face_records = np.empty(mesh.n_faces, dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_records["count"] = 3
    face_records["indices"] = mesh.faces
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment Fieldwork mesh in Blender world units, Z up; colours sRGB",
        *([f"comment {TEXTURE_COMMENT} {texture.name}"] if texture is not None else []),
        f"element vertex {mesh.n_vertices}",
        *(f"property float {name}" for name in "xyz"),
        *(f"property uchar {name}" for name in ("red", "green", "blue") if mesh.vertex_colors is not None),
        *(f"property float {name}" for name in "st" if mesh.uvs is not None),
        f"element face {mesh.n_faces}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(vertex_records.tobytes())
        handle.write(face_records.tobytes())


def _write_obj(mesh: TriangleMesh, path: Path, material: Path | None = None) -> None:
    """``v`` per distinct position (an atlas' seam split is undone: OBJ indexes UVs apart), ``vt``
    per UV, ``f v/vt``; with ``material``, the MTL's name and its material."""
    if mesh.uvs is None:
        first, position_index = np.arange(mesh.n_vertices), np.arange(mesh.n_vertices)
    else:
        first, position_index = mesh.welded()
    vertices = _blender_to_y_up(mesh.vertices[first])
    with open(path, "w", encoding="ascii") as handle:
        handle.write("# Fieldwork mesh in Blender world units, stored Y up (x, z, -y) as OBJ importers expect\n")
        if material is not None:
            handle.write(f"mtllib {material.name}\n")
        if mesh.vertex_colors is None:
            np.savetxt(handle, vertices, fmt="v %.7g %.7g %.7g")
        else:
            # The widespread "v x y z r g b" extension (read by Blender, MeshLab, Open3D); sRGB.
            colours = mesh.vertex_colors[first]
            np.savetxt(handle, np.hstack([vertices, colours]), fmt="v %.7g %.7g %.7g %.4f %.4f %.4f")
        if mesh.uvs is None:
            np.savetxt(handle, mesh.faces + 1, fmt="f %d %d %d")
            return
        np.savetxt(handle, mesh.uvs, fmt="vt %.7g %.7g")
        if material is not None:
            handle.write(f"usemtl {MATERIAL_NAME}\n")
        corners = np.stack([position_index[mesh.faces] + 1, mesh.faces + 1], axis=2).reshape(-1, 6)
        np.savetxt(handle, corners, fmt="f %d/%d %d/%d %d/%d")


MATERIAL_NAME = "FieldworkTexture"


def _write_mtl(texture: Path, path: Path) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(
            "# Fieldwork baked texture: base colour from the image, not shiny\n"
            f"newmtl {MATERIAL_NAME}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nNs 0\nillum 1\nmap_Kd {texture.name}\n"
        )


_GLTF_FLOAT, _GLTF_UNSIGNED_INT = 5126, 5125
_GLTF_ARRAY_BUFFER, _GLTF_ELEMENT_ARRAY_BUFFER = 34962, 34963


def _write_glb(mesh: TriangleMesh, path: Path, png: bytes | None = None) -> None:
    """glTF 2.0 binary: one mesh, one primitive, POSITION, NORMAL, COLOR_0 (linear, as glTF says),
    TEXCOORD_0 and the embedded PNG as the base colour texture when given, indices."""
    positions = _blender_to_y_up(mesh.vertices).astype("<f4")
    normals = _blender_to_y_up(mesh.seamless_vertex_normals()).astype("<f4")
    indices = mesh.faces.astype("<u4").reshape(-1)
    arrays: list[tuple[np.ndarray, str, int | None]] = [
        (positions, "VEC3", _GLTF_ARRAY_BUFFER),
        (normals, "VEC3", _GLTF_ARRAY_BUFFER),
    ]
    attributes = {"POSITION": 0, "NORMAL": 1}
    if mesh.vertex_colors is not None:
        attributes["COLOR_0"] = len(arrays)
        arrays.append((srgb_to_linear(mesh.vertex_colors).astype("<f4"), "VEC3", _GLTF_ARRAY_BUFFER))
    if mesh.uvs is not None:
        attributes["TEXCOORD_0"] = len(arrays)
        # glTF puts (0, 0) at the image's top-left corner.
        top_down = np.stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]], axis=1).astype("<f4")
        arrays.append((top_down, "VEC2", _GLTF_ARRAY_BUFFER))
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
    # Vertex colours multiply the base colour: white, fully rough, not metallic.
    material: dict = {
        "name": "Fieldwork Vertex Colour",
        "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
    }
    extra: dict = {}
    if png is not None:
        image_offset = len(binary)
        binary += png
        binary += b"\0" * (-len(binary) % 4)
        buffer_views.append({"buffer": 0, "byteOffset": image_offset, "byteLength": len(png)})
        material = {
            "name": MATERIAL_NAME,
            "pbrMetallicRoughness": {
                "baseColorTexture": {"index": 0, "texCoord": 0},
                "metallicFactor": 0.0,
                "roughnessFactor": 1.0,
            },
        }
        extra = {
            "images": [{"bufferView": len(buffer_views) - 1, "mimeType": "image/png", "name": "Fieldwork Texture"}],
            # Linear magnification, trilinear mip-maps (the padding keeps them clean), clamped at the edges.
            "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
            "textures": [{"sampler": 0, "source": 0}],
        }
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
        "materials": [material],
        **extra,
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

    Vertex properties other than x, y, z, red, green, blue and s, t (UVs) are skipped; uchar
    colours are returned sRGB-encoded in [0, 1].
    """
    return read_ply_with_texture(path)[0]


def read_ply_with_texture(path: Path) -> tuple[TriangleMesh, Path | None]:
    """:func:`read_ply` and the texture its ``comment TextureFile NAME`` names (beside the file), or None."""
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
    texture: Path | None = None
    for line in header_lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "comment" and len(words) > 2 and words[1] == TEXTURE_COMMENT:
            texture = path.parent / Path(line.split(TEXTURE_COMMENT, 1)[1].strip()).name
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
    uvs = None
    if vertex_records.dtype.names is not None and {"s", "t"} <= set(vertex_records.dtype.names):
        uvs = np.stack([vertex_records["s"], vertex_records["t"]], axis=1).astype(np.float32)
    try:
        return TriangleMesh(vertices=vertices, faces=faces, vertex_colors=colors, uvs=uvs), texture
    except ValueError as exc:
        raise MeshFileError(f"{path}: {exc}") from exc


def read_obj(path: Path) -> TriangleMesh:
    """The positions and faces of a Wavefront OBJ (Y up, as OBJ files are; returned in Blender's Z-up axes,
    the inverse of what :func:`write_mesh` stores). Polygons are fanned into triangles; ``v/vt/vn`` corners
    keep their position index; negative (relative) indices count back from the vertices read so far."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MeshFileError(f"cannot read {path}: {exc.strerror}") from exc
    positions: list[list[float]] = []
    triangles: list[tuple[int, int, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "v":
                positions.append([float(words[1]), float(words[2]), float(words[3])])
            elif words[0] == "f":
                corners = [int(word.split("/")[0]) for word in words[1:]]
                corners = [index - 1 if index > 0 else len(positions) + index for index in corners]
                triangles += [(corners[0], corners[k], corners[k + 1]) for k in range(1, len(corners) - 1)]
        except (ValueError, IndexError) as exc:
            raise MeshFileError(f"{path} line {number}: cannot read {line.strip()!r} ({exc})") from exc
    if not positions or not triangles:
        raise MeshFileError(f"{path} has no vertices or no faces")
    y_up = np.asarray(positions, dtype=np.float64)
    vertices = np.stack([y_up[:, 0], -y_up[:, 2], y_up[:, 1]], axis=1)
    try:
        return TriangleMesh(vertices=vertices, faces=np.asarray(triangles, dtype=np.int64))
    except ValueError as exc:
        raise MeshFileError(f"{path}: {exc}") from exc


def read_mesh(path: Path) -> TriangleMesh:
    """A PLY (binary little-endian) or OBJ mesh file, by its suffix, in Blender world axes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".obj":
        return read_obj(path)
    raise MeshFileError(f"cannot read {path}: a mesh file must be .ply or .obj")
