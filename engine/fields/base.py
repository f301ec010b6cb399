"""What every method's model offers the trainer, and what image methods offer renderers and extraction.

A ``Method`` is built from its registry config and a ``MethodContext`` (facts of the data and the device).
It owns its losses (``training_step`` returns the loss and named figures), its per-step housekeeping
(``before_step``, told the step and the fraction of the budget used) and its optimisers (one by default;
a GAN has two and steps them itself). The trainer owns the loop, the budget, the learning-rate schedule,
checkpoints, metrics and progress.

Image methods (``RadianceModel``) work in the engine's internal unit cube [0, 1]^3 (see
engine.data.dataset.SceneNormalization); directions are unit length. They own their field(s) and the
recipe that renders rays with them: sampler -> field -> compositing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.transforms import SceneBox
from ..render.volume import RenderedRays, blend_background


@dataclass
class RayBundle:
    """Rays in the unit cube. origins, directions: (n_rays, 3), directions unit length;
    t_near, t_far: (n_rays,) where the ray enters and leaves the cube (equal when it misses)."""

    origins: torch.Tensor
    directions: torch.Tensor
    t_near: torch.Tensor
    t_far: torch.Tensor


@dataclass
class RayBatch:
    """A training batch of an image method. rays: unit-cube rays; target: (n_rays, 3) pixel colours over
    ``background``; background: (n_rays, 3); alpha: (n_rays,) the pixels' opacity (1 without alpha)."""

    rays: RayBundle
    target: torch.Tensor
    background: torch.Tensor
    alpha: torch.Tensor
    has_alpha: bool = False


@dataclass
class ModelOutput:
    """main: the render that is shown and evaluated; auxiliary: other renders of the same rays that are
    also supervised with the photometric loss (NeRF's coarse network); samples: field evaluations made."""

    main: RenderedRays
    auxiliary: list[RenderedRays] = field(default_factory=list)
    samples: int = 0


@dataclass
class ParameterGroup:
    """Parameters that share a learning rate schedule: learning_rate after warm-up, decaying exponentially
    to final_learning_rate at the end of the budget (equal rates: constant)."""

    parameters: list[nn.Parameter]
    learning_rate: float
    final_learning_rate: float


@dataclass
class OptimizerSpec:
    """One optimiser of a method: ``kind`` adam or rmsprop, its parameter groups, and torch options."""

    groups: list[ParameterGroup]
    kind: str = "adam"
    options: dict[str, Any] = field(default_factory=dict)
    warmup: bool = True  # linear learning-rate warm-up over the trainer's warmup_steps


@dataclass
class MethodContext:
    """What a method is built from besides its config. finest_resolution: hash-grid resolution fitted to
    the scene (image methods); has_alpha: the images carry alpha (mask losses); compile: torch.compile what
    pays: "auto" (where it was measured to: see compiles()), "on" or "off"; data: facts of other families
    (number of shapes, the collection's prior...); scene_box: the world box the unit cube is built on (a method
    that reads world-space inputs, a texture field's mesh, maps them with it)."""

    device: torch.device
    finest_resolution: int = 0
    has_alpha: bool = False
    compile: str = "auto"
    data: dict[str, Any] = field(default_factory=dict)
    scene_box: SceneBox | None = None

    def compiles(self) -> bool:
        """Whether to torch.compile a method's hot path: "on", or "auto" on CUDA. On CPU the compiled hash
        lookup measured no faster once its compilations (minutes on 2 cores, again for every new graph) are
        paid."""
        return self.compile == "on" or (self.compile == "auto" and self.device.type == "cuda")


@dataclass
class StepContext:
    """Told to a method each step: the step about to run (0-based), the fraction of the budget used
    (steps or minutes, whichever is further), the random generator, and, for methods that step their own
    optimisers (``manual_optimization``), ``optimize(name, loss)``: zero grads, backward, step that one."""

    step: int
    fraction: float
    generator: torch.Generator | None
    optimize: Callable[[str, torch.Tensor], None] | None = None


@dataclass
class StepResult:
    """loss: what the trainer minimises (None when the method optimised itself); figures: named numbers
    for progress and metrics.jsonl (floats); samples: field evaluations this step, the sample budget's
    measure (0 when the method has none)."""

    loss: torch.Tensor | None
    figures: dict[str, float] = field(default_factory=dict)
    samples: int = 0


class Method(nn.Module, ABC):
    """A trainable method. Subclasses are built as ``Class(config, context)``."""

    manual_optimization: ClassVar[bool] = False

    @abstractmethod
    def training_step(self, batch: Any, step: StepContext) -> StepResult:
        """Losses of one batch from the method's data source."""

    def before_step(self, step: StepContext) -> None:
        """Housekeeping before a training step (occupancy grid updates, annealing); nothing by default."""

    def after_step(self, trainer: Any) -> None:
        """Told after each step, with the trainer (its step, run_dir): sample grids and the like; nothing
        by default. The step's time is already counted, so what happens here is not training time."""

    def parameter_groups(self) -> list[ParameterGroup]:
        """Everything the single default optimiser trains, with base learning rates."""
        raise NotImplementedError(f"{type(self).__name__} must define parameter_groups() or optimizers()")

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """Named optimisers; one Adam over parameter_groups() unless a method needs more."""
        return {"main": OptimizerSpec(self.parameter_groups())}


class RadianceModel(Method):
    """An image method: a field with its sampling recipe, supervised by the pixels its rays hit."""

    @abstractmethod
    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> ModelOutput:
        """Render a batch of rays (jittered samples when training)."""

    @abstractmethod
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) unit-cube points -> (n,) volume density per unit-cube length."""

    @abstractmethod
    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3) points and (n, 3) unit viewing directions -> (n,) density and (n, 3) colour in 0..1, from
        one pass through the field."""

    def surface(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) unit-cube points -> (n,) the scalar the mesh is extracted from, of the registry's surface
        kind, in unit-cube units: density here, signed distance or occupancy in surface methods."""
        return self.density(points)

    def training_step(self, batch: RayBatch, step: StepContext) -> StepResult:
        output = self.render_rays(batch.rays, training=True, generator=step.generator)
        main_mse, loss = photometric_loss(output, batch)
        extra_loss, figures = self.regularization(output, batch, step)
        if extra_loss is not None:
            loss = loss + extra_loss
        mse = float(main_mse.detach())
        figures = {"psnr": psnr_of_mse(mse), **figures}
        n_rays = max(1, batch.target.shape[0])
        figures["samples_per_ray"] = output.samples / n_rays
        return StepResult(loss=loss, figures=figures, samples=output.samples)

    def regularization(
        self, output: ModelOutput, batch: RayBatch, step: StepContext
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Losses beyond the photometric one (eikonal, mask...) and their figures; none by default."""
        return None, {}


def photometric_loss(output: ModelOutput, batch: RayBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSE of the main render, sum of the MSEs of all renders) over the batch's background."""
    errors = [
        torch.mean(
            (blend_background(rendered.rgb.float(), rendered.opacity.float(), batch.background) - batch.target) ** 2
        )
        for rendered in [output.main, *output.auxiliary]
    ]
    return errors[0], torch.stack(errors).sum()


def psnr_of_mse(mse: float) -> float:
    import math

    return -10.0 * math.log10(max(mse, 1e-12))
