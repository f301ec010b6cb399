"""Pieces GRAF and GIRAFFE share: cameras from a collection's prior, rays, a code-conditioned feature field,
the composition operator, volume rendering of features, a DCGAN discriminator, the R1 penalty, EMA.

Everything is in Blender world units and Blender's camera convention (camera_to_world looks down its -Z,
+Y up; a pixel centre is at +0.5). Object space is GIRAFFE's: an object of half-extent ``scale``, rotated by
``rotation`` about the world +Z axis and centred at ``translation`` fills the cube [-1, 1]^3 of its object
space: ``world = R_z(rotation) (scale * object) + translation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..atomic import write_atomic
from ..data.collection import CameraPrior, PosePrior, Range
from ..data.transforms import Intrinsics
from ..encodings.positional import PositionalEncoding
from .base import Method, OptimizerSpec, ParameterGroup, StepContext

# ---------------------------------------------------------------------------- poses and cameras


def uniform(
    range_: Range, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform samples in [low, high] of the given shape."""
    values = torch.rand(shape, generator=generator, device=device)
    return range_.low + (range_.high - range_.low) * values


def look_at(location: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(b, 3) camera locations and targets -> (b, 4, 4) camera_to_world looking down -Z at the target with
    +Y as close to world +Z as it can be (Blender's to_track_quat('-Z', 'Y'), as make_collection.py)."""
    backward = functional.normalize(location - target, dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0], device=location.device).expand_as(backward)
    right = functional.normalize(torch.cross(up, backward, dim=-1), dim=-1)
    true_up = torch.cross(backward, right, dim=-1)
    matrix = torch.zeros(location.shape[0], 4, 4, device=location.device)
    matrix[:, :3, 0], matrix[:, :3, 1], matrix[:, :3, 2], matrix[:, :3, 3] = right, true_up, backward, location
    matrix[:, 3, 3] = 1.0
    return matrix


def sample_cameras(
    prior: CameraPrior, count: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(count, 4, 4) camera_to_world on the prior's ring: radius, elevation and azimuth uniform in their ranges."""
    radius = uniform(prior.radius, (count,), generator, device)
    elevation = uniform(prior.elevation_deg.rad, (count,), generator, device)
    azimuth = uniform(prior.azimuth_deg.rad, (count,), generator, device)
    direction = torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], dim=-1)
    target = torch.tensor(prior.look_at, device=device).expand(count, 3)
    return look_at(target + radius[:, None] * direction, target)


def prior_intrinsics(prior: PosePrior, width: int, height: int) -> Intrinsics:
    """The collection's pinhole camera at its image size."""
    camera = prior.camera
    return Intrinsics(camera.fl_x, camera.fl_y, camera.cx, camera.cy, width, height)


@dataclass
class ObjectPoses:
    """Poses of up to k objects in b scenes, world units: scale (b, k) half-extent, translation (b, k, 3)
    centre, rotation (b, k) radians about world +Z, present (b, k) bool (absent objects have no density)."""

    scale: torch.Tensor
    translation: torch.Tensor
    rotation: torch.Tensor
    present: torch.Tensor


def sample_poses(
    prior: PosePrior,
    count: int,
    slots: int,
    generator: torch.Generator | None,
    device: torch.device,
    objects: int | None = None,
) -> ObjectPoses:
    """Poses of ``slots`` objects per scene from the prior, standing on the floor (GIRAFFE's object_on_plane:
    the centre is one half-extent above the floor). Each scene has an object count uniform in the prior's
    range (clipped to ``slots``), or exactly ``objects``; the first that many slots are present."""
    scale = uniform(prior.object_scale, (count, slots), generator, device)
    x = uniform(prior.object_translation_x, (count, slots), generator, device)
    y = uniform(prior.object_translation_y, (count, slots), generator, device)
    z = prior.floor.height + scale
    rotation = uniform(prior.object_rotation_z_deg.rad, (count, slots), generator, device)
    low, high = prior.object_count
    if objects is None:
        counts = torch.randint(min(low, slots), min(high, slots) + 1, (count,), generator=generator, device=device)
    else:
        counts = torch.full((count,), objects, device=device)
    present = torch.arange(slots, device=device)[None, :] < counts[:, None]
    return ObjectPoses(scale, torch.stack([x, y, z], dim=-1), rotation, present)


