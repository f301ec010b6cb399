"""Blender objects to a shape dataset: evaluated geometry (modifiers applied) in world space, triangulated.

The format, the world-space transform and every check on the numbers live in
``engine.data.shapes`` (numpy only, tested without Blender); this module only reads Blender's
evaluated objects into arrays.

- Meshes, curves, surfaces, text and metaballs become triangle meshes (Blender's own
  triangulation of each polygon, so concave n-gons come out right).
- Point-cloud objects, meshes whose modifiers make points (Mesh to Points), and meshes with no
  faces (vertices or loose edges only) become point clouds without normals.
- Instances (collection instances, Instance on Points) are not realised: add a Realize Instances
  node, or Make Instances Real, first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from .engine.data.shapes import ShapeError, ShapeGeometry, check_target, world_geometry, write_shape_dataset

# Types whose evaluated object converts to a mesh with Object.to_mesh().
MESH_TYPES = {"MESH", "CURVE", "SURFACE", "FONT", "META"}
POINT_CLOUD_TYPE = "POINTCLOUD"
SHAPE_TYPES = MESH_TYPES | {POINT_CLOUD_TYPE}


def export_shapes(
    out_dir: Path,
    *,
    objects: Sequence[bpy.types.Object] | None = None,
    collection: bpy.types.Collection | None = None,
    view_layer: bpy.types.ViewLayer | None = None,
    overwrite: bool = False,
) -> tuple[Path, list[str]]:
    """Write a shape dataset folder ``out_dir``; return its ``shapes.json`` and the notes to show the user.

    objects: the objects to export, one shape each; a camera, light, empty or other non-geometry
        object among them is an error naming it.
    collection: instead, every object in it and its child collections (a shape collection); objects
        without geometry in it are skipped and named in the notes.
    Neither: the view layer's selected objects.

    Everything is read and checked before anything is written (an empty mesh, NaN vertices or a
    non-geometry object names the object and writes nothing); the folder is built beside
    ``out_dir`` and swapped in.
    """
    out_dir = Path(out_dir)
    if objects is not None and collection is not None:
        raise ShapeError("give objects or a collection, not both")
    view_layer = view_layer or bpy.context.view_layer
    notes: list[str] = []
    if collection is not None:
        members = sorted(collection.all_objects, key=lambda obj: obj.name)
        chosen = [obj for obj in members if obj.type in SHAPE_TYPES]
        skipped = [obj for obj in members if obj.type not in SHAPE_TYPES]
        if not chosen:
            held = ", ".join(f"{obj.name!r} ({obj.type.lower()})" for obj in skipped) or "no objects"
            raise ShapeError(f"collection {collection.name!r} holds no meshes or point clouds: only {held}")
        if skipped:
            notes.append("skipped (no geometry): " + ", ".join(f"{obj.name!r} ({obj.type.lower()})" for obj in skipped))
    elif objects is not None:
        chosen = list(objects)
        if not chosen:
            raise ShapeError("no objects given: pick at least one mesh or point-cloud object")
    else:
        chosen = sorted((obj for obj in view_layer.objects if obj.select_get(view_layer=view_layer)), key=_name)
        if not chosen:
            raise ShapeError(f"no objects selected in view layer {view_layer.name!r}: select the objects to export")
    for obj in chosen:
        if obj.type not in SHAPE_TYPES:
            raise ShapeError(f"object {obj.name!r} is a {obj.type.lower()}, not a mesh or point cloud")
    check_target(out_dir, overwrite)  # before the work: a wrong folder is reported at once
    view_layer.update()
    depsgraph = view_layer.depsgraph
    assert depsgraph is not None  # a view layer always has one once updated
    shapes = [(obj.name, object_geometry(obj, depsgraph)) for obj in chosen]
    path = write_shape_dataset(
        out_dir, shapes, collection=collection.name if collection is not None else None, overwrite=overwrite
    )
    return path, notes


def object_geometry(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> ShapeGeometry:
    """The object's evaluated geometry in world space (a ShapeError naming it when it has none)."""
    evaluated = obj.evaluated_get(depsgraph)
    matrix = np.array([[evaluated.matrix_world[row][column] for column in range(4)] for row in range(4)])
    if obj.type == POINT_CLOUD_TYPE:
        return world_geometry(_point_positions(evaluated.data), None, matrix, obj.name)
    try:
        mesh = evaluated.to_mesh()
    except RuntimeError as error:
        raise ShapeError(f"object {obj.name!r}: Blender cannot make a mesh of it ({error})") from error
    try:
        if mesh is not None and len(mesh.vertices) > 0:
            local = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", local)
            triangles = None
            if len(mesh.polygons) > 0:
                mesh.calc_loop_triangles()
                triangles = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
                mesh.loop_triangles.foreach_get("vertices", triangles)
            return world_geometry(local.reshape(-1, 3), triangles, matrix, obj.name)
    finally:
        evaluated.to_mesh_clear()
    # Geometry nodes can leave the mesh empty and output points instead (Mesh to Points).
    geometry_set = evaluated.evaluated_geometry() if hasattr(evaluated, "evaluated_geometry") else None
    point_cloud = getattr(geometry_set, "pointcloud", None)
    if point_cloud is not None and len(point_cloud.points) > 0:
        return world_geometry(_point_positions(point_cloud), None, matrix, obj.name)
    raise ShapeError(
        f"object {obj.name!r} has an empty mesh: no vertices after its modifiers "
        "(instances are not exported: realise them first)"
    )


def _point_positions(point_cloud: Any) -> np.ndarray:
    """(n, 3) float32 positions of a PointCloud's points (an empty array when it has none)."""
    count = len(point_cloud.points)
    positions = np.empty(count * 3, dtype=np.float32)
    if count:
        point_cloud.attributes["position"].data.foreach_get("vector", positions)
    return positions.reshape(-1, 3)


def _name(obj: bpy.types.Object) -> str:
    return obj.name
