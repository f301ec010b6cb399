"""FIELDWORK_OT_shape_space: learn a space of shapes from a collection of objects (a variational Occupancy
Network or DeepSDF), for New Shape, Blend Shapes and Complete Shape."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from ..shapes import SHAPE_TYPES
from .shape_jobs import (
    PREVIEW_FILE_NAME,
    SHAPE_SPACE_KEY,
    EngineStep,
    ShapeJobError,
    ShapeJobOperator,
    checked_objects,
    device,
    engine,
    export_objects,
    fresh_folder,
    train_arguments,
)

# An Occupancy Network samples new shapes only when variational and unconditional (z from the prior).
METHOD_SETTINGS = {"onet": ["--set", "variational=true", "--set", "encoder=none"], "deepsdf": []}


class FIELDWORK_OT_shape_space(ShapeJobOperator):
    """Train a shape space over a collection's objects (one shape each): then make new shapes, blends, completions"""

    bl_idname = "fieldwork.shape_space"
    bl_label = "Shape Space"
    bl_options = {"REGISTER"}
    wants_preview = True

    collection: StringProperty(  # type: ignore[valid-type]
        name="Collection", description="The collection of shapes (empty: the active object's collection)"
    )
    method: EnumProperty(  # type: ignore[valid-type]
        name="Method",
        items=[
            ("deepsdf", "DeepSDF", "One code per shape, signed distances: blends and completion"),
            ("onet", "Occupancy Network", "Variational occupancy network: new shapes from its prior"),
        ],
        default="deepsdf",
    )
    minutes: FloatProperty(name="Time Budget", default=5.0, min=0.01, max=6000.0)  # type: ignore[valid-type]
    settings: StringProperty(  # type: ignore[valid-type]
        name="Method Settings",
        description="More settings of the method, 'key=value' separated by spaces (python -m engine methods)",
    )
    steps: IntProperty(  # type: ignore[valid-type]
        name="Step Limit", description="Stop after this many training steps (0: only the time budget)", default=0, min=0
    )

    def prepare(self, context: bpy.types.Context) -> list[EngineStep]:
        collection = self._collection(context)
        members = sorted((obj for obj in collection.all_objects if obj.type in SHAPE_TYPES), key=lambda o: o.name)
        if len(members) < 2:
            raise ShapeJobError(
                f"collection {collection.name!r} holds {len(members)} shapes: a shape space needs 2 or more"
            )
        objects = checked_objects(context, members)
        folder = fresh_folder(context, f"{collection.name}-{self.method}")
        dataset = export_objects(context, folder / "shapes", objects)
        run = folder / "run"
        budget = ["--minutes", repr(self.minutes)] + (["--steps", str(self.steps)] if self.steps else [])
        budget += [argument for setting in self.settings.split() for argument in ("--set", setting)]

        def done(_stdout: str) -> None:
            assert context.scene is not None
            context.scene[SHAPE_SPACE_KEY] = str(run)
            collection[SHAPE_SPACE_KEY] = str(run)

        self._summary = f"Shape space of {len(objects)} shapes from {collection.name!r}: {run}"
        view = self.preview.view_path if self.preview is not None else None
        arguments = train_arguments(dataset, run, self.method, device(context), budget, view)
        command = engine(context, *arguments, *METHOD_SETTINGS[self.method])
        # the preview shows the collection's first shape as the space learns it
        preview = run / PREVIEW_FILE_NAME if view is not None else None
        return [EngineStep(command, f"learning {collection.name} ({self.method})", done, preview)]

    def _collection(self, context: bpy.types.Context) -> bpy.types.Collection:
        if self.collection:
            found = bpy.data.collections.get(self.collection)
            if found is None:
                raise ShapeJobError(f"no collection named {self.collection!r}")
            return found
        active = context.active_object
        if active is None or not active.users_collection:
            raise ShapeJobError("No collection given and no active object: pick the collection of shapes")
        return active.users_collection[0]

    def finished_message(self) -> str:
        return self._summary


CLASSES = (FIELDWORK_OT_shape_space,)
