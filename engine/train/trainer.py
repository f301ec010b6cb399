"""The training loop of radiance fields, and what a trained run answers: renders, evaluations, queries.

A run folder holds ``config.json`` (the TrainConfig, the dataset, the scene box and the derived field
sizes), ``checkpoint.pt`` (model, optimiser, random state, step), ``metrics.jsonl`` (one JSON object per
logged step or evaluation) and ``engine.log``. Everything that leaves the trainer is in world units.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..atomic import write_text_atomic
from ..data.dataset import (
    Cameras,
    RadianceDataset,
    SceneNormalization,
    WorldRays,
    background_colors,
    load_dataset,
    pixel_rays,
    split_indices,
)
from ..data.transforms import Frame, Intrinsics, SceneBox, read_transforms
from ..device import pick_device
from ..fields.base import RadianceModel, RayBundle
from ..render.samplers import ray_box_intersection
from ..render.volume import blend_background
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .metrics import psnr, ssim

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
LOG_NAME = "engine.log"


@dataclass
class StepStats:
    """One training step: loss (photometric MSE, all renders summed), PSNR of the main render in dB."""

    step: int
    loss: float
    psnr: float
    rays: int
    seconds: float


@dataclass
class RenderOutput:
    """rgb: (h, w, 3) float32 0..1 over the evaluation background; depth: (h, w) distance along the
    camera's viewing axis in world units (0 where nothing was hit); opacity: (h, w) 0..1."""

    rgb: np.ndarray
    depth: np.ndarray
    opacity: np.ndarray


