"""Render an image collection for generative scene models (GRAF, GIRAFFE): CLEVR-like scenes on a floor.

In Blender:      blender -b --python-exit-code 1 --python scripts/make_collection.py -- --out DIR --count 1000
With bpy module: python scripts/make_collection.py -- --out DIR --count 1000 --size 32 --workers 2

Each image shows 1..K objects (``--min-objects``/``--max-objects``) standing on a floor plane: primitives
(cube, sphere, cylinder, cone) with a CLEVR colour and a rubber or metal material, or, with ``--blend FILE
--assets COLLECTION``, copies of the objects in one of the user's Blender collections. Object size, rotation
about the vertical axis and position on the floor (no two footprints overlap: rejection sampling), the camera
(on a ring at a random radius, elevation and azimuth, looking at the floor centre) and the sun light (strength
and direction jittered) are drawn from the ranges the options state.

What is written in ``--out``::

    collection.json        format, version, image size, count, renderer, the pose prior the model samples
                           from and the image list; "complete": false until every image is there
    images/000123.png      RGB, sRGB (Standard view transform), --size x --size
    params/000123.json     the image's true parameters (objects, camera pose and intrinsics, light):
                           for evaluation only, a model never reads them

Every image's random draws come from ``numpy.random.default_rng([seed, index])``, so an image does not depend
on which worker renders it or on how often the run was interrupted. Re-running the same command skips the
images (and parameter files) already written and completes the collection; a larger ``--count`` extends it.
``--workers N`` renders disjoint shards in N separate Blender processes (the same interpreter, or the same
Blender binary). Units: Blender world units; angles in degrees in every JSON file.

Renderer (``--engine auto``): Cycles on the CPU, 16 samples, no denoising. Measured here (bpy 5.0.1, 2 CPU
cores shared with other jobs, 1..3 objects, one worker): Cycles 11.2 images/s at 32x32 and 3.9 at 64x64 (3.0
and 1.9 with 8 samples and OpenImageDenoise: denoising costs more than it saves at this size); Eevee renders
headless, through a software OpenGL context, at 0.03 images/s at both sizes (about 10 CPU seconds per image
against Cycles' 0.06), so auto is Cycles; ``--engine eevee`` is for machines with a GPU context. 1000 images at
32x32 with ``--workers 2`` took 112 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# With the bpy module, bmesh and mathutils are importable only once bpy is imported.
import bpy  # noqa: E402

# isort: split
import bmesh  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

from engine.atomic import write_atomic, write_text_atomic  # noqa: E402

COLLECTION_NAME = "collection.json"
FORMAT = "fieldwork-image-collection"
FORMAT_VERSION = 1
IMAGES_FOLDER = "images"
PARAMS_FOLDER = "params"
SHAPES = ("cube", "sphere", "cylinder", "cone")
MATERIALS = ("rubber", "metal")
ENGINES = {"auto": "CYCLES", "cycles": "CYCLES", "eevee": "BLENDER_EEVEE"}
# CLEVR's eight colours (its properties.json), used as Blender base colours as CLEVR does.
COLORS: dict[str, tuple[float, float, float]] = {
    name: (r / 255.0, g / 255.0, b / 255.0)
    for name, (r, g, b) in {
        "gray": (87, 87, 87),
        "red": (173, 35, 35),
        "blue": (42, 75, 215),
        "green": (29, 105, 20),
        "brown": (129, 74, 25),
        "purple": (129, 38, 192),
        "cyan": (41, 208, 208),
        "yellow": (255, 238, 51),
    }.items()
}
# A rejected layout is redrawn whole after this many failed placements of one object.
PLACEMENT_ATTEMPTS = 200
LAYOUT_ATTEMPTS = 100
REPORT_PREFIX = "FIELDWORK_RENDERED "
# A grey sky that fills the shadows; its colour is what shows above the horizon.
WORLD_COLOR = (0.35, 0.35, 0.35)
WORLD_STRENGTH = 0.6
SCENE_NAME = "Fieldwork Collection"


class CollectionSetupError(ValueError):
    """Options or an existing collection that cannot be rendered; the message names the option or key."""


# --------------------------------------------------------------------------------------------- options


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make_collection.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="collection folder to write (or complete)")
    parser.add_argument("--count", type=int, default=1000, help="number of images")
    parser.add_argument("--size", type=int, default=32, help="image width and height in pixels (32 or 64)")
    parser.add_argument("--workers", type=int, default=1, help="Blender processes rendering in parallel")
    parser.add_argument("--engine", choices=tuple(ENGINES), default="auto", help="auto is Cycles (measured faster)")
    parser.add_argument("--samples", type=int, default=16, help="render samples per pixel")
    parser.add_argument("--denoise", action="store_true", help="Cycles: denoise (OpenImageDenoise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-objects", type=int, default=1)
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=["cube", "sphere", "cylinder"])
    parser.add_argument("--scale", type=float, nargs=2, default=(0.5, 0.9), metavar=("MIN", "MAX"),
                        help="object half-extent in world units (a unit primitive is 2 across)")  # fmt: skip
    parser.add_argument("--spread", type=float, default=2.0,
                        help="object centres lie within +-SPREAD of the floor centre in x and y")  # fmt: skip
    parser.add_argument("--rotation", type=float, nargs=2, default=(0.0, 360.0), metavar=("MIN", "MAX"),
                        help="rotation about the vertical axis, degrees")  # fmt: skip
    parser.add_argument("--min-gap", type=float, default=0.1, help="free space between two footprints, world units")
    parser.add_argument("--floor-height", type=float, default=0.0)
    parser.add_argument("--floor-center", type=float, nargs=2, default=(0.0, 0.0), metavar=("X", "Y"))
    parser.add_argument("--camera-radius", type=float, nargs=2, default=(8.0, 9.0), metavar=("MIN", "MAX"))
    parser.add_argument("--camera-elevation", type=float, nargs=2, default=(25.0, 40.0), metavar=("MIN", "MAX"),
                        help="degrees above the floor")  # fmt: skip
    parser.add_argument("--camera-azimuth", type=float, nargs=2, default=(0.0, 360.0), metavar=("MIN", "MAX"),
                        help="degrees, counter-clockwise from +X")  # fmt: skip
    parser.add_argument("--lens", type=float, default=35.0, help="focal length in mm (sensor 32 mm wide)")
    parser.add_argument("--light-energy", type=float, nargs=2, default=(2.5, 4.0), metavar=("MIN", "MAX"),
                        help="sun strength, W/m^2")  # fmt: skip
    parser.add_argument("--light-elevation", type=float, nargs=2, default=(35.0, 75.0), metavar=("MIN", "MAX"))
    parser.add_argument("--light-azimuth", type=float, nargs=2, default=(0.0, 360.0), metavar=("MIN", "MAX"))
    parser.add_argument("--blend", type=Path, help="with --assets: the .blend file holding the collection")
    parser.add_argument("--assets", metavar="COLLECTION", help="place copies of this collection's objects")
    # Internal: a worker process renders these indices of an existing collection.json.
    parser.add_argument("--worker-indices", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that decides what the images look like: stored in collection.json, compared on resume."""
    checks = {
        "--count must be at least 1": args.count >= 1,
        "--size must be at least 8 pixels": args.size >= 8,
        "--samples must be at least 1": args.samples >= 1,
        "need 1 <= --min-objects <= --max-objects": 1 <= args.min_objects <= args.max_objects,
        "--scale needs 0 < MIN <= MAX": 0 < args.scale[0] <= args.scale[1],
        "--spread must be positive": args.spread > 0,
        "--min-gap must not be negative": args.min_gap >= 0,
        "--camera-radius needs 0 < MIN <= MAX": 0 < args.camera_radius[0] <= args.camera_radius[1],
        "--camera-elevation needs 0 < MIN <= MAX < 90": 0 < args.camera_elevation[0] <= args.camera_elevation[1] < 90,
        "--lens must be positive": args.lens > 0,
        "--blend and --assets go together": (args.blend is None) == (args.assets is None),
    }
    for message, ok in checks.items():
        if not ok:
            options = [word.strip(",") for word in message.split() if word.startswith("--")]
            given = ", ".join(f"{option} {getattr(args, option[2:].replace('-', '_'))}" for option in options)
            raise CollectionSetupError(f"{message} (given: {given})")
    if args.blend is not None and not args.blend.is_file():
        raise CollectionSetupError(f"--blend {args.blend}: no such .blend file")
    for name in ("rotation", "camera_azimuth", "light_energy", "light_elevation", "light_azimuth"):
        low, high = getattr(args, name)
        if low > high:
            raise CollectionSetupError(f"--{name.replace('_', '-')} needs MIN <= MAX, got {[low, high]}")
    sensor_mm = 32.0
    focal_pixels = args.lens / sensor_mm * args.size
    center_x, center_y = args.floor_center
    source: dict[str, Any] = {"kind": "primitives", "shapes": list(args.shapes), "materials": list(MATERIALS)}
    if args.assets is not None:
        source = {"kind": "assets", "blend": str(args.blend.resolve()), "collection": args.assets}
    return {
        "width": args.size,
        "height": args.size,
        "color_space": "srgb",
        "renderer": {"engine": ENGINES[args.engine], "samples": args.samples, "denoise": bool(args.denoise)},
        "seed": args.seed,
        "source": source,
        "prior": {
            "object_count": {"min": args.min_objects, "max": args.max_objects},
            "object_scale": {"min": args.scale[0], "max": args.scale[1]},
            "object_translation_x": {"min": center_x - args.spread, "max": center_x + args.spread},
            "object_translation_y": {"min": center_y - args.spread, "max": center_y + args.spread},
            "object_rotation_z_deg": {"min": args.rotation[0], "max": args.rotation[1]},
            "min_gap": args.min_gap,
            "floor": {"height": args.floor_height, "center": [center_x, center_y], "up": [0.0, 0.0, 1.0]},
            "camera": {
                "radius": {"min": args.camera_radius[0], "max": args.camera_radius[1]},
                "elevation_deg": {"min": args.camera_elevation[0], "max": args.camera_elevation[1]},
                "azimuth_deg": {"min": args.camera_azimuth[0], "max": args.camera_azimuth[1]},
                "look_at": [center_x, center_y, args.floor_height],
                "lens_mm": args.lens,
                "sensor_width_mm": sensor_mm,
                "fov_x_deg": math.degrees(2 * math.atan(sensor_mm / 2 / args.lens)),
                "fl_x": focal_pixels,
                "fl_y": focal_pixels,
                "cx": args.size / 2,
                "cy": args.size / 2,
            },
            "light": {
                "energy": {"min": args.light_energy[0], "max": args.light_energy[1]},
                "elevation_deg": {"min": args.light_elevation[0], "max": args.light_elevation[1]},
                "azimuth_deg": {"min": args.light_azimuth[0], "max": args.light_azimuth[1]},
            },
        },
    }


