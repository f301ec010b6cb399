"""Blender cameras and images to a ``transforms.json`` dataset, and datasets back to Blender cameras.

The math lives in :mod:`.camera_math` and the file format in ``engine.data.transforms``; this module
only reads Blender properties, renders, copies images and builds camera objects.

Two Blender limits shape it:

- Render resolution and pixel aspect belong to the scene, not the camera. A camera may carry its
  own in the custom properties ``fieldwork_resolution`` (w, h) and ``fieldwork_pixel_aspect`` (x, y)
  on its camera data; import sets them where a frame differs from the scene, export and rendering
  honour them.
- Blender stores lens, shift and ``matrix_world`` as float32. An imported camera keeps the
  dataset's float64 numbers in ``fieldwork_source_intrinsics`` / ``fieldwork_source_camera_to_world``;
  export writes those back exactly while the camera still matches them to float32 precision, and
  the camera's own numbers as soon as it has been changed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import bpy
import mathutils
import numpy as np

from .camera_math import (
    CameraError,
    CameraSettings,
    camera_from_intrinsics,
    checked_camera_to_world,
    intrinsics_from_camera,
)
from .engine.atomic import current_umask, replace_folder
from .engine.data.bounds import BoxChoice, choose_for_transforms
from .engine.data.transforms import (
    IMAGE_SUFFIXES,
    SPLITS,
    Frame,
    ImageInfo,
    Intrinsics,
    SceneBox,
    Transforms,
    TransformsError,
    read_image_info,
    read_transforms,
    write_transforms,
)
from .importers import SOURCE_KEY, fieldwork_collection

IMAGE_SOURCES = ("render", "background", "folder")
IMAGES_FOLDER = "images"
RESOLUTION_PROPERTY = "fieldwork_resolution"
PIXEL_ASPECT_PROPERTY = "fieldwork_pixel_aspect"
SOURCE_INTRINSICS_PROPERTY = "fieldwork_source_intrinsics"
SOURCE_POSE_PROPERTY = "fieldwork_source_camera_to_world"
SPLIT_PROPERTY = "fieldwork_split"
# On an imported dataset's box empty when the dataset had no box: the engine's rule that chose it, and why.
BOX_RULE_PROPERTY = "fieldwork_scene_box_rule"
BOX_REASON_PROPERTY = "fieldwork_scene_box_reason"
# Object types whose evaluated bounds are "visible geometry" for the scene box.
_GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "VOLUME", "POINTCLOUD", "CURVES"}
_LINEAR_SUFFIXES = (".exr",)

Progress = Callable[[int, int], None]
"""Called with (frames done, frames in all) as export goes."""


class CaptureError(ValueError):
    """Cameras or images that cannot become a dataset; the message names the camera or file."""


# --- export ------------------------------------------------------------------------------------


def export_dataset(
    scene: bpy.types.Scene,
    out_dir: Path,
    *,
    cameras: Sequence[bpy.types.Object] | None = None,
    image_source: str = "render",
    image_folder: Path | None = None,
    scene_box_object: bpy.types.Object | None = None,
    holdout_every: int = 0,
    progress: Progress | None = None,
    split_files: bool = False,
    overwrite: bool = False,
    view_layer: bpy.types.ViewLayer | None = None,
) -> Path:
    """Write a dataset folder ``out_dir`` (``transforms.json`` + ``images/``); return the transforms path.

    cameras: camera objects; default every perspective camera in the view layer, by name.
    image_source: "render" (render each camera with the scene's engine), "background" (each
        camera's background image file) or "folder" (``image_folder/<camera name>.<png|jpg|jpeg|exr>``).
    scene_box_object: its world bounds are the scene box; default the visible geometry's bounds,
        else the cameras'.
    holdout_every: N > 0 holds out frames 0, N, 2N, ... as "test" (nerfstudio's interval split);
        0 keeps each camera's ``fieldwork_split`` property (set on import), else "train".
    overwrite: replace a dataset already in ``out_dir``; without it that is an error.
        A folder holding anything but a dataset is never replaced, and only the dataset's own files
        (its transforms files and the images its frames name) are: the user's other files stay.

    The dataset is built in a temporary folder beside ``out_dir`` and swapped in at the end: a
    failure leaves whatever stood in ``out_dir`` untouched. Render settings are restored even when
    a render fails.
    """
    out_dir = Path(out_dir)
    if image_source not in IMAGE_SOURCES:
        raise CaptureError(f"image_source must be one of {IMAGE_SOURCES}, got {image_source!r}")
    if image_source == "folder" and (image_folder is None or not Path(image_folder).is_dir()):
        raise CaptureError(f"image folder {image_folder} does not exist")
    if holdout_every < 0 or holdout_every == 1:
        raise CaptureError(f"holdout_every must be 0 (none) or at least 2, got {holdout_every}")
    _check_target(out_dir, overwrite)
    view_layer = view_layer or _default_view_layer(scene)
    view_layer.update()
    depsgraph = view_layer.depsgraph
    assert depsgraph is not None  # a view layer always has one once updated
    chosen = _chosen_cameras(view_layer, cameras)
    if image_source == "render" and scene.render.use_multiview:
        raise CaptureError(f"scene {scene.name!r} renders stereo views: turn off Output > Stereoscopy")
    if image_source == "render" and scene.render.use_border:
        raise CaptureError(
            f"scene {scene.name!r} renders a border region only: turn off Output > Format > Render Region"
        )

    frames = []
    for index, camera in enumerate(chosen):
        if holdout_every:
            split = "test" if index % holdout_every == 0 else "train"
        else:
            split = str(camera.get(SPLIT_PROPERTY, "train"))
        frames.append(_frame_for_camera(scene, camera, depsgraph, split))
    if not any(frame.split == "train" for frame in frames):
        raise CaptureError(f"all {len(frames)} frames are held out: lower the holdout or add cameras")
    _name_image_files(frames)
    box = _scene_box(view_layer, depsgraph, scene_box_object, chosen)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it private; a dataset is not
        (staging / IMAGES_FOLDER).mkdir()
        if image_source == "render":
            color_space, has_alpha = _render_images(scene, chosen, frames, staging, progress)
        else:
            color_space, has_alpha = _copy_images(chosen, frames, staging, image_source, image_folder, progress)
        transforms = Transforms(
            frames=frames, root=staging, scene_box=box, color_space=color_space, has_alpha=has_alpha
        )
        write_transforms(staging, transforms, split_files=split_files)
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "transforms.json"


def camera_settings(scene: bpy.types.Scene, camera_data: Any) -> CameraSettings:
    """The Blender settings that shape this camera's image: its lens and sensor, the scene's resolution."""
    render = scene.render
    resolution = camera_data.get(RESOLUTION_PROPERTY)
    pixel_aspect = camera_data.get(PIXEL_ASPECT_PROPERTY)
    return CameraSettings(
        lens=camera_data.lens,
        sensor_width=camera_data.sensor_width,
        sensor_height=camera_data.sensor_height,
        sensor_fit=camera_data.sensor_fit,
        shift_x=camera_data.shift_x,
        shift_y=camera_data.shift_y,
        resolution_x=int(resolution[0]) if resolution is not None else render.resolution_x,
        resolution_y=int(resolution[1]) if resolution is not None else render.resolution_y,
        resolution_percentage=100 if resolution is not None else render.resolution_percentage,
        pixel_aspect_x=float(pixel_aspect[0]) if pixel_aspect is not None else render.pixel_aspect_x,
        pixel_aspect_y=float(pixel_aspect[1]) if pixel_aspect is not None else render.pixel_aspect_y,
    )


def _default_view_layer(scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    context_layer = getattr(bpy.context, "view_layer", None)
    if bpy.context.scene == scene and context_layer is not None:
        return context_layer
    return scene.view_layers[0]


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise CaptureError(f"{out_dir} is a file, not a folder")
    if not any(out_dir.iterdir()):
        return
    if not (out_dir / "transforms.json").is_file():
        raise CaptureError(f"{out_dir} holds files but no transforms.json: pick an empty or new folder")
    if not overwrite:
        raise CaptureError(f"{out_dir} already holds a dataset: allow overwrite (--overwrite in scripts) to replace it")


def _chosen_cameras(
    view_layer: bpy.types.ViewLayer, cameras: Sequence[bpy.types.Object] | None
) -> list[bpy.types.Object]:
    if cameras is None:
        in_layer = sorted((obj for obj in view_layer.objects if obj.type == "CAMERA"), key=lambda obj: obj.name)
        chosen = [obj for obj in in_layer if obj.data.type == "PERSP"]
        if not chosen:
            skipped = ", ".join(f"{obj.name!r} ({obj.data.type.lower()})" for obj in in_layer)
            raise CaptureError(
                f"no perspective cameras in view layer {view_layer.name!r}"
                + (f": only {skipped}" if skipped else ": add a camera")
            )
        return chosen
    if not cameras:
        raise CaptureError("no cameras given: pick at least one camera")
    for obj in cameras:
        if obj.type != "CAMERA":
            raise CaptureError(f"object {obj.name!r} is a {obj.type.lower()}, not a camera")
        kind = obj.data.type
        if kind != "PERSP":
            what = {"ORTHO": "orthographic", "PANO": "panoramic"}.get(kind, kind.lower())
            raise CaptureError(f"camera {obj.name!r} is {what}: datasets need perspective (pinhole) cameras")
    return list(cameras)


def _frame_for_camera(
    scene: bpy.types.Scene, camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph, split: str
) -> Frame:
    evaluated = camera.evaluated_get(depsgraph)
    try:
        settings = camera_settings(scene, evaluated.data)
    except ValueError as error:
        raise CaptureError(f"camera {camera.name!r}: {error}") from error
    try:
        intrinsics = intrinsics_from_camera(settings, camera_name=f"camera {camera.name!r}")
    except CameraError as error:  # already names the camera
        raise CaptureError(str(error)) from error
    try:
        camera_to_world = checked_camera_to_world(_matrix_rows(evaluated.matrix_world), camera.name)
    except CameraError as error:
        raise CaptureError(str(error)) from error
    return Frame(
        file_path="",  # named once every frame is known, so names can be made unique
        camera_to_world=_source_pose(camera, camera_to_world),
        intrinsics=_source_intrinsics(camera.data, intrinsics),
        name=camera.name,
        split=split,
    )


def _source_pose(camera: bpy.types.Object, camera_to_world: list[list[float]]) -> list[list[float]]:
    """The imported float64 pose while the float32 one still matches it, else the camera's own."""
    stored = camera.get(SOURCE_POSE_PROPERTY)
    if stored is None or len(stored) != 16:
        return camera_to_world
    source = np.asarray(list(stored), dtype=np.float64).reshape(4, 4)
    current = np.asarray(camera_to_world)
    # float32 keeps ~7 significant digits: a real edit moves the pose far more than this.
    tolerance = 1e-6 * max(1.0, float(np.max(np.abs(source))))
    if np.max(np.abs(source - current)) <= tolerance:
        return source.tolist()
    return camera_to_world


def _source_intrinsics(camera_data: Any, intrinsics: Intrinsics) -> Intrinsics:
    stored = camera_data.get(SOURCE_INTRINSICS_PROPERTY)
    if stored is None or len(stored) != 6:
        return intrinsics
    fl_x, fl_y, cx, cy, width, height = (float(value) for value in stored)
    if (int(width), int(height)) != (intrinsics.width, intrinsics.height):
        return intrinsics
    # Relative 1e-6 on focal lengths, and on the principal point relative to the image size.
    size = max(width, height)
    close = (
        abs(fl_x - intrinsics.fl_x) <= 1e-6 * fl_x
        and abs(fl_y - intrinsics.fl_y) <= 1e-6 * fl_y
        and abs(cx - intrinsics.cx) <= 1e-6 * size
        and abs(cy - intrinsics.cy) <= 1e-6 * size
    )
    if not close:
        return intrinsics
    return Intrinsics(fl_x=fl_x, fl_y=fl_y, cx=cx, cy=cy, width=int(width), height=int(height))


def _name_image_files(frames: list[Frame]) -> None:
    taken: set[str] = set()
    for frame in frames:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", frame.name).strip("._") or "camera"
        candidate, number = stem, 1
        while candidate.lower() in taken:  # case-insensitive file systems
            number += 1
            candidate = f"{stem}_{number}"
        taken.add(candidate.lower())
        frame.file_path = f"{IMAGES_FOLDER}/{candidate}"  # the suffix follows the image's format


def _scene_box(
    view_layer: bpy.types.ViewLayer,
    depsgraph: bpy.types.Depsgraph,
    box_object: bpy.types.Object | None,
    cameras: list[bpy.types.Object],
) -> SceneBox:
    if box_object is not None:
        corners = _world_corners(box_object, depsgraph)
        if corners is None:
            raise CaptureError(f"scene box object {box_object.name!r} has no extent: pick a mesh or a cube empty")
        return _box_around(corners)
    geometry = [
        corners
        for obj in view_layer.objects
        # Meshes Fieldwork brought back from the engine are results, not the scene being captured.
        if obj.type in _GEOMETRY_TYPES and obj.visible_get(view_layer=view_layer) and obj.get(SOURCE_KEY) is None
        for corners in [_world_corners(obj, depsgraph)]
        if corners is not None
    ]
    if geometry:
        return _box_around(np.concatenate(geometry))
    return _box_around(_camera_frusta_points(cameras, depsgraph))


def _world_corners(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> np.ndarray | None:
    """(8, 3) world-space corners of the object's evaluated bounds, None when it has none."""
    evaluated = obj.evaluated_get(depsgraph)
    if obj.type == "EMPTY":
        size = obj.empty_display_size
        local = np.array([[x, y, z] for x in (-size, size) for y in (-size, size) for z in (-size, size)])
    else:
        local = np.array([list(corner) for corner in evaluated.bound_box], dtype=np.float64)
        if not np.any(local):
            return None
    matrix = np.array(_matrix_rows(evaluated.matrix_world), dtype=np.float64)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def _camera_frusta_points(cameras: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """Camera centres and the points their optical axes reach at the cameras' mean distance to their centroid."""
    poses = [np.array(_matrix_rows(cam.evaluated_get(depsgraph).matrix_world)) for cam in cameras]
    centres = np.array([pose[:3, 3] for pose in poses])
    centroid = centres.mean(axis=0)
    reach = float(np.mean(np.linalg.norm(centres - centroid, axis=1))) or 1.0
    forward = [-pose[:3, 2] / np.linalg.norm(pose[:3, 2]) for pose in poses]
    return np.concatenate([centres, centres + reach * np.array(forward)])


def _box_around(points: np.ndarray) -> SceneBox:
    low, high = points.min(axis=0), points.max(axis=0)
    # A flat object (a plane) has no depth: give every axis at least a sliver so the box has volume.
    pad = np.maximum(1e-3 * max(float(np.max(high - low)), 1.0) - (high - low), 0.0) / 2.0
    low, high = low - pad, high + pad
    return SceneBox(
        minimum=(float(low[0]), float(low[1]), float(low[2])), maximum=(float(high[0]), float(high[1]), float(high[2]))
    )


def _render_images(
    scene: bpy.types.Scene,
    cameras: list[bpy.types.Object],
    frames: list[Frame],
    staging: Path,
    progress: Progress | None,
) -> tuple[str, bool]:
    render = scene.render
    image_settings = render.image_settings
    has_alpha = bool(render.film_transparent)
    saved_camera = scene.camera
    saved_render = {
        name: getattr(render, name)
        for name in ("resolution_x", "resolution_y", "resolution_percentage", "pixel_aspect_x", "pixel_aspect_y")
    }
    image_names = [
        name for name in ("media_type", "file_format", "color_mode", "color_depth") if hasattr(image_settings, name)
    ]
    saved_image = {name: getattr(image_settings, name) for name in image_names}
    try:
        if "media_type" in saved_image:  # Blender 5.0+: the format list depends on the media type
            setattr(image_settings, "media_type", "IMAGE")  # noqa: B010 (absent from 4.2's type stubs)
        image_settings.file_format = "PNG"
        image_settings.color_mode = "RGBA" if has_alpha else "RGB"
        image_settings.color_depth = "8"
        for done, (camera, frame) in enumerate(zip(cameras, frames, strict=True)):
            if progress is not None:
                progress(done, len(frames))
            scene.camera = camera
            _apply_camera_resolution(render, camera.data, saved_render)
            frame.file_path += ".png"
            target = staging / frame.file_path
            result = bpy.ops.render.render(write_still=False, scene=scene.name)
            if "FINISHED" not in (result or set()):
                raise CaptureError(f"camera {camera.name!r}: rendering was cancelled")
            bpy.data.images["Render Result"].save_render(filepath=str(target), scene=scene)
            if not target.is_file():
                raise CaptureError(f"camera {camera.name!r}: the render was not written to {target}")
            _checked_image_info(target, frame.intrinsics, f"camera {camera.name!r}", "its intrinsics say")
        if progress is not None:
            progress(len(frames), len(frames))
    finally:
        for name, value in saved_image.items():
            setattr(image_settings, name, value)
        for name, value in saved_render.items():
            setattr(render, name, value)
        scene.camera = saved_camera
    return "srgb", has_alpha


def _apply_camera_resolution(render: bpy.types.RenderSettings, camera_data: Any, scene_values: dict) -> None:
    """Render this camera at its own resolution/pixel aspect when it has them, else the scene's."""
    resolution = camera_data.get(RESOLUTION_PROPERTY)
    pixel_aspect = camera_data.get(PIXEL_ASPECT_PROPERTY)
    if resolution is not None:
        render.resolution_x, render.resolution_y = int(resolution[0]), int(resolution[1])
        render.resolution_percentage = 100
    else:
        render.resolution_x, render.resolution_y = scene_values["resolution_x"], scene_values["resolution_y"]
        render.resolution_percentage = scene_values["resolution_percentage"]
    if pixel_aspect is not None:
        render.pixel_aspect_x, render.pixel_aspect_y = float(pixel_aspect[0]), float(pixel_aspect[1])
    else:
        render.pixel_aspect_x, render.pixel_aspect_y = scene_values["pixel_aspect_x"], scene_values["pixel_aspect_y"]


MATCH_RESOLUTION_HINT = ": match the render resolution to the photo"


def _checked_image_info(
    image: Path, intrinsics: Intrinsics, where: str, expected_by: str = "the frame says", hint: str = ""
) -> ImageInfo:
    """The image's size and channels; a CaptureError naming ``where`` if it is unreadable or not the camera's size."""
    try:
        info = read_image_info(image)
    except TransformsError as error:
        raise CaptureError(f"{where}: {error}") from error
    if (info.width, info.height) != (intrinsics.width, intrinsics.height):
        raise CaptureError(
            f"{where}: image {image} is {info.width}x{info.height} pixels but {expected_by} "
            f"{intrinsics.width}x{intrinsics.height}{hint}"
        )
    return info


def _copy_images(
    cameras: list[bpy.types.Object],
    frames: list[Frame],
    staging: Path,
    image_source: str,
    image_folder: Path | None,
    progress: Progress | None,
) -> tuple[str, bool]:
    suffixes = set()
    alphas = []
    for done, (camera, frame) in enumerate(zip(cameras, frames, strict=True)):
        if progress is not None:
            progress(done, len(frames))
        if image_source == "folder":
            assert image_folder is not None
            source = _image_in_folder(camera, Path(image_folder))
        else:
            source = _background_image_file(camera)
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise CaptureError(f"camera {camera.name!r}: {source} is not one of {', '.join(IMAGE_SUFFIXES)}")
        info = _checked_image_info(
            source, frame.intrinsics, f"camera {camera.name!r}", "the camera renders", MATCH_RESOLUTION_HINT
        )
        frame.file_path += source.suffix.lower()
        shutil.copyfile(source, staging / frame.file_path)
        suffixes.add(source.suffix.lower() in _LINEAR_SUFFIXES)
        alphas.append(info.has_alpha)
    if progress is not None:
        progress(len(frames), len(frames))
    if len(suffixes) > 1:
        raise CaptureError("images mix linear OpenEXR and display-referred PNG/JPEG: use one kind for all cameras")
    return ("linear" if suffixes == {True} else "srgb"), all(alphas)


def _image_in_folder(camera: bpy.types.Object, folder: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{camera.name}{suffix}", folder / f"{camera.name}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise CaptureError(
        f"camera {camera.name!r}: no image named {camera.name}{{{','.join(IMAGE_SUFFIXES)}}} in {folder}"
    )


def _background_image_file(camera: bpy.types.Object) -> Path:
    for background in camera.data.background_images:
        image = background.image
        if background.source != "IMAGE" or image is None:
            continue
        if image.packed_file is not None or image.source != "FILE":
            raise CaptureError(
                f"camera {camera.name!r}: background image {image.name!r} is packed or generated, not a file: "
                "unpack it (File > External Data) first"
            )
        path = Path(bpy.path.abspath(image.filepath, library=image.library))
        if not path.is_file():
            raise CaptureError(f"camera {camera.name!r}: background image file {path} is missing")
        return path
    raise CaptureError(f"camera {camera.name!r} has no background image")


def _matrix_rows(matrix: Any) -> list[list[float]]:
    """A mathutils 4x4 Matrix as a list of rows of Python floats."""
    return [[float(matrix[row][column]) for column in range(4)] for row in range(4)]


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Put the dataset built in ``staging`` where ``out_dir`` is. Only the old dataset's own files are
    replaced: anything else the user keeps in the folder (notes, an ``extra/`` folder, other images) is
    moved into the new dataset first, and put back if the swap fails."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    moves = _carry_over_plan(out_dir, staging, _dataset_files(out_dir))
    moved: list[tuple[Path, Path]] = []
    try:
        for source, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            moved.append((source, target))
        replace_folder(staging, out_dir)
    except BaseException:
        for source, target in reversed(moved):
            target.rename(source)
        raise


def _dataset_files(folder: Path) -> set[str]:
    """The files of the dataset in ``folder`` that an export writes: its transforms files and the images its
    frames name inside the folder (normalised absolute paths). Images of an unreadable transforms.json are
    not known, so they count as the user's."""
    own = {os.path.normpath(folder / name) for name in ("transforms.json", *(f"transforms_{s}.json" for s in SPLITS))}
    try:
        dataset = read_transforms(folder, allow_outside_paths=True)
    except TransformsError:
        return own
    for frame in dataset.frames:
        own.add(os.path.normpath(dataset.image_path(frame)))
    return own


def _carry_over_plan(old: Path, new: Path, own: set[str]) -> list[tuple[Path, Path]]:
    """(source, target) renames that carry everything in ``old`` that is not one of ``own`` into ``new`` at
    the same place. A user's file where the new dataset writes one is an error naming it, raised before
    anything is moved."""
    moves: list[tuple[Path, Path]] = []
    for entry in sorted(old.iterdir()):
        target = new / entry.name
        if os.path.normpath(entry) in own:
            continue
        is_folder = entry.is_dir() and not entry.is_symlink()
        if is_folder and (target.is_dir() or _holds_any(entry, own)):
            if target.exists() and not target.is_dir():
                raise CaptureError(f"{entry} is your folder, and the new dataset writes a file {target.name} there")
            moves += _carry_over_plan(entry, target, own)
        elif target.exists() or target.is_symlink():
            raise CaptureError(
                f"{entry} is not one of the dataset's files, and the new dataset writes one of that name: "
                "move it away, or export into another folder"
            )
        else:
            moves.append((entry, target))
    return moves


def _holds_any(folder: Path, own: set[str]) -> bool:
    prefix = os.path.normpath(folder) + os.sep
    return any(path.startswith(prefix) for path in own)


# --- import ------------------------------------------------------------------------------------


def import_dataset(
    scene: bpy.types.Scene,
    transforms_path: Path,
    *,
    set_render_resolution: bool = True,
) -> list[bpy.types.Object]:
    """Make one camera per frame of a dataset, in a new collection inside the "Fieldwork" collection.

    Each camera shows its image as a camera background image; a dataset's scene box becomes a cube
    empty "<dataset> scene box" in the same collection. A dataset without one gets the box the engine
    would choose (engine.data.bounds, alpha read by Blender), its rule and reason in the empty's
    ``fieldwork_scene_box_rule`` / ``fieldwork_scene_box_reason``. ``set_render_resolution`` sets the
    scene's render resolution and pixel aspect to the first frame's; frames that differ from the
    scene keep their own in the camera's ``fieldwork_resolution`` / ``fieldwork_pixel_aspect``.
    Everything is checked before anything is created: a bad dataset adds nothing to the file.
    """
    transforms = read_transforms(Path(transforms_path))
    settings = []
    for index, frame in enumerate(transforms.frames):
        image = transforms.image_path(frame)
        if not image.is_file():
            raise CaptureError(f"{transforms_path}: frame {index} ({frame.file_path}): image {image} is missing")
        _checked_image_info(image, frame.intrinsics, f"{transforms_path}: frame {index} ({frame.file_path})")
        try:
            settings.append(camera_from_intrinsics(frame.intrinsics, frame_name=f"frame {index} ({frame.file_path})"))
        except CameraError as error:
            raise CaptureError(f"{transforms_path}: {error}") from error
        try:
            checked_camera_to_world(frame.camera_to_world, f"frame {index} ({frame.file_path})")
        except CameraError as error:
            raise CaptureError(f"{transforms_path}: {error}") from error

    chosen: BoxChoice | None = None
    if transforms.scene_box is None:
        try:
            chosen = choose_for_transforms(transforms, _image_alpha)
        except ValueError as error:
            raise CaptureError(f"{transforms_path}: cannot choose a scene box: {error}") from error

    render = scene.render
    first = settings[0]
    if set_render_resolution:
        scene_width, scene_height = first.resolution_x, first.resolution_y
        scene_aspect = first.pixel_aspect_y / first.pixel_aspect_x
    else:
        scene_width = render.resolution_x * render.resolution_percentage // 100
        scene_height = render.resolution_y * render.resolution_percentage // 100
        scene_aspect = render.pixel_aspect_y / render.pixel_aspect_x

    dataset_name = transforms.root.resolve().name or "dataset"
    collection = bpy.data.collections.new(f"{dataset_name} cameras")
    fieldwork_collection(scene).children.link(collection)
    cameras = []
    for frame, camera_values in zip(transforms.frames, settings, strict=True):
        camera_data = bpy.data.cameras.new(frame.name)
        camera_data.type = "PERSP"
        camera_data.sensor_fit = camera_values.sensor_fit  # type: ignore[assignment]
        camera_data.sensor_width = camera_values.sensor_width
        camera_data.sensor_height = camera_values.sensor_height
        camera_data.lens = camera_values.lens
        camera_data.shift_x = camera_values.shift_x
        camera_data.shift_y = camera_values.shift_y
        if (scene_width, scene_height) != (camera_values.resolution_x, camera_values.resolution_y):
            camera_data[RESOLUTION_PROPERTY] = [camera_values.resolution_x, camera_values.resolution_y]
        if not math.isclose(scene_aspect, camera_values.pixel_aspect_y / camera_values.pixel_aspect_x, rel_tol=1e-6):
            camera_data[PIXEL_ASPECT_PROPERTY] = [camera_values.pixel_aspect_x, camera_values.pixel_aspect_y]
        intrinsics = frame.intrinsics
        camera_data[SOURCE_INTRINSICS_PROPERTY] = [
            intrinsics.fl_x,
            intrinsics.fl_y,
            intrinsics.cx,
            intrinsics.cy,
            float(intrinsics.width),
            float(intrinsics.height),
        ]
        background = camera_data.background_images.new()
        background.image = bpy.data.images.load(str(transforms.image_path(frame)), check_existing=True)
        background.frame_method = "STRETCH"  # the image is exactly the camera frame
        camera_data.show_background_images = True

        camera = bpy.data.objects.new(frame.name, camera_data)
        camera.matrix_world = mathutils.Matrix(frame.camera_to_world)
        camera[SOURCE_POSE_PROPERTY] = [value for row in frame.camera_to_world for value in row]
        camera[SPLIT_PROPERTY] = frame.split
        collection.objects.link(camera)
        cameras.append(camera)
    if transforms.scene_box is not None:
        collection.objects.link(_scene_box_empty(f"{dataset_name} scene box", transforms.scene_box))
    elif chosen is not None:
        empty = _scene_box_empty(f"{dataset_name} scene box", chosen.box)
        empty[BOX_RULE_PROPERTY] = chosen.rule
        empty[BOX_REASON_PROPERTY] = chosen.reason
        collection.objects.link(empty)
    if set_render_resolution:
        render.resolution_x, render.resolution_y = first.resolution_x, first.resolution_y
        render.resolution_percentage = 100
        render.pixel_aspect_x, render.pixel_aspect_y = first.pixel_aspect_x, first.pixel_aspect_y
    return cameras


def _image_alpha(path: Path) -> np.ndarray:
    """(h, w) alpha 0..1 of an image file read by Blender, top row first as the engine reads it (Blender
    keeps the bottom row first); ones when the image has no alpha channel."""
    image = bpy.data.images.load(str(path), check_existing=True)
    width, height = image.size
    channels = image.channels
    pixels = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)  # type: ignore[attr-defined]
    if channels not in (2, 4):
        return np.ones((height, width), dtype=np.float32)
    return pixels.reshape(height, width, channels)[::-1, :, -1].copy()


def _scene_box_empty(name: str, box: SceneBox) -> bpy.types.Object:
    """A cube empty spanning the box: export reads it back as the scene box (``scene_box_object``)."""
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type = "CUBE"
    empty.empty_display_size = 1.0  # the cube spans -1..1 before scale
    empty.location = box.center
    empty.scale = tuple(side / 2.0 for side in box.size)
    return empty
