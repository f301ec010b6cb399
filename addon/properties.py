"""Per-scene Fieldwork settings (``scene.fieldwork``)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .engine import methods

# The Method menu: every method that trains on posed images, from the engine's registry (stdlib only).
METHOD_ITEMS = [(spec.name, spec.label, spec.description) for spec in methods.specs(methods.IMAGES)]

# Folder settings accept '//' (the .blend's folder). Blender 4.5+ warns unless a path property says so;
# older versions lack the option, so it is offered only where Blender knows it.
BLEND_RELATIVE: set[str] = (
    {"PATH_SUPPORTS_BLEND_RELATIVE"}
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
    else set()
)

# Extract settings the panel keeps per scene and the Extract operator takes: declared once, used by both.
MESH_RESOLUTION = IntProperty(
    name="Resolution", description="Finest cells along the scene box's longest side", default=256, min=16, max=1024
)
MESH_FILL_UNSEEN = BoolProperty(
    name="Fill Unseen Space",
    description="Make solid the space behind surfaces that no training camera sees, so the mesh has no inner walls",
    default=True,
)
MESH_REPLACE_PREVIOUS = BoolProperty(
    name="Replace Previous", description="Remove meshes extracted earlier from this run", default=False
)
MESH_COLOURS = EnumProperty(
    name="Colours",
    items=[
        ("VERTEX", "Vertex Colours", "A colour per vertex: quick, blurry on a light or decimated mesh"),
        ("TEXTURE", "Texture", "A UV map and a baked image texture: sharp at any face count"),
    ],
    default="VERTEX",
)
MESH_TEXTURE_SIZE = EnumProperty(
    name="Texture Size",
    items=[
        ("1024", "1k", "1024 x 1024 texels"),
        ("2048", "2k", "2048 x 2048 texels"),
        ("4096", "4k", "4096 x 4096 texels"),
    ],
    default="2048",
)
MESH_TEXTURE_STORAGE = EnumProperty(
    name="Texture Storage",
    items=[
        ("PACK", "Pack into .blend", "Keep the image inside the .blend file"),
        ("BESIDE", "Save Beside .blend", "Copy the image into a 'textures' folder beside the saved .blend"),
    ],
    default="PACK",
)


class FieldworkCaptureSettings(bpy.types.PropertyGroup):
    """Which cameras and images become a dataset (``scene.fieldwork.capture``)."""

    camera_scope: EnumProperty(  # type: ignore[valid-type]
        name="Cameras",
        items=[
            ("VIEW_LAYER", "All in View Layer", "Every perspective camera in the view layer"),
            ("SELECTED", "Selected", "The selected cameras"),
            ("COLLECTION", "Collection", "The cameras in one collection"),
        ],
        default="VIEW_LAYER",
    )
    camera_collection: PointerProperty(name="Camera Collection", type=bpy.types.Collection)  # type: ignore[valid-type]
    image_source: EnumProperty(  # type: ignore[valid-type]
        name="Images",
        items=[
            ("render", "Render", "Render every camera with the scene's render engine"),
            ("background", "Background Images", "Each camera's background image file"),
            ("folder", "Photo Folder", "A file named after each camera (Camera.png, .jpg or .exr) in a folder"),
        ],
        default="render",
    )
    image_folder: StringProperty(  # type: ignore[valid-type]
        name="Photo Folder",
        description="Folder with one image per camera, named after it",
        subtype="DIR_PATH",
        options=BLEND_RELATIVE,
    )
    scene_box_object: PointerProperty(  # type: ignore[valid-type]
        name="Scene Box",
        description="Object whose bounds are the scene box (empty: the visible geometry, else the cameras)",
        type=bpy.types.Object,
    )
    holdout_every: IntProperty(  # type: ignore[valid-type]
        name="Hold Out Every",
        description="Hold out frames 0, N, 2N, ... as test images (0: none, or the splits an imported dataset had)",
        default=0,
        min=0,
        soft_max=50,
    )
    split_files: BoolProperty(  # type: ignore[valid-type]
        name="Split Files", description="Also write transforms_train/val/test.json (NeRF synthetic layout)"
    )


class FieldworkLayoutSettings(bpy.types.PropertyGroup):
    """Generated layouts of a GIRAFFE run (``scene.fieldwork.layouts``; addon/layouts.py)."""

    run_dir: StringProperty(  # type: ignore[valid-type]
        name="Run Folder",
        description="A trained run of a method that makes layouts (GIRAFFE)",
        subtype="DIR_PATH",
        options=BLEND_RELATIVE,
    )
    seed: IntProperty(name="Seed", description="The layout's seed: codes, poses and camera", default=0, min=0)  # type: ignore[valid-type]
    object_count: IntProperty(  # type: ignore[valid-type]
        name="Objects",
        description="Objects in a generated layout (-1: a count drawn from the model's prior); more than the "
        "model trained with renders, with a warning",
        default=-1,
        min=-1,
        soft_max=8,
    )
    proxy_resolution: IntProperty(  # type: ignore[valid-type]
        name="Proxy Resolution",
        description="Cells a side of each object's box its proxy mesh is marched on (0: boxes only)",
        default=16,
        min=0,
        max=64,
    )
    preview_size: IntProperty(  # type: ignore[valid-type]
        name="Render Size", description="Longest side of layout renders in pixels", default=64, min=8, max=1024
    )
    live: BoolProperty(  # type: ignore[valid-type]
        name="Live", description="Re-render the layout whenever an object or the camera changes", default=True
    )
    layout_file: StringProperty(  # type: ignore[valid-type]
        name="Layout File",
        description="Where Save Layout writes and Load Layout reads (the engine's layout JSON)",
        subtype="FILE_PATH",
        options=BLEND_RELATIVE,
        default="//layout.json",
    )
    animation_dir: StringProperty(  # type: ignore[valid-type]
        name="Animation Folder",
        description="Where Render Layout Animation writes one image per frame",
        subtype="DIR_PATH",
        options=BLEND_RELATIVE,
        default="//layout_frames/",
    )


class FieldworkSceneSettings(bpy.types.PropertyGroup):
    capture: PointerProperty(type=FieldworkCaptureSettings)  # type: ignore[valid-type]
    layouts: PointerProperty(type=FieldworkLayoutSettings)  # type: ignore[valid-type]
    method: EnumProperty(  # type: ignore[valid-type]
        name="Method", description="What the engine trains on the scene's cameras", items=METHOD_ITEMS, default="ngp"
    )
    steps: IntProperty(name="Steps", default=2000, min=1, soft_max=100000)  # type: ignore[valid-type]
    minutes: FloatProperty(  # type: ignore[valid-type]
        name="Time Budget (min)", description="Stop after this many minutes (0: no limit)", default=0.0, min=0.0
    )
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Where datasets, checkpoints and meshes are written ('//' is the .blend's folder)",
        subtype="DIR_PATH",
        options=BLEND_RELATIVE,
        default="//fieldwork/",
    )
    # Live session (issue 5): previews and the dataset a run trains on.
    dataset_dir: StringProperty(  # type: ignore[valid-type]
        name="Dataset",
        description="Train on this existing dataset folder (transforms.json); empty: render the scene's cameras "
        "into <Output Folder>/dataset first",
        subtype="DIR_PATH",
        options=BLEND_RELATIVE,
        default="",
    )
    preview_mode: EnumProperty(  # type: ignore[valid-type]
        name="Preview",
        description="What the live preview shows",
        items=[
            ("color", "Color", "The field's rendered colour"),
            ("depth", "Depth", "Distance along each ray, near bright, far dark"),
            ("opacity", "Opacity", "Accumulated opacity along each ray"),
        ],
        default="color",
    )
    show_preview_overlay: BoolProperty(  # type: ignore[valid-type]
        name="Viewport Preview",
        description="Draw the live preview over the 3D viewport, rendered from the viewport's own view",
        default=True,
    )
    preview_max_side: IntProperty(  # type: ignore[valid-type]
        name="Preview Size",
        description="Longest side of preview frames in pixels (smaller while training is slow)",
        default=256,
        min=16,
        max=2048,
    )
    preview_every_s: FloatProperty(  # type: ignore[valid-type]
        name="Preview Interval (s)",
        description="Seconds between previews at most; the engine spaces them further when they would slow training",
        default=0.5,
        min=0.05,
        max=60.0,
    )
    mesh_run_dir: StringProperty(  # type: ignore[valid-type]
        name="Run Folder",
        description="The training run to extract a mesh from (empty: <Output Folder>/run, where Train writes)",
        subtype="DIR_PATH",
        options=BLEND_RELATIVE,
    )
    mesh_resolution: MESH_RESOLUTION  # type: ignore[valid-type]
    mesh_fill_unseen: MESH_FILL_UNSEEN  # type: ignore[valid-type]
    mesh_replace_previous: MESH_REPLACE_PREVIOUS  # type: ignore[valid-type]
    mesh_colours: MESH_COLOURS  # type: ignore[valid-type]
    mesh_texture_size: MESH_TEXTURE_SIZE  # type: ignore[valid-type]
    mesh_texture_storage: MESH_TEXTURE_STORAGE  # type: ignore[valid-type]


_CLASSES = (FieldworkCaptureSettings, FieldworkLayoutSettings, FieldworkSceneSettings)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.fieldwork = PointerProperty(type=FieldworkSceneSettings)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.Scene.fieldwork  # type: ignore[attr-defined]
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
