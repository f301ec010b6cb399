"""The SHAPES family's data source: batches of surface points and labelled samples, per shape, on the device.

Opened by the trainer through ``FAMILY_OPENERS`` (engine/train/trainer.py) from a shape dataset folder
(engine/data/shapes.py). Every shape keeps its own normalised space ([-1, 1]^3 is its padded box's cube,
``ShapeNormalization``), the space the shape methods' networks work in: a shape space learns shapes, not
where they stood in the scene, and a mesh goes back to the object's world space with that shape's
normalisation (``facts["normalizations"]``, saved in the run's config.json).

The trainer's own unit cube [0, 1]^3 maps onto ``scene_box``: the first shape's cube. A shape model maps
unit-cube points p to its space with ``2 p - 1``; extraction of another shape swaps the trainer's box for
that shape's cube (engine/fields/shape_model.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .shapes import ShapeDataset, ShapeError, ShapeNormalization, ShapeSampleConfig, read_shape_dataset, shape_samples
from .transforms import SceneBox

if TYPE_CHECKING:
    from ..train.config import TrainConfig
    from ..train.trainer import FamilyData

# IGR scales each surface point's Gaussian by the distance to its k-th nearest neighbour (k = 50 in the paper).
NEIGHBOUR_K = 50


@dataclass
class ShapeBatch:
    """One training batch of a shape method, in the shapes' normalised spaces ([-1, 1]^3), on the device.

    shape_indices: (b,) long, which shapes; surface_points: (b, s, 3); surface_normals: (b, s, 3) unit or None
    (point clouds); surface_sigmas: (b, s) IGR's local Gaussian scale per surface point; points: (b, k, 3)
    labelled points or None (point clouds); occupancy: (b, k) float 1 inside, 0 outside; sdf: (b, k) signed
    distance, negative inside, or None; inputs: (b, n_in, 3) the encoder's input point clouds (surface
    points with a little noise, Occupancy Networks' 300), or None.
    """

    shape_indices: torch.Tensor
    surface_points: torch.Tensor
    surface_normals: torch.Tensor | None
    surface_sigmas: torch.Tensor
    points: torch.Tensor | None
    occupancy: torch.Tensor | None
    sdf: torch.Tensor | None
    inputs: torch.Tensor | None = None


@dataclass
class ShapeTensors:
    """One shape's samples on the device (see ShapeSamples): surface (s, 3), normals (s, 3) or None, sigmas (s,),
    points (k, 3) or None, occupancy (k,) float or None, sdf (k,) or None, uniform_count."""

    name: str
    normalization: ShapeNormalization
    surface: torch.Tensor
    normals: torch.Tensor | None
    sigmas: torch.Tensor
    points: torch.Tensor | None
    occupancy: torch.Tensor | None
    sdf: torch.Tensor | None
    uniform_count: int


@dataclass(frozen=True)
class BatchSizes:
    """What a method asks of each batch (read from its config by name, these defaults otherwise)."""

    shapes_per_batch: int = 1
    surface_batch: int = 4096
    points_batch: int = 2048  # Occupancy Networks' K
    encoder_points: int = 0  # input points per shape for a point-cloud encoder (0: none)
    encoder_noise: float = 0.005  # Occupancy Networks' input noise, normalised units
    near_surface_fraction: float = 0.5  # of the labelled points; the rest are uniform in the cube

    @classmethod
    def from_settings(cls, settings: Any) -> BatchSizes:
        values = {name: getattr(settings, name) for name in cls.__dataclass_fields__ if hasattr(settings, name)}
        return cls(**values)


class ShapeSource:
    """Batches from a shape dataset; every shape's samples stay on the device (a few MB per shape)."""

    def __init__(self, dataset: ShapeDataset, shapes: list[ShapeTensors], sizes: BatchSizes, device: torch.device):
        if sizes.shapes_per_batch < 1 or sizes.surface_batch < 1 or sizes.points_batch < 1:
            raise ValueError(f"batch sizes must be at least 1, got {sizes}")
        self.dataset = dataset
        self.shapes = shapes
        self.sizes = sizes
        self.device = device
        self.train_indices = list(range(len(shapes)))

    @property
    def names(self) -> list[str]:
        return [shape.name for shape in self.shapes]

    def index_of(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"{self.dataset.root}: no shape named {name!r}; it has {', '.join(self.names)}")
        return self.names.index(name)

    def record(self, samples_used: int) -> None:
        """Batches do not adapt."""

    def next_batch(self, generator: torch.Generator | None) -> ShapeBatch:
        chosen = self.train_indices
        count = min(self.sizes.shapes_per_batch, len(chosen))
        picks = torch.randperm(len(chosen), generator=generator, device=self.device)[:count].tolist()
        return self.batch_of([chosen[pick] for pick in picks], generator)

    def batch_of(self, indices: list[int], generator: torch.Generator | None) -> ShapeBatch:
        """A batch of the given shapes (same sizes as training batches)."""
        sizes = self.sizes
        parts: dict[str, list[torch.Tensor]] = {
            key: [] for key in ("surface", "normals", "sigmas", "points", "occupancy", "sdf", "inputs")
        }
        for index in indices:
            shape = self.shapes[index]
            pick = _random_indices(shape.surface.shape[0], sizes.surface_batch, generator, self.device)
            parts["surface"].append(shape.surface[pick])
            parts["sigmas"].append(shape.sigmas[pick])
            if shape.normals is not None:
                parts["normals"].append(shape.normals[pick])
            if shape.points is not None and shape.occupancy is not None:
                labelled = self._labelled_indices(shape, generator)
                parts["points"].append(shape.points[labelled])
                parts["occupancy"].append(shape.occupancy[labelled])
                if shape.sdf is not None:
                    parts["sdf"].append(shape.sdf[labelled])
            if sizes.encoder_points:
                parts["inputs"].append(self.encoder_input(index, generator))

        def stacked(key: str) -> torch.Tensor | None:
            return torch.stack(parts[key]) if parts[key] and len(parts[key]) == len(indices) else None

        surface = stacked("surface")
        sigmas = stacked("sigmas")
        assert surface is not None and sigmas is not None
        return ShapeBatch(
            shape_indices=torch.tensor(indices, dtype=torch.long, device=self.device),
            surface_points=surface,
            surface_normals=stacked("normals"),
            surface_sigmas=sigmas,
            points=stacked("points"),
            occupancy=stacked("occupancy"),
            sdf=stacked("sdf"),
            inputs=stacked("inputs"),
        )

    def encoder_input(self, index: int, generator: torch.Generator | None, count: int = 0) -> torch.Tensor:
        """(n, 3) the point cloud a point-cloud encoder sees of shape ``index``: surface points plus noise."""
        shape = self.shapes[index]
        count = count or self.sizes.encoder_points
        pick = _random_indices(shape.surface.shape[0], count, generator, self.device)
        noise = torch.randn(count, 3, generator=generator, device=self.device) * self.sizes.encoder_noise
        return shape.surface[pick] + noise

    def _labelled_indices(self, shape: ShapeTensors, generator: torch.Generator | None) -> torch.Tensor:
        """K labelled points: a share near the surface (where the labels are hard), the rest uniform."""
        assert shape.points is not None
        total, uniform, wanted = shape.points.shape[0], shape.uniform_count, self.sizes.points_batch
        near = round(wanted * self.sizes.near_surface_fraction) if total > uniform else 0
        if uniform == 0:
            near = wanted
        picks = []
        if wanted - near:
            picks.append(_random_indices(uniform, wanted - near, generator, self.device))
        if near:
            picks.append(uniform + _random_indices(total - uniform, near, generator, self.device))
        return torch.cat(picks)