def rotation_z(angle: torch.Tensor) -> torch.Tensor:
    """(...) angles in radians -> (..., 3, 3) rotations about +Z (counter-clockwise seen from above)."""
    cos, sin = angle.cos(), angle.sin()
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rows = [torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, dim=-2)


def world_to_object(
    points: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor, rotation: torch.Tensor
) -> torch.Tensor:
    """(b, k, n, 3) world points -> object space of each object (b, k) ((b, k, 3) translation):
    ``R_z(-rotation) (points - translation) / scale``; the object fills [-1, 1]^3 there."""
    # rows of R^T applied to column vectors: p_obj[i] = sum_j R[j, i] (p - t)[j]
    local = torch.einsum("bkji,bknj->bkni", rotation_z(rotation), points - translation[:, :, None, :])
    return local / scale[:, :, None, None]


def object_to_world(
    points: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor, rotation: torch.Tensor
) -> torch.Tensor:
    """Inverse of world_to_object: (b, k, n, 3) object-space points -> world."""
    scaled = points * scale[:, :, None, None]
    return torch.einsum("bkij,bknj->bkni", rotation_z(rotation), scaled) + translation[:, :, None, :]


def directions_to_object(directions: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(b, k, n, 3) world directions -> unit object-space directions (rotation only, as GIRAFFE)."""
    return torch.einsum("bkji,bknj->bkni", rotation_z(rotation), directions)


# ---------------------------------------------------------------------------- rays


@dataclass
class Rays:
    """origins, directions (unit): (b, m, 3) world; axis_cos: (b, m) cosine between a ray and the camera's
    viewing axis (depth along the axis = distance along the ray * axis_cos)."""

    origins: torch.Tensor
    directions: torch.Tensor
    axis_cos: torch.Tensor


def camera_rays(
    camera_to_world: torch.Tensor, intrinsics: Intrinsics, pixel_x: torch.Tensor, pixel_y: torch.Tensor
) -> Rays:
    """Rays through continuous pixel positions (b, m) of the image ``intrinsics`` describe (x to the right,
    y down, a pixel centre at +0.5) of cameras (b, 4, 4)."""
    camera = torch.stack(
        [
            (pixel_x - intrinsics.cx) / intrinsics.fl_x,
            -(pixel_y - intrinsics.cy) / intrinsics.fl_y,
            -torch.ones_like(pixel_x),
        ],
        dim=-1,
    )
    length = camera.norm(dim=-1)
    directions = torch.einsum("bij,bmj->bmi", camera_to_world[:, :3, :3], camera / length[..., None])
    origins = camera_to_world[:, None, :3, 3].expand_as(directions)
    return Rays(origins, directions, 1.0 / length)


def grid_pixels(resolution: int, intrinsics: Intrinsics, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(m,) pixel x and y (image pixels of ``intrinsics``) of the centres of a resolution^2 grid over the
    whole image, row-major from the top left: the pixels of the image rendered at that resolution."""
    rows, columns = torch.meshgrid(
        torch.arange(resolution, device=device), torch.arange(resolution, device=device), indexing="ij"
    )
    pixel_x = (columns.reshape(-1).float() + 0.5) * intrinsics.width / resolution
    pixel_y = (rows.reshape(-1).float() + 0.5) * intrinsics.height / resolution
    return pixel_x, pixel_y


def ray_depths(
    near: float,
    far: float,
    samples: int,
    shape: tuple[int, int],
    generator: torch.Generator | None,
    device: torch.device,
    jitter: bool,
) -> torch.Tensor:
    """(b, m, samples) distances along rays: stratified in [near, far], jittered in their bins when training."""
    edges = torch.linspace(near, far, samples + 1, device=device)
    lower, width = edges[:-1], edges[1:] - edges[:-1]
    if jitter:
        offset = torch.rand((*shape, samples), generator=generator, device=device)
    else:
        offset = torch.full((*shape, samples), 0.5, device=device)
    return lower + width * offset


def stratified(
    near: torch.Tensor, far: torch.Tensor, samples: int, generator: torch.Generator | None, jitter: bool
) -> torch.Tensor:
    """(...) per-ray intervals -> (..., samples) distances stratified in [near, far], jittered in their bins
    when training (bin centres otherwise)."""
    fractions = torch.arange(samples, device=near.device, dtype=near.dtype)
    if jitter:
        fractions = fractions + torch.rand((*near.shape, samples), generator=generator, device=near.device)
    else:
        fractions = fractions + 0.5
    return near[..., None] + (far - near)[..., None] * (fractions / samples)


def box_intervals(
    rays: Rays,
    scale: torch.Tensor,
    translation: torch.Tensor,
    rotation: torch.Tensor,
    present: torch.Tensor,
    near: float,
    far: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each ray (b, m) crosses each object's box (b, k): entry and exit distances (b, k, m) within
    [near, far], and whether it does at all (slab test in object space; absent objects are missed)."""
    origins = world_to_object(rays.origins[:, None], scale, translation, rotation)  # (b, k, m, 3)
    directions = directions_to_object(rays.directions[:, None].expand(-1, scale.shape[1], -1, -1), rotation)
    directions = directions / scale[:, :, None, None]
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    first, second = (-1.0 - origins) / safe, (1.0 - origins) / safe
    entry = torch.minimum(first, second).amax(dim=-1).clamp(min=near)
    exit_ = torch.maximum(first, second).amin(dim=-1).clamp(max=far)
    return entry, exit_, (exit_ > entry) & present[:, :, None]


def depth_range(prior: PosePrior, box_radius: float) -> tuple[float, float]:
    """Distances along any ray from the prior's cameras that cover a sphere of box_radius around look_at."""
    near = max(1e-3, prior.camera.radius.low - box_radius)
    return near, prior.camera.radius.high + box_radius


# ---------------------------------------------------------------------------- fields


class FeatureField(nn.Module):
    """GIRAFFE's decoder: (points, directions, shape code, appearance code) -> (density, features).

    points: (g, n, 3) in [-1, 1] roughly (object space, or scene space scaled); directions: (g, n, 3)
    unit; shape_codes: (g, zs) and appearance_codes: (g, za) per group, or (g, n, zs), (g, n, za) per
    point. Returns density (g, n) >= 0 (softplus, so that a fresh field already has some everywhere:
    geometry works before learning) and features (g, n, out) (sigmoid when ``sigmoid``: GRAF's colours).
    Positional encodings without the raw input, as GIRAFFE. ``density_bias`` starts the density there
    (softplus of it): a background starts nearly transparent.
    """

    def __init__(
        self,
        shape_code_size: int,
        appearance_code_size: int,
        hidden_width: int,
        hidden_layers: int,
        skip_layer: int,
        position_frequencies: int,
        direction_frequencies: int,
        out_features: int,
        sigmoid: bool = False,
        density_bias: float = 0.0,
    ) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ValueError(f"hidden_layers must be >= 1, got {hidden_layers}")
        self.position_encoding = PositionalEncoding(3, position_frequencies, include_input=False)
        self.direction_encoding = PositionalEncoding(3, direction_frequencies, include_input=False)
        self.position_in = nn.Linear(self.position_encoding.out_dim, hidden_width)
        self.shape_in = nn.Linear(shape_code_size, hidden_width)
        self.blocks = nn.ModuleList(nn.Linear(hidden_width, hidden_width) for _ in range(hidden_layers - 1))
        self.skip_layer = skip_layer if 0 < skip_layer < hidden_layers - 1 else 0
        if self.skip_layer:
            self.skip_position = nn.Linear(self.position_encoding.out_dim, hidden_width)
            self.skip_shape = nn.Linear(shape_code_size, hidden_width)
        self.density_out = nn.Linear(hidden_width, 1)
        nn.init.constant_(self.density_out.bias, density_bias)
        self.feature_hidden = nn.Linear(hidden_width, hidden_width)
        self.appearance_in = nn.Linear(appearance_code_size, hidden_width)
        self.direction_in = nn.Linear(self.direction_encoding.out_dim, hidden_width)
        self.feature_out = nn.Linear(hidden_width, out_features)
        self.sigmoid = sigmoid

    def forward(
        self,
        points: torch.Tensor,
        directions: torch.Tensor,
        shape_codes: torch.Tensor,
        appearance_codes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if shape_codes.ndim == 2:  # one code per group, broadcast over its points
            shape_codes, appearance_codes = shape_codes[:, None, :], appearance_codes[:, None, :]
        encoded = self.position_encoding(points)
        hidden = functional.relu(self.position_in(encoded) + self.shape_in(shape_codes))
        for index, layer in enumerate(self.blocks):
            hidden = functional.relu(layer(hidden))
            if self.skip_layer and index + 1 == self.skip_layer:
                hidden = hidden + self.skip_position(encoded) + self.skip_shape(shape_codes)
        density = functional.softplus(self.density_out(hidden).squeeze(-1))
        hidden = self.feature_hidden(hidden) + self.appearance_in(appearance_codes)
        hidden = functional.relu(hidden + self.direction_in(self.direction_encoding(directions)))
        features = self.feature_out(hidden)
        return density, torch.sigmoid(features) if self.sigmoid else features


def composite(densities: torch.Tensor, features: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """GIRAFFE's composition operator. densities (..., k) and features (..., k, c) of k fields at the same
    points -> density (...) = sum_k sigma_k and feature (..., c) = sum_k sigma_k f_k / sum_k sigma_k (the
    density-weighted mean; 0 where no field has density)."""
    total = densities.sum(dim=-1)
    weighted = (densities[..., None] * features).sum(dim=-2)
    return total, weighted / total.clamp(min=eps)[..., None]


def volume_weights(density: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """(b, m, s) densities per world unit at (b, m, s) distances along unit rays -> (b, m, s) weights
    T_i (1 - exp(-sigma_i delta_i)); the last sample's interval reaches to infinity (it absorbs the rest)."""
    deltas = torch.cat([depths[..., 1:] - depths[..., :-1], torch.full_like(depths[..., :1], 1e10)], dim=-1)
    alpha = 1.0 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], dim=-1), dim=-1)
    return alpha * transmittance[..., :-1]


# ---------------------------------------------------------------------------- discriminator, losses


class Discriminator(nn.Module):
    """DCGAN discriminator (GIRAFFE's ``dc``): stride-2 4x4 convolutions with leaky ReLU from the image size
    down to 4x4, channels doubling up to ``features``, then a 4x4 convolution to one logit. (n, 3, s, s) in
    [0, 1] -> (n,) logits; s a power of two >= 8."""

    def __init__(self, size: int, features: int) -> None:
        super().__init__()
        levels = round(math.log2(size)) - 2
        if size < 8 or 2 ** (levels + 2) != size:
            raise ValueError(f"discriminator input size must be a power of two >= 8, got {size}")
        widths = [max(8, features // 2 ** (levels - 1 - level)) for level in range(levels)]
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            channels = width
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images * 2.0 - 1.0).reshape(-1)


def r1_penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean over the batch of |d logits / d inputs|^2, differentiable (the
    inputs must require grad and produced the logits)."""
    (gradients,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return gradients.pow(2).reshape(gradients.shape[0], -1).sum(dim=1).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss of the discriminator: softplus(-D(real)) + softplus(D(fake))."""
    return functional.softplus(-real_logits).mean() + functional.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss of the generator: softplus(-D(fake))."""
    return functional.softplus(-fake_logits).mean()


@torch.no_grad()
def update_ema(average: nn.Module, current: nn.Module, beta: float) -> None:
    """average <- beta average + (1 - beta) current, parameter by parameter (buffers copied)."""
    for kept, new in zip(average.parameters(), current.parameters(), strict=True):
        kept.lerp_(new.detach(), 1.0 - beta)
    for kept, new in zip(average.buffers(), current.buffers(), strict=True):
        kept.copy_(new)


def ema_beta(beta: float, step: int) -> float:
    """The EMA rate at a step: ramped up as (1 + step) / (10 + step) so that a short run's average is not
    mostly its random initialisation."""
    return min(beta, (1.0 + step) / (10.0 + step))


# ---------------------------------------------------------------------------- sample grids


def write_image_grid(path: Path, images: torch.Tensor) -> Path:
    """(n, 3, h, w) in [0, 1] -> one PNG of the images in a near-square grid with 1-pixel gaps, atomically."""
    import imageio.v3 as iio

    grid = image_grid(images)
    return write_atomic(Path(path), lambda temporary: iio.imwrite(temporary, grid, extension=".png"))


def image_grid(images: torch.Tensor) -> np.ndarray:
    """(n, 3, h, w) in [0, 1] -> (rows, columns, 3) uint8: the images in a near-square grid, 1-pixel white gaps."""
    count, _, height, width = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, 3), dtype=np.uint8) * 255
    pixels = (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    for index in range(count):
        row, column = divmod(index, columns)
        grid[row * (height + 1) : row * (height + 1) + height, column * (width + 1) : column * (width + 1) + width] = (
            pixels[index]
        )
    return grid


# The fixed latents of the sample grids (written during training, streamed as the live session's preview).
SAMPLE_SEED = 20210601


def adversarial_discriminator_step(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, r1_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The discriminator's loss on real and (detached) fake images with R1 on the real ones:
    (loss, r1, real logits, fake logits)."""
    real_input = real.detach().requires_grad_(True)
    real_logits = discriminator(real_input)
    r1 = r1_penalty(real_logits, real_input)
    fake_logits = discriminator(fake.detach())
    loss = discriminator_loss(real_logits, fake_logits) + 0.5 * r1_weight * r1
    return loss, r1, real_logits, fake_logits


class AdversarialModel(Method):
    """What GRAF and GIRAFFE share: a generator and its EMA copy trained against a discriminator by two
    RMSprop optimisers stepped in turn (the trainer hands them over through StepContext.optimize), and grids
    of the EMA generator's images of fixed latents. A subclass sets ``settings`` (with learning_rate,
    discriminator_learning_rate, r1_weight, ema_beta, sample_every, sample_grid), ``generator``,
    ``generator_ema`` and ``discriminator``, and defines ``sample_images(count, seed)``."""

    manual_optimization = True
    settings: Any
    generator: nn.Module
    generator_ema: nn.Module
    discriminator: nn.Module

    def sample_images(self, count: int, seed: int) -> tuple[torch.Tensor, Any]:
        """(count, 3, H, W) images of the EMA generator from the latents of ``seed``, and what else it drew."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, OptimizerSpec]:
        s = self.settings
        rate, discriminator_rate = s.learning_rate, s.discriminator_learning_rate
        return {
            "discriminator": OptimizerSpec(
                [ParameterGroup(list(self.discriminator.parameters()), discriminator_rate, discriminator_rate)],
                kind="rmsprop",
                warmup=False,
            ),
            "generator": OptimizerSpec(
                [ParameterGroup(list(self.generator.parameters()), rate, rate)], kind="rmsprop", warmup=False
            ),
        }

    def adversarial_step(self, real: torch.Tensor, fake: torch.Tensor, step: StepContext) -> dict[str, float]:
        """One discriminator step (non-saturating loss, R1 on the reals), then one generator step against the
        updated discriminator, then the EMA; returns the figures of both."""
        if step.optimize is None:
            raise RuntimeError(f"{type(self).__name__} steps its own optimisers: the trainer must pass optimize")
        d_loss, r1, real_logits, fake_logits = adversarial_discriminator_step(
            self.discriminator, real, fake, self.settings.r1_weight
        )
        step.optimize("discriminator", d_loss)
        self.discriminator.requires_grad_(False)
        g_loss = generator_loss(self.discriminator(fake))
        step.optimize("generator", g_loss)
        self.discriminator.requires_grad_(True)
        update_ema(self.generator_ema, self.generator, ema_beta(self.settings.ema_beta, step.step))
        return {
            "loss": float(d_loss.detach() + g_loss.detach()),
            "loss_generator": float(g_loss.detach()),
            "loss_discriminator": float(d_loss.detach()),
            "r1": float(r1.detach()),
            "d_real": float(real_logits.detach().mean()),
            "d_fake": float(fake_logits.detach().mean()),
        }

    def after_step(self, trainer: Any) -> None:
        """A grid of the EMA generator's images of fixed latents every sample_every steps."""
        every = self.settings.sample_every
        if every and trainer.step % every == 0:
            self.write_samples(Path(trainer.run_dir), trainer.step)

    def write_samples(self, run_dir: Path, step: int) -> Path:
        images, _ = self.sample_images(self.settings.sample_grid, SAMPLE_SEED)
        self.train()
        path = write_image_grid(run_dir / "samples" / f"step_{step:07d}.png", images)
        write_image_grid(run_dir / "samples" / "latest.png", images)
        return path

    def evaluate(self, trainer: Any) -> dict[str, Any]:
        path = self.write_samples(Path(trainer.run_dir), trainer.step)
        return {"step": trainer.step, "train_seconds": trainer.train_seconds, "samples": str(path)}
