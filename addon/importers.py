"""Engine results into Blender objects: meshes land in the "Fieldwork" collection, where the scene is.

The file format lives in ``engine/mesh/io.py`` (numpy only, shared with the engine); this
module is the bpy glue. Vertices arrive in Blender world units, so the object keeps an
identity transform and lines up with the source geometry as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import bpy
import numpy as np

from .engine.mesh import io as mesh_io

COLLECTION_NAME = "Fieldwork"
OBJECT_NAME = "Fieldwork Mesh"
COLOR_ATTRIBUTE = "Color"
MATERIAL_NAME = "Fieldwork Vertex Colour"
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


def previous_results(scene: bpy.types.Scene, source: str) -> list[bpy.types.Object]:
    """Objects in the Fieldwork collection imported earlier from ``source``."""
    return [obj for obj in fieldwork_collection(scene).objects if obj.get(SOURCE_KEY) == source]


def remove_objects(objects: list[bpy.types.Object]) -> None:
    for obj in objects:
        data = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)


def _build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, colors_srgb: np.ndarray | None) -> bpy.types.Mesh:
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
    mesh.update()
    mesh.validate()
    return mesh


def import_mesh_file(
    scene: bpy.types.Scene, path: str | Path, source: str = "", replace_previous: bool = False
) -> bpy.types.Object:
    """Import a PLY written by the engine into ``scene``'s Fieldwork collection and return the object.

    ``source`` says what the mesh was made from (a run folder; default: the file itself).
    With ``replace_previous``, objects imported earlier from the same source are removed;
    otherwise they stay and the new object gets a fresh name. A file that cannot be read or
    has no faces raises :class:`MeshImportError` before anything is created.
    """
    path = Path(bpy.path.abspath(str(path)))
    try:
        triangles = mesh_io.read_ply(path)
    except mesh_io.MeshFileError as exc:
        raise MeshImportError(str(exc)) from exc
    if triangles.n_faces == 0:
        raise MeshImportError(f"{path} has no faces: the field had no surface at that level; nothing was imported")
    source = source or str(path)
    if replace_previous:
        remove_objects(previous_results(scene, source))
    mesh = _build_mesh(OBJECT_NAME, triangles.vertices, triangles.faces, triangles.vertex_colors)
    mesh.materials.append(vertex_colour_material())
    obj = bpy.data.objects.new(OBJECT_NAME, mesh)
    obj[SOURCE_KEY] = source
    obj[FILE_KEY] = str(path)
    fieldwork_collection(scene).objects.link(obj)
    return obj