# --------------------------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Shape:
    """What the sampler and the scene need of one placeable kind: a primitive or a user's asset."""

    name: str
    footprint: float
    """Radius of the circle around the origin that holds the object's floor footprint, per unit of scale."""
    bottom: float
    """Height of the object's lowest point below its origin, per unit of scale (z = floor + bottom * scale)."""


PRIMITIVE_SHAPES = {
    "cube": Shape("cube", footprint=math.sqrt(2.0), bottom=1.0),
    "sphere": Shape("sphere", footprint=1.0, bottom=1.0),
    "cylinder": Shape("cylinder", footprint=1.0, bottom=1.0),
    "cone": Shape("cone", footprint=1.0, bottom=1.0),
}


def _uniform(rng: np.random.Generator, bounds: dict[str, float]) -> float:
    return float(rng.uniform(bounds["min"], bounds["max"]))


def sample_scene(settings: dict[str, Any], shapes: list[Shape], index: int) -> dict[str, Any]:
    """Image ``index``'s true parameters (the params JSON without the camera matrix): a pure function."""
    prior = settings["prior"]
    rng = np.random.default_rng([settings["seed"], index])
    count = int(rng.integers(prior["object_count"]["min"], prior["object_count"]["max"] + 1))
    floor_z = prior["floor"]["height"]
    for _ in range(LAYOUT_ATTEMPTS):
        objects: list[dict[str, Any]] = []
        for _ in range(count):
            shape = shapes[int(rng.integers(len(shapes)))]
            scale = _uniform(rng, prior["object_scale"])
            radius = shape.footprint * scale
            for _ in range(PLACEMENT_ATTEMPTS):
                x = _uniform(rng, prior["object_translation_x"])
                y = _uniform(rng, prior["object_translation_y"])
                if all(
                    math.hypot(x - other["translation"][0], y - other["translation"][1])
                    >= radius + other["footprint_radius"] + prior["min_gap"]
                    for other in objects
                ):
                    break
            else:
                break  # this object found no room: redraw the layout
            color_name = list(COLORS)[int(rng.integers(len(COLORS)))]
            objects.append(
                {
                    "shape": shape.name,
                    "color": color_name,
                    "color_rgb": list(COLORS[color_name]),
                    "material": MATERIALS[int(rng.integers(len(MATERIALS)))],
                    "scale": scale,
                    "rotation_z_deg": _uniform(rng, prior["object_rotation_z_deg"]),
                    "translation": [x, y, floor_z + shape.bottom * scale],
                    "footprint_radius": radius,
                }
            )
        if len(objects) == count:
            break
    else:
        raise CollectionSetupError(
            f"image {index}: no room for {count} objects without overlap after {LAYOUT_ATTEMPTS} layouts; "
            "lower --max-objects or --scale, or raise --spread"
        )
    camera_prior = prior["camera"]
    light_prior = prior["light"]
    return {
        "objects": objects,
        "camera": {
            "radius": _uniform(rng, camera_prior["radius"]),
            "elevation_deg": _uniform(rng, camera_prior["elevation_deg"]),
            "azimuth_deg": _uniform(rng, camera_prior["azimuth_deg"]),
            "look_at": list(camera_prior["look_at"]),
        },
        "light": {
            "type": "SUN",
            "energy": _uniform(rng, light_prior["energy"]),
            "elevation_deg": _uniform(rng, light_prior["elevation_deg"]),
            "azimuth_deg": _uniform(rng, light_prior["azimuth_deg"]),
        },
    }


