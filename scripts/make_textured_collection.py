"""Render a collection of textured shapes for conditional texture fields (Texture Fields, Oechsle et al. 2019).

In Blender:      blender -b --python-exit-code 1 --python scripts/make_textured_collection.py -- --out DIR
With bpy module: python scripts/make_textured_collection.py -- --out DIR --shapes 40 --views 12 --size 64

Each shape is a procedural solid (a box or a surface of revolution: sphere, cylinder, cone, vase with a random
profile) scaled differently along each axis, with a procedural two-colour texture on its generated coordinates
(stripes along an axis, a checker, or a gradient; colours and frequencies drawn at random). It is rendered with
Cycles from ``--views`` cameras spread over the sphere around it (a Fibonacci lattice turned at random), with an
emission shader: the pixels are the surface colour itself, which is what a texture field predicts.

What is written in ``--out``::

    textured_collection.json          format, version, the options, the shape list; "complete": false until
                                      every shape is there
    shapes/shape_0007/mesh.ply        the shape's triangles in world units (Blender axes)
    shapes/shape_0007/transforms.json its cameras (Blender matrix_world, exact pinhole intrinsics) and images,
                                      a dataset engine/data/transforms.py reads (a single-scene texture_field
                                      trains on it as it is)
    shapes/shape_0007/images/003.png  RGBA, sRGB (Standard view transform), transparent background
    shapes/shape_0007/texture.json    the texture's true parameters: for evaluation only, never for training

A shape's texture and cameras are drawn from ``numpy.random.default_rng([seed, index, 1])``, its geometry from
``default_rng([seed, index // textures, 0])``: with ``--textures K`` every K consecutive shapes share a geometry
(each with its own texture), so the texture cannot be told from the shape alone. Re-running the same command skips
the shapes already written (its transforms.json is written last) and completes the collection; a larger
``--shapes`` extends it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# With the bpy module, bmesh and mathutils are importable only once bpy is imported.
import bpy  # noqa: E402

# isort: split
import numpy as np  # noqa: E402
from mathutils import Vector  # noqa: E402

from engine.atomic import write_atomic, write_text_atomic  # noqa: E402
from engine.data.textured_collection import (  # noqa: E402
    FORMAT,
    FORMAT_VERSION,
    INDEX_NAME,
    SHAPES_FOLDER,
    shape_name,
)
from engine.data.transforms import Frame, Intrinsics, SceneBox, Transforms, write_transforms  # noqa: E402
from engine.mesh.io import write_mesh  # noqa: E402
from engine.mesh.triangle_mesh import TriangleMesh  # noqa: E402
from scripts import make_collection, scenes  # noqa: E402

KINDS = ("box", "sphere", "cylinder", "cone", "vase")
PATTERNS = ("stripes", "checker", "gradient")
LENS_MM = 50.0
SENSOR_MM = 36.0
# The shape's bounding sphere fills this share of the half field of view.
FRAME_FILL = 0.9
SEGMENTS = 32  # around a surface of revolution
PROFILE_POINTS = 12  # along its profile, poles excluded


class TexturedCollectionError(ValueError):
    """Options or an existing collection that cannot be rendered; the message names the option or key."""


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make_textured_collection.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="collection folder to write (or complete)")
    parser.add_argument("--shapes", type=int, default=40, help="number of shapes")
    parser.add_argument("--views", type=int, default=12, help="cameras (images) per shape")
    parser.add_argument("--size", type=int, default=64, help="image width and height in pixels")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per pixel (antialiasing only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--textures",
        type=int,
        default=1,
        help="consecutive shapes sharing one geometry, each with its own texture: a shape's code then cannot "
        "tell its texture, only the image can (hold out a multiple of this many shapes, for unseen geometry)",
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="shape kinds drawn from")
    parser.add_argument("--patterns", nargs="+", choices=PATTERNS, default=list(PATTERNS), help="texture patterns")
    parser.add_argument("--threads", type=int, default=0, help="Cycles threads (0: all cores)")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the images: a collection is completed only with the same settings."""
    for name in ("shapes", "views", "size", "samples", "textures"):
        if getattr(args, name) < 1:
            raise TexturedCollectionError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.views < 2:
        raise TexturedCollectionError(
            f"--views must be at least 2 (a conditioning view and a target), got {args.views}"
        )
    return {
        "views": args.views,
        "size": args.size,
        "samples": args.samples,
        "seed": args.seed,
        "textures": args.textures,
        "kinds": sorted(args.kinds),
        "patterns": sorted(args.patterns),
        "renderer": {"engine": "CYCLES", "shader": "emission", "view_transform": "Standard"},
        "color_space": "srgb",
    }


