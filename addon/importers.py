"""Engine results into Blender objects: meshes land in the "Fieldwork" collection, where the scene is.

The file format lives in ``engine/mesh/io.py`` (numpy only, shared with the engine); this
module is the bpy glue. Vertices arrive in Blender world units, so the object keeps an
identity transform and lines up with the source geometry as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import bpy
import numpy as np

from .engine.mesh import io as mesh_io

COLLECTION_NAME = "Fieldwork"
OBJECT_NAME = "Fieldwork Mesh"
COLOR_ATTRIBUTE = "Color"
MATERIAL_NAME = "Fieldwork Vertex Colour"
TEXTURE_MATERIAL_NAME = "Fieldwork Texture"
UV_MAP_NAME = "UVMap"
TEXTURE_FOLDER = "textures"  # beside the .blend, for texture_storage="BESIDE"
# Custom properties on imported objects: what they came from, so a re-import can replace them.
SOURCE_KEY = "fieldwork_source"
FILE_KEY = "fieldwork_file"


class MeshImportError(ValueError):
    """A mesh cannot be imported; the message names the file. Nothing was created."""


def fieldwork_collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    """The scene's "Fieldwork" collection, created (and linked under the scene) when missing."""
    for child in scene.collection.children:
        if child.name == COLLECTION_NAME or child.get(SOURCE_KEY) == COLLECTION_NAME:
            return child
    collection = bpy.data.collections.new(COLLECTION_NAME)
    collection[SOURCE_KEY] = COLLECTION_NAME  # found again even if a same-named collection existed
    scene.collection.children.link(collection)
    return collection


def vertex_colour_material() -> bpy.types.Material:
    """A material that shows the colour attribute in Eevee and Cycles (one, shared by all imports)."""
    for material in bpy.data.materials:
        if material.get(SOURCE_KEY) == MATERIAL_NAME:
            return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    material[SOURCE_KEY] = MATERIAL_NAME
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # from 5.0 every material has its node tree (and the flag is deprecated)
    nodes = material.node_tree.nodes
    links = material.node_tree.links
    principled = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    principled.inputs["Roughness"].default_value = 0.8
    attribute = nodes.new("ShaderNodeVertexColor")
    attribute.layer_name = COLOR_ATTRIBUTE
    attribute.location = (principled.location.x - 300, principled.location.y)
    links.new(attribute.outputs["Color"], principled.inputs["Base Color"])
    return material


def texture_material(image: bpy.types.Image) -> bpy.types.Material:
    """A material whose Base Color is an Image Texture node showing ``image`` (one per import:
    each bake is its own image)."""
    material = bpy.data.materials.new(TEXTURE_MATERIAL_NAME)
    material[SOURCE_KEY] = TEXTURE_MATERIAL_NAME
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes = material.node_tree.nodes
    principled = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    principled.inputs["Roughness"].default_value = 0.8
    texture = cast(bpy.types.ShaderNodeTexImage, nodes.new("ShaderNodeTexImage"))
    texture.image = image
    texture.location = (principled.location.x - 350, principled.location.y)
    material.node_tree.links.new(cast(bpy.types.Node, texture).outputs["Color"], principled.inputs["Base Color"])
    return material


def load_texture(path: Path, storage: str) -> bpy.types.Image:
    """The baked PNG as a Blender image: packed into the .blend (``"PACK"``), or copied into
    ``textures/`` beside the saved .blend and referenced relatively (``"BESIDE"``)."""
    if not path.is_file():
        raise MeshImportError(f"the texture {path} that the mesh names does not exist; nothing was imported")
    if storage == "BESIDE":
        if not bpy.data.filepath:
            raise MeshImportError(
                "save the .blend first: its texture is to be saved beside it (or choose Pack into .blend)"
            )
        folder = Path(bpy.data.filepath).parent / TEXTURE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        target, number = folder / path.name, 2
        while target.exists():  # never overwrite another import's texture
            target = folder / f"{path.stem}-{number}{path.suffix}"
            number += 1
        shutil.copyfile(path, target)
        image = bpy.data.images.load(str(target))
        image.filepath = bpy.path.relpath(str(target))
    elif storage == "PACK":
        image = bpy.data.images.load(str(path))
        image.pack()
    else:
        raise MeshImportError(f"texture storage must be PACK or BESIDE, got {storage!r}")
    image.colorspace_settings.name = "sRGB"
    return image


