"""Training batches for image methods: random pixels of the training images as unit-cube rays.

The number of rays per step follows a sample budget (as nerfacc's examples do): after each step it is
scaled by target_samples / samples_used, so a step evaluates about the same number of field samples
whether the occupancy grid still marches empty space (early: few rays, many samples each) or has
learnt where the surface is (later: many rays, few samples each). A fixed ray count is still possible.
"""

from __future__ import annotations

import torch

from ..fields.base import RayBatch, RayBundle
from ..render.samplers import ray_box_intersection
from .dataset import RadianceDataset, SceneNormalization, WorldRays, background_colors, pixel_rays

# Field samples per step when the config leaves it to the device. CPU: 2^15, about the samples of the demo's
# tuned 512-ray steps once its occupancy grid has settled (scripts/bench_foreign_dataset.py measures the
# default on a dataset made elsewhere); CUDA: 2^18, nerfacc's default for its instant-NGP example, not yet
# measured here (no GPU was lent).
DEFAULT_SAMPLES_PER_STEP = {"cpu": 1 << 15, "cuda": 1 << 18}
MIN_RAYS, MAX_RAYS = 64, 1 << 16
# one step may change the ray count by at most this factor, so one odd step does not swing it
MAX_CHANGE = 4.0


def default_samples_per_step(device: torch.device) -> int:
    return DEFAULT_SAMPLES_PER_STEP.get(device.type, DEFAULT_SAMPLES_PER_STEP["cpu"])


def unit_rays(rays: WorldRays, normalization: SceneNormalization) -> RayBundle:
    """World rays -> unit-cube rays with unit directions, clipped to the cube."""
    origins = normalization.to_unit(rays.origins)
    directions = rays.directions / rays.directions.norm(dim=-1, keepdim=True)
    t_near, t_far = ray_box_intersection(origins, directions)
    return RayBundle(origins=origins, directions=directions, t_near=t_near, t_far=t_far)


class RaySource:
    """Random training pixels of ``dataset`` as RayBatches, ``n_rays`` at a time.

    fixed_rays > 0 keeps that many rays per step; 0 adapts the count to ``samples_per_step``."""

    def __init__(
        self, dataset: RadianceDataset, background: str, fixed_rays: int, samples_per_step: int, device: torch.device
    ) -> None:
        if fixed_rays < 0 or samples_per_step < 0:
            raise ValueError(f"fixed_rays and samples_per_step must be >= 0, got {fixed_rays}, {samples_per_step}")
        self.dataset = dataset
        self.background = background
        self.device = device
        self.fixed = fixed_rays > 0
        self.samples_per_step = samples_per_step or default_samples_per_step(device)
        # a first guess of 128 samples per ray; the first steps correct it
        self.n_rays = fixed_rays if self.fixed else _clamp(self.samples_per_step / 128)
        self._train_frames = torch.tensor(dataset.train_indices, device=device)

    def next_batch(self, generator: torch.Generator | None) -> RayBatch:
        dataset = self.dataset
        n_rays = self.n_rays
        pixels_per_frame = dataset.height * dataset.width
        pick = torch.randint(
            0, len(self._train_frames) * pixels_per_frame, (n_rays,), generator=generator, device=self.device
        )
        frames = self._train_frames[pick // pixels_per_frame]
        pixel = pick % pixels_per_frame
        rows, columns = pixel // dataset.width, pixel % dataset.width
        rays = pixel_rays(dataset.cameras, frames, columns, rows)
        background = background_colors(self.background, n_rays, generator, self.device)
        alpha = dataset.alpha[frames, rows, columns]
        target = dataset.premultiplied[frames, rows, columns] + (1.0 - alpha[:, None]) * background
        return RayBatch(
            rays=unit_rays(rays, dataset.normalization),
            target=target,
            background=background,
            alpha=alpha,
            has_alpha=dataset.has_alpha,
        )

    def record(self, samples_used: int) -> None:
        """After a step of n_rays that evaluated samples_used field samples: the next step's ray count."""
        if self.fixed:
            return
        ratio = self.samples_per_step / max(1, samples_used)
        ratio = min(MAX_CHANGE, max(1.0 / MAX_CHANGE, ratio))
        self.n_rays = _clamp(self.n_rays * ratio)


def _clamp(n_rays: float) -> int:
    return int(min(MAX_RAYS, max(MIN_RAYS, round(n_rays))))
