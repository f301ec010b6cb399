"""FIELDWORK_OT_texture_from_image: the active mesh object textured from one image of such an object, by a
trained conditional texture field (``python -m engine texture`` as a child process); a textured copy is added
to the Fieldwork collection at the source's transform, the source is left as it is."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .. import shapes
from ..engine.data.shapes import ShapeError
from ..engine.mesh.io import write_mesh
from ..engine.mesh.triangle_mesh import TriangleMesh
from .import_mesh import select_only
from .shape_jobs import (
    EngineStep,
    ShapeJobError,
    ShapeJobOperator,
    checked_objects,
    device,
    engine,
    fresh_folder,
    import_result,
)

TEXTURE_SIZES = [(str(size), f"{size} px", f"A {size} x {size} texture") for size in (256, 512, 1024, 2048, 4096)]


class FIELDWORK_OT_texture_from_image(ShapeJobOperator):
    """Texture the active mesh object from one image, with a trained conditional texture field run; a textured
    copy is added beside it"""

    bl_idname = "fieldwork.texture_from_image"
    bl_label = "Texture From Image"
    bl_options = {"REGISTER", "UNDO"}

    run_dir: StringProperty(  # type: ignore[valid-type]
        name="Run Folder", description="A trained conditional_texture_field run", subtype="DIR_PATH"
    )
    image_path: StringProperty(  # type: ignore[valid-type]
        name="Image", description="One view of the object (PNG with its alpha is best)", subtype="FILE_PATH"
    )
    size: EnumProperty(name="Texture Size", items=TEXTURE_SIZES, default="1024")  # type: ignore[valid-type]

    from_dialog: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    _created: str = ""

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        # from the panel the run and the image are not known yet: ask for them; the dialog's OK calls execute,
        # which then starts the job as invoke would (in the background, with progress and Esc)
        if not (self.run_dir and self.image_path) and not bpy.app.background and context.window is not None:
            self.from_dialog = True
            return {str(state) for state in context.window_manager.invoke_props_dialog(self, width=420)}
        return super().invoke(context, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        if self.from_dialog and not bpy.app.background and context.window is not None:
            self.from_dialog = False  # a redo of the finished job runs it here, blocking
            return self.start_modal(context)
        return super().execute(context)

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        source = context.active_object
        if source is None:
            raise ShapeJobError("No active object: make the mesh object to texture active")
        if source.type != "MESH":
            raise ShapeError(f"object {source.name!r} is a {source.type.lower()}, not a mesh")
        (source,) = checked_objects(context, [source])
        run = Path(bpy.path.abspath(self.run_dir)) if self.run_dir else None
        if run is None or not (run / "checkpoint.pt").is_file():
            raise ShapeJobError(f"Run folder {run or '(none given)'} holds no trained run (no checkpoint.pt)")
        image = Path(bpy.path.abspath(self.image_path)) if self.image_path else None
        if image is None or not image.is_file():
            raise ShapeJobError(f"Image {image or '(none given)'}: no such file")
        view_layer = context.view_layer
        assert view_layer is not None and view_layer.depsgraph is not None  # checked_objects updated it
        geometry = shapes.object_geometry(source, view_layer.depsgraph)
        if geometry.faces is None or len(geometry.faces) == 0:
            raise ShapeError(f"object {source.name!r} has no faces to texture")
        folder = fresh_folder(context, f"{source.name}-texture")
        mesh_path = write_mesh(TriangleMesh(geometry.vertices, geometry.faces), folder / "source.ply")
        out = folder / "textured.ply"
        command = engine(
            context, "texture", str(run), "--mesh", str(mesh_path), "--image", str(image), "--size", self.size,
            "--out", str(out), "--json", "--progress", "--device", device(context),
        )  # fmt: skip
        return [EngineStep(command, f"texturing {source.name}", self._importer(context, source.name, run, out))]

    def _importer(self, context: bpy.types.Context, name: str, run: Path, mesh: Path):  # type: ignore[no-untyped-def]
        def done(_stdout: str) -> None:
            source = bpy.data.objects[name]
            result = import_result(context, mesh, str(run), f"{name} Textured", matrix_world=source.matrix_world.copy())
            select_only(context, result)
            self._created = result.name

        return done

    def finished_message(self) -> str:
        return f"Textured {self._created}"


CLASSES = (FIELDWORK_OT_texture_from_image,)
