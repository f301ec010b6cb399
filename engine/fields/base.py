"""What every radiance model offers the trainer, renderer and mesh extraction.

A model works in the engine's internal unit cube [0, 1]^3 (see engine.data.dataset.SceneNormalization);
directions are unit length. It owns its field(s) and the recipe that renders rays with them:
sampler -> field -> compositing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn

from ..render.volume import RenderedRays


@dataclass
class RayBundle:
    """Rays in the unit cube. origins, directions: (n_rays, 3), directions unit length;
    t_near, t_far: (n_rays,) where the ray enters and leaves the cube (equal when it misses)."""

    origins: torch.Tensor
    directions: torch.Tensor
    t_near: torch.Tensor
    t_far: torch.Tensor


@dataclass
class ModelOutput:
    """main: the render that is shown and evaluated; auxiliary: other renders of the same rays that are
    also supervised with the photometric loss (NeRF's coarse network)."""

    main: RenderedRays
    auxiliary: list[RenderedRays] = field(default_factory=list)


@dataclass
class ParameterGroup:
    """Parameters that share a learning rate schedule: learning_rate after warm-up, decaying exponentially
    to final_learning_rate at the last step."""

    parameters: list[nn.Parameter]
    learning_rate: float
    final_learning_rate: float


class RadianceModel(nn.Module, ABC):
    """A radiance field with its sampling recipe."""

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

    @abstractmethod
    def parameter_groups(self) -> list[ParameterGroup]:
        """Everything the optimiser trains, with base learning rates."""

    def before_step(self, step: int, generator: torch.Generator | None) -> None:
        """Housekeeping before training step ``step`` (occupancy grid updates); nothing by default."""
