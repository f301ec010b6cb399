"""GIRAFFE (Niemeyer and Geiger, CVPR 2021): compositional generative neural feature fields.

The recipe, for a batch of b scenes of up to k objects (settings: engine/methods/giraffe.py):

    codes z_s, z_a per object and for the background ~ N(0, I)      poses ~ the collection's prior
    camera ~ the prior's ring                                        rays through a 16x16 grid of its image
    points along the rays -> each object's space (R_z^T (x - t) / s) -> the shared object feature field
    world points (scaled) -> the background feature field
    composite (densities summed, features density-weighted) -> volume render a feature image (b, c, 16, 16)
    the neural renderer upsamples it with RGB skips to the collection's size (b, 3, H, W)

An object's density is zero outside its box [-1, 1]^3 in object space: an object is where its pose says, so
moving a pose moves exactly that object (the paper leaves the field unbounded; bounding it is what makes
the layouts that come back to Blender trustworthy). Per-object alpha maps are each object's share of the
rendered opacity: sum_i w_i sigma_k,i / sigma_i.

Training alternates a discriminator step (non-saturating loss, R1 on real images) and a generator step,
both RMSprop (the paper's learning rates), and keeps an exponential moving average of the generator that
sampling, layouts and sample grids use. The EMA generator is a submodule, so it is in the checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from .. import layouts as layout_format
from ..data.collection_source import ImageBatch, prior_from_facts, scene_box_of
from ..data.transforms import Intrinsics
from ..methods.giraffe import GiraffeConfig
from .base import MethodContext, StepContext, StepResult
from .generative import (
    AdversarialModel,
    Discriminator,
    FeatureField,
    ObjectPoses,
    box_intervals,
    camera_rays,
    composite,
    depth_range,
    directions_to_object,
    grid_pixels,
    prior_intrinsics,
    ray_depths,
    sample_cameras,
    sample_poses,
    stratified,
    volume_weights,
    world_to_object,
)

# The background starts nearly transparent (softplus(-4) = 0.018 per world unit) so that the objects in
# front of it are seen, and learn, from the first step; the last interval of every ray is infinite, so
# the background still covers whatever no object does.
BACKGROUND_DENSITY_BIAS = -4.0


@dataclass
class SceneCodes:
    """shape (b, k, zs), appearance (b, k, za) per object; background_shape, background_appearance (b, zb)."""

    shape: torch.Tensor
    appearance: torch.Tensor
    background_shape: torch.Tensor
    background_appearance: torch.Tensor


@dataclass
class FeatureRender:
    """features (b, c, r, r); alphas (b, k, r, r) per object; opacity (b, r, r); depth (b, r, r) along the
    viewing axis, world units."""

    features: torch.Tensor
    alphas: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor


@dataclass
class LayoutRender:
    """colour (h, w, 3) in [0, 1]; alphas (k, h, w) per object in layout order; depth (h, w) world units
    along the viewing axis, at the layout camera's resolution."""

    colour: np.ndarray
    alphas: np.ndarray
    depth: np.ndarray