def ring_direction(elevation_deg: float, azimuth_deg: float) -> Vector:
    """Unit vector from the floor centre towards a point at this elevation (up from the floor) and azimuth."""
    elevation, azimuth = math.radians(elevation_deg), math.radians(azimuth_deg)
    horizontal = math.cos(elevation)
    return Vector((horizontal * math.cos(azimuth), horizontal * math.sin(azimuth), math.sin(elevation)))


def look_at(location: Vector, target: Vector) -> Matrix:
    """Camera-to-world matrix at ``location`` looking down -Z at ``target``, +Y as up as possible."""
    rotation = (target - location).to_track_quat("-Z", "Y")
    return Matrix.Translation(location) @ rotation.to_matrix().to_4x4()


# --------------------------------------------------------------------------------------------- the Blender scene


class SceneRenderer:
    """One Blender scene (floor, camera, sun, world) that renders image after image of one collection."""

    def __init__(self, settings: dict[str, Any], threads: int = 0) -> None:
        self.settings = settings
        source = settings["source"]
        if source["kind"] == "assets":
            blend = Path(source["blend"])
            if not blend.is_file():
                raise CollectionSetupError(f"--blend {blend}: no such .blend file")
            bpy.ops.wm.open_mainfile(filepath=str(blend))
            assets = bpy.data.collections.get(source["collection"])
            if assets is None:
                raise CollectionSetupError(f"{blend}: no collection named {source['collection']!r} for --assets")
            self.templates = {
                obj.name: obj for obj in sorted(assets.objects, key=lambda o: o.name) if obj.type in ("MESH", "CURVE")
            }
            if not self.templates:
                raise CollectionSetupError(f"{blend}: collection {source['collection']!r} holds no mesh objects")
            self.shapes = [self._asset_shape(obj) for obj in self.templates.values()]
            self.scene = bpy.data.scenes.new(SCENE_NAME)
        else:
            bpy.ops.wm.read_homefile(use_empty=True)
            self.scene = bpy.context.scene
            self.meshes = {name: _primitive_mesh(name) for name in source["shapes"]}
            self.shapes = [PRIMITIVE_SHAPES[name] for name in source["shapes"]]
        self._configure_render(threads)
        self._build_stage()
        self.placed: list[bpy.types.Object] = []
        max_objects = settings["prior"]["object_count"]["max"]
        # One material per object slot, its colour and metalness set per image: only values change, so
        # Eevee never recompiles a shader and no datablocks pile up over thousands of images.
        self.materials = [_new_material(f"Fieldwork Object {slot}") for slot in range(max_objects)]

    @staticmethod
    def _asset_shape(template: bpy.types.Object) -> Shape:
        """An asset normalised so that scale 1 means a half-extent of 1 world unit, as for the primitives."""
        half_extent = _asset_half_extent(template)
        corners = _asset_corners(template) / half_extent
        footprint = float(np.hypot(corners[:, 0], corners[:, 1]).max())
        return Shape(template.name, footprint=footprint, bottom=float(-corners[:, 2].min()))

    def _configure_render(self, threads: int) -> None:
        renderer = self.settings["renderer"]
        render = self.scene.render
        render.engine = renderer["engine"]
        render.resolution_x = self.settings["width"]
        render.resolution_y = self.settings["height"]
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.film_transparent = False
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGB"
        render.image_settings.color_depth = "8"
        if threads > 0:
            render.threads_mode = "FIXED"
            render.threads = threads
        # Standard (not AgX/Filmic): the PNG holds plain sRGB of the scene-linear colours.
        self.scene.display_settings.display_device = "sRGB"
        self.scene.view_settings.view_transform = "Standard"
        self.scene.view_settings.look = "None"
        if renderer["engine"] == "CYCLES":
            cycles = self.scene.cycles
            cycles.device = "CPU"
            cycles.samples = renderer["samples"]
            cycles.use_denoising = renderer["denoise"]
            cycles.use_adaptive_sampling = False
            # Metal needs one glossy bounce to look like metal; more bounces only cost time at 32 px.
            cycles.max_bounces = 2
            cycles.diffuse_bounces = 1
            cycles.glossy_bounces = 1
            cycles.transmission_bounces = 0
            cycles.volume_bounces = 0
            cycles.transparent_max_bounces = 0
            cycles.caustics_reflective = cycles.caustics_refractive = False
        else:
            self.scene.eevee.taa_render_samples = renderer["samples"]

    def _build_stage(self) -> None:
        prior = self.settings["prior"]
        floor_z = prior["floor"]["height"]
        center_x, center_y = prior["floor"]["center"]
        world = bpy.data.worlds.new("Fieldwork Collection World")
        self.scene.world = world
        if bpy.app.version < (5, 0, 0):  # node trees are always on from 5.0 (the switch is deprecated there)
            world.use_nodes = True
        background = next(node for node in world.node_tree.nodes if node.type == "BACKGROUND")
        background.inputs["Color"].default_value = (*WORLD_COLOR, 1.0)
        background.inputs["Strength"].default_value = WORLD_STRENGTH

        floor_mesh = bpy.data.meshes.new("Fieldwork Floor")
        builder = bmesh.new()
        bmesh.ops.create_grid(builder, x_segments=1, y_segments=1, size=50.0)
        builder.to_mesh(floor_mesh)
        builder.free()
        floor = bpy.data.objects.new("Fieldwork Floor", floor_mesh)
        floor.location = (center_x, center_y, floor_z)
        material = _new_material("Fieldwork Floor")
        shader = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
        shader.inputs["Base Color"].default_value = (0.45, 0.45, 0.45, 1.0)
        shader.inputs["Roughness"].default_value = 0.9
        floor_mesh.materials.append(material)
        self.scene.collection.objects.link(floor)

        camera_data = bpy.data.cameras.new("Fieldwork Camera")
        camera_prior = prior["camera"]
        camera_data.lens = camera_prior["lens_mm"]
        camera_data.sensor_width = camera_prior["sensor_width_mm"]
        camera_data.sensor_fit = "HORIZONTAL"
        camera_data.clip_start = 0.1
        camera_data.clip_end = 200.0
        self.camera = bpy.data.objects.new("Fieldwork Camera", camera_data)
        self.scene.collection.objects.link(self.camera)
        self.scene.camera = self.camera

        light_data = bpy.data.lights.new("Fieldwork Sun", "SUN")
        light_data.angle = math.radians(5.0)
        self.light = bpy.data.objects.new("Fieldwork Sun", light_data)
        self.scene.collection.objects.link(self.light)

    def render(self, index: int, image_path: Path, params_path: Path) -> None:
        """Set up image ``index``, render it to ``image_path`` and write its parameters, both atomically."""
        params = sample_scene(self.settings, self.shapes, index)
        for obj in self.placed:
            bpy.data.objects.remove(obj, do_unlink=True)
        self.placed = []
        for slot, spec in enumerate(params["objects"]):
            self.placed.append(self._place(slot, spec))

        camera = params["camera"]
        target = Vector(camera["look_at"])
        location = target + ring_direction(camera["elevation_deg"], camera["azimuth_deg"]) * camera["radius"]
        self.camera.matrix_world = look_at(location, target)
        light = params["light"]
        light_direction = ring_direction(light["elevation_deg"], light["azimuth_deg"])
        self.light.matrix_world = look_at(target + light_direction * 20.0, target)
        self.light.data.energy = light["energy"]
        self.scene.view_layers[0].update()

        camera_prior = self.settings["prior"]["camera"]
        camera["camera_to_world"] = [list(row) for row in self.camera.matrix_world]
        for key in ("lens_mm", "sensor_width_mm", "fov_x_deg", "fl_x", "fl_y", "cx", "cy"):
            camera[key] = camera_prior[key]
        camera["w"], camera["h"] = self.settings["width"], self.settings["height"]
        light["direction"] = list(light_direction)
        light["world_color"], light["world_strength"] = list(WORLD_COLOR), WORLD_STRENGTH

        bpy.ops.render.render(scene=self.scene.name)
        result = bpy.data.images["Render Result"]
        write_atomic(image_path, lambda temporary: result.save_render(filepath=str(temporary), scene=self.scene))
        document = {"index": index, "image": f"{IMAGES_FOLDER}/{image_path.name}", **params}
        write_text_atomic(params_path, json.dumps(document, indent=1) + "\n")

    def _place(self, slot: int, spec: dict[str, Any]) -> bpy.types.Object:
        if self.settings["source"]["kind"] == "assets":
            template = self.templates[spec["shape"]]
            obj = template.copy()
            obj.parent = None
            factor = spec["scale"] / _asset_half_extent(template)
            obj.scale = tuple(component * factor for component in template.scale)
            # A user's asset keeps its own materials; its colour fields say so.
            spec["color"], spec["color_rgb"], spec["material"] = None, None, None
        else:
            obj = bpy.data.objects.new(f"Fieldwork {spec['shape']}", self.meshes[spec["shape"]])
            obj.scale = (spec["scale"],) * 3
            material = self.materials[slot]
            shader = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
            shader.inputs["Base Color"].default_value = (*spec["color_rgb"], 1.0)
            metal = spec["material"] == "metal"
            shader.inputs["Metallic"].default_value = 1.0 if metal else 0.0
            shader.inputs["Roughness"].default_value = 0.25 if metal else 0.9
            # Objects share one mesh per shape: the colour belongs to the object's slot, not the mesh's.
            obj.material_slots[0].link = "OBJECT"
            obj.material_slots[0].material = material
        obj.rotation_mode = "XYZ"
        obj.rotation_euler = (0.0, 0.0, math.radians(spec["rotation_z_deg"]))
        obj.location = spec["translation"]
        self.scene.collection.objects.link(obj)
        return obj