def check_resumable(out: Path, settings: dict[str, Any]) -> None:
    make_collection.check_resumable(out, settings, INDEX_NAME, TexturedCollectionError)


def index_document(settings: dict[str, Any], count: int, complete: bool) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "complete": complete,
        **settings,
        "shapes": [shape_name(index) for index in range(count)],
    }


def shape_is_done(folder: Path) -> bool:
    return (folder / "transforms.json").is_file() and (folder / "mesh.ply").is_file()


# --------------------------------------------------------------------------------------------- draws


def draw_shape(settings: dict[str, Any], index: int) -> dict[str, Any]:
    """A shape's parameters: geometry (kind, profile, scale per axis) from its geometry's random stream, which
    ``textures`` consecutive shapes share, and texture and cameras from its own."""
    geometry_index = index // settings["textures"]
    rng = np.random.default_rng([settings["seed"], geometry_index, 0])
    kind = str(rng.choice(settings["kinds"]))
    profile = None
    if kind == "vase":
        # radii at PROFILE_POINTS heights: a smooth random profile, never thinner than a third
        knots = rng.uniform(0.35, 1.0, size=4)
        heights = np.linspace(0.0, 1.0, PROFILE_POINTS)
        profile = np.interp(heights, np.linspace(0.0, 1.0, 4), knots).tolist()
    scale = rng.uniform(0.6, 1.0, size=3).round(4).tolist()
    rng = np.random.default_rng([settings["seed"], index, 1])
    colours = rng.uniform(0.05, 0.95, size=(2, 3))
    while np.abs(colours[0] - colours[1]).sum() < 0.6:  # two colours an image can tell apart
        colours = rng.uniform(0.05, 0.95, size=(2, 3))
    pattern = str(rng.choice(settings["patterns"]))
    return {
        "index": index,
        "name": shape_name(index),
        "geometry": geometry_index,
        "kind": kind,
        "profile": profile,
        "scale": scale,
        "texture": {
            "pattern": pattern,
            "axis": int(rng.integers(0, 3)),
            "frequency": float(rng.integers(2, 5)),
            "colour_a_srgb": colours[0].round(4).tolist(),
            "colour_b_srgb": colours[1].round(4).tolist(),
            "coordinates": "generated",
        },
        "camera_turn_deg": float(rng.uniform(0.0, 360.0)),
    }


# --------------------------------------------------------------------------------------------- geometry


