"""What a run answers once trained, apart from training it: renders from a camera (a volume render, or a
shape method's shaded surface), evaluation against held-out views or the method's own figures, and the
field's values at points (surface scalar, density, radiance) for extraction and bakes.

:class:`RunInference` is the half of :class:`engine.train.trainer.Trainer` that never steps an optimiser;
the trainer's loop, budget, schedules and checkpoints are the other half (trainer.py). A finished run is
opened for it with ``Trainer.from_run``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.dataset import Cameras, RadianceDataset, background_colors, pixel_rays
from ..data.ray_source import unit_rays
from ..data.transforms import Intrinsics
from ..fields.base import Method, RadianceModel
from ..methods import DENSITY, IMAGES, NO_SURFACE, SDF, MethodSpec
from ..render.volume import blend_background
from .config import TrainConfig
from .metrics import psnr, ssim

if TYPE_CHECKING:
    from ..data.dataset import SceneNormalization

log = logging.getLogger(__name__)

# With a time budget, the evaluation after training stops starting views after this share of the budget, so
# `--minutes 10` ends within about 11 minutes whatever the views cost.
EVALUATION_SHARE = 0.05


@dataclass
class _ViewPixels:
    """Every pixel of one view: its camera and each pixel's row, column and camera index (all 0)."""

    cameras: Cameras
    rows: torch.Tensor
    columns: torch.Tensor
    camera_index: torch.Tensor


@dataclass
class RenderOutput:
    """rgb: (h, w, 3) float32 0..1 over the evaluation background; depth: (h, w) distance along the
    camera's viewing axis in world units (0 where nothing was hit); opacity: (h, w) 0..1."""

    rgb: np.ndarray
    depth: np.ndarray
    opacity: np.ndarray