def _asset_corners(template: bpy.types.Object) -> np.ndarray:
    """(8, 3) bounding-box corners in the asset's own frame with its scale (its rotation is replaced)."""
    return np.array([list(corner) for corner in template.bound_box]) * np.array(template.scale)


def _asset_half_extent(template: bpy.types.Object) -> float:
    corners = _asset_corners(template)
    half_extent = float((corners.max(axis=0) - corners.min(axis=0)).max() / 2)
    if half_extent <= 0:
        raise CollectionSetupError(f"asset {template.name!r} has an empty bounding box")
    return half_extent


def _new_material(name: str) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    return material


def _primitive_mesh(shape: str) -> bpy.types.Mesh:
    """The primitive 2 units across (half-extent 1), centred on its origin."""
    mesh_data = bpy.data.meshes.new(f"Fieldwork {shape}")
    builder = bmesh.new()
    try:
        if shape == "cube":
            bmesh.ops.create_cube(builder, size=2.0)
        elif shape == "sphere":
            bmesh.ops.create_uvsphere(builder, u_segments=24, v_segments=12, radius=1.0)
        elif shape == "cylinder":
            bmesh.ops.create_cone(builder, cap_ends=True, segments=24, radius1=1.0, radius2=1.0, depth=2.0)
        else:
            bmesh.ops.create_cone(builder, cap_ends=True, segments=24, radius1=1.0, radius2=0.0, depth=2.0)
        builder.to_mesh(mesh_data)
    finally:
        builder.free()
    # One slot that each object fills with its own material (the slot links to the object).
    mesh_data.materials.append(None)
    for polygon in mesh_data.polygons:
        # Smooth the round sides; a cylinder's flat caps shade oddly when smoothed, but at 32 px nobody sees it.
        polygon.use_smooth = shape != "cube"
    return mesh_data


