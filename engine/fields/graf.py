"""GRAF (Schwarz, Liao, Niemeyer and Geiger, NeurIPS 2020): a generative radiance field, GIRAFFE's baseline.

One radiance field conditioned on a shape code (with the encoded point) and an appearance code (with the
encoded direction) covers the whole scene: there are no objects and no poses, so nothing can be moved.
Training renders patches of ``patch_size``^2 rays spread over a random part of the image (a random scale in
[patch_scale_min, 1] and a random place: GRAF's dilated patch sampling); the same pattern is sampled
bilinearly from the real images, and a patch discriminator tells them apart. Non-saturating loss with R1,
RMSprop, an EMA generator for sampling (settings: engine/methods/graf.py).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from ..data.collection_source import ImageBatch, prior_from_facts, scene_box_of
from ..methods.graf import GrafConfig
from .base import MethodContext, StepContext, StepResult
from .generative import (
    AdversarialModel,
    Discriminator,
    FeatureField,
    camera_rays,
    depth_range,
    grid_pixels,
    prior_intrinsics,
    ray_depths,
    sample_cameras,
    volume_weights,
)


class GrafGenerator(nn.Module):
    """Codes and cameras -> colours of rays through given pixels."""

    def __init__(self, settings: GrafConfig, context_data: dict[str, Any]) -> None:
        super().__init__()
        self.settings = settings
        self.prior = prior_from_facts(context_data)
        self.width, self.height = int(context_data["width"]), int(context_data["height"])
        self.intrinsics = prior_intrinsics(self.prior, self.width, self.height)
        box = scene_box_of(self.prior)
        corners = [(x, y, z) for x in (box.minimum[0], box.maximum[0]) for y in (box.minimum[1], box.maximum[1])
                   for z in (box.minimum[2], box.maximum[2])]  # fmt: skip
        self.reach = max(math.dist(corner, self.prior.camera.look_at) for corner in corners)
        self.near, self.far = depth_range(self.prior, self.reach)
        self.register_buffer("scene_center", torch.tensor(self.prior.camera.look_at), persistent=False)
        self.field = FeatureField(
            settings.shape_code_size,
            settings.appearance_code_size,
            settings.hidden_width,
            settings.hidden_layers,
            settings.skip_layer,
            settings.position_frequencies,
            settings.direction_frequencies,
            3,
            sigmoid=True,
        )

    def forward(
        self,
        shape_codes: torch.Tensor,
        appearance_codes: torch.Tensor,
        camera_to_world: torch.Tensor,
        pixel_x: torch.Tensor,
        pixel_y: torch.Tensor,
        generator: torch.Generator | None = None,
        jitter: bool = False,
    ) -> torch.Tensor:
        """(b, zs), (b, za) codes, (b, 4, 4) cameras, (b, m) pixel positions -> (b, m, 3) colours in [0, 1]
        (the field's own: the last sample's interval is infinite, so every ray ends in the scene)."""
        rays = camera_rays(camera_to_world, self.intrinsics, pixel_x, pixel_y)
        b, m = pixel_x.shape
        s = self.settings.ray_samples
        depths = ray_depths(self.near, self.far, s, (b, m), generator, camera_to_world.device, jitter)
        points = rays.origins[:, :, None, :] + rays.directions[:, :, None, :] * depths[..., None]
        scene = ((points - self.scene_center) / self.far).reshape(b, m * s, 3)
        directions = rays.directions[:, :, None, :].expand(b, m, s, 3).reshape(b, m * s, 3)
        density, colour = self.field(scene, directions, shape_codes, appearance_codes)
        weights = volume_weights(density.reshape(b, m, s), depths)
        return (weights[..., None] * colour.reshape(b, m, s, 3)).sum(dim=2)

    def images(
        self, shape_codes: torch.Tensor, appearance_codes: torch.Tensor, camera_to_world: torch.Tensor
    ) -> torch.Tensor:
        """(b, 3, H, W) whole images."""
        pixel_x, pixel_y = grid_pixels(self.width, self.intrinsics, camera_to_world.device)
        b = camera_to_world.shape[0]
        colours = self(shape_codes, appearance_codes, camera_to_world, pixel_x.expand(b, -1), pixel_y.expand(b, -1))
        return colours.transpose(1, 2).reshape(b, 3, self.height, self.width)


def patch_pattern(
    count: int, size: int, scale_min: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(count, size, size, 2) sampling positions in grid_sample's [-1, 1] coordinates (x, y): a size^2 grid
    scaled by s ~ U[scale_min, 1] and shifted uniformly within the image (GRAF's FlexGridRaySampler)."""
    steps = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    y, x = torch.meshgrid(steps, steps, indexing="ij")
    base = torch.stack([x, y], dim=-1)  # (size, size, 2)
    scale = scale_min + (1.0 - scale_min) * torch.rand(count, 1, 1, 1, generator=generator, device=device)
    shift = (torch.rand(count, 1, 1, 2, generator=generator, device=device) * 2.0 - 1.0) * (1.0 - scale)
    return base * scale + shift


class GrafModel(AdversarialModel):
    """GRAF on a collection (MethodContext.data: width, height, prior of the collection)."""

    def __init__(self, config: GrafConfig, context: MethodContext) -> None:
        super().__init__()
        self.settings = config.resolved()
        self.device = context.device
        self.generator = GrafGenerator(self.settings, context.data)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.discriminator = Discriminator(self.settings.patch_size, self.settings.discriminator_features)
        self.prior = self.generator.prior

    def sample_latents(
        self, count: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, device = self.settings, self.device
        shape = torch.randn(count, s.shape_code_size, generator=generator, device=device)
        appearance = torch.randn(count, s.appearance_code_size, generator=generator, device=device)
        return shape, appearance, sample_cameras(self.prior.camera, count, generator, device)

    @torch.no_grad()
    def sample_images(
        self, count: int, seed: int, objects: int | None = None, batch: int = 16
    ) -> tuple[torch.Tensor, None]:
        """(count, 3, H, W) images of the EMA generator from fixed latents (GRAF has no poses: None)."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        self.eval()
        images = [
            self.generator_ema.images(*self.sample_latents(min(batch, count - start), generator))
            for start in range(0, count, batch)
        ]
        return torch.cat(images), None

    def training_step(self, batch: ImageBatch, step: StepContext) -> StepResult:
        started = time.perf_counter()
        s = self.settings
        real_images = batch.images
        count = real_images.shape[0]
        pattern = patch_pattern(count, s.patch_size, s.patch_scale_min, step.generator, self.device)
        real = functional.grid_sample(real_images, pattern, mode="bilinear", align_corners=False)
        width, height = self.generator.width, self.generator.height
        pixel_x = ((pattern[..., 0] + 1.0) * 0.5 * width).reshape(count, -1)
        pixel_y = ((pattern[..., 1] + 1.0) * 0.5 * height).reshape(count, -1)
        shape, appearance, cameras = self.sample_latents(count, step.generator)
        colours = self.generator(shape, appearance, cameras, pixel_x, pixel_y, step.generator, jitter=True)
        fake = colours.transpose(1, 2).reshape(count, 3, s.patch_size, s.patch_size)
        figures = self.adversarial_step(real, fake, step)
        seconds = time.perf_counter() - started
        return StepResult(
            loss=None,
            figures={**figures, "images_per_second": count / max(seconds, 1e-9)},
            samples=count * s.patch_size**2 * s.ray_samples,
        )