@dataclass
class RunInfo:
    """What config.json holds besides the TrainConfig: enough to rebuild the model without the dataset."""

    dataset: str
    scene_box: SceneBox
    finest_resolution: int
    color_space: str
    # Which rule of engine.data.bounds chose scene_box, and why; configs written before it say "unrecorded".
    scene_box_rule: str = "unrecorded"
    scene_box_reason: str = ""

    def to_dict(self, config: TrainConfig) -> dict[str, Any]:
        return {
            "engine_version": __version__,
            "dataset": self.dataset,
            "scene_box": {"min": list(self.scene_box.minimum), "max": list(self.scene_box.maximum)},
            "scene_box_rule": self.scene_box_rule,
            "scene_box_reason": self.scene_box_reason,
            "finest_resolution": self.finest_resolution,
            "color_space": self.color_space,
            "config": config.to_dict(),
        }

    @classmethod
    def read(cls, path: Path) -> tuple[RunInfo, TrainConfig]:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            box = document["scene_box"]
            info = cls(
                dataset=str(document["dataset"]),
                scene_box=SceneBox(minimum=tuple(box["min"]), maximum=tuple(box["max"])),
                finest_resolution=int(document["finest_resolution"]),
                color_space=str(document["color_space"]),
                scene_box_rule=str(document.get("scene_box_rule", "unrecorded")),
                scene_box_reason=str(document.get("scene_box_reason", "")),
            )
            return info, TrainConfig.from_dict(document["config"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a readable run config: {error}") from error


def build_model(config: TrainConfig, finest_resolution: int, device: torch.device) -> RadianceModel:
    """The model of config.field. A new field adds its branch here and its config in config.py."""
    # On CPU the compiled hash lookup measured no faster once its compilations (minutes on 2 cores, again
    # for every new graph) are paid, so "auto" compiles on CUDA only.
    compile_field = config.compile == "on" or (
        config.compile == "auto" and config.field == "ngp" and device.type == "cuda"
    )
    if compile_field:
        # "auto" must never stop a run: where compilation fails (no C++ compiler, say) run eagerly
        torch._dynamo.config.suppress_errors = config.compile == "auto"
    if config.field == "ngp":
        from ..fields.ngp import NgpModel

        return NgpModel(config.ngp, finest_resolution, compile_field=compile_field).to(device)
    if config.field == "nerf":
        from ..fields.nerf import NerfModel

        if compile_field:
            raise ValueError("compile=on is only supported for the ngp field")
        return NerfModel(config.nerf).to(device)
    raise ValueError(f"unknown field {config.field!r}")


class Trainer:
    """Owns a model, its optimiser and (when training) the dataset. Build with create() or from_run()."""

    def __init__(
        self,
        config: TrainConfig,
        info: RunInfo,
        run_dir: Path,
        device: torch.device,
        dataset: RadianceDataset | None,
    ) -> None:
        self.config = config
        self.info = info
        self.run_dir = run_dir
        self.device = device
        self.scene_box = info.scene_box
        self.color_space = info.color_space
        self.normalization = SceneNormalization.from_box(info.scene_box)
        self._dataset = dataset
        self.step = 0
        self.train_seconds = 0.0
        torch.manual_seed(config.seed)
        self.model = build_model(config, info.finest_resolution, device)
        groups = self.model.parameter_groups()
        self._base_rates = [group.learning_rate for group in groups]
        self._final_rates = [group.final_learning_rate for group in groups]
        adam_options: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.Adam(
            [{"params": group.parameters, "lr": group.learning_rate} for group in groups],
            betas=(0.9, 0.99),
            eps=1e-15,
            **adam_options,
        )
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        self._train_frames = torch.tensor(dataset.train_indices, device=device) if dataset is not None else None

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def create(cls, dataset: Path, out_dir: Path, config: TrainConfig, scene_box: SceneBox | None = None) -> Trainer:
        """Start a run in out_dir, or resume it when out_dir holds a checkpoint (the saved model settings
        win; steps, minutes and device come from config, so a run can be extended). ``scene_box``
        overrides the dataset's box (a resumed run keeps its own and refuses a different one)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        device = pick_device(config.device)
        checkpoint_path = out_dir / CHECKPOINT_NAME
        if checkpoint_path.is_file() and (out_dir / CONFIG_NAME).is_file():
            info, saved = RunInfo.read(out_dir / CONFIG_NAME)
            saved.steps, saved.minutes, saved.device = config.steps, config.minutes, config.device
            if scene_box is not None and scene_box != info.scene_box:
                raise ValueError(
                    f"{out_dir}: the run was trained in the scene box "
                    f"{info.scene_box.minimum}..{info.scene_box.maximum}; "
                    f"it cannot resume in {scene_box.minimum}..{scene_box.maximum} (start a new run folder)"
                )
            data = load_dataset(Path(dataset), saved.downscale, scene_box=info.scene_box).to(device)
            trainer = cls(saved, info, out_dir, device, data)
            trainer._load(checkpoint_path)
            log.info("resumed %s at step %d from %s", saved.field, trainer.step, checkpoint_path)
        else:
            data = load_dataset(Path(dataset), config.downscale, scene_box=scene_box).to(device)
            finest = config.ngp.finest_resolution or data.suggested_finest_resolution()
            info = RunInfo(
                str(Path(dataset).resolve()),
                data.scene_box,
                finest,
                data.color_space,
                data.scene_box_rule,
                data.scene_box_reason,
            )
            trainer = cls(config, info, out_dir, device, data)
            log.info(
                "new %s run: %d training and %d held-out frames of %dx%d, %s colour, scene box %s..%s, device %s",
                config.field,
                len(data.train_indices),
                len(data.holdout_indices),
                data.width,
                data.height,
                data.color_space,
                data.scene_box.minimum,
                data.scene_box.maximum,
                device,
            )
        _write_json_atomic(out_dir / CONFIG_NAME, trainer.info.to_dict(trainer.config))
        return trainer

    @classmethod
    def from_run(cls, run_dir: Path, device: str = "auto") -> Trainer:
        """A trained run, for render, extract and eval. The dataset is read only when evaluate() needs it."""
        run_dir = Path(run_dir)
        info, config = RunInfo.read(run_dir / CONFIG_NAME)
        config.device = device
        trainer = cls(config, info, run_dir, pick_device(device), dataset=None)
        trainer._load(run_dir / CHECKPOINT_NAME)
        return trainer

    @property
    def dataset(self) -> RadianceDataset:
        if self._dataset is None:
            # The run's own box: no rule to rerun, and the same box even if the dataset gained one since.
            self._dataset = load_dataset(
                Path(self.info.dataset), self.config.downscale, scene_box=self.info.scene_box
            ).to(self.device)
            self._train_frames = torch.tensor(self._dataset.train_indices, device=self.device)
        return self._dataset

    def training_frames(self) -> list[Frame]:
        """The cameras the field was trained from, read from the dataset's transforms without its images."""
        if self._dataset is not None:
            return [self._dataset.frames[index] for index in self._dataset.train_indices]
        path = Path(self.info.dataset)
        frames = read_transforms(path).frames
        train, _ = split_indices(frames, path)
        return [frames[index] for index in train]

    # -- training --------------------------------------------------------------------------------

    def is_done(self) -> bool:
        """The step budget, or the time budget (minutes > 0) of training time, is used up."""
        if self.step >= self.config.steps:
            return True
        return self.config.minutes > 0 and self.train_seconds >= self.config.minutes * 60.0

    def learning_rate(self, base: float, final: float) -> float:
        """Linear warm-up to base, then exponential decay from base to final at the end of the budget
        (steps or minutes, whichever is further along)."""
        warmup = self.config.warmup_steps
        if self.step < warmup:
            return base * (self.step + 1) / warmup
        progress = (self.step - warmup) / max(1, self.config.steps - warmup)
        if self.config.minutes > 0:
            progress = max(progress, self.train_seconds / (self.config.minutes * 60.0))
        return base * (final / base) ** min(1.0, progress)

    def train_step(self) -> StepStats:
        """One optimiser step on config.batch_rays random rays from all training images."""
        started = time.perf_counter()
        dataset = self.dataset
        assert self._train_frames is not None
        self.model.train()
        self.model.before_step(self.step, self.generator)
        for group, base, final in zip(self.optimizer.param_groups, self._base_rates, self._final_rates, strict=True):
            group["lr"] = self.learning_rate(base, final)

        n_rays = self.config.batch_rays
        pixels_per_frame = dataset.height * dataset.width
        pick = torch.randint(
            0, len(self._train_frames) * pixels_per_frame, (n_rays,), generator=self.generator, device=self.device
        )
        frames = self._train_frames[pick // pixels_per_frame]
        pixel = pick % pixels_per_frame
        rows, columns = pixel // dataset.width, pixel % dataset.width
        rays = pixel_rays(dataset.cameras, frames, columns, rows)
        background = background_colors(self.config.background, n_rays, self.generator, self.device)
        alpha = dataset.alpha[frames, rows, columns, None]
        target = dataset.premultiplied[frames, rows, columns] + (1.0 - alpha) * background

        with self._autocast():
            output = self.model.render_rays(self._unit_rays(rays), training=True, generator=self.generator)
        errors = [
            torch.mean((blend_background(rendered.rgb.float(), rendered.opacity.float(), background) - target) ** 2)
            for rendered in [output.main, *output.auxiliary]
        ]
        main_mse = errors[0]
        loss = torch.stack(errors).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

        self.step += 1
        seconds = time.perf_counter() - started
        self.train_seconds += seconds
        mse = float(main_mse.detach())
        stats = StepStats(
            step=self.step,
            loss=float(loss.detach()),
            psnr=-10.0 * math.log10(max(mse, 1e-12)),
            rays=n_rays,
            seconds=seconds,
        )
        if self.step % self.config.log_every == 0:
            learning_rate = self.optimizer.param_groups[0]["lr"]
            record = {"event": "train", **stats.__dict__, "train_seconds": self.train_seconds, "lr": learning_rate}
            self._append_metrics(record)
        return stats

    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Train until the budget is used, checkpointing on the way; then save and evaluate."""
        last_print = 0.0
        while not self.is_done():
            stats = self.train_step()
            if self.step % self.config.checkpoint_every == 0:
                self.save_checkpoint()
            now = time.perf_counter()
            if progress and (now - last_print > 0.5 or self.is_done()):
                last_print = now
                _progress_bar(self, stats)
        if progress:
            sys.stderr.write("\n")
        self.save_checkpoint()
        return self.evaluate()

    # -- outputs ---------------------------------------------------------------------------------

    @torch.no_grad()
    def render(self, camera_to_world: np.ndarray, intrinsics: Intrinsics) -> RenderOutput:
        """Render a pinhole camera (world pose, Blender convention) in chunks of config.render_chunk_rays."""
        matrix = np.asarray(camera_to_world, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise ValueError(f"camera_to_world must be a finite 4x4 matrix, got shape {matrix.shape}")
        pose = torch.tensor(matrix, dtype=torch.float32, device=self.device)[None]
        cameras = Cameras.from_intrinsics(pose, [intrinsics])
        height, width = intrinsics.height, intrinsics.width
        rows, columns = torch.meshgrid(
            torch.arange(height, device=self.device), torch.arange(width, device=self.device), indexing="ij"
        )
        rows, columns = rows.reshape(-1), columns.reshape(-1)
        camera_index = torch.zeros_like(rows)
        background = self._evaluation_background()
        rgb, depth, opacity = [], [], []
        self.model.eval()
        for start in range(0, rows.numel(), self.config.render_chunk_rays):
            chunk = slice(start, start + self.config.render_chunk_rays)
            rays = pixel_rays(cameras, camera_index[chunk], columns[chunk], rows[chunk])
            with self._autocast():
                output = self.model.render_rays(self._unit_rays(rays), training=False, generator=None).main
            rgb.append(blend_background(output.rgb.float(), output.opacity.float(), background).clamp(0.0, 1.0))
            # unit-cube distance along a unit direction -> world distance -> depth along the viewing axis
            depth.append(output.depth.float() * self.normalization.size / rays.directions.norm(dim=-1))
            opacity.append(output.opacity.float().clamp(0.0, 1.0))
        return RenderOutput(
            rgb=torch.cat(rgb).view(height, width, 3).cpu().numpy().astype(np.float32),
            depth=torch.cat(depth).view(height, width).cpu().numpy().astype(np.float32),
            opacity=torch.cat(opacity).view(height, width).cpu().numpy().astype(np.float32),
        )

    def evaluate(self, frame_indices: list[int] | None = None) -> dict[str, Any]:
        """PSNR and SSIM of renders of held-out frames (or the given frame indices) against their images
        over the evaluation background. Returns {"step", "background", "views": [...], "psnr", "ssim"}."""
        dataset = self.dataset
        indices = dataset.holdout_indices if frame_indices is None else frame_indices
        background = self._evaluation_background()
        views = []
        for index in indices:
            if not 0 <= index < len(dataset.frames):
                raise ValueError(f"frame index {index} is outside the dataset's {len(dataset.frames)} frames")
            frame = dataset.frames[index]
            rendered = self.render(dataset.cameras.camera_to_world[index].cpu().numpy(), dataset.intrinsics[index])
            expected = dataset.composited(index, background).clamp(0.0, 1.0).cpu()
            prediction = torch.from_numpy(rendered.rgb)
            quality = {"psnr": psnr(prediction, expected), "ssim": ssim(prediction, expected)}
            views.append({"frame": index, "name": frame.name, **quality})
        result: dict[str, Any] = {
            "step": self.step,
            "train_seconds": self.train_seconds,
            "background": self._evaluation_background_name(),
            "color_space": self.color_space,
            "views": views,
            "psnr": float(np.mean([view["psnr"] for view in views])) if views else None,
            "ssim": float(np.mean([view["ssim"] for view in views])) if views else None,
        }
        self._append_metrics({"event": "eval", **result})
        return result

    @torch.no_grad()
    def query_density(self, points_world: np.ndarray) -> np.ndarray:
        """(n, 3) world points -> (n,) volume density per world unit; 0 outside the scene box's cube."""
        points = self._points_to_unit(points_world)
        inside = ((points >= 0.0) & (points <= 1.0)).all(dim=-1)
        densities = torch.zeros(points.shape[0], device=self.device)
        self.model.eval()
        for start in range(0, points.shape[0], self.config.render_chunk_rays * 16):
            chunk = slice(start, start + self.config.render_chunk_rays * 16)
            with self._autocast():
                densities[chunk] = self.model.density(points[chunk].clamp(0.0, 1.0)).float()
        # the model's density is per unit-cube length; a world unit is 1 / size of that
        return (torch.where(inside, densities, 0.0) / self.normalization.size).cpu().numpy()

    @torch.no_grad()
    def query_radiance(self, points_world: np.ndarray, view_dirs_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) world points and (n, 3) viewing directions (any length) -> (n,) density per world unit (0
        outside the scene box's cube) and (n, 3) colour 0..1, from one pass through the field."""
        points = self._points_to_unit(points_world)
        inside = ((points >= 0.0) & (points <= 1.0)).all(dim=-1)
        directions = torch.as_tensor(np.asarray(view_dirs_world, dtype=np.float32), device=self.device)
        if directions.shape != points.shape:
            raise ValueError(f"view_dirs_world must be (n, 3) like the points, got {tuple(directions.shape)}")
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        densities = torch.zeros(points.shape[0], device=self.device)
        colours = torch.zeros_like(points)
        self.model.eval()
        for start in range(0, points.shape[0], self.config.render_chunk_rays * 16):
            chunk = slice(start, start + self.config.render_chunk_rays * 16)
            with self._autocast():
                density, colour = self.model.radiance(points[chunk].clamp(0.0, 1.0), directions[chunk])
            densities[chunk], colours[chunk] = density.float().reshape(-1), colour.float()
        densities = torch.where(inside, densities, 0.0) / self.normalization.size
        return densities.cpu().numpy(), colours.cpu().numpy()

    # -- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt atomically; returns its path."""
        payload = {
            "step": self.step,
            "train_seconds": self.train_seconds,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }
        path = save_checkpoint(self.run_dir / CHECKPOINT_NAME, payload)
        log.info("checkpoint at step %d: %s", self.step, path)
        return path

    def _load(self, path: Path) -> None:
        payload = load_checkpoint(path, self.device)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.generator.set_state(payload["generator"].cpu())
        self.step = int(payload["step"])
        self.train_seconds = float(payload["train_seconds"])

    # -- helpers ---------------------------------------------------------------------------------

    def _unit_rays(self, rays: WorldRays) -> RayBundle:
        origins = self.normalization.to_unit(rays.origins)
        directions = rays.directions / rays.directions.norm(dim=-1, keepdim=True)
        t_near, t_far = ray_box_intersection(origins, directions)
        return RayBundle(origins=origins, directions=directions, t_near=t_near, t_far=t_far)

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

    def _append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / METRICS_NAME, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")


def _progress_bar(trainer: Trainer, stats: StepStats) -> None:
    config = trainer.config
    fraction = trainer.step / config.steps
    if config.minutes > 0:
        fraction = max(fraction, trainer.train_seconds / (config.minutes * 60.0))
    fraction = min(1.0, fraction)
    filled = int(30 * fraction)
    sys.stderr.write(
        f"\r{config.field} [{'#' * filled}{'.' * (30 - filled)}] step {trainer.step} "
        f"loss {stats.loss:.5f} psnr {stats.psnr:5.2f} dB  {stats.rays / max(stats.seconds, 1e-9):8.0f} rays/s "
        f"{trainer.train_seconds:6.0f} s"
    )
    sys.stderr.flush()


def _write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")