# --------------------------------------------------------------------------------------------- the collection


def image_name(index: int) -> str:
    return f"{index:06d}"


def missing_indices(out: Path, count: int) -> list[int]:
    """Indices whose image or parameter file is not there yet (a crash between the two re-renders the image)."""
    return [
        index
        for index in range(count)
        if not (out / IMAGES_FOLDER / f"{image_name(index)}.png").is_file()
        or not (out / PARAMS_FOLDER / f"{image_name(index)}.json").is_file()
    ]


def collection_document(settings: dict[str, Any], count: int, complete: bool) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "complete": complete,
        "count": count,
        **settings,
        "images": [
            {"image": f"{IMAGES_FOLDER}/{image_name(i)}.png", "params": f"{PARAMS_FOLDER}/{image_name(i)}.json"}
            for i in range(count)
        ],
    }


def check_resumable(
    out: Path,
    settings: dict[str, Any],
    index_name: str = COLLECTION_NAME,
    error: type[Exception] = CollectionSetupError,
) -> None:
    """An existing index (collection.json) must describe the same images, or resuming would mix two
    collections; ``error`` is raised, naming the file and the first setting that differs."""
    path = out / index_name
    if not path.is_file():
        return
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as unreadable:
        raise error(f"{path}: unreadable ({unreadable}); remove it or choose another --out") from unreadable
    for key, value in settings.items():
        if existing.get(key) != value:
            raise error(
                f"{path}: {key!r} is {json.dumps(existing.get(key))}, this command asks for {json.dumps(value)}; "
                "a collection is completed with the options it was started with (or choose another --out)"
            )


