"""FIELDWORK_OT_fit_surface: a watertight surface fitted to each selected object (a scan, a broken mesh, a
point cloud) by IGR or an Occupancy Network, in the engine as child processes; the source is left as it is."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from .import_mesh import select_only
from .shape_jobs import (
    PREVIEW_FILE_NAME,
    EngineStep,
    ShapeJobOperator,
    checked_objects,
    device,
    engine,
    export_objects,
    fresh_folder,
    import_result,
    train_arguments,
)


class FIELDWORK_OT_fit_surface(ShapeJobOperator):
    """Fit a watertight surface to each selected object (IGR or Occupancy Network) and add it beside the source;
    the surface being fitted is shown over the viewport as it trains"""

    bl_idname = "fieldwork.fit_surface"
    bl_label = "Fit Surface"
    bl_options = {"REGISTER", "UNDO"}
    wants_preview = True

    method: EnumProperty(  # type: ignore[valid-type]
        name="Method",
        items=[
            ("igr", "IGR", "Signed distance from the points (and normals): scans, point clouds, holes"),
            ("onet", "Occupancy Network", "Occupancy from inside/outside labels: meshes, also with holes"),
        ],
        default="igr",
    )
    resolution: IntProperty(  # type: ignore[valid-type]
        name="Resolution", description="Mesh cells along the object's longest side", default=128, min=16, max=1024
    )
    minutes: FloatProperty(  # type: ignore[valid-type]
        name="Time Budget", description="Minutes of training per object", default=1.0, min=0.01, max=600.0
    )
    settings: StringProperty(  # type: ignore[valid-type]
        name="Method Settings",
        description="More settings of the method, 'key=value' separated by spaces (python -m engine methods)",
    )
    steps: IntProperty(  # type: ignore[valid-type]
        name="Step Limit", description="Stop after this many training steps (0: only the time budget)", default=0, min=0
    )

    _created: list[str]

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        objects = checked_objects(context, sorted(context.selected_objects, key=lambda obj: obj.name))
        resolution = self.resolution
        self._created = []
        steps: list[EngineStep] = []
        for obj in objects:
            folder = fresh_folder(context, obj.name)
            dataset = export_objects(context, folder / "shapes", [obj])
            run, mesh = folder / "run", folder / f"mesh-{resolution}.ply"
            budget = ["--minutes", repr(self.minutes)] + (["--steps", str(self.steps)] if self.steps else [])
            budget += [argument for setting in self.settings.split() for argument in ("--set", setting)]
            view = self.preview.view_path if self.preview is not None else None
            steps.append(
                EngineStep(
                    engine(context, *train_arguments(dataset, run, self.method, device(context), budget, view)),
                    f"fitting {obj.name} ({self.method})",
                    preview=run / PREVIEW_FILE_NAME if view is not None else None,
                )
            )
            steps.append(
                EngineStep(
                    engine(
                        context,
                        "extract",
                        str(run),
                        "--resolution",
                        str(resolution),
                        "--out",
                        str(mesh),
                        "--json",
                        "--device",
                        device(context),
                    ),
                    f"meshing {obj.name}",
                    self._importer(context, obj.name, run, mesh),
                )
            )
        return steps

    def _importer(self, context: bpy.types.Context, name: str, run: Path, mesh: Path):  # type: ignore[no-untyped-def]
        def done(_stdout: str) -> None:
            source = bpy.data.objects[name]
            result = import_result(context, mesh, str(run), f"{name} Surface", matrix_world=source.matrix_world.copy())
            select_only(context, result)
            self._created.append(result.name)

        return done

    def finished_message(self) -> str:
        return f"Fitted {', '.join(self._created)}"


CLASSES = (FIELDWORK_OT_fit_surface,)
