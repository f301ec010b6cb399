"""The "Fieldwork" tab in the 3D viewport's sidebar (N panel)."""

from __future__ import annotations

import bpy

from . import client
from .engine import methods, protocol


class _FieldworkSidebar(bpy.types.Panel):
    """Where every Fieldwork panel lives: the 3D viewport's sidebar, "Fieldwork" tab."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Fieldwork"


class VIEW3D_PT_fieldwork(_FieldworkSidebar):
    bl_label = "Fieldwork"
    bl_idname = "VIEW3D_PT_fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.fieldwork  # type: ignore[attr-defined]
        layout.prop(settings, "method")
        col = layout.column(align=True)
        col.prop(settings, "steps")
        col.prop(settings, "minutes")
        layout.prop(settings, "output_dir")
        layout.operator("fieldwork.check_engine", icon="CHECKMARK")


class VIEW3D_PT_fieldwork_capture(_FieldworkSidebar):
    bl_label = "Capture"
    bl_idname = "VIEW3D_PT_fieldwork_capture"
    bl_parent_id = "VIEW3D_PT_fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        capture = context.scene.fieldwork.capture  # type: ignore[attr-defined]
        layout.prop(capture, "camera_scope")
        if capture.camera_scope == "COLLECTION":
            layout.prop(capture, "camera_collection")
        layout.prop(capture, "image_source")
        if capture.image_source == "folder":
            layout.prop(capture, "image_folder")
        layout.prop(capture, "scene_box_object")
        row = layout.row(align=True)
        row.prop(capture, "holdout_every")
        row.prop(capture, "split_files", toggle=True)
        row = layout.row(align=True)
        row.operator("fieldwork.export_dataset", icon="EXPORT")
        row.operator("fieldwork.import_dataset", icon="IMPORT")


class VIEW3D_PT_fieldwork_extract(_FieldworkSidebar):
    bl_label = "Extract"
    bl_idname = "VIEW3D_PT_fieldwork_extract"
    bl_parent_id = "VIEW3D_PT_fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.fieldwork  # type: ignore[attr-defined]
        layout.prop(settings, "mesh_run_dir")
        layout.prop(settings, "mesh_resolution")
        layout.prop(settings, "mesh_fill_unseen")
        layout.prop(settings, "mesh_colours", expand=True)
        if settings.mesh_colours == "TEXTURE":
            row = layout.row(align=True)
            row.prop(settings, "mesh_texture_size", expand=True)
            layout.prop(settings, "mesh_texture_storage")
        layout.prop(settings, "mesh_replace_previous")
        extract = layout.operator("fieldwork.extract_mesh", icon="MESH_MONKEY")
        extract.run_dir = settings.mesh_run_dir  # empty: the run the Train button writes, <Output Folder>/run
        extract.resolution = settings.mesh_resolution
        extract.fill_unseen = settings.mesh_fill_unseen
        extract.replace_previous = settings.mesh_replace_previous
        extract.colours = settings.mesh_colours
        extract.texture_size = settings.mesh_texture_size
        extract.texture_storage = settings.mesh_texture_storage
        layout.operator("fieldwork.import_mesh", icon="IMPORT")


class VIEW3D_PT_fieldwork_shapes(_FieldworkSidebar):
    bl_label = "Shapes"
    bl_idname = "VIEW3D_PT_fieldwork_shapes"
    bl_parent_id = "VIEW3D_PT_fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.label(text="Selected objects")
        layout.operator("fieldwork.export_shapes", icon="EXPORT")
        layout.operator("fieldwork.fit_surface", icon="MOD_REMESH")
        layout.operator("fieldwork.texture_from_image", icon="TEXTURE")
        layout.separator()
        layout.label(text="Shape space of a collection")
        layout.operator("fieldwork.shape_space", icon="OUTLINER_COLLECTION")
        run = context.scene.get("fieldwork_shape_space", "") if context.scene is not None else ""
        column = layout.column(align=True)
        column.enabled = bool(run)
        column.operator("fieldwork.new_shape", icon="ADD")
        column.operator("fieldwork.blend_shapes", icon="IPO_LINEAR")
        column.operator("fieldwork.complete_shape", icon="MOD_BUILD")
        if run:
            layout.label(text=f"Space: {run}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class VIEW3D_PT_fieldwork_train(_FieldworkSidebar):
    bl_label = "Train"
    bl_idname = "VIEW3D_PT_fieldwork_train"
    bl_parent_id = "VIEW3D_PT_fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.fieldwork  # type: ignore[attr-defined]
        layout.prop(settings, "dataset_dir")
        row = layout.row(align=True)
        row.prop(settings, "preview_mode", expand=True)
        layout.prop(settings, "show_preview_overlay")
        col = layout.column(align=True)
        col.prop(settings, "preview_max_side")
        col.prop(settings, "preview_every_s")
        session = client.session_for(client.scene_key(context.scene))  # type: ignore[arg-type]
        state = session.state if session is not None else None
        if state is None or not state.active:
            layout.operator("fieldwork.train", icon="PLAY")
        else:
            layout.operator("fieldwork.stop", icon="SNAP_FACE")
        if state is None:
            return
        progress = state.progress or protocol.Progress()
        if progress.phase == "evaluate":
            progress_text = f"evaluating: view {progress.step} / {progress.total_steps}"
        else:
            progress_text = f"{state.status}: step {state.step} / {state.total_steps}"
        layout.progress(factor=state.progress_fraction, type="BAR", text=progress_text)
        grid = layout.grid_flow(columns=2, even_columns=True)
        # the method's own figures (loss, PSNR, eikonal...), labelled as its registry entry says
        for figure in methods.get(settings.method).all_figures:
            if figure.name in state.figures:
                grid.label(text=figure.text(state.figures[figure.name]))
        grid.label(text=f"Frames {state.frames_received} ({100 * state.preview_share:.0f}% of time)")
        grid.label(text=f"Elapsed {_duration(progress.elapsed_s)}")
        grid.label(text=f"Left {_duration(progress.remaining_s)}")
        if state.error:
            box = layout.box()
            for index, line in enumerate(state.error.splitlines()[:8]):
                box.label(text=line, icon="ERROR" if index == 0 else "NONE")
        elif state.message:
            layout.label(text=state.message)


class VIEW3D_PT_fieldwork_layouts(_FieldworkSidebar):
    """Generated layouts of a GIRAFFE run: generate, edit the empties (live re-render), save, animate."""

    bl_label = "Layouts"
    bl_idname = "VIEW3D_PT_fieldwork_layouts"
    bl_parent_id = "VIEW3D_PT_fieldwork"

    def draw(self, context: bpy.types.Context) -> None:
        from . import layouts

        layout = self.layout
        scene = context.scene
        settings = scene.fieldwork.layouts  # type: ignore[union-attr]
        layout.prop(settings, "run_dir")
        row = layout.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "object_count")
        layout.prop(settings, "proxy_resolution")
        layout.operator("fieldwork.generate_layout", icon="OUTLINER_COLLECTION")
        state = layouts.state_for(scene)  # type: ignore[arg-type]
        if state.facts:
            low, high = state.facts.get("object_count", [0, 0])
            layout.label(text=f"{state.method} at step {state.step}: {low} to {high} objects")
        if layouts.layout_collection(scene) is None:  # type: ignore[arg-type]
            if state.error:
                layout.label(text=state.error, icon="ERROR")
            return
        row = layout.row(align=True)
        row.prop(settings, "live", toggle=True)
        row.prop(settings, "preview_size")
        layout.operator("fieldwork.render_layout", icon="RENDER_STILL")
        if state.last is not None:
            layout.label(text=f"{len(state.last.names)} objects, {state.last.seconds:.2f} s a frame")
        row = layout.row(align=True)
        row.operator("fieldwork.resample_codes", text="Resample Shape").which = "shape"
        row.operator("fieldwork.resample_codes", text="Resample Appearance").which = "appearance"
        layout.operator("fieldwork.copy_layout_codes", icon="COPYDOWN")
        layout.prop(settings, "layout_file")
        row = layout.row(align=True)
        row.operator("fieldwork.save_layout", icon="EXPORT")
        row.operator("fieldwork.load_layout", icon="IMPORT")
        layout.prop(settings, "animation_dir")
        layout.operator("fieldwork.render_layout_animation", icon="RENDER_ANIMATION")
        if state.error:
            layout.label(text=state.error, icon="ERROR")
        for warning in state.warnings[:6]:
            layout.label(text=warning, icon="ERROR")


def _draw_status_bar(self: bpy.types.Header, context: bpy.types.Context) -> None:
    """Progress of the scene's training run in the status bar, like Blender's own jobs."""
    session = client.session_for(client.scene_key(context.scene)) if context.scene is not None else None
    if session is None or not session.state.active:
        return
    state = session.state
    self.layout.progress(factor=state.progress_fraction, type="BAR", text=f"Fieldwork {state.step}/{state.total_steps}")


_CLASSES = (
    VIEW3D_PT_fieldwork,
    VIEW3D_PT_fieldwork_capture,
    VIEW3D_PT_fieldwork_extract,
    VIEW3D_PT_fieldwork_shapes,
    VIEW3D_PT_fieldwork_train,
    VIEW3D_PT_fieldwork_layouts,
)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(_draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(_draw_status_bar)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