def revolved(radii: list[float], heights: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A closed surface of revolution about +Z: rings of the given radii at the given heights (z in -1..1),
    a pole below the first ring and above the last. Faces counter-clockwise seen from outside."""
    angles = np.linspace(0.0, 2.0 * math.pi, SEGMENTS, endpoint=False)
    rings = [
        np.stack([r * np.cos(angles), r * np.sin(angles), np.full(SEGMENTS, z)], axis=1)
        for r, z in zip(radii, heights, strict=True)
    ]
    bottom, top = np.array([[0.0, 0.0, heights[0]]]), np.array([[0.0, 0.0, heights[-1]]])
    vertices = np.concatenate([bottom, *rings, top])
    faces = []
    nxt = (np.arange(SEGMENTS) + 1) % SEGMENTS
    ring = lambda k: 1 + k * SEGMENTS  # noqa: E731
    for j in range(SEGMENTS):
        faces.append([0, ring(0) + nxt[j], ring(0) + j])
    for k in range(len(radii) - 1):
        for j in range(SEGMENTS):
            a, b = ring(k) + j, ring(k) + nxt[j]
            c, d = ring(k + 1) + nxt[j], ring(k + 1) + j
            faces += [[a, b, c], [a, c, d]]
    last = len(vertices) - 1
    for j in range(SEGMENTS):
        faces.append([last, ring(len(radii) - 1) + j, ring(len(radii) - 1) + nxt[j]])
    return vertices, np.asarray(faces, dtype=np.int64)


def box() -> tuple[np.ndarray, np.ndarray]:
    """A cube 2 across, each side split in 4 x 4 quads (a texture's stripes need vertices to vary over)."""
    steps = np.linspace(-1.0, 1.0, 5)
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            base = len(vertices)
            for v in steps:
                for u in steps:
                    point = [0.0, 0.0, 0.0]
                    point[axis], point[u_axis], point[v_axis] = sign, u, v
                    vertices.append(point)
            for row in range(4):
                for column in range(4):
                    a = base + row * 5 + column
                    quad = [a, a + 1, a + 6, a + 5]
                    if sign < 0:
                        quad.reverse()
                    faces += [[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]]
    return np.asarray(vertices), np.asarray(faces, dtype=np.int64)


def shape_geometry(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """World vertices and faces of the shape (centred on the origin, scaled per axis)."""
    kind = params["kind"]
    if kind == "box":
        vertices, faces = box()
    else:
        heights = np.linspace(-1.0, 1.0, PROFILE_POINTS)
        if kind == "sphere":
            polar = np.linspace(math.pi, 0.0, PROFILE_POINTS + 2)[1:-1]
            radii, heights = np.sin(polar), np.cos(polar)
            vertices, faces = revolved(radii.tolist(), heights.tolist())
            vertices[0, 2], vertices[-1, 2] = -1.0, 1.0
        elif kind == "cylinder":
            vertices, faces = revolved([1.0] * PROFILE_POINTS, heights.tolist())
        elif kind == "cone":
            vertices, faces = revolved(np.linspace(1.0, 0.05, PROFILE_POINTS).tolist(), heights.tolist())
        else:
            vertices, faces = revolved(list(params["profile"]), heights.tolist())
    return vertices * np.asarray(params["scale"]), faces


# --------------------------------------------------------------------------------------------- Blender


def srgb_to_linear(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def texture_material(texture: dict[str, Any]) -> bpy.types.Material:
    """Emission of colour A or B (linear) mixed by the pattern's factor on the generated coordinates."""
    material = bpy.data.materials.new("Fieldwork Texture")
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    coordinates = nodes.new("ShaderNodeTexCoord")
    frequency = texture["frequency"]
    if texture["pattern"] == "checker":
        checker = nodes.new("ShaderNodeTexChecker")
        checker.inputs["Scale"].default_value = frequency
        links.new(coordinates.outputs["Generated"], checker.inputs["Vector"])
        checker.inputs["Color1"].default_value = (1.0, 1.0, 1.0, 1.0)
        checker.inputs["Color2"].default_value = (0.0, 0.0, 0.0, 1.0)
        factor = checker.outputs["Fac"]
    else:
        separate = nodes.new("ShaderNodeSeparateXYZ")
        links.new(coordinates.outputs["Generated"], separate.inputs["Vector"])
        coordinate = separate.outputs[texture["axis"]]
        if texture["pattern"] == "stripes":
            scaled = nodes.new("ShaderNodeMath")
            scaled.operation = "MULTIPLY_ADD"
            scaled.inputs[1].default_value = frequency
            # a quarter stripe of phase: the box's faces and the caps (coordinate 0 or 1) lie inside a stripe,
            # not on an edge between two where the pixels would flicker between both colours
            scaled.inputs[2].default_value = 0.25
            links.new(coordinate, scaled.inputs[0])
            fraction = nodes.new("ShaderNodeMath")
            fraction.operation = "FRACT"
            links.new(scaled.outputs[0], fraction.inputs[0])
            step = nodes.new("ShaderNodeMath")
            step.operation = "GREATER_THAN"
            step.inputs[1].default_value = 0.5
            links.new(fraction.outputs[0], step.inputs[0])
            factor = step.outputs[0]
        else:  # gradient: A at the axis' low end, B at its high end
            factor = coordinate
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.clamp_factor = True
    links.new(factor, mix.inputs["Factor"])
    # the Mix node has an A and a B socket per data type; the colour ones are those of RGBA
    colour_a = next(socket for socket in mix.inputs if socket.name == "A" and socket.type == "RGBA")
    colour_b = next(socket for socket in mix.inputs if socket.name == "B" and socket.type == "RGBA")
    colour_a.default_value = (*(srgb_to_linear(c) for c in texture["colour_a_srgb"]), 1.0)
    colour_b.default_value = (*(srgb_to_linear(c) for c in texture["colour_b_srgb"]), 1.0)
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    result = next(socket for socket in mix.outputs if socket.type == "RGBA")
    links.new(result, emission.inputs["Color"])
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def camera_directions(count: int, turn_deg: float) -> list[Vector]:
    """A Fibonacci lattice over the sphere, turned about +Z: every side of the shape is seen."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    turn = math.radians(turn_deg)
    directions = []
    for index in range(count):
        z = 1.0 - (2 * index + 1) / count
        azimuth = golden * index + turn
        horizontal = math.sqrt(max(0.0, 1.0 - z * z))
        directions.append(Vector((horizontal * math.cos(azimuth), horizontal * math.sin(azimuth), z)))
    return directions


class ShapeRenderer:
    """One Blender scene reused for every shape: the shape object, one camera moved between views."""

    def __init__(self, settings: dict[str, Any], threads: int) -> None:
        bpy.ops.wm.read_homefile(use_empty=True)
        self.settings = settings
        self.scene = bpy.context.scene
        render = self.scene.render
        render.engine = "CYCLES"
        render.resolution_x = render.resolution_y = settings["size"]
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.film_transparent = True
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        render.image_settings.color_depth = "8"
        if threads:
            render.threads_mode, render.threads = "FIXED", threads
        self.scene.display_settings.display_device = "sRGB"
        self.scene.view_settings.view_transform = "Standard"
        self.scene.view_settings.look = "None"
        cycles = self.scene.cycles
        cycles.device = "CPU"
        cycles.samples = settings["samples"]
        cycles.use_denoising = False
        cycles.use_adaptive_sampling = False
        cycles.max_bounces = 0  # emission seen directly: the pixel is the surface colour
        self.scene.world = bpy.data.worlds.new("Fieldwork Black")
        self.scene.world.color = (0.0, 0.0, 0.0)
        camera_data = bpy.data.cameras.new("Fieldwork Camera")
        camera_data.lens, camera_data.sensor_width, camera_data.sensor_fit = LENS_MM, SENSOR_MM, "AUTO"
        self.camera = bpy.data.objects.new("Fieldwork Camera", camera_data)
        self.scene.collection.objects.link(self.camera)
        self.scene.camera = self.camera
        size = settings["size"]
        focal = LENS_MM * size / SENSOR_MM  # AUTO fit on a square image: the sensor spans the width
        self.intrinsics = Intrinsics(fl_x=focal, fl_y=focal, cx=size / 2.0, cy=size / 2.0, width=size, height=size)

    def render_shape(self, folder: Path, params: dict[str, Any], report: Any) -> None:
        vertices, faces = shape_geometry(params)
        mesh_data = bpy.data.meshes.new(params["name"])
        mesh_data.from_pydata(vertices.tolist(), [], faces.tolist())
        mesh_data.update()
        mesh_data.materials.append(texture_material(params["texture"]))
        shape = bpy.data.objects.new(params["name"], mesh_data)
        self.scene.collection.objects.link(shape)
        try:
            self._render_views(folder, params, vertices, report)
            write_mesh(TriangleMesh(vertices=vertices, faces=faces), folder / "mesh.ply", overwrite=True)
        finally:
            material = mesh_data.materials[0]
            bpy.data.objects.remove(shape, do_unlink=True)
            bpy.data.meshes.remove(mesh_data)
            bpy.data.materials.remove(material)

    def _render_views(self, folder: Path, params: dict[str, Any], vertices: np.ndarray, report: Any) -> None:
        radius = float(np.linalg.norm(vertices, axis=1).max())
        half_fov = math.atan(SENSOR_MM / 2 / LENS_MM)
        distance = radius / (math.sin(half_fov) * FRAME_FILL)
        self.camera.data.clip_start = max(distance - 2 * radius, 0.01) / 2
        self.camera.data.clip_end = distance + 2 * radius
        (folder / "images").mkdir(parents=True, exist_ok=True)
        frames = []
        origin = Vector((0.0, 0.0, 0.0))
        for view, direction in enumerate(camera_directions(self.settings["views"], params["camera_turn_deg"])):
            self.camera.matrix_world = scenes.look_at(direction * distance, origin)
            self.scene.view_layers[0].update()
            image = folder / "images" / f"{view:03d}.png"
            bpy.ops.render.render(scene=self.scene.name)
            self._save_render(image)
            matrix = [[float(value) for value in row] for row in self.camera.matrix_world]
            frames.append(Frame(f"images/{view:03d}.png", matrix, self.intrinsics, name=f"view {view:03d}"))
            report()
        low, high = vertices.min(axis=0) - 0.05 * radius, vertices.max(axis=0) + 0.05 * radius
        box = SceneBox(tuple(float(v) for v in low), tuple(float(v) for v in high))  # type: ignore[arg-type]
        write_text_atomic(folder / "texture.json", json.dumps(params, indent=1) + "\n")
        # transforms.json last: it marks the shape complete
        write_transforms(folder, Transforms(frames, folder, scene_box=box, color_space="srgb", has_alpha=True))

    def _save_render(self, path: Path) -> None:
        result = bpy.data.images["Render Result"]
        write_atomic(path, lambda temporary: result.save_render(filepath=str(temporary), scene=self.scene))


class ProgressBar:
    """``images [#####-----] 120/480  9.1 images/s  0:39 left``, one line per few seconds off a terminal."""

    WIDTH = 30

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.start = self._last = time.monotonic()
        self.interactive = sys.stdout.isatty()

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        finished = self.done == self.total
        if not (self.interactive or finished or now - self._last >= 5.0):
            return
        self._last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = round(self.WIDTH * self.done / max(self.total, 1))
        line = (
            f"images [{'#' * filled}{'-' * (self.WIDTH - filled)}] {self.done}/{self.total}  "
            f"{rate:.2f} images/s  {int(left) // 60}:{int(left) % 60:02d} left"
        )
        end = "" if self.interactive and not finished else "\n"
        print(("\r" + line) if self.interactive else line, end=end, flush=True)


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out = args.out.resolve()
    try:
        settings = settings_of(args)
        check_resumable(out, settings)
    except TexturedCollectionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    (out / SHAPES_FOLDER).mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / INDEX_NAME, json.dumps(index_document(settings, args.shapes, False), indent=1) + "\n")
    todo = [index for index in range(args.shapes) if not shape_is_done(out / SHAPES_FOLDER / shape_name(index))]
    print(f"{out}: {len(todo)} of {args.shapes} shapes to render, {args.views} views each at "
          f"{args.size}x{args.size} with Cycles", flush=True)  # fmt: skip
    started = time.monotonic()
    if todo:
        renderer = ShapeRenderer(settings, args.threads)
        progress = ProgressBar(len(todo) * args.views)
        for index in todo:
            renderer.render_shape(
                out / SHAPES_FOLDER / shape_name(index), draw_shape(settings, index), progress.advance
            )
    write_text_atomic(out / INDEX_NAME, json.dumps(index_document(settings, args.shapes, True), indent=1) + "\n")
    elapsed = time.monotonic() - started
    print(f"rendered {len(todo)} shapes ({len(todo) * args.views} images) in {elapsed:.1f} s; "
          f"{args.shapes - len(todo)} were already there", flush=True)  # fmt: skip
    print(out / INDEX_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]))
