"""What the shape methods (igr, onet, deepsdf) share: a field over a shape's normalised space, optionally
conditioned on a code, and what a trained run answers: a shape's, a sampled or a blended code, evaluation.

A shape model's network works in the shape's normalised space ([-1, 1]^3 is the padded box's cube,
engine/data/shapes.py). The trainer asks ``surface(points_unit)`` in its [0, 1]^3 unit cube over its
``scene_box``; a :class:`ShapeCondition` picks the code the surface is of and the world cube it stands in, so
extraction (engine/mesh/extract.py, through Trainer.query_surface) meshes that shape in its object's world
space.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..data.dataset import SceneNormalization
from ..data.shape_source import ShapeSource, cube_box, normalization_from_fact
from ..data.shapes import ShapeNormalization
from .base import Method

if TYPE_CHECKING:
    from ..train.trainer import Trainer


@dataclass
class ShapeCondition:
    """Which surface a shape model shows: code (d,) or None (a single-shape model), and the world cube its
    normalised space stands in. label names it (a shape, ``sample 3``, ``A..B 0.5``)."""

    code: torch.Tensor | None
    normalization: ShapeNormalization
    label: str


class ShapeModel(Method):
    """A shape method's model. ``sdf_output``: the field is a signed distance in normalised units (negative
    inside); otherwise occupancy logits."""

    sdf_output: ClassVar[bool] = True

    def __init__(self, context: Any) -> None:
        super().__init__()
        data = context.data
        self.shape_names: list[str] = list(data.get("shapes", []))
        self.normalizations = [normalization_from_fact(fact) for fact in data.get("normalizations", [])]
        self.holdout: list[str] = list(data.get("holdout", []))
        self.active_code: torch.Tensor | None = None  # what surface() shows; not part of the checkpoint

    @abstractmethod
    def field(self, points: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """(n, 3) points in the normalised space, code (d,) or None -> (n,) signed distance or occupancy logit."""

    def surface(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) trainer unit-cube points -> (n,) SDF in unit-cube units (half the normalised), or logits."""
        values = self.field(points * 2.0 - 1.0, self.active_code)
        return values * 0.5 if self.sdf_output else values

    def inside(self, values: torch.Tensor) -> torch.Tensor:
        return values < 0.0 if self.sdf_output else values > 0.0

    def outside_fn(self, trainer: Trainer) -> Callable[[torch.Tensor], torch.Tensor]:
        """Unit-cube points -> a scalar positive outside (the SDF, or minus the occupancy logit): what a
        preview of the surface marches (Trainer.render). It shows the active code; a model with codes and
        none active shows its first shape, which stands in the trainer's box."""
        code = self.active_code
        if code is None and type(self).code_of_shape is not ShapeModel.code_of_shape:
            code = shape_condition(trainer).code

        def outside(points: torch.Tensor) -> torch.Tensor:
            values = self.field(points * 2.0 - 1.0, code)
            return values * 0.5 if self.sdf_output else -values

        return outside

    # -- codes ---------------------------------------------------------------------------------

    def code_of_shape(self, index: int, source: ShapeSource | None) -> torch.Tensor | None:
        """The code of shape ``index`` of the run's dataset (None: a single-shape model)."""
        return None

    def random_code(self, generator: torch.Generator) -> torch.Tensor:
        raise ValueError(f"{type(self).__name__} does not sample new shapes: it has no prior over codes")

    def shape_index(self, name: str) -> int:
        if name not in self.shape_names:
            raise ValueError(f"no shape named {name!r} in this run; it has {', '.join(self.shape_names)}")
        return self.shape_names.index(name)

    def evaluate(self, trainer: Trainer) -> dict[str, Any]:
        settings = trainer.config.settings
        return evaluate_shapes(
            trainer, int(getattr(settings, "eval_resolution", 64)), int(getattr(settings, "eval_shapes", 4))
        )


# ---------------------------------------------------------------------------- conditions of a trained run


def shape_model(trainer: Trainer) -> ShapeModel:
    if not isinstance(trainer.model, ShapeModel):
        raise ValueError(f"method {trainer.config.method!r} is not a shape method")
    return trainer.model


def shape_source(trainer: Trainer) -> ShapeSource:
    source = trainer.source
    assert isinstance(source, ShapeSource)
    return source


def shape_condition(trainer: Trainer, name: str | None = None) -> ShapeCondition:
    """Shape ``name`` (default: the first) as trained or, for a held-out one, as the model infers it."""
    model = shape_model(trainer)
    index = model.shape_index(name) if name else 0
    needs_data = type(model).code_of_shape is not ShapeModel.code_of_shape
    source = shape_source(trainer) if needs_data else None
    with torch.no_grad():
        code = model.code_of_shape(index, source)
    return ShapeCondition(code, model.normalizations[index], model.shape_names[index])


def sample_condition(trainer: Trainer, seed: int) -> ShapeCondition:
    """A new shape from the model's prior, standing in the mean cube of the training shapes."""
    model = shape_model(trainer)
    generator = torch.Generator(device=trainer.device)
    generator.manual_seed(seed)
    with torch.no_grad():
        code = model.random_code(generator)
    centers = np.mean([n.center for n in model.normalizations], axis=0)
    scale = float(np.mean([n.scale for n in model.normalizations]))
    normalization = ShapeNormalization(center=(float(centers[0]), float(centers[1]), float(centers[2])), scale=scale)
    return ShapeCondition(code, normalization, f"sample {seed}")