def _random_indices(size: int, count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randint(0, size, (count,), generator=generator, device=device)


def neighbour_sigmas(points: np.ndarray, k: int = NEIGHBOUR_K) -> np.ndarray:
    """(n,) distance from each of the (n, 3) points to its k-th nearest other point (IGR's local sample scale)."""
    from scipy.spatial import cKDTree

    if len(points) < 2:
        return np.full(len(points), 0.01)
    k = min(k, len(points) - 1)
    distances, _ = cKDTree(points).query(points, k=k + 1)  # the first neighbour is the point itself
    return np.maximum(distances[:, -1], 1e-4)


def sample_config_of(settings: Any) -> ShapeSampleConfig:
    """The sample settings of a method's config (``surface_samples``, ``labelled_samples``...), defaults otherwise."""
    total = int(getattr(settings, "labelled_samples", 100_000))
    return ShapeSampleConfig(
        surface_points=int(getattr(settings, "surface_samples", 100_000)),
        uniform_points=total // 2,
        near_surface_points=total - total // 2,
        signed_distance=bool(getattr(settings, "signed_distances", False)),
    )


def load_shapes(
    dataset: ShapeDataset, sample_config: ShapeSampleConfig, device: torch.device, names: list[str] | None = None
) -> list[ShapeTensors]:
    """Every shape's samples (cached in the dataset, see shape_samples) as tensors on ``device``."""
    entries = dataset.shapes if names is None else [dataset.entry(name) for name in names]
    loaded = []
    for entry in entries:
        samples = shape_samples(dataset, entry, sample_config)
        surface = samples.surface_points.astype(np.float32)
        sigmas = neighbour_sigmas(surface)

        def tensor(array: np.ndarray | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
            return None if array is None else torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        loaded.append(
            ShapeTensors(
                name=entry.name,
                normalization=samples.normalization,
                surface=torch.as_tensor(surface, device=device),
                normals=tensor(samples.surface_normals),
                sigmas=torch.as_tensor(sigmas.astype(np.float32), device=device),
                points=tensor(samples.points),
                occupancy=tensor(samples.occupancy),
                sdf=tensor(samples.sdf),
                uniform_count=samples.uniform_count,
            )
        )
    return loaded


def normalization_fact(normalization: ShapeNormalization) -> dict[str, Any]:
    return {"center": list(normalization.center), "scale": normalization.scale}


def normalization_from_fact(fact: dict[str, Any]) -> ShapeNormalization:
    center = fact["center"]
    return ShapeNormalization(center=(float(center[0]), float(center[1]), float(center[2])), scale=float(fact["scale"]))


def cube_box(normalization: ShapeNormalization) -> SceneBox:
    """The world box that [-1, 1]^3 of a shape's normalised space covers."""
    low = normalization.to_world(np.full(3, -1.0))
    high = normalization.to_world(np.full(3, 1.0))
    return SceneBox(
        minimum=(float(low[0]), float(low[1]), float(low[2])), maximum=(float(high[0]), float(high[1]), float(high[2]))
    )


def open_shapes(path: Path, config: TrainConfig, device: torch.device) -> FamilyData:
    """The trainer's opener of the SHAPES family: a shape dataset folder -> batches, the world box, facts."""
    from ..train.trainer import FamilyData

    try:
        dataset = read_shape_dataset(Path(path))
    except ShapeError as error:
        raise ValueError(str(error)) from error
    settings = config.settings
    wanted = str(getattr(settings, "shape", "") or "")
    names = [dataset.entry(wanted).name] if wanted else None
    if getattr(settings, "single_shape", False) and names is None and len(dataset.shapes) > 1:
        raise ValueError(
            f"{dataset.root}: {config.method} fits one shape but the dataset has {len(dataset.shapes)} "
            f"({', '.join(dataset.names()[:6])}...): pick one with --set shape=NAME"
        )
    needs_labels = bool(getattr(settings, "needs_labels", False))
    try:
        shapes = load_shapes(dataset, sample_config_of(settings), device, names)
    except ShapeError as error:
        raise ValueError(str(error)) from error
    if needs_labels:
        unlabelled = [shape.name for shape in shapes if shape.points is None]
        if unlabelled:
            raise ValueError(
                f"{dataset.root}: {config.method} learns from inside/outside labels, but {', '.join(unlabelled)} "
                "is a point cloud (no faces): fit it with igr"
            )
    source = ShapeSource(dataset, shapes, BatchSizes.from_settings(settings), device)
    holdout = int(getattr(settings, "holdout_shapes", 0))
    if holdout:
        if not 0 < holdout < len(shapes):
            raise ValueError(f"holdout_shapes must be between 1 and {len(shapes) - 1} for {len(shapes)} shapes")
        # the last ones by name: a procedural family numbered in order holds out its last members
        order = sorted(range(len(shapes)), key=lambda index: shapes[index].name)
        source.train_indices = sorted(order[:-holdout])
    facts = {
        "shape_count": len(shapes),
        "shapes": [shape.name for shape in shapes],
        "normalizations": [normalization_fact(shape.normalization) for shape in shapes],
        "has_normals": all(shape.normals is not None for shape in shapes),
        "holdout": [shape.name for index, shape in enumerate(shapes) if index not in source.train_indices],
    }
    return FamilyData(source=source, scene_box=cube_box(shapes[0].normalization), facts=facts)
