"""Generated layouts as Blender objects: a GIRAFFE run's objects are empties you move, re-rendered as you edit.

The collection "Fieldwork Layout" holds what a layout is in Blender:

- "Layout Floor", an empty at the world origin: the collection's floor frame. Layout coordinates are the
  collection's own (Blender world units, +Z up, the floor at ``z = floor.height``), so a model trained on
  Blender-made data generates where that data's floor was; moving this empty moves the whole layout.
- one empty per object (display: the cube [-1, 1]^3, so its scale is the object's half-extent), child of the
  floor: location = the object's centre, rotation Z = ``rotation_z_deg``, uniform scale = ``scale``; custom
  properties hold its shape and appearance codes and the seed. A proxy mesh (marched from the object's own
  density, else its box; coloured with its mean rendered colour) is its child.
- "Layout Backdrop", an empty holding the background codes; "Layout Camera", from the model's camera prior,
  made the scene camera (its own resolution is the model's, so the scene's render settings are left alone).

The layout the engine renders is rebuilt from these objects every time (:func:`layout_from_scene`), so
duplicating an empty adds an object with the same codes and deleting one removes it. Objects are ordered by
name; each render's alphas follow that order.

Rendering goes through the scene's engine session (addon/client.py): a request carries the layout JSON and
the camera; the answer is a colour frame (into "Fieldwork Preview", like training previews) and per-object
alpha frames (into "Fieldwork Layout Alpha", each object in its own colour). Live editing sends at most one
request at a time; while one is in flight only the newest edit is kept, and it goes when the answer arrives.
In background mode (``blender -b``) the operators wait for their answers (:func:`wait_for`).
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector

from . import camera_math, capture, client, preferences, preview
from .engine import layouts as layout_format
from .engine import protocol

COLLECTION_NAME = "Fieldwork Layout"
ALPHA_IMAGE_NAME = "Fieldwork Layout Alpha"
ROLE_KEY = "fieldwork_layout_role"  # collection | floor | object | proxy | backdrop | camera
SHAPE_KEY = "fieldwork_shape_code"
APPEARANCE_KEY = "fieldwork_appearance_code"
SEED_KEY = "fieldwork_seed"
RUN_KEY = "fieldwork_run"  # on the collection: the run folder
FACTS_KEY = "fieldwork_facts"  # on the collection: RunOpened.facts as JSON
HEADER_KEY = "fieldwork_layout"  # on the collection: the layout's method, code sizes and extra, as JSON
PROXY_MATERIAL_KEY = "fieldwork_layout_proxy"
WAIT_S = 180.0  # an engine start (torch import) and a run's load take seconds on a busy machine
OPEN_TIMEOUT_S = 180.0
ALPHA_CHANNELS = 4
ROTATION_TOLERANCE = 1e-4  # radians of tilt before an object's rotation is called "not about Z"
SCALE_TOLERANCE = 1e-4  # relative spread of an object's scale axes before it is called non-uniform


class LayoutError(RuntimeError):
    """A layout operation that cannot be done; the message says why (and what to do)."""


# ---------------------------------------------------------------------------- per-scene state


@dataclass
class RenderResult:
    """One complete answer to a render request: colour (h, w, 3) and alphas (k, h, w), rows from the top."""

    request_id: int
    names: list[str]
    request: protocol.RenderLayout
    colour: np.ndarray
    alphas: np.ndarray
    seconds: float


@dataclass
class LayoutState:
    """What the Layouts panel shows and the live loop needs; main thread only."""

    run_dir: str = ""
    method: str = ""
    step: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    next_id: int = 0
    in_flight: protocol.RenderLayout | None = None
    in_flight_names: list[str] = field(default_factory=list)
    sent_at: float = 0.0
    pending: tuple[protocol.RenderLayout, list[str]] | None = None
    last_signature: Any = None  # what the last request sent: layout, camera, size
    frames: dict[int, list[protocol.PreviewFrame]] = field(default_factory=dict)
    last: RenderResult | None = None
    completed: int = 0
    ready: dict[int, protocol.LayoutReady] = field(default_factory=dict)
    opened: str = ""  # the run folder the engine said it opened
    error: str = ""  # the last refusal of a layout command, for the panel
    refusals: dict[str, str] = field(default_factory=dict)  # command -> its newest refusal, for wait_for
    warnings: list[str] = field(default_factory=list)
    sent_counts: list[int] = field(default_factory=list)  # objects of each layout submitted, sent or pending
    built: dict[str, Any] = field(default_factory=dict)  # the layout JSON the collection was last built from

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id


_STATES: dict[str, LayoutState] = {}
_building = False  # the add-on itself is changing the collection: the live handler waits


@contextlib.contextmanager
def live_paused() -> Iterator[None]:
    """The live handler ignores the changes made inside (the add-on's own: building, frame steps)."""
    global _building
    previous, _building = _building, True
    try:
        yield
    finally:
        _building = previous


def state_for(scene: bpy.types.Scene) -> LayoutState:
    return _STATES.setdefault(client.scene_key(scene), LayoutState())


# ---------------------------------------------------------------------------- the collection


def layout_collection(scene: bpy.types.Scene) -> bpy.types.Collection | None:
    """The scene's layout collection (found by its role, so a renamed one still counts)."""
    for collection in scene.collection.children_recursive:
        if collection.get(ROLE_KEY) == "collection":
            return collection
    return None


def _role_objects(collection: bpy.types.Collection, role: str) -> list[bpy.types.Object]:
    return sorted((obj for obj in collection.all_objects if obj.get(ROLE_KEY) == role), key=lambda obj: obj.name)


def layout_objects(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """The object empties of the scene's layout, in layout order (by name)."""
    collection = layout_collection(scene)
    return _role_objects(collection, "object") if collection is not None else []


def remove_layout(scene: bpy.types.Scene) -> None:
    """Remove the layout collection and only what the add-on made in it (its role says so)."""
    collection = layout_collection(scene)
    if collection is None:
        return
    for obj in list(collection.all_objects):
        if obj.get(ROLE_KEY) is None:
            continue  # the user's own object put in there: unlink it from ours only, never delete it
        data = obj.data
        bpy.data.objects.remove(obj)
        if data is not None and data.users == 0:
            if isinstance(data, bpy.types.Mesh):
                for material in data.materials:
                    if material is not None and material.get(PROXY_MATERIAL_KEY) and material.users <= 1:
                        bpy.data.materials.remove(material)
                bpy.data.meshes.remove(data)
            elif isinstance(data, bpy.types.Camera):
                bpy.data.cameras.remove(data)
    for obj in list(collection.objects):  # the user's objects left in there: keep them in the scene
        if len(obj.users_collection) == 1 and obj.name not in scene.collection.objects:
            scene.collection.objects.link(obj)
    bpy.data.collections.remove(collection)


def _new_empty(name: str, role: str, collection: bpy.types.Collection, display: str, size: float) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, None)
    obj.empty_display_type = display  # type: ignore[assignment]
    obj.empty_display_size = size
    obj[ROLE_KEY] = role
    collection.objects.link(obj)
    return obj


def _object_colour(index: int) -> tuple[float, float, float]:
    """A distinct colour per object index (golden-ratio hues): the alpha image and the empties use it."""
    return colorsys.hsv_to_rgb((0.13 + 0.618034 * index) % 1.0, 0.75, 1.0)


def _proxy_material(name: str, colour: list[float]) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material[PROXY_MATERIAL_KEY] = True
    material.diffuse_color = (*colour, 1.0)  # Solid mode
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    principled = next((node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED"), None)
    if principled is not None:
        principled.inputs["Base Color"].default_value = (*colour, 1.0)
    return material


def _proxy_meshes(ready: protocol.LayoutReady) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """name -> (vertices (n, 3), faces (m, 3), description) from a LayoutReady's payload."""
    meshes = {}
    offset = 0
    payload = memoryview(ready.payload)
    for proxy in ready.proxies:
        n, m = int(proxy["vertices"]), int(proxy["faces"])
        vertices = np.frombuffer(payload[offset : offset + 12 * n], dtype="<f4").reshape(n, 3)
        offset += 12 * n
        faces = np.frombuffer(payload[offset : offset + 12 * m], dtype="<i4").reshape(m, 3)
        offset += 12 * m
        meshes[str(proxy["name"])] = (vertices, faces, proxy)
    return meshes


def _box_proxy() -> tuple[np.ndarray, np.ndarray]:
    vertices = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=np.int32)
    return vertices, faces


def _mesh(name: str, vertices: np.ndarray, faces: np.ndarray) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(faces, dtype=np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    mesh.validate()
    return mesh


def build_layout(
    scene: bpy.types.Scene,
    layout: dict[str, Any],
    facts: dict[str, Any],
    run_dir: str,
    ready: protocol.LayoutReady | None = None,
    seed: int | None = None,
) -> bpy.types.Collection:
    """Replace the scene's layout with ``layout`` (engine/layouts.py's JSON): empties, proxies, backdrop, camera.

    Proxies come from ``ready`` (a LayoutReady); without it (a loaded layout) each object gets its box."""
    global _building
    checked = layout_format.Layout.from_dict(layout)  # a bad layout fails here, named, before anything changes
    _building = True
    try:
        remove_layout(scene)
        collection = bpy.data.collections.new(COLLECTION_NAME)
        collection[ROLE_KEY] = "collection"
        collection[RUN_KEY] = run_dir
        collection[FACTS_KEY] = json.dumps(facts)
        header = {key: layout[key] for key in ("method", "shape_code_size", "appearance_code_size")}
        header["background_code_size"] = layout["background_code_size"]
        header["extra"] = dict(layout.get("extra", {}))
        collection[HEADER_KEY] = json.dumps(header)
        scene.collection.children.link(collection)
        floor = _new_empty("Layout Floor", "floor", collection, "PLAIN_AXES", 0.5)
        meshes = _proxy_meshes(ready) if ready is not None else {}
        for index, obj in enumerate(checked.objects):
            empty = _new_empty(obj.name, "object", collection, "CUBE", 1.0)
            empty.parent = floor
            empty.location = obj.translation
            empty.rotation_mode = "XYZ"
            empty.rotation_euler = (0.0, 0.0, math.radians(obj.rotation_z_deg))
            empty.scale = (obj.scale, obj.scale, obj.scale)
            empty[SHAPE_KEY] = list(obj.shape_code)
            empty[APPEARANCE_KEY] = list(obj.appearance_code)
            empty[SEED_KEY] = int(seed if seed is not None else checked.extra.get("seed", 0))
            vertices, faces, description = meshes.get(obj.name, (*_box_proxy(), {"kind": "box", "colour": None}))
            colour = description.get("colour") or list(_object_colour(index))
            proxy = bpy.data.objects.new(f"{empty.name} proxy", _mesh(f"{empty.name} proxy", vertices, faces))
            proxy.data.materials.append(_proxy_material(f"{empty.name} proxy", colour))  # type: ignore[union-attr]
            proxy[ROLE_KEY] = "proxy"
            proxy["fieldwork_proxy_kind"] = str(description.get("kind", "box"))
            proxy.color = (*colour, 1.0)
            proxy.hide_select = True  # a click selects the empty, the thing the layout reads
            proxy.parent = empty
            collection.objects.link(proxy)
        backdrop = _new_empty("Layout Backdrop", "backdrop", collection, "SPHERE", 0.5)
        backdrop.parent = floor
        floor_facts = facts.get("floor", {"height": 0.0, "center": [0.0, 0.0]})
        backdrop.location = (*floor_facts["center"], floor_facts["height"])
        backdrop[SHAPE_KEY] = list(checked.background_shape_code)
        backdrop[APPEARANCE_KEY] = list(checked.background_appearance_code)
        camera = _layout_camera(checked.camera, collection)
        camera.parent = floor
        scene.camera = camera
    finally:
        _building = False
    state = state_for(scene)
    state.last_signature, state.built = None, layout
    update_warnings(scene)
    return collection


def _layout_camera(values: layout_format.LayoutCamera, collection: bpy.types.Collection) -> bpy.types.Object:
    intrinsics = camera_math.Intrinsics(values.fl_x, values.fl_y, values.cx, values.cy, values.w, values.h)
    settings = camera_math.camera_from_intrinsics(intrinsics, sensor_fit="HORIZONTAL", frame_name="layout camera")
    data = bpy.data.cameras.new("Layout Camera")
    data.sensor_fit = settings.sensor_fit  # type: ignore[assignment]
    data.sensor_width, data.sensor_height = settings.sensor_width, settings.sensor_height
    data.lens = settings.lens
    data.shift_x, data.shift_y = settings.shift_x, settings.shift_y
    data[capture.RESOLUTION_PROPERTY] = [values.w, values.h]  # the model's size; the scene's stays as it is
    camera = bpy.data.objects.new("Layout Camera", data)
    camera[ROLE_KEY] = "camera"
    camera.matrix_world = Matrix([list(row) for row in values.camera_to_world])
    collection.objects.link(camera)
    return camera


# ---------------------------------------------------------------------------- Blender -> layout


def _floor_inverse(collection: bpy.types.Collection) -> Matrix:
    floors = _role_objects(collection, "floor")
    return floors[0].matrix_world.inverted_safe() if floors else Matrix.Identity(4)


def _pose(obj: bpy.types.Object, floor_inverse: Matrix, floor: bpy.types.Object | None) -> tuple[Any, ...]:
    """(translation, rotation_z_deg, scale, notes) of an empty in the floor's frame. An empty that is the
    floor's child with no parent inverse, constraints or other rotation mode is read from its own properties
    (exact); anything else from its world matrix."""
    notes = []
    direct = (
        floor is not None
        and obj.parent == floor
        and obj.matrix_parent_inverse == Matrix.Identity(4)
        and not obj.constraints
        and obj.rotation_mode == "XYZ"
    )
    if direct:
        translation = _xyz(obj.location)
        tilt = max(abs(obj.rotation_euler.x), abs(obj.rotation_euler.y))
        angle = math.degrees(obj.rotation_euler.z)
        scales = list(_xyz(obj.scale))
    else:
        matrix = floor_inverse @ obj.matrix_world
        location, rotation, scale = matrix.decompose()
        translation = _xyz(location)
        x_axis = rotation.to_matrix().col[0]
        angle = math.degrees(math.atan2(x_axis.y, x_axis.x))
        z_axis = rotation.to_matrix().col[2]
        tilt = math.acos(max(-1.0, min(1.0, z_axis.z)))
        scales = list(_xyz(scale))
    if tilt > ROTATION_TOLERANCE:
        notes.append(f"{obj.name} is tilted: objects turn about Z only, the tilt is ignored")
    mean = sum(scales) / 3.0
    if mean <= 0 or max(scales) - min(scales) > SCALE_TOLERANCE * max(abs(mean), 1e-9):
        notes.append(f"{obj.name} has non-uniform scale {', '.join(f'{s:.3g}' for s in scales)}: the mean is used")
    return translation, angle, abs(mean) or 1e-6, notes


def _xyz(vector: Any) -> tuple[float, float, float]:
    return (float(vector[0]), float(vector[1]), float(vector[2]))


def _rows(matrix: Any) -> list[list[float]]:
    return [[float(matrix[row][column]) for column in range(4)] for row in range(4)]


def _code(obj: bpy.types.Object, key: str, size: int) -> tuple[float, ...]:
    value = obj.get(key)
    if value is None:
        raise LayoutError(f"{obj.name} has no {key!r} custom property: copy codes onto it or resample them")
    code = tuple(float(v) for v in value)
    if len(code) != size:
        raise LayoutError(f"{obj.name}: {key!r} has {len(code)} numbers, the model's codes have {size}")
    return code


def layout_from_scene(scene: bpy.types.Scene) -> tuple[dict[str, Any], list[str], list[str]]:
    """(layout JSON, object names in layout order, notes about what the layout could not say) from the
    scene's layout collection as it is now (the current frame's animated values included)."""
    collection = layout_collection(scene)
    if collection is None:
        raise LayoutError("the scene has no Fieldwork Layout: generate or load one first")
    header = json.loads(collection[HEADER_KEY])
    floors = _role_objects(collection, "floor")
    floor = floors[0] if floors else None
    floor_inverse = _floor_inverse(collection)
    notes: list[str] = []
    objects = []
    names = []
    for obj in _role_objects(collection, "object"):
        translation, angle, scale, pose_notes = _pose(obj, floor_inverse, floor)
        notes += pose_notes
        objects.append(
            {
                "name": obj.name,
                "shape_code": list(_code(obj, SHAPE_KEY, header["shape_code_size"])),
                "appearance_code": list(_code(obj, APPEARANCE_KEY, header["appearance_code_size"])),
                "scale": scale,
                "translation": list(translation),
                "rotation_z_deg": angle,
            }
        )
        names.append(obj.name)
    backdrops = _role_objects(collection, "backdrop")
    size = header["background_code_size"]
    if backdrops:
        background = {
            "shape_code": list(_code(backdrops[0], SHAPE_KEY, size)),
            "appearance_code": list(_code(backdrops[0], APPEARANCE_KEY, size)),
        }
    else:
        background = {"shape_code": [0.0] * size, "appearance_code": [0.0] * size}
        notes.append("the Layout Backdrop is gone: the background codes are zero")
    cameras = _role_objects(collection, "camera")
    camera_object = cameras[0] if cameras else scene.camera
    if camera_object is None or camera_object.type != "CAMERA":
        raise LayoutError("the layout has no camera and the scene has none: add one")
    camera = camera_view(scene, camera_object, max_side=0)
    matrix = floor_inverse @ Matrix(camera.camera_to_world)
    document = {
        "format": layout_format.FORMAT,
        "version": layout_format.FORMAT_VERSION,
        "method": header["method"],
        "shape_code_size": header["shape_code_size"],
        "appearance_code_size": header["appearance_code_size"],
        "background_code_size": size,
        "objects": objects,
        "background": background,
        "camera": {
            "camera_to_world": _rows(matrix),
            "fl_x": camera.fl_x,
            "fl_y": camera.fl_y,
            "cx": camera.cx,
            "cy": camera.cy,
            "w": camera.width,
            "h": camera.height,
        },
        "extra": header.get("extra", {}),
    }
    layout_format.Layout.from_dict(document)  # what the engine will read: fail here, named
    return document, names, notes


def to_world(scene: bpy.types.Scene, document: dict[str, Any]) -> dict[str, Any]:
    """The layout in world coordinates (the floor frame applied): what the engine renders from a world camera."""
    collection = layout_collection(scene)
    floor = _role_objects(collection, "floor") if collection is not None else []
    if not floor or floor[0].matrix_world == Matrix.Identity(4):
        return document
    matrix = floor[0].matrix_world
    _location, rotation, scale = matrix.decompose()
    turn = math.degrees(math.atan2(rotation.to_matrix().col[0].y, rotation.to_matrix().col[0].x))
    factor = sum(_xyz(scale)) / 3.0
    world = dict(document)
    world["objects"] = [
        {
            **obj,
            "translation": list(_xyz(matrix @ Vector(obj["translation"]))),
            "rotation_z_deg": obj["rotation_z_deg"] + turn,
            "scale": obj["scale"] * factor,
        }
        for obj in document["objects"]
    ]
    world["camera"] = {
        **document["camera"],
        "camera_to_world": _rows(matrix @ Matrix(document["camera"]["camera_to_world"])),
    }
    return world


def prior_warnings(document: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """What in ``document`` lies outside what the model learned: it still renders, the panel says so."""
    if not facts:
        return []
    warnings = []
    count = len(document["objects"])
    low, high = facts.get("object_count", [0, count])
    slots = int(facts.get("slots", high))
    if count > slots:
        warnings.append(f"{count} objects: the model was trained with at most {slots}")
    elif not low <= count <= high:
        warnings.append(f"{count} objects: the prior has {low} to {high}")
    floor = facts.get("floor", {}).get("height", 0.0)
    for obj in document["objects"]:
        name = obj["name"]
        checks = (
            ("scale", obj["scale"], "object_scale"),
            ("x", obj["translation"][0], "object_translation_x"),
            ("y", obj["translation"][1], "object_translation_y"),
            ("rotation", _wrapped(obj["rotation_z_deg"], facts.get("object_rotation_z_deg")), "object_rotation_z_deg"),
        )
        for label, value, key in checks:
            span = facts.get(key)
            if span is not None and not span[0] - 1e-6 <= value <= span[1] + 1e-6:
                warnings.append(f"{name}: {label} {value:.3g} is outside the prior's {span[0]:.3g}..{span[1]:.3g}")
        bottom = obj["translation"][2] - obj["scale"]
        if abs(bottom - floor) > 1e-3 * max(1.0, obj["scale"]):
            warnings.append(f"{name}: its bottom is at z {bottom:.3g}, the floor at {floor:.3g}")
    return warnings


def _wrapped(angle: float, span: list[float] | None) -> float:
    """``angle`` moved by whole turns into ``span`` when it fits there (rotation is periodic)."""
    if span is None:
        return angle
    for turns in range(-3, 4):
        if span[0] - 1e-6 <= angle + 360.0 * turns <= span[1] + 1e-6:
            return angle + 360.0 * turns
    return angle


def update_warnings(scene: bpy.types.Scene) -> list[str]:
    """The panel's warnings for the layout as it is: outside the prior, and what the layout cannot say."""
    state = state_for(scene)
    collection = layout_collection(scene)
    if collection is None:
        state.warnings = []
        return state.warnings
    try:
        document, _names, notes = layout_from_scene(scene)
    except (LayoutError, layout_format.LayoutError) as error:
        state.warnings = [str(error)]
        return state.warnings
    state.warnings = prior_warnings(document, json.loads(str(collection.get(FACTS_KEY, "{}")))) + notes
    return state.warnings


# ---------------------------------------------------------------------------- cameras


def camera_view(scene: bpy.types.Scene, camera: bpy.types.Object, max_side: int) -> protocol.RenderLayout:
    """A camera as a render_layout camera; ``max_side`` > 0 scales the image so its longer side is that many
    pixels (focal lengths and principal point scale with it)."""
    intrinsics = camera_math.intrinsics_from_camera(capture.camera_settings(scene, camera.data), camera.name)
    scale = max_side / max(intrinsics.width, intrinsics.height) if max_side > 0 else 1.0
    width, height = max(1, round(intrinsics.width * scale)), max(1, round(intrinsics.height * scale))
    return protocol.RenderLayout(
        camera_to_world=camera_math.checked_camera_to_world(_rows(camera.matrix_world), camera.name),
        fl_x=intrinsics.fl_x * width / intrinsics.width,
        fl_y=intrinsics.fl_y * height / intrinsics.height,
        cx=intrinsics.cx * width / intrinsics.width,
        cy=intrinsics.cy * height / intrinsics.height,
        width=width,
        height=height,
    )


def render_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise LayoutError("the scene has no active camera: set one (the generated Layout Camera is one)")
    return camera


# ---------------------------------------------------------------------------- the engine session


def _settings(scene: bpy.types.Scene) -> Any:
    return scene.fieldwork.layouts  # type: ignore[attr-defined]


def run_folder(scene: bpy.types.Scene, run_dir: str = "") -> str:
    raw = run_dir or _settings(scene).run_dir
    if not raw:
        collection = layout_collection(scene)
        raw = str(collection.get(RUN_KEY, "")) if collection is not None else ""
    if not raw:
        raise LayoutError("no run folder: set Run Folder in the Layouts panel (a trained GIRAFFE run)")
    return str(Path(bpy.path.abspath(raw)).resolve())


def wait_for(
    scene: bpy.types.Scene, done: Callable[[], bool], what: str, timeout_s: float = WAIT_S, command: str = ""
) -> client.EngineSession:
    """Drain the scene's session (through the listeners, as the timer does) until ``done()``; errors name
    ``what``: the engine's refusal of ``command``, its exit with its log, or the time waited."""
    session = client.session_for(client.scene_key(scene))
    deadline = time.monotonic() + timeout_s
    state = state_for(scene)
    # A refusal already drained answered an earlier (live) request, not the one waited for here: the panel
    # showed it; the answer to this one is still in the queue.
    state.refusals.pop(command, None)
    while not done():
        if session is None or not session.state.active:
            reason = session.state.error if session is not None else "no engine session"
            raise LayoutError(f"{what}: the engine session ended ({reason})")
        if command in state.refusals:
            raise LayoutError(state.refusals.pop(command))
        if time.monotonic() > deadline:
            raise LayoutError(f"{what}: no answer from the engine within {timeout_s:.0f} s")
        result = session.drain(budget_s=0.2, block_s=0.1)
        if result.changed:
            client.notify(session, result)
    return session  # type: ignore[return-value]


def open_run(scene: bpy.types.Scene, run_dir: str, context: bpy.types.Context | None = None) -> client.EngineSession:
    """The scene's engine session with ``run_dir`` open for layouts: started and opened as needed (waits)."""
    state = state_for(scene)
    key = client.scene_key(scene)
    session = client.session_for(key)
    if session is not None and session.state.active and session.state.status in ("training", "paused"):
        raise LayoutError("the scene's engine is training: stop it (or wait for it) before using layouts")
    if session is None or not session.alive or not session.state.active:
        python = preferences.resolve_engine_python(context)
        session = client.start_session(key, python, label=f"layouts of scene {scene.name!r}")
        state.opened = ""
        state.in_flight, state.pending, state.frames = None, None, {}
    if state.opened == run_dir:
        return session
    state.opened, state.error = "", ""
    device = preferences.get_preferences(context).device
    session.send(protocol.OpenRun(run_dir=run_dir, device=device))
    return wait_for(scene, lambda: state.opened == run_dir, f"opening {run_dir}", OPEN_TIMEOUT_S, "open_run")


def sample(scene: bpy.types.Scene, seed: int, n_objects: int, proxy_resolution: int) -> protocol.LayoutReady:
    """Ask the open run for a layout (waits)."""
    state = state_for(scene)
    session = client.session_for(client.scene_key(scene))
    assert session is not None
    request_id = state.take_id()
    session.send(
        protocol.SampleLayout(request_id=request_id, seed=seed, n_objects=n_objects, proxy_resolution=proxy_resolution)
    )
    wait_for(scene, lambda: request_id in state.ready, f"sampling a layout (seed {seed})", command="sample_layout")
    return state.ready.pop(request_id)


def submit(scene: bpy.types.Scene, force: bool = False) -> int:
    """Send the layout as it is now from the scene camera, unless it is what was sent last (``force``: send
    anyway). With a request in flight it waits as the pending one (replacing an older pending one).
    Returns the request id (0: nothing new to send)."""
    state = state_for(scene)
    session = client.session_for(client.scene_key(scene))
    if session is None or not session.state.active:
        state.in_flight, state.pending, state.opened = None, None, ""  # the engine is gone: nothing waits on it
        return 0
    if state.opened == "":
        return 0
    document, names, _notes = layout_from_scene(scene)
    update_warnings(scene)
    request = camera_view(scene, render_camera(scene), _settings(scene).preview_size)
    request.layout = to_world(scene, document)
    signature = [request.layout, request.camera_to_world, request.width, request.height]
    # Within 1e-5: a matrix Blender recomposes from its float32 parts differs in the last bits, not in the picture.
    if not force and _close(signature, state.last_signature):
        return 0
    state.last_signature = signature
    request.request_id = state.take_id()
    state.sent_counts.append(len(names))
    del state.sent_counts[:-64]
    if state.in_flight is not None:
        state.pending = (request, names)
        return request.request_id
    _send(state, session, request, names)
    return request.request_id


def _close(a: Any, b: Any, tolerance: float = 1e-5) -> bool:
    """``a`` and ``b`` alike (JSON-like values), numbers within ``tolerance``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= tolerance
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[key], b[key], tolerance) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _send(state: LayoutState, session: client.EngineSession, request: protocol.RenderLayout, names: list[str]) -> None:
    state.in_flight, state.in_flight_names, state.sent_at = request, names, time.perf_counter()
    session.send(request)


def render_now(scene: bpy.types.Scene) -> RenderResult:
    """Render the layout from the scene camera and wait for the answer (Render Layout, background mode)."""
    state = state_for(scene)
    request_id = submit(scene, force=True)
    if request_id == 0:
        raise LayoutError("no engine session has the layout's run open: generate or load a layout first")
    wait_for(
        scene,
        lambda: state.last is not None and state.last.request_id >= request_id,
        "rendering the layout",
        command="render_layout",
    )
    assert state.last is not None
    return state.last


def _on_drained(session: client.EngineSession, result: client.DrainResult) -> None:
    """Client listener: layout answers into the state and the images; the next pending request goes out."""
    state = _STATES.get(session.key)
    if state is None:
        return
    for event in result.events:
        if isinstance(event, protocol.RunOpened):
            state.opened, state.method, state.step, state.facts = event.run_dir, event.method, event.step, event.facts
            state.run_dir = event.run_dir
        elif isinstance(event, protocol.LayoutReady):
            state.ready[event.request_id] = event
        elif isinstance(event, protocol.Error) and event.command in ("open_run", "sample_layout", "render_layout"):
            state.error = state.refusals[event.command] = event.message
            if event.command == "render_layout":
                state.in_flight = None
                _send_pending(state, session)
        elif isinstance(event, protocol.PreviewFrame) and state.in_flight is not None:
            if event.request_id != state.in_flight.request_id:
                continue
            frames = state.frames.setdefault(event.request_id, [])
            frames.append(event)
            colour = next((f for f in frames if f.mode == "color"), None)
            if colour is not None and sum(f.mode == "alpha" for f in frames) >= colour.layers:
                _complete(state, frames)
                del state.frames[event.request_id]
                _send_pending(state, session)
    if not session.state.active:
        state.in_flight, state.pending, state.opened = None, None, ""


def _send_pending(state: LayoutState, session: client.EngineSession) -> None:
    state.in_flight = None
    if state.pending is not None and session.state.active:
        request, names = state.pending
        state.pending = None
        _send(state, session, request, names)


def _complete(state: LayoutState, frames: list[protocol.PreviewFrame]) -> None:
    assert state.in_flight is not None
    colour_frame = next(f for f in frames if f.mode == "color")
    h, w = colour_frame.height, colour_frame.width
    colour = np.frombuffer(colour_frame.payload, np.uint8).reshape(h, w, 4)[::-1, :, :3] / 255.0
    k = len(state.in_flight_names)
    planes: list[np.ndarray] = []
    for frame in sorted((f for f in frames if f.mode == "alpha"), key=lambda f: f.layer):
        rgba = np.frombuffer(frame.payload, np.uint8).reshape(h, w, ALPHA_CHANNELS)[::-1] / 255.0
        planes.extend(np.moveaxis(rgba, -1, 0))
    alphas = np.stack(planes[:k]).astype(np.float32) if k else np.zeros((0, h, w), np.float32)
    state.last = RenderResult(
        request_id=state.in_flight.request_id,
        names=list(state.in_flight_names),
        request=state.in_flight,
        colour=colour.astype(np.float32),
        alphas=alphas,
        seconds=time.perf_counter() - state.sent_at,
    )
    state.completed += 1
    state.error = ""  # the panel's last refusal is answered by this render
    show_alphas(alphas)


def alpha_composite(alphas: np.ndarray) -> np.ndarray:
    """(h, w, 4) float: each object's alpha in its own colour (the proxies' fallback colours), summed."""
    k, h, w = alphas.shape
    rgba = np.zeros((h, w, 4), dtype=np.float32)
    for index in range(k):
        rgba[..., :3] += alphas[index][..., None] * np.asarray(_object_colour(index), dtype=np.float32)
    rgba[..., 3] = np.clip(alphas.sum(axis=0), 0.0, 1.0) if k else 0.0
    return np.clip(rgba, 0.0, 1.0)


def show_alphas(alphas: np.ndarray) -> bpy.types.Image:
    """The per-object alphas into the image "Fieldwork Layout Alpha" (bottom row first, as Blender stores it)."""
    _k, h, w = alphas.shape
    image = preview.owned_image(ALPHA_IMAGE_NAME, "layout-alpha", w, h)
    image.pixels.foreach_set(alpha_composite(alphas)[::-1].ravel())  # type: ignore[attr-defined]
    image.update()
    return image


# ---------------------------------------------------------------------------- live editing


@bpy.app.handlers.persistent
def _on_depsgraph_update(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> None:
    """An edit of the layout (an empty moved, rotated, scaled, added, removed; the camera moved) re-renders
    it: :func:`submit` throttles (one request in flight, the newest edit pending)."""
    if _building or scene is None:
        return
    try:
        if not _settings(scene).live or layout_collection(scene) is None:
            return
        if not any(depsgraph.id_type_updated(kind) for kind in ("OBJECT", "COLLECTION", "SCENE")):
            return  # e.g. an image or a material: nothing the layout or its camera depends on
        submit(scene)
    except (LayoutError, layout_format.LayoutError, camera_math.CameraError, ValueError) as error:
        state_for(scene).warnings = [str(error)]


@bpy.app.handlers.persistent
def _on_frame_change(scene: bpy.types.Scene, _depsgraph: bpy.types.Depsgraph | None = None) -> None:
    """Playback or scrubbing: keyframed empties and codes re-render live as the frame changes."""
    if _building or scene is None:
        return
    try:
        if _settings(scene).live and layout_collection(scene) is not None:
            submit(scene)
    except (LayoutError, layout_format.LayoutError, camera_math.CameraError, ValueError) as error:
        state_for(scene).warnings = [str(error)]


_HANDLERS = (
    (bpy.app.handlers.depsgraph_update_post, _on_depsgraph_update),
    (bpy.app.handlers.frame_change_post, _on_frame_change),
)


def register() -> None:
    client.add_listener(_on_drained)
    for handlers, handler in _HANDLERS:
        if handler not in handlers:
            handlers.append(handler)


def unregister() -> None:
    for handlers, handler in _HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    client.remove_listener(_on_drained)
    _STATES.clear()


# ---------------------------------------------------------------------------- edits


def resample(obj: bpy.types.Object, which: str, seed: int | None = None) -> int:
    """New ``which`` ("shape" or "appearance") code for an object empty from N(0, 1); returns the seed used."""
    key = SHAPE_KEY if which == "shape" else APPEARANCE_KEY
    if obj.get(key) is None:
        raise LayoutError(f"{obj.name} is not a layout object (it has no {key!r})")
    seed = seed if seed is not None else random.randrange(1 << 31)
    obj[key] = list(layout_format.random_code(len(obj[key]), seed))
    obj[SEED_KEY] = int(seed)
    return seed


def copy_codes(source: bpy.types.Object, targets: list[bpy.types.Object], which: str = "both") -> int:
    """Copy shape and/or appearance codes from ``source`` onto every layout object in ``targets``."""
    keys = [k for k, w in ((SHAPE_KEY, "shape"), (APPEARANCE_KEY, "appearance")) if which in (w, "both")]
    copied = 0
    for target in targets:
        if target == source or target.get(ROLE_KEY) != source.get(ROLE_KEY):
            continue
        for key in keys:
            target[key] = list(source[key])
        copied += 1
    return copied


def save_layout(scene: bpy.types.Scene, path: Path) -> Path:
    document, _names, _notes = layout_from_scene(scene)
    layout = layout_format.Layout.from_dict(document)
    return layout_format.write_layout(path, layout)


def load_layout(scene: bpy.types.Scene, path: Path, facts: dict[str, Any] | None = None, run_dir: str = "") -> None:
    layout = layout_format.read_layout(path)
    collection = layout_collection(scene)
    if facts is None:
        facts = json.loads(str(collection.get(FACTS_KEY, "{}"))) if collection is not None else {}
    run_dir = run_dir or (str(collection.get(RUN_KEY, "")) if collection is not None else "")
    run_dir = run_dir or str(layout.extra.get("run", ""))
    build_layout(scene, layout.to_dict(), facts, run_dir)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """(h, w, 3) floats in [0, 1], rows from the top, as an 8-bit PNG through a temporary Blender image."""
    h, w = rgb.shape[:2]
    image = bpy.data.images.new("fieldwork-layout-frame", w, h, alpha=False)
    try:
        rgba = np.concatenate([rgb, np.ones((h, w, 1), dtype=np.float32)], axis=-1)[::-1]
        image.pixels.foreach_set(np.ascontiguousarray(rgba, dtype=np.float32).ravel())  # type: ignore[attr-defined]
        path.parent.mkdir(parents=True, exist_ok=True)
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)
    return path