def previous_results(scene: bpy.types.Scene, source: str) -> list[bpy.types.Object]:
    """Objects in the Fieldwork collection imported earlier from ``source``."""
    return [obj for obj in fieldwork_collection(scene).objects if obj.get(SOURCE_KEY) == source]


def remove_objects(objects: list[bpy.types.Object]) -> None:
    for obj in objects:
        data = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)


def _build_mesh(
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors_srgb: np.ndarray | None,
    corner_uvs: np.ndarray | None = None,
) -> bpy.types.Mesh:
    """``corner_uvs`` (n_faces * 3, 2): one UV per face corner, in the order of ``faces``."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    if colors_srgb is not None:
        new_attribute = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
        attribute = cast(bpy.types.ByteColorAttribute, new_attribute)
        rgba = np.concatenate([colors_srgb, np.ones((len(colors_srgb), 1), dtype=np.float32)], axis=1)
        attribute.data.foreach_set("color_srgb", rgba.astype(np.float32).ravel())
        # Active: what Solid mode shows with Viewport Shading > Color > Attribute; default: what renders.
        mesh.color_attributes.active_color = attribute
        mesh.color_attributes.default_color_name = attribute.name
    if corner_uvs is not None:
        uv_layer = mesh.uv_layers.new(name=UV_MAP_NAME)
        uv_layer.data.foreach_set("uv", corner_uvs.astype(np.float32).ravel())
    mesh.update()
    mesh.validate()
    return mesh


def import_mesh_file(
    scene: bpy.types.Scene,
    path: str | Path,
    source: str = "",
    replace_previous: bool = False,
    texture_storage: str = "PACK",
) -> bpy.types.Object:
    """Import a PLY written by the engine into ``scene``'s Fieldwork collection and return the object.

    ``source`` says what the mesh was made from (a run folder; default: the file itself).
    With ``replace_previous``, objects imported earlier from the same source are removed;
    otherwise they stay and the new object gets a fresh name. A file that cannot be read or
    has no faces raises :class:`MeshImportError` before anything is created.
    A PLY that names a texture (UVs ``s, t``) gets a UV map and a material showing the image,
    stored as ``texture_storage`` says (see :func:`load_texture`); the atlas' seam-split vertices
    are welded back, so the object is one connected surface.
    """
    path = Path(bpy.path.abspath(str(path)))
    try:
        triangles, texture_path = mesh_io.read_ply_with_texture(path)
    except mesh_io.MeshFileError as exc:
        raise MeshImportError(str(exc)) from exc
    if triangles.n_faces == 0:
        raise MeshImportError(f"{path} has no faces: the field had no surface at that level; nothing was imported")
    textured = texture_path is not None and triangles.uvs is not None
    image = load_texture(texture_path, texture_storage) if textured else None  # type: ignore[arg-type]
    source = source or str(path)
    if replace_previous:
        remove_objects(previous_results(scene, source))
    if image is not None and triangles.uvs is not None:
        first, position_index = triangles.welded()
        colours = None if triangles.vertex_colors is None else triangles.vertex_colors[first]
        corner_uvs = triangles.uvs[triangles.faces].reshape(-1, 2)
        mesh = _build_mesh(OBJECT_NAME, triangles.vertices[first], position_index[triangles.faces], colours, corner_uvs)
        mesh.materials.append(texture_material(image))
    else:
        mesh = _build_mesh(OBJECT_NAME, triangles.vertices, triangles.faces, triangles.vertex_colors)
        mesh.materials.append(vertex_colour_material())
    obj = bpy.data.objects.new(OBJECT_NAME, mesh)
    obj[SOURCE_KEY] = source
    obj[FILE_KEY] = str(path)
    fieldwork_collection(scene).objects.link(obj)
    return obj