class RunInference:
    """Rendering, evaluation and queries of a run's model; mixed into Trainer, which provides the state
    declared here (and ``dataset``: the run's images, loaded when first asked for)."""

    model: Method
    spec: MethodSpec
    config: TrainConfig
    device: torch.device
    normalization: SceneNormalization
    step: int
    train_seconds: float
    run_dir: Path
    color_space: str

    @property
    def dataset(self) -> RadianceDataset:
        raise NotImplementedError

    def _append_metrics(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def evaluate_run(self, progress: bool = False) -> dict[str, Any]:
        """The family's evaluation of the run as it stands: held-out views for image methods (at most
        config.eval_views, within the time budget's evaluation bound), else the method's own
        ``evaluate(trainer)`` when it has one."""
        if self.config.eval_views == 0:
            return {"step": self.step, "train_seconds": self.train_seconds, "evaluated": False}
        if self.spec.family == IMAGES:
            return self.evaluate(
                limit=self.config.eval_views,
                on_view=evaluation_bar if progress else None,
                max_seconds=self.evaluation_seconds_bound(),
            )
        evaluate = getattr(self.model, "evaluate", None)
        result: dict[str, Any] = {"step": self.step, "train_seconds": self.train_seconds}
        if callable(evaluate):
            result.update(evaluate(self))
            self._append_metrics({"event": "eval", **result})
        return result

    # -- outputs ---------------------------------------------------------------------------------

    def _radiance_model(self) -> RadianceModel:
        if not isinstance(self.model, RadianceModel):
            raise ValueError(f"method {self.config.method!r} does not render rays")
        return self.model

    def _view_pixels(self, camera_to_world: np.ndarray, intrinsics: Intrinsics) -> _ViewPixels:
        matrix = np.asarray(camera_to_world, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise ValueError(f"camera_to_world must be a finite 4x4 matrix, got shape {matrix.shape}")
        pose = torch.tensor(matrix, dtype=torch.float32, device=self.device)[None]
        rows, columns = torch.meshgrid(
            torch.arange(intrinsics.height, device=self.device),
            torch.arange(intrinsics.width, device=self.device),
            indexing="ij",
        )
        rows, columns = rows.reshape(-1), columns.reshape(-1)
        return _ViewPixels(Cameras.from_intrinsics(pose, [intrinsics]), rows, columns, torch.zeros_like(rows))

    @torch.no_grad()
    def render(self, camera_to_world: np.ndarray, intrinsics: Intrinsics) -> RenderOutput:
        """Render a pinhole camera (world pose, Blender convention) in chunks of config.render_chunk_rays:
        volume rendering for a method that renders rays, else a shaded picture of its surface (a shape
        method's SDF or occupancy, engine/render/surface_preview.py)."""
        if not isinstance(self.model, RadianceModel) and callable(getattr(self.model, "outside_fn", None)):
            return self._render_surface(camera_to_world, intrinsics)
        model = self._radiance_model()
        view = self._view_pixels(camera_to_world, intrinsics)
        cameras, rows, columns, camera_index = view.cameras, view.rows, view.columns, view.camera_index
        height, width = intrinsics.height, intrinsics.width
        background = self._evaluation_background()
        rgb, depth, opacity = [], [], []
        model.eval()
        for start in range(0, rows.numel(), self.config.render_chunk_rays):
            chunk = slice(start, start + self.config.render_chunk_rays)
            rays = pixel_rays(cameras, camera_index[chunk], columns[chunk], rows[chunk])
            with self._autocast():
                output = model.render_rays(unit_rays(rays, self.normalization), training=False, generator=None).main
            rgb.append(blend_background(output.rgb.float(), output.opacity.float(), background).clamp(0.0, 1.0))
            # unit-cube distance along a unit direction -> world distance -> depth along the viewing axis
            depth.append(output.depth.float() * self.normalization.size / rays.directions.norm(dim=-1))
            opacity.append(output.opacity.float().clamp(0.0, 1.0))
        return RenderOutput(
            rgb=torch.cat(rgb).view(height, width, 3).cpu().numpy().astype(np.float32),
            depth=torch.cat(depth).view(height, width).cpu().numpy().astype(np.float32),
            opacity=torch.cat(opacity).view(height, width).cpu().numpy().astype(np.float32),
        )

    @torch.no_grad()
    def _render_surface(self, camera_to_world: np.ndarray, intrinsics: Intrinsics) -> RenderOutput:
        from ..render.surface_preview import shade_surface

        view = self._view_pixels(camera_to_world, intrinsics)
        cameras, rows, columns, camera_index = view.cameras, view.rows, view.columns, view.camera_index
        height, width = intrinsics.height, intrinsics.width
        up = cameras.camera_to_world[0, :3, 1]
        camera_up = up / up.norm().clamp(min=1e-12)  # the unit cube is the world scaled and moved: axes are kept
        self.model.eval()
        outside = self.model.outside_fn(self)  # type: ignore[operator]
        is_distance = self.spec.surface == SDF  # sphere-traced; an occupancy is marched
        shade, depth, opacity = [], [], []
        # a ray asks up to 36 points at once (an occupancy's march), like a volume render's samples
        chunk_rays = max(256, self.config.render_chunk_rays // 4)
        for start in range(0, rows.numel(), chunk_rays):
            chunk = slice(start, start + chunk_rays)
            rays = pixel_rays(cameras, camera_index[chunk], columns[chunk], rows[chunk])
            unit = unit_rays(rays, self.normalization)
            with self._autocast():
                image = shade_surface(outside, unit.origins, unit.directions, camera_up, is_distance)
            shade.append(image.shade.float())
            depth.append(image.t.float() * self.normalization.size / rays.directions.norm(dim=-1))
            opacity.append(image.hit.float())
        return RenderOutput(
            rgb=torch.cat(shade).view(height, width, 3).cpu().numpy().astype(np.float32),
            depth=torch.cat(depth).view(height, width).cpu().numpy().astype(np.float32),
            opacity=torch.cat(opacity).view(height, width).cpu().numpy().astype(np.float32),
        )

    def evaluate(
        self,
        frame_indices: list[int] | None = None,
        limit: int = -1,
        on_view: Callable[[int, int], None] | None = None,
        max_seconds: float = 0.0,
    ) -> dict[str, Any]:
        """PSNR and SSIM of renders of held-out frames (or the given frame indices) against their images
        over the evaluation background; at most ``limit`` views spread over them (-1: all, 0: none), and no
        view started once ``max_seconds`` (> 0) have passed. on_view(done, total) is told after each view.
        Returns {"step", "background", "views": [...], "psnr", "ssim", "views_skipped", "eval_seconds"}."""
        started = time.perf_counter()
        dataset = self.dataset
        indices = dataset.holdout_indices if frame_indices is None else frame_indices
        if limit >= 0 and len(indices) > limit:
            indices = [indices[round(i * len(indices) / limit)] for i in range(limit)] if limit else []
        background = self._evaluation_background()
        views = []
        for done, index in enumerate(indices):
            if max_seconds > 0 and done and time.perf_counter() - started > max_seconds:
                log.warning(
                    "evaluated %d of %d held-out views: the evaluation's %.0f s bound is used",
                    done,
                    len(indices),
                    max_seconds,
                )
                break
            if not 0 <= index < len(dataset.frames):
                raise ValueError(f"frame index {index} is outside the dataset's {len(dataset.frames)} frames")
            frame = dataset.frames[index]
            rendered = self.render(dataset.cameras.camera_to_world[index].cpu().numpy(), dataset.intrinsics[index])
            expected = dataset.composited(index, background).clamp(0.0, 1.0).cpu()
            prediction = torch.from_numpy(rendered.rgb)
            quality = {"psnr": psnr(prediction, expected), "ssim": ssim(prediction, expected)}
            views.append({"frame": index, "name": frame.name, **quality})
            if on_view is not None:
                on_view(done + 1, len(indices))
        result: dict[str, Any] = {
            "step": self.step,
            "train_seconds": self.train_seconds,
            "background": self._evaluation_background_name(),
            "color_space": self.color_space,
            "views": views,
            "psnr": float(np.mean([view["psnr"] for view in views])) if views else None,
            "ssim": float(np.mean([view["ssim"] for view in views])) if views else None,
            "views_skipped": len(indices) - len(views),
            "eval_seconds": time.perf_counter() - started,
        }
        self._append_metrics({"event": "eval", **result})
        return result

    def evaluation_seconds_bound(self) -> float:
        """A time budget's evaluation may take at most EVALUATION_SHARE of it (0: no bound without one)."""
        return EVALUATION_SHARE * self.config.minutes * 60.0

    @torch.no_grad()
    def query_surface(self, points_world: np.ndarray) -> np.ndarray:
        """(n, 3) world points -> (n,) the method's surface scalar in world units: density per world unit
        (0 outside the scene box's cube), signed distance in world units, or occupancy probability."""
        kind = self.spec.surface
        if kind == NO_SURFACE:
            raise ValueError(f"method {self.config.method!r} has no surface to extract")
        points = self._points_to_unit(points_world)
        inside = ((points >= 0.0) & (points <= 1.0)).all(dim=-1)
        values = torch.zeros(points.shape[0], device=self.device)
        self.model.eval()
        for start in range(0, points.shape[0], self.config.render_chunk_rays * 16):
            chunk = slice(start, start + self.config.render_chunk_rays * 16)
            with self._autocast():
                values[chunk] = self.model.surface(points[chunk].clamp(0.0, 1.0)).float().reshape(-1)
        if kind == DENSITY:
            # the model's density is per unit-cube length; a world unit is 1 / size of that
            return (torch.where(inside, values, 0.0) / self.normalization.size).cpu().numpy()
        if kind == SDF:
            return (values * self.normalization.size).cpu().numpy()
        return values.cpu().numpy()

    def query_density(self, points_world: np.ndarray) -> np.ndarray:
        """(n, 3) world points -> (n,) volume density per world unit; 0 outside the scene box's cube."""
        if self.spec.surface != DENSITY:
            raise ValueError(f"method {self.config.method!r} has a {self.spec.surface} surface, not a density")
        return self.query_surface(points_world)

    @torch.no_grad()
    def query_radiance(self, points_world: np.ndarray, view_dirs_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) world points and (n, 3) viewing directions (any length) -> (n,) density per world unit (0
        outside the scene box's cube) and (n, 3) colour 0..1, from one pass through the field."""
        model = self._radiance_model()
        points = self._points_to_unit(points_world)
        inside = ((points >= 0.0) & (points <= 1.0)).all(dim=-1)
        directions = torch.as_tensor(np.asarray(view_dirs_world, dtype=np.float32), device=self.device)
        if directions.shape != points.shape:
            raise ValueError(f"view_dirs_world must be (n, 3) like the points, got {tuple(directions.shape)}")
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        densities = torch.zeros(points.shape[0], device=self.device)
        colours = torch.zeros_like(points)
        model.eval()
        for start in range(0, points.shape[0], self.config.render_chunk_rays * 16):
            chunk = slice(start, start + self.config.render_chunk_rays * 16)
            with self._autocast():
                density, colour = model.radiance(points[chunk].clamp(0.0, 1.0), directions[chunk])
            densities[chunk], colours[chunk] = density.float().reshape(-1), colour.float()
        densities = torch.where(inside, densities, 0.0) / self.normalization.size
        return densities.cpu().numpy(), colours.cpu().numpy()

    # -- helpers ---------------------------------------------------------------------------------

    def _points_to_unit(self, points_world: np.ndarray) -> torch.Tensor:
        points = np.asarray(points_world, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points_world must be (n, 3), got shape {points.shape}")
        return self.normalization.to_unit(torch.as_tensor(points, device=self.device))

    def _evaluation_background_name(self) -> str:
        # a random training background is evaluated on white, as NeRF's synthetic scenes are
        return "black" if self.config.background == "black" else "white"

    def _evaluation_background(self) -> torch.Tensor:
        return background_colors(self._evaluation_background_name(), 1, None, self.device)[0]

    def _autocast(self) -> Any:
        enabled = self.device.type == "cuda" and self.config.mixed_precision
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)


def evaluation_bar(done: int, total: int) -> None:
    filled = int(30 * done / max(1, total))
    sys.stderr.write(f"\revaluate [{'#' * filled}{'.' * (30 - filled)}] view {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