def blend_condition(trainer: Trainer, first: str, second: str, t: float) -> ShapeCondition:
    """The code (1 - t) a + t b between two shapes' codes, in the cube between theirs."""
    if not math.isfinite(t):
        raise ValueError(f"--t must be a finite number, got {t}")
    a, b = shape_condition(trainer, first), shape_condition(trainer, second)
    if a.code is None or b.code is None:
        raise ValueError(f"method {trainer.config.method!r} has no codes to blend")
    center = (1.0 - t) * np.asarray(a.normalization.center) + t * np.asarray(b.normalization.center)
    scale = (1.0 - t) * a.normalization.scale + t * b.normalization.scale
    return ShapeCondition(
        torch.lerp(a.code, b.code, t),
        ShapeNormalization(center=(float(center[0]), float(center[1]), float(center[2])), scale=float(scale)),
        f"{first}..{second} {t:g}",
    )


def completion_condition(trainer: Trainer, shapes_dir: Path, name: str | None = None) -> ShapeCondition:
    """A code fitted to a shape of another dataset (a partial scan, a new object): DeepSDF's inference."""
    from ..data.shape_source import load_shapes, sample_config_of
    from ..data.shapes import ShapeError, read_shape_dataset

    model = shape_model(trainer)
    complete = getattr(model, "complete", None)
    if complete is None:
        raise ValueError(f"method {trainer.config.method!r} cannot fit a code to a new shape (deepsdf can)")
    try:
        dataset = read_shape_dataset(Path(shapes_dir))
        names = [dataset.entry(name).name] if name else [dataset.names()[0]]
        (target,) = load_shapes(dataset, sample_config_of(trainer.config.settings), trainer.device, names)
    except ShapeError as error:
        raise ValueError(str(error)) from error
    code = complete(target)
    return ShapeCondition(code.detach(), target.normalization, f"completion of {target.name}")


def apply_condition(trainer: Trainer, condition: ShapeCondition) -> None:
    """Show ``condition``: its code in surface(), its cube as the trainer's box (what extraction meshes)."""
    model = shape_model(trainer)
    model.active_code = None if condition.code is None else condition.code.to(trainer.device)
    trainer.scene_box = cube_box(condition.normalization)
    trainer.normalization = SceneNormalization.from_box(trainer.scene_box)


# ---------------------------------------------------------------------------- evaluation


def evaluate_shapes(trainer: Trainer, resolution: int = 64, max_shapes: int = 4) -> dict[str, Any]:
    """IoU (occupancy on the shape's uniform samples), Chamfer-L1, F@1% and normal consistency of the mesh
    extracted at ``resolution`` against the source geometry, per shape (held-out shapes when the run keeps
    some out, else the trained ones; at most ``max_shapes``) and their means. Distances in world units."""
    from ..mesh.extract import ExtractSettings, extract_mesh_from_trainer
    from ..mesh.metrics import normal_consistency, point_distances, sample_surface
    from ..mesh.surface import EmptySurfaceError
    from ..mesh.triangle_mesh import TriangleMesh

    model = shape_model(trainer)
    model.eval()  # running statistics of batch norms (onet's cbatchnorm decoder), not the query's own
    source = shape_source(trainer)
    names = model.holdout or [source.names[index] for index in source.train_indices]
    rows = []
    saved_box = trainer.scene_box
    for name in names[: max(0, max_shapes)]:
        index = source.index_of(name)
        shape = source.shapes[index]
        condition = shape_condition(trainer, name)
        apply_condition(trainer, condition)
        row: dict[str, Any] = {"shape": name}
        if shape.points is not None and shape.occupancy is not None:
            uniform = shape.points[: shape.uniform_count]
            with torch.no_grad():
                predicted = model.inside(model.field(uniform, model.active_code))
            truth = shape.occupancy[: shape.uniform_count] > 0.5
            union = (predicted | truth).sum().item()
            row["iou"] = float((predicted & truth).sum().item() / union) if union else 1.0
        geometry = source.dataset.geometry(source.dataset.entry(name))
        longest = float(np.max(geometry.box[1] - geometry.box[0]))
        rng = np.random.default_rng(0)
        try:
            mesh = extract_mesh_from_trainer(trainer, ExtractSettings(resolution=resolution, colour=False)).mesh
        except EmptySurfaceError as error:
            row["error"] = str(error)
            rows.append(row)
            continue
        if geometry.faces is not None:
            truth_mesh = TriangleMesh(geometry.vertices, geometry.faces)
            true_points = sample_surface(truth_mesh, 20_000, rng)
            row["normal_consistency"] = normal_consistency(mesh, truth_mesh, 20_000, seed=0)
        else:
            true_points = geometry.vertices
        distances = point_distances(sample_surface(mesh, 20_000, rng), true_points, 0.01 * longest)
        row.update(chamfer_l1=distances.chamfer_l1, f_score=distances.f_score, threshold=distances.threshold)
        rows.append(row)
    model.active_code = None
    trainer.scene_box = saved_box
    trainer.normalization = SceneNormalization.from_box(saved_box)
    result: dict[str, Any] = {"step": trainer.step, "train_seconds": trainer.train_seconds, "shapes": rows}
    for key in ("iou", "chamfer_l1", "f_score", "normal_consistency"):
        values = [row[key] for row in rows if key in row]
        result[key] = float(np.mean(values)) if values else None
    result["held_out"] = bool(model.holdout)
    return result
