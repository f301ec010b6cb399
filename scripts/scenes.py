"""Test and demo scenes built in real Blender: a textured object, lights, cameras around it.

Needs only ``bpy`` (Blender as a module, or ``blender -b --python``); the engine is not involved.
Tests, benchmarks and the demo all build their scenes here so that they agree on what
"the demo object" looks like::

    from scripts.scenes import build_object_scene
    info = build_object_scene(camera_count=24, resolution=32)
    info.object, info.cameras, info.vertices  # (n_vertices, 3) world space

The scene is set up for quick, plain renders: Cycles on the CPU with few samples and no
denoising, transparent film (RGBA), the Standard view transform (pixels are plain sRGB).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector

Layout = Literal["sphere", "ring"]
Shape = Literal["suzanne", "cube", "sphere", "icosphere", "cylinder", "cone"]
SHAPES: tuple[str, ...] = ("suzanne", "cube", "sphere", "icosphere", "cylinder", "cone")
LAYOUTS: tuple[str, ...] = ("sphere", "ring")
Texture = Literal["demo", "checker"]
TEXTURES: tuple[str, ...] = ("demo", "checker")
# Cells of the fine checker per world unit (Blender's checker has cells 1/scale wide): 0.1 units, about
# 8 pixels of a 256-pixel view of the demo object and 2 of a 64-pixel one, and a few vertices of a
# 128-lattice mesh (about 0.02 units apart) or under one of that mesh decimated to 10%.
FINE_CHECKER_SCALE = 10.0
FINE_CHECKER_COLOURS = ((0.9, 0.55, 0.05, 1.0), (0.04, 0.08, 0.35, 1.0))  # orange and dark blue, linear

OBJECT_NAME = "Fieldwork Object"
OBJECT_COLLECTION = "Fieldwork Scene Object"
CAMERA_COLLECTION = "Fieldwork Cameras"
LIGHT_COLLECTION = "Fieldwork Lights"

# Elevations (degrees) that ring cameras cycle through: one height alone never sees the top or
# underside, three heights in one ring still read as "a ring" and cover the object.
RING_ELEVATIONS_DEG = (10.0, 30.0, 50.0)
# The bounding sphere fills this fraction of the narrower half field of view.
FRAME_FILL = 0.85
CAMERA_LENS_MM = 50.0
CAMERA_SENSOR_MM = 36.0


@dataclass(frozen=True)
class SceneInfo:
    """What a built scene holds. Blender objects are looked up by name (names survive save/load)."""

    scene_name: str
    object_name: str
    camera_names: tuple[str, ...]
    camera_collection_name: str
    bounds_min: tuple[float, float, float]
    """World-space axis-aligned bounding box of the evaluated object."""
    bounds_max: tuple[float, float, float]
    vertices: np.ndarray
    """(n_vertices, 3) float64, evaluated mesh (modifiers applied) in world space."""
    triangles: np.ndarray
    """(n_triangles, 3) int64 indices into ``vertices``."""
    camera_distance: float
    """Distance from the bounding-box centre to every camera."""
    resolution: int

    @property
    def scene(self) -> bpy.types.Scene:
        return bpy.data.scenes[self.scene_name]

    @property
    def object(self) -> bpy.types.Object:
        return bpy.data.objects[self.object_name]

    @property
    def cameras(self) -> list[bpy.types.Object]:
        return [bpy.data.objects[name] for name in self.camera_names]

    @property
    def center(self) -> tuple[float, float, float]:
        return tuple((low + high) / 2 for low, high in zip(self.bounds_min, self.bounds_max, strict=True))  # type: ignore[return-value]


def build_object_scene(
    scene: bpy.types.Scene | None = None,
    *,
    camera_count: int = 100,
    resolution: int = 100,
    layout: Layout = "sphere",
    object_location: tuple[float, float, float] = (0.0, 0.0, 0.0),
    object_rotation_euler: tuple[float, float, float] = (0.0, 0.0, 0.0),
    object_scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
    shape: Shape = "suzanne",
    samples: int = 16,
    seed: int = 0,
    engine: str = "CYCLES",
    texture: Texture = "demo",
) -> SceneInfo:
    """Build a textured object, two lights and ``camera_count`` cameras looking at it.

    ``scene=None`` starts a new empty file (enabled add-ons stay enabled) and builds there;
    a given scene gets the objects added in collections of their own, its other content kept.
    ``layout="sphere"``: cameras evenly over the whole sphere (Fibonacci lattice);
    ``layout="ring"``: evenly in azimuth, cycling through the elevations ``RING_ELEVATIONS_DEG``.
    The camera distance fits the object's bounding sphere into every view.
    ``texture="demo"``: a checker of noise and Voronoi colours (detail at every scale, the demo's);
    ``texture="checker"``: a fine two-colour checker (sharp edges a pixel or two wide at 64 px).
    """
    if camera_count < 1:
        raise ValueError(f"camera_count must be at least 1, got {camera_count}")
    if resolution < 1:
        raise ValueError(f"resolution must be at least 1 pixel, got {resolution}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")

    if scene is None:
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
    configure_render(scene, resolution=resolution, samples=samples, seed=seed, engine=engine)
    _ensure_world_light(scene)

    object_collection = _new_collection(scene, OBJECT_COLLECTION)
    mesh_object = bpy.data.objects.new(OBJECT_NAME, _build_mesh(shape))
    mesh_object.location = object_location
    mesh_object.rotation_euler = object_rotation_euler
    mesh_object.scale = object_scale
    mesh_object.data.materials.append(_textured_material() if texture == "demo" else _fine_checker_material())
    if shape == "suzanne":
        # A level of subdivision turns the faceted monkey into a surface worth reconstructing.
        subdivision = mesh_object.modifiers.new("Subdivision", "SUBSURF")
        subdivision.levels = subdivision.render_levels = 1
    object_collection.objects.link(mesh_object)

    view_layer = scene.view_layers[0]
    view_layer.update()
    vertices, triangles = _evaluated_world_geometry(mesh_object, view_layer.depsgraph)
    bounds_min = vertices.min(axis=0)
    bounds_max = vertices.max(axis=0)
    center = Vector(((bounds_min + bounds_max) / 2).tolist())
    bounding_radius = float(np.linalg.norm(vertices - np.asarray(center), axis=1).max())

    half_fov = math.atan(CAMERA_SENSOR_MM / 2 / CAMERA_LENS_MM)
    camera_distance = bounding_radius / (math.sin(half_fov) * FRAME_FILL)

    _add_lights(scene, center, camera_distance)

    camera_collection = _new_collection(scene, CAMERA_COLLECTION)
    camera_names: list[str] = []
    for index, direction in enumerate(_camera_directions(camera_count, layout)):
        camera_data = bpy.data.cameras.new(f"Camera {index:03d}")
        camera_data.lens = CAMERA_LENS_MM
        camera_data.sensor_width = CAMERA_SENSOR_MM
        camera_data.sensor_fit = "AUTO"
        camera_data.clip_start = max(camera_distance - 2 * bounding_radius, 0.01) / 2
        camera_data.clip_end = camera_distance + 4 * bounding_radius
        camera_object = bpy.data.objects.new(f"Camera {index:03d}", camera_data)
        camera_object.matrix_world = look_at(center + direction * camera_distance, center)
        camera_collection.objects.link(camera_object)
        camera_names.append(camera_object.name)
    scene.camera = bpy.data.objects[camera_names[0]]
    view_layer.update()

    return SceneInfo(
        scene_name=scene.name,
        object_name=mesh_object.name,
        camera_names=tuple(camera_names),
        camera_collection_name=camera_collection.name,
        bounds_min=tuple(float(value) for value in bounds_min),  # type: ignore[arg-type]
        bounds_max=tuple(float(value) for value in bounds_max),  # type: ignore[arg-type]
        vertices=vertices,
        triangles=triangles,
        camera_distance=camera_distance,
        resolution=resolution,
    )


def save_ground_truth_mesh(info: SceneInfo, path: str | os.PathLike[str]) -> Path:
    """Write the object's world-space triangles (PLY, OBJ or GLB by suffix, as the engine writes meshes), atomically."""
    from engine.mesh.io import write_mesh
    from engine.mesh.triangle_mesh import TriangleMesh

    return write_mesh(TriangleMesh(vertices=info.vertices, faces=info.triangles), Path(path), overwrite=True)


def configure_render(scene: bpy.types.Scene, *, resolution: int, samples: int, seed: int, engine: str) -> None:
    render = scene.render
    render.engine = engine
    render.resolution_x = resolution
    render.resolution_y = resolution
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.image_settings.color_depth = "8"
    # Standard (not Filmic/AgX): pixel values are plain sRGB of the scene-linear colours.
    scene.display_settings.display_device = "sRGB"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    if engine == "CYCLES":
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.samples = samples
        cycles.use_denoising = False
        cycles.use_adaptive_sampling = False
        cycles.seed = seed
        # Direct light and one bounce carry all the texture detail; more bounces only cost time.
        cycles.max_bounces = 2
        cycles.diffuse_bounces = 1
        cycles.glossy_bounces = 1
        cycles.transmission_bounces = 0
        cycles.volume_bounces = 0
        cycles.transparent_max_bounces = 2
        cycles.caustics_reflective = False
        cycles.caustics_refractive = False


def _ensure_world_light(scene: bpy.types.Scene) -> None:
    """A dim grey world: fills the shadows (the film stays transparent, so it is never seen)."""
    if scene.world is None:
        scene.world = bpy.data.worlds.new("Fieldwork World")
    world = scene.world
    if bpy.app.version < (5, 0, 0):  # node trees are always on from 5.0 (the switch is deprecated there)
        world.use_nodes = True
    background = next((node for node in world.node_tree.nodes if node.type == "BACKGROUND"), None)
    if background is None:
        background = world.node_tree.nodes.new("ShaderNodeBackground")
        output = world.node_tree.nodes.new("ShaderNodeOutputWorld")
        world.node_tree.links.new(background.outputs["Background"], output.inputs["Surface"])
    background.inputs["Color"].default_value = (0.15, 0.15, 0.15, 1.0)
    background.inputs["Strength"].default_value = 1.0


def _new_collection(scene: bpy.types.Scene, name: str) -> bpy.types.Collection:
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    return collection


def _build_mesh(shape: str) -> bpy.types.Mesh:
    """The shape as mesh data about 2 units across, centred on its origin."""
    mesh_data = bpy.data.meshes.new(f"Fieldwork {shape}")
    builder = bmesh.new()
    try:
        if shape == "suzanne":
            bmesh.ops.create_monkey(builder)
        elif shape == "cube":
            bmesh.ops.create_cube(builder, size=2.0)
        elif shape == "sphere":
            bmesh.ops.create_uvsphere(builder, u_segments=32, v_segments=16, radius=1.0)
        elif shape == "icosphere":
            bmesh.ops.create_icosphere(builder, subdivisions=2, radius=1.0)
        elif shape == "cylinder":
            bmesh.ops.create_cone(builder, cap_ends=True, segments=32, radius1=1.0, radius2=1.0, depth=2.0)
        else:
            bmesh.ops.create_cone(builder, cap_ends=True, segments=32, radius1=1.0, radius2=0.0, depth=2.0)
        builder.to_mesh(mesh_data)
    finally:
        builder.free()
    for polygon in mesh_data.polygons:
        polygon.use_smooth = shape in ("suzanne", "sphere", "icosphere")
    return mesh_data


def _textured_material() -> bpy.types.Material:
    """Checker whose two colours are a noise colour and a Voronoi colour: detail at every scale.

    Rough and non-metallic so the colour hardly changes with the view direction.
    """
    material = bpy.data.materials.new("Fieldwork Texture")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes = material.node_tree.nodes
    links = material.node_tree.links
    shader = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    shader.inputs["Roughness"].default_value = 0.9
    coordinates = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 3.0
    noise.inputs["Detail"].default_value = 4.0
    voronoi = nodes.new("ShaderNodeTexVoronoi")
    voronoi.inputs["Scale"].default_value = 6.0
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 3.0
    for texture in (noise, voronoi, checker):
        links.new(coordinates.outputs["Object"], texture.inputs["Vector"])
    links.new(noise.outputs["Color"], checker.inputs["Color1"])
    links.new(voronoi.outputs["Color"], checker.inputs["Color2"])
    # Procedural colours come out pale; more saturation makes the texture worth learning.
    saturation = nodes.new("ShaderNodeHueSaturation")
    saturation.inputs["Saturation"].default_value = 2.0
    links.new(checker.outputs["Color"], saturation.inputs["Color"])
    links.new(saturation.outputs["Color"], shader.inputs["Base Color"])
    return material


def _fine_checker_material() -> bpy.types.Material:
    """A fine checker of two far-apart colours on object coordinates: edges no vertex colour can hold."""
    material = bpy.data.materials.new("Fieldwork Fine Checker")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes = material.node_tree.nodes
    links = material.node_tree.links
    shader = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    shader.inputs["Roughness"].default_value = 0.9
    coordinates = nodes.new("ShaderNodeTexCoord")
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = FINE_CHECKER_SCALE
    checker.inputs["Color1"].default_value = FINE_CHECKER_COLOURS[0]
    checker.inputs["Color2"].default_value = FINE_CHECKER_COLOURS[1]
    links.new(coordinates.outputs["Object"], checker.inputs["Vector"])
    links.new(checker.outputs["Color"], shader.inputs["Base Color"])
    return material


def _add_lights(scene: bpy.types.Scene, center: Vector, camera_distance: float) -> None:
    """A key sun from above and a weaker fill from the opposite side below: no side is black."""
    collection = _new_collection(scene, LIGHT_COLLECTION)
    for name, strength, direction in (
        ("Fieldwork Key Light", 2.5, Vector((0.5, -0.6, 1.0))),
        ("Fieldwork Fill Light", 0.8, Vector((-0.6, 0.7, -0.4))),
    ):
        light_data = bpy.data.lights.new(name, "SUN")
        light_data.energy = strength
        light_data.angle = math.radians(10.0)
        light_object = bpy.data.objects.new(name, light_data)
        light_object.matrix_world = look_at(center + direction.normalized() * camera_distance, center)
        collection.objects.link(light_object)


def _camera_directions(count: int, layout: str) -> list[Vector]:
    """Unit vectors from the object centre towards each camera."""
    directions = []
    golden_angle = math.pi * (3.0 - math.sqrt(5.0))
    for index in range(count):
        if layout == "sphere":
            z = 1.0 - (2 * index + 1) / count
            azimuth = golden_angle * index
        else:
            elevation = math.radians(RING_ELEVATIONS_DEG[index % len(RING_ELEVATIONS_DEG)])
            z = math.sin(elevation)
            azimuth = 2 * math.pi * index / count
        horizontal = math.sqrt(max(0.0, 1.0 - z * z))
        directions.append(Vector((horizontal * math.cos(azimuth), horizontal * math.sin(azimuth), z)))
    return directions


def look_at(location: Vector, target: Vector) -> Matrix:
    """Camera-to-world matrix at ``location`` looking down -Z at ``target``, +Y as up as possible."""
    rotation = (target - location).to_track_quat("-Z", "Y")
    return Matrix.Translation(location) @ rotation.to_matrix().to_4x4()


def _evaluated_world_geometry(mesh_object: bpy.types.Object, depsgraph) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """World-space vertices (n_vertices, 3) and triangles (n_triangles, 3) after modifiers."""
    evaluated = mesh_object.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        local = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", local)
        triangles = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", triangles)
        object_to_world = np.array(evaluated.matrix_world, dtype=np.float64)
    finally:
        evaluated.to_mesh_clear()
    local = local.reshape(-1, 3).astype(np.float64)
    world = local @ object_to_world[:3, :3].T + object_to_world[:3, 3]
    return world, triangles.reshape(-1, 3).astype(np.int64)