class NeuralRenderer(nn.Module):
    """GIRAFFE's neural renderer: (b, c, r, r) features -> (b, 3, r 2^n, r 2^n) in [0, 1]. Each level upsamples
    the features (nearest) and convolves them to half the channels (at least ``min_features``); an RGB image
    is predicted from the input and from every level and summed, upsampled bilinearly (the RGB skips)."""

    def __init__(self, in_features: int, levels: int, features: int, min_features: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_features, features, 1) if in_features != features else nn.Identity()
        widths = [max(min_features, features // 2 ** (level + 1)) for level in range(levels)]
        inputs = [features, *widths[:-1]]
        self.convolutions = nn.ModuleList(nn.Conv2d(a, b, 3, 1, 1) for a, b in zip(inputs, widths, strict=True))
        self.to_rgb = nn.ModuleList([nn.Conv2d(in_features, 3, 3, 1, 1), *(nn.Conv2d(w, 3, 3, 1, 1) for w in widths)])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.project(features)
        rgb = self.to_rgb[0](features)
        for level, convolution in enumerate(self.convolutions):
            rgb = functional.interpolate(rgb, scale_factor=2.0, mode="bilinear", align_corners=False)
            hidden = functional.leaky_relu(
                convolution(functional.interpolate(hidden, scale_factor=2.0, mode="nearest")), 0.2
            )
            rgb = rgb + self.to_rgb[level + 1](hidden)
        return torch.sigmoid(rgb)


class GiraffeGenerator(nn.Module):
    """Codes, poses and cameras -> images (and feature renders)."""

    def __init__(self, settings: GiraffeConfig, context_data: dict[str, Any]) -> None:
        super().__init__()
        self.settings = settings
        self.prior = prior_from_facts(context_data)
        self.width, self.height = int(context_data["width"]), int(context_data["height"])
        levels = round(math.log2(self.width / settings.feature_resolution))
        if self.width != self.height or levels < 1 or settings.feature_resolution * 2**levels != self.width:
            raise ValueError(
                f"giraffe needs square images of feature_resolution ({settings.feature_resolution}) times a power "
                f"of two, got {self.width}x{self.height}"
            )
        self.intrinsics = prior_intrinsics(self.prior, self.width, self.height)
        floor_center = torch.tensor([*self.prior.floor.center, self.prior.floor.height])
        self.register_buffer("scene_center", floor_center, persistent=False)
        # rays are sampled where any object can be: the prior's box, seen from the camera ring around look_at
        box = scene_box_of(self.prior)
        corners = [(x, y, z) for x in (box.minimum[0], box.maximum[0]) for y in (box.minimum[1], box.maximum[1])
                   for z in (box.minimum[2], box.maximum[2])]  # fmt: skip
        reach = max(math.dist(corner, self.prior.camera.look_at) for corner in corners)
        self.near, self.far = depth_range(self.prior, reach)
        self.objects = FeatureField(
            settings.shape_code_size,
            settings.appearance_code_size,
            settings.hidden_width,
            settings.hidden_layers,
            settings.skip_layer,
            settings.position_frequencies,
            settings.direction_frequencies,
            settings.feature_size,
        )
        self.background = FeatureField(
            settings.background_code_size,
            settings.background_code_size,
            settings.background_hidden_width,
            settings.background_layers,
            0,
            settings.background_position_frequencies,
            settings.direction_frequencies,
            settings.feature_size,
            density_bias=BACKGROUND_DENSITY_BIAS,
        )
        self.renderer = NeuralRenderer(
            settings.feature_size, levels, settings.renderer_features, settings.renderer_min_features
        )

    def render_features(
        self,
        codes: SceneCodes,
        poses: ObjectPoses,
        camera_to_world: torch.Tensor,
        intrinsics: Intrinsics,
        resolution: int,
        generator: torch.Generator | None,
        jitter: bool,
    ) -> FeatureRender:
        """Volume render the composited feature fields at resolution^2 over the whole image."""
        b, k = poses.scale.shape
        device = camera_to_world.device
        pixel_x, pixel_y = grid_pixels(resolution, intrinsics, device)
        rays = camera_rays(camera_to_world, intrinsics, pixel_x.expand(b, -1), pixel_y.expand(b, -1))
        m = pixel_x.shape[0]
        # Samples spread over the whole depth range (the background's) plus object_samples inside each
        # object's box, all sorted along the ray: every field is evaluated at every sample it covers, so
        # the composition is exact, and small objects get samples however far the range reaches. A ray
        # that misses a box spends that box's samples on the whole range.
        depths = ray_depths(self.near, self.far, self.settings.ray_samples, (b, m), generator, device, jitter)
        if self.settings.object_samples and k:
            entry, exit_, hit = box_intervals(
                rays, poses.scale, poses.translation, poses.rotation, poses.present, self.near, self.far
            )
            entry = torch.where(hit, entry, torch.full_like(entry, self.near))
            exit_ = torch.where(hit, exit_, torch.full_like(exit_, self.far))
            inside_box = stratified(entry, exit_, self.settings.object_samples, generator, jitter)  # (b, k, m, so)
            depths = torch.cat([depths, inside_box.permute(0, 2, 1, 3).reshape(b, m, -1)], dim=-1)
            depths = depths.sort(dim=-1).values
        s = depths.shape[-1]
        points = rays.origins[:, :, None, :] + rays.directions[:, :, None, :] * depths[..., None]  # (b, m, s, 3)
        points = points.reshape(b, 1, m * s, 3)
        directions = rays.directions[:, :, None, :].expand(b, m, s, 3).reshape(b, 1, m * s, 3)

        local = world_to_object(points.expand(b, k, -1, -1), poses.scale, poses.translation, poses.rotation)
        local_directions = directions_to_object(directions.expand(b, k, -1, -1), poses.rotation)
        # The object field is evaluated only inside each object's box (a small part of the frustum): its
        # density is zero elsewhere, and its features then carry no weight in the composite.
        inside = (local.abs().amax(dim=-1) <= 1.0) & poses.present[:, :, None]  # (b, k, m s)
        chosen = inside.reshape(-1).nonzero().squeeze(-1)
        group = chosen // (m * s)  # which (scene, object) each chosen point belongs to
        inside_density, inside_features = self.objects(
            local.reshape(-1, 3)[chosen][None],
            local_directions.reshape(-1, 3)[chosen][None],
            codes.shape.reshape(b * k, -1)[group][None],
            codes.appearance.reshape(b * k, -1)[group][None],
        )
        density = torch.zeros(b * k * m * s, device=device, dtype=inside_density.dtype)
        density = density.index_put((chosen,), inside_density[0]).reshape(b, k, m * s)
        features = torch.zeros(b * k * m * s, self.settings.feature_size, device=device, dtype=inside_features.dtype)
        features = features.index_put((chosen,), inside_features[0]).reshape(b, k, m * s, -1)

        scene = (points[:, 0] - self.scene_center) / self.far
        background_density, background_features = self.background(
            scene, directions[:, 0], codes.background_shape, codes.background_appearance
        )
        densities = torch.cat([density.transpose(1, 2), background_density[..., None]], dim=-1)  # (b, m s, k + 1)
        all_features = torch.cat([features.transpose(1, 2), background_features[:, :, None, :]], dim=2)
        sigma, feature = composite(densities, all_features)
        sigma, feature = sigma.reshape(b, m, s), feature.reshape(b, m, s, -1)
        weights = volume_weights(sigma, depths)  # (b, m, s)
        image = (weights[..., None] * feature).sum(dim=2)  # (b, m, c)
        shares = densities.reshape(b, m, s, k + 1) / sigma.clamp(min=1e-8)[..., None]
        alphas = (weights[..., None] * shares[..., :k]).sum(dim=2)  # (b, m, k)
        opacity = weights.sum(dim=-1)
        depth = (weights * depths).sum(dim=-1) / opacity.clamp(min=1e-8) * rays.axis_cos
        r = resolution
        return FeatureRender(
            features=image.transpose(1, 2).reshape(b, -1, r, r),
            alphas=alphas.transpose(1, 2).reshape(b, k, r, r),
            opacity=opacity.reshape(b, r, r),
            depth=depth.reshape(b, r, r),
        )

    def forward(
        self,
        codes: SceneCodes,
        poses: ObjectPoses,
        camera_to_world: torch.Tensor,
        generator: torch.Generator | None = None,
        jitter: bool = False,
    ) -> tuple[torch.Tensor, FeatureRender]:
        """(b, 3, H, W) images in [0, 1] and the feature render they came from."""
        rendered = self.render_features(
            codes, poses, camera_to_world, self.intrinsics, self.settings.feature_resolution, generator, jitter
        )
        return self.renderer(rendered.features), rendered


class GiraffeModel(AdversarialModel):
    """GIRAFFE on a collection (MethodContext.data: width, height, prior of the collection)."""

    def __init__(self, config: GiraffeConfig, context: MethodContext) -> None:
        super().__init__()
        self.settings = config.resolved()
        self.device = context.device
        self.generator = GiraffeGenerator(self.settings, context.data)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.discriminator = Discriminator(self.generator.width, self.settings.discriminator_features)
        self.prior = self.generator.prior
        self.slots = self.settings.max_objects or self.prior.object_count[1]

    # -- sampling --------------------------------------------------------------------------------

    def sample_scenes(
        self, count: int, generator: torch.Generator | None, objects: int | None = None
    ) -> tuple[SceneCodes, ObjectPoses, torch.Tensor]:
        """Codes, poses (from the prior) and cameras of ``count`` scenes."""
        device, s = self.device, self.settings
        codes = SceneCodes(
            shape=torch.randn(count, self.slots, s.shape_code_size, generator=generator, device=device),
            appearance=torch.randn(count, self.slots, s.appearance_code_size, generator=generator, device=device),
            background_shape=torch.randn(count, s.background_code_size, generator=generator, device=device),
            background_appearance=torch.randn(count, s.background_code_size, generator=generator, device=device),
        )
        poses = sample_poses(self.prior, count, max(self.slots, objects or 0), generator, device, objects)
        if objects is not None and objects > self.slots:
            extra = objects - self.slots
            codes.shape = torch.cat(
                [codes.shape, torch.randn(count, extra, s.shape_code_size, generator=generator, device=device)], 1
            )
            codes.appearance = torch.cat(
                [
                    codes.appearance,
                    torch.randn(count, extra, s.appearance_code_size, generator=generator, device=device),
                ],
                1,
            )
        cameras = sample_cameras(self.prior.camera, count, generator, device)
        return codes, poses, cameras

    @torch.no_grad()
    def sample_images(
        self, count: int, seed: int, objects: int | None = None, batch: int = 16
    ) -> tuple[torch.Tensor, ObjectPoses]:
        """(count, 3, H, W) images of the EMA generator from fixed latents, and their poses."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        images, poses_list = [], []
        self.eval()
        for start in range(0, count, batch):
            codes, poses, cameras = self.sample_scenes(min(batch, count - start), generator, objects)
            images.append(self.generator_ema(codes, poses, cameras)[0])
            poses_list.append(poses)
        poses = ObjectPoses(
            *(
                torch.cat([getattr(p, name) for p in poses_list])
                for name in ("scale", "translation", "rotation", "present")
            )
        )
        return torch.cat(images), poses

    # -- training --------------------------------------------------------------------------------

    def training_step(self, batch: ImageBatch, step: StepContext) -> StepResult:
        started = time.perf_counter()
        real = batch.images
        count = real.shape[0]
        codes, poses, cameras = self.sample_scenes(count, step.generator)
        fake, _ = self.generator(codes, poses, cameras, step.generator, jitter=True)
        figures = self.adversarial_step(real, fake, step)
        per_ray = (self.settings.ray_samples + self.slots * self.settings.object_samples) * (self.slots + 1)
        fields = per_ray * self.settings.feature_resolution**2 * count
        seconds = time.perf_counter() - started
        return StepResult(
            loss=None,
            figures={**figures, "images_per_second": count / max(seconds, 1e-9)},
            samples=fields,
        )

    # -- layouts ---------------------------------------------------------------------------------

    def sample_layout(self, seed: int, n_objects: int | None = None) -> layout_format.Layout:
        """A layout drawn from the prior: codes ~ N(0, I), poses and camera from the collection's prior;
        ``n_objects`` objects (default: a count from the prior)."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        if n_objects is None:
            low, high = self.prior.object_count
            n_objects = int(torch.randint(low, high + 1, (1,), generator=generator, device=self.device))
        if n_objects < 0:
            raise layout_format.LayoutError(f"n_objects must be >= 0, got {n_objects}")
        codes, poses, cameras = self.sample_scenes(1, generator, max(n_objects, 1))
        objects = tuple(
            layout_format.LayoutObject(
                name=f"object_{index}",
                shape_code=tuple(codes.shape[0, index].tolist()),
                appearance_code=tuple(codes.appearance[0, index].tolist()),
                scale=float(poses.scale[0, index]),
                translation=tuple(poses.translation[0, index].tolist()),  # type: ignore[arg-type]
                rotation_z_deg=math.degrees(float(poses.rotation[0, index])),
            )
            for index in range(n_objects)
        )
        i = self.generator.intrinsics
        return layout_format.Layout(
            method="giraffe",
            shape_code_size=self.settings.shape_code_size,
            appearance_code_size=self.settings.appearance_code_size,
            background_code_size=self.settings.background_code_size,
            objects=objects,
            background_shape_code=tuple(codes.background_shape[0].tolist()),
            background_appearance_code=tuple(codes.background_appearance[0].tolist()),
            camera=layout_format.LayoutCamera(
                camera_to_world=tuple(tuple(row) for row in cameras[0].tolist()),
                fl_x=i.fl_x,
                fl_y=i.fl_y,
                cx=i.cx,
                cy=i.cy,
                w=i.width,
                h=i.height,
            ),
            extra={"seed": seed},
        )

    @torch.no_grad()
    def render_layout(
        self,
        layout: layout_format.Layout,
        camera_to_world: np.ndarray | None = None,
        intrinsics: Intrinsics | None = None,
    ) -> LayoutRender:
        """Render a layout from its camera or any other (camera_to_world (4, 4), Blender convention, and
        intrinsics; the image is rendered at the model's size and resampled to the intrinsics' size).
        Alphas and depth are volume rendered at that size directly."""
        s = self.settings
        layout_format.check_sizes(layout, s.shape_code_size, s.appearance_code_size, s.background_code_size, "giraffe")
        camera = layout.camera
        if camera_to_world is None:
            camera_to_world = np.asarray(camera.camera_to_world, dtype=np.float64)
        matrix = np.asarray(camera_to_world, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise layout_format.LayoutError(f"camera_to_world must be a finite 4x4 matrix, got {matrix.shape}")
        if intrinsics is None:
            intrinsics = Intrinsics(camera.fl_x, camera.fl_y, camera.cx, camera.cy, camera.w, camera.h)
        if intrinsics.width != intrinsics.height:
            raise layout_format.LayoutError(
                f"camera: giraffe renders square images, got {intrinsics.width}x{intrinsics.height}"
            )
        device = self.device
        k = len(layout.objects)
        slots = max(k, 1)

        def stack(values: list[tuple[float, ...]], size: int) -> torch.Tensor:
            return torch.tensor(values or [[0.0] * size], dtype=torch.float32, device=device).reshape(1, slots, size)

        codes = SceneCodes(
            shape=stack([obj.shape_code for obj in layout.objects], s.shape_code_size),
            appearance=stack([obj.appearance_code for obj in layout.objects], s.appearance_code_size),
            background_shape=torch.tensor([layout.background_shape_code], dtype=torch.float32, device=device),
            background_appearance=torch.tensor([layout.background_appearance_code], dtype=torch.float32, device=device),
        )
        poses = ObjectPoses(
            scale=torch.tensor([[obj.scale for obj in layout.objects] or [1.0]], device=device),
            translation=torch.tensor(
                [[list(obj.translation) for obj in layout.objects] or [[0.0, 0.0, 0.0]]], device=device
            ),
            rotation=torch.tensor(
                [[math.radians(obj.rotation_z_deg) for obj in layout.objects] or [0.0]], device=device
            ),
            present=torch.tensor([[True] * k or [False]], device=device),
        )
        pose = torch.tensor(matrix, dtype=torch.float32, device=device)[None]
        generator = self.generator_ema
        self.eval()
        # The neural renderer works at the training size: render its feature image with the camera's field
        # of view at that size, then resample the colour to the requested one.
        scaled = Intrinsics(
            intrinsics.fl_x * generator.width / intrinsics.width,
            intrinsics.fl_y * generator.height / intrinsics.height,
            intrinsics.cx * generator.width / intrinsics.width,
            intrinsics.cy * generator.height / intrinsics.height,
            generator.width,
            generator.height,
        )
        features = generator.render_features(codes, poses, pose, scaled, s.feature_resolution, None, False)
        colour = generator.renderer(features.features)
        if (intrinsics.width, intrinsics.height) != (generator.width, generator.height):
            colour = functional.interpolate(
                colour, size=(intrinsics.height, intrinsics.width), mode="bilinear", align_corners=False
            )
        full = generator.render_features(codes, poses, pose, intrinsics, intrinsics.width, None, False)
        return LayoutRender(
            colour=colour[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy().astype(np.float32),
            alphas=full.alphas[0, :k].cpu().numpy().astype(np.float32),
            depth=full.depth[0].cpu().numpy().astype(np.float32),
        )