def encode_indices(indices: Iterable[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8": a shard's indices as one short argument."""
    parts: list[str] = []
    ordered = sorted(indices)
    start = previous = None
    for index in [*ordered, None]:
        if start is not None and (index is None or index != previous + 1):  # type: ignore[operator]
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if index is not None and start is None:
            start = index
        previous = index
    return ",".join(parts)


def decode_indices(text: str) -> list[int]:
    indices: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        indices.extend(range(int(low), int(high or low) + 1))
    return indices


class ProgressBar:
    """``images [#####-----] 512/1000  3.8 images/s  2:08 left``; one line per few seconds when not a terminal."""

    WIDTH = 30
    LOG_INTERVAL_S = 5.0

    def __init__(self, total: int, already: int) -> None:
        self.total, self.already, self.done = total, already, 0
        self.start = self._last = time.monotonic()
        self.interactive = sys.stdout.isatty()

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        finished = self.done == self.total
        if not (self.interactive or finished or now - self._last >= self.LOG_INTERVAL_S):
            return
        self._last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = round(self.WIDTH * self.done / max(self.total, 1))
        line = (
            f"images [{'#' * filled}{'-' * (self.WIDTH - filled)}] {self.already + self.done}/"
            f"{self.already + self.total}  {rate:.2f} images/s  {int(left) // 60}:{int(left) % 60:02d} left"
        )
        print(("\r" + line) if self.interactive else line, end="" if self.interactive and not finished else "\n",
              flush=True)  # fmt: skip

    def summary(self) -> str:
        elapsed = time.monotonic() - self.start
        return (
            f"rendered {self.done} images in {elapsed:.1f} s ({self.done / max(elapsed, 1e-9):.2f} images/s); "
            f"{self.already} were already there"
        )


def render_in_workers(out: Path, indices: list[int], workers: int, advance: Callable[[], None]) -> None:
    """Render ``indices`` in ``workers`` child processes, each a disjoint round-robin shard.

    Each child's stdout and stderr share one pipe, read by a thread of its own, so no child ever blocks on a
    full pipe; a child's failure ends the others and raises with the tail of its output.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    script = Path(__file__).resolve()
    if bpy.app.binary_path and Path(bpy.app.binary_path).name.lower().startswith("blender"):
        # Inside the Blender binary: children are Blender too (sys.executable is its bundled Python).
        prefix = [bpy.app.binary_path, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(script)]
    else:
        prefix = [sys.executable, str(script)]
    events: queue.Queue[tuple[int, str | None]] = queue.Queue()
    children: list[subprocess.Popen[str]] = []
    tails: list[list[str]] = []

    def read(worker: int, stream: Any) -> None:
        for line in stream:
            events.put((worker, line.rstrip("\n")))
        events.put((worker, None))

    for worker in range(workers):
        shard = indices[worker::workers]
        if not shard:
            continue
        command = [*prefix, "--", "--out", str(out), "--worker-indices", encode_indices(shard)]
        command += ["--threads", str(threads)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        children.append(child)
        tails.append([])
        threading.Thread(target=read, args=(len(children) - 1, child.stdout), daemon=True).start()
    running = len(children)
    try:
        while running:
            worker, line = events.get()
            if line is None:
                running -= 1
                if children[worker].wait() != 0:
                    tail = "\n".join(tails[worker][-30:])
                    raise RuntimeError(f"worker {worker} failed (exit {children[worker].returncode}):\n{tail}")
            elif line.startswith(REPORT_PREFIX):
                advance()
            else:
                tails[worker] = [*tails[worker][-60:], line]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def run_worker(out: Path, indices: list[int], threads: int, report: Callable[[int], None]) -> None:
    document = json.loads((out / COLLECTION_NAME).read_text(encoding="utf-8"))
    settings = {key: document[key] for key in ("width", "height", "color_space", "renderer", "seed", "source", "prior")}
    renderer = SceneRenderer(settings, threads=threads)
    for index in indices:
        name = image_name(index)
        renderer.render(index, out / IMAGES_FOLDER / f"{name}.png", out / PARAMS_FOLDER / f"{name}.json")
        report(index)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out = args.out.resolve()
    if args.worker_indices is not None:
        run_worker(out, decode_indices(args.worker_indices), args.threads,
                   lambda index: print(f"{REPORT_PREFIX}{index}", flush=True))  # fmt: skip
        return 0
    try:
        settings = settings_from_arguments(args)
        if args.workers < 1:
            raise CollectionSetupError(f"--workers must be at least 1, got {args.workers}")
        check_resumable(out, settings)
    except CollectionSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    (out / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    (out / PARAMS_FOLDER).mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / COLLECTION_NAME, json.dumps(collection_document(settings, args.count, False), indent=1))
    todo = missing_indices(out, args.count)
    progress = ProgressBar(len(todo), args.count - len(todo))
    engine = settings["renderer"]["engine"]
    print(f"{out}: {len(todo)} of {args.count} images to render at {args.size}x{args.size} with {engine}, "
          f"{min(args.workers, max(len(todo), 1))} worker(s)", flush=True)  # fmt: skip
    try:
        if todo and args.workers == 1:
            run_worker(out, todo, 0, lambda index: progress.advance())
        elif todo:
            render_in_workers(out, todo, args.workers, progress.advance)
    except (CollectionSetupError, RuntimeError) as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    still_missing = missing_indices(out, args.count)
    if still_missing:
        print(f"error: images {encode_indices(still_missing)} are still missing", file=sys.stderr)
        return 1
    write_text_atomic(out / COLLECTION_NAME, json.dumps(collection_document(settings, args.count, True), indent=1))
    print(progress.summary(), flush=True)
    print(out / COLLECTION_NAME)
    return 0


def _iter_argv() -> Iterator[str]:
    yield from sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


if __name__ == "__main__":
    sys.exit(main(list(_iter_argv())))
