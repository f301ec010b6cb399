"""The training loop every method shares: the budget, learning-rate schedules, checkpoints and metrics.
What a trained run answers (renders, evaluations, queries) is engine/train/inference.py's, mixed in.

A run folder holds ``config.json`` (the TrainConfig with the method's settings, the dataset, the scene box,
the derived field sizes and the data family's facts), ``checkpoint.pt`` (model, every optimiser, random
state, step), ``metrics.jsonl`` (one JSON object per logged step or evaluation) and ``engine.log``; what a
run folder is and may be used for is engine/train/run_folder.py's. Everything that leaves the trainer is
in world units.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from .. import __version__
from ..atomic import write_text_atomic
from ..data.dataset import (
    RadianceDataset,
    SceneNormalization,
    load_dataset,
    split_indices,
)
from ..data.ray_source import RaySource
from ..data.transforms import Frame, SceneBox, read_transforms
from ..device import pick_device
from ..fields.base import Method, MethodContext, OptimizerSpec, RayBatch, StepContext
from ..methods import IMAGES
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .inference import RunInference
from .preview_file import PreviewFile

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
# What a resumed run takes from the new command; every other setting is the run's own.
RESUME_OVERRIDES = (
    "steps",
    "minutes",
    "device",
    "eval_views",
    "checkpoint_every",
    "checkpoint_minutes",
    "allow_outside_paths",
)
METRICS_NAME = "metrics.jsonl"
LOG_NAME = "engine.log"


@dataclass
class StepStats:
    """One training step: loss (what the optimiser minimised), the method's named figures (psnr...,
    rays_per_second for image methods), the rays and field samples it evaluated, wall seconds."""

    step: int
    loss: float
    figures: dict[str, float]
    rays: int
    samples: int
    seconds: float


@dataclass
class RunInfo:
    """What config.json holds besides the TrainConfig: enough to rebuild the model without the dataset."""

    dataset: str
    scene_box: SceneBox
    finest_resolution: int
    color_space: str
    data: dict[str, Any] = field(default_factory=dict)  # facts of the data family (MethodContext.data)
    # Which rule of engine.data.bounds chose scene_box, and why; configs written before it say "unrecorded".
    scene_box_rule: str = "unrecorded"
    scene_box_reason: str = ""

    def to_dict(self, config: TrainConfig) -> dict[str, Any]:
        return {
            "engine_version": __version__,
            "method": config.method,
            "family": config.spec.family,
            "dataset": self.dataset,
            "scene_box": {"min": list(self.scene_box.minimum), "max": list(self.scene_box.maximum)},
            "scene_box_rule": self.scene_box_rule,
            "scene_box_reason": self.scene_box_reason,
            "finest_resolution": self.finest_resolution,
            "color_space": self.color_space,
            "data": self.data,
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
                data=dict(document.get("data", {})),
                scene_box_rule=str(document.get("scene_box_rule", "unrecorded")),
                scene_box_reason=str(document.get("scene_box_reason", "")),
            )
            return info, TrainConfig.from_dict(document["config"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a readable run config: {error}") from error


class DataSource(Protocol):
    """Where a method's batches come from (RaySource for images)."""

    def next_batch(self, generator: torch.Generator | None) -> Any: ...

    def record(self, samples_used: int) -> None: ...  # after a step: adapt the next batch


@dataclass
class FamilyData:
    """A data family's training data, opened from a path: its batches, the world box the method's unit cube
    maps to, and facts the method is built from (MethodContext.data; saved in config.json)."""

    source: DataSource
    scene_box: SceneBox
    facts: dict[str, Any] = field(default_factory=dict)


# Openers of the families other than posed images: "module:function" (relative to the engine package) of
# opener(path, config, device) -> FamilyData. Images are opened by the trainer itself (RaySource).
FAMILY_OPENERS: dict[str, str] = {
    "shapes": ".data.shape_source:open_shapes",
    "collections": ".data.collection_source:open_collection",
    "textured_shapes": ".data.textured_source:open_textured_shapes",
}


def open_family_data(family: str, path: Path, config: TrainConfig, device: torch.device) -> FamilyData:
    if family not in FAMILY_OPENERS:
        raise ValueError(f"no data source for the {family} family yet")
    module_name, _, function_name = FAMILY_OPENERS[family].partition(":")
    module = importlib.import_module(module_name, package=__package__.rpartition(".")[0])
    return getattr(module, function_name)(path, config, device)


def build_model(config: TrainConfig, context: MethodContext) -> Method:
    """The model of config.method, from the registry."""
    if context.compiles():
        # "auto" must never stop a run: where compilation fails (no C++ compiler, say) run eagerly
        torch._dynamo.config.suppress_errors = config.compile == "auto"
    model_class = config.spec.load_model_class()
    return model_class(config.settings, context).to(context.device)


def check_same_method(run_dir: Path, saved: TrainConfig, asked: TrainConfig) -> None:
    """A run folder resumes only the method it holds: another method's checkpoint would be trained on (or fail
    to load) under the asked method's name."""
    if saved.method != asked.method:
        raise ValueError(
            f"{run_dir} holds a {saved.method} run; it cannot resume as {asked.method} "
            f"(pass --method {saved.method} to go on training it, or a new run folder)"
        )


class Trainer(RunInference):
    """Owns a method's model, its optimisers and (when training) its data. Build with create() or from_run()."""

    def __init__(
        self,
        config: TrainConfig,
        info: RunInfo,
        run_dir: Path,
        device: torch.device,
        dataset: RadianceDataset | None,
        has_alpha: bool = False,
        source: DataSource | None = None,
    ) -> None:
        self.config = config
        self.spec = config.spec
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
        context = MethodContext(
            device=device,
            finest_resolution=info.finest_resolution,
            has_alpha=dataset.has_alpha if dataset is not None else has_alpha,
            compile=config.compile,
            data=info.data,
            scene_box=info.scene_box,
        )
        self.model = build_model(config, context)
        self.optimizers = {name: _make_optimizer(spec, device) for name, spec in self.model.optimizers().items()}
        self._schedules = {name: spec for name, spec in self.model.optimizers().items()}
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        self._source: DataSource | None = source

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def create(cls, dataset: Path, out_dir: Path, config: TrainConfig, scene_box: SceneBox | None = None) -> Trainer:
        """Start a run in out_dir, or resume it when out_dir holds a checkpoint (the saved method settings
        win; steps, minutes, device and evaluation come from config, so a run can be extended). ``scene_box``
        overrides the dataset's box (a resumed run keeps its own and refuses a different one)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        device = pick_device(config.device)
        if config.spec.family != IMAGES:
            return cls._create_from_family(Path(dataset), out_dir, config, device)
        checkpoint_path = out_dir / CHECKPOINT_NAME
        if checkpoint_path.is_file() and (out_dir / CONFIG_NAME).is_file():
            info, saved = RunInfo.read(out_dir / CONFIG_NAME)
            check_same_method(out_dir, saved, config)
            for name in RESUME_OVERRIDES:
                setattr(saved, name, getattr(config, name))
            info.dataset = str(Path(dataset).resolve())  # the run folder's rules allowed it: name what trains now
            if scene_box is not None and scene_box != info.scene_box:
                raise ValueError(
                    f"{out_dir}: the run was trained in the scene box "
                    f"{info.scene_box.minimum}..{info.scene_box.maximum}; "
                    f"it cannot resume in {scene_box.minimum}..{scene_box.maximum} (start a new run folder)"
                )
            data = load_dataset(
                Path(dataset), saved.downscale, scene_box=info.scene_box, allow_outside_paths=saved.allow_outside_paths
            ).to(device)
            trainer = cls(saved, info, out_dir, device, data)
            trainer._load(checkpoint_path)
            log.info("resumed %s at step %d from %s", saved.method, trainer.step, checkpoint_path)
        else:
            data = load_dataset(
                Path(dataset), config.downscale, scene_box=scene_box, allow_outside_paths=config.allow_outside_paths
            ).to(device)
            finest = getattr(config.settings, "finest_resolution", 0) or data.suggested_finest_resolution()
            info = RunInfo(
                str(Path(dataset).resolve()),
                data.scene_box,
                finest,
                data.color_space,
                scene_box_rule=data.scene_box_rule,
                scene_box_reason=data.scene_box_reason,
            )
            trainer = cls(config, info, out_dir, device, data)
            log.info(
                "new %s run: %d training and %d held-out frames of %dx%d, %s colour, scene box %s..%s, device %s",
                config.method,
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
    def _create_from_family(cls, path: Path, out_dir: Path, config: TrainConfig, device: torch.device) -> Trainer:
        checkpoint_path = out_dir / CHECKPOINT_NAME
        resuming = checkpoint_path.is_file() and (out_dir / CONFIG_NAME).is_file()
        if resuming:
            info, saved = RunInfo.read(out_dir / CONFIG_NAME)
            check_same_method(out_dir, saved, config)
            for name in RESUME_OVERRIDES:
                setattr(saved, name, getattr(config, name))
            info.dataset = str(path.resolve())
            config = saved
        data = open_family_data(config.spec.family, path, config, device)
        if not resuming:
            info = RunInfo(str(path.resolve()), data.scene_box, 0, "", data.facts)
        trainer = cls(config, info, out_dir, device, dataset=None, source=data.source)
        if resuming:
            trainer._load(checkpoint_path)
            log.info("resumed %s at step %d from %s", config.method, trainer.step, checkpoint_path)
        else:
            log.info("new %s run on %s (%s), device %s", config.method, path, config.spec.family, device)
        _write_json_atomic(out_dir / CONFIG_NAME, trainer.info.to_dict(trainer.config))
        return trainer

    @classmethod
    def from_run(cls, run_dir: Path, device: str = "auto") -> Trainer:
        """A trained run, for render, extract and eval. The dataset is read only when evaluate() needs it."""
        run_dir = Path(run_dir)
        info, config = RunInfo.read(run_dir / CONFIG_NAME)
        config.device = device
        has_alpha = config.spec.family == IMAGES and _dataset_has_alpha(Path(info.dataset))
        trainer = cls(config, info, run_dir, pick_device(device), dataset=None, has_alpha=has_alpha)
        trainer._load(run_dir / CHECKPOINT_NAME)
        return trainer

    @property
    def dataset(self) -> RadianceDataset:
        if self._dataset is None:
            # The run's own box: no rule to rerun, and the same box even if the dataset gained one since.
            self._dataset = load_dataset(
                Path(self.info.dataset),
                self.config.downscale,
                scene_box=self.info.scene_box,
                allow_outside_paths=self.config.allow_outside_paths,
            ).to(self.device)
        return self._dataset

    @property
    def source(self) -> DataSource:
        if self._source is None and self.spec.family != IMAGES:
            self._source = open_family_data(self.spec.family, Path(self.info.dataset), self.config, self.device).source
        if self._source is None:
            self._source = RaySource(
                self.dataset, self.config.background, self.config.batch_rays, self.config.samples_per_step, self.device
            )
        return self._source

    def training_frames(self) -> list[Frame]:
        """The cameras the field was trained from, read from the dataset's transforms without its images."""
        if self._dataset is not None:
            return [self._dataset.frames[index] for index in self._dataset.train_indices]
        path = Path(self.info.dataset)
        frames = read_transforms(path, self.config.allow_outside_paths).frames
        train, _ = split_indices(frames, path)
        return [frames[index] for index in train]

    # -- training --------------------------------------------------------------------------------

    def is_done(self) -> bool:
        """The step budget, or the time budget (minutes > 0) of training time, is used up."""
        if self.step >= self.config.steps:
            return True
        return self.config.minutes > 0 and self.train_seconds >= self.config.minutes * 60.0

    def budget_fraction(self) -> float:
        """How much of the budget is used, 0..1: steps or minutes, whichever is further along."""
        fraction = self.step / self.config.steps
        if self.config.minutes > 0:
            fraction = max(fraction, self.train_seconds / (self.config.minutes * 60.0))
        return min(1.0, fraction)

    def learning_rate(self, base: float, final: float, warmup: bool = True) -> float:
        """Linear warm-up to base, then exponential decay from base to final at the end of the budget
        (steps or minutes, whichever is further along)."""
        warmup_steps = self.config.warmup_steps if warmup else 0
        if self.step < warmup_steps:
            return base * (self.step + 1) / warmup_steps
        progress = (self.step - warmup_steps) / max(1, self.config.steps - warmup_steps)
        if self.config.minutes > 0:
            progress = max(progress, self.train_seconds / (self.config.minutes * 60.0))
        return base * (final / base) ** min(1.0, progress)

    def train_step(self) -> StepStats:
        """One step: the method's housekeeping, a batch from the data source, the method's losses, the
        optimiser step(s)."""
        started = time.perf_counter()
        self.model.train()
        step = StepContext(
            step=self.step, fraction=self.budget_fraction(), generator=self.generator, optimize=self._optimize
        )
        self.model.before_step(step)
        for name, optimizer in self.optimizers.items():
            spec = self._schedules[name]
            for group, schedule in zip(optimizer.param_groups, spec.groups, strict=True):
                group["lr"] = self.learning_rate(schedule.learning_rate, schedule.final_learning_rate, spec.warmup)

        source = self.source
        batch = source.next_batch(self.generator)
        with self._autocast():
            result = self.model.training_step(batch, step)
        if result.loss is not None:
            if self.model.manual_optimization:
                raise RuntimeError(f"{self.config.method} optimises itself but returned a loss for the trainer")
            (only,) = self.optimizers  # a method with several optimisers steps them itself
            self._optimize(only, result.loss)
        source.record(result.samples)

        self.step += 1
        seconds = time.perf_counter() - started
        self.train_seconds += seconds
        self.model.after_step(self)
        figures = {name: float(value) for name, value in result.figures.items()}
        n_rays = batch.target.shape[0] if isinstance(batch, RayBatch) else 0
        if n_rays:
            figures["rays_per_second"] = n_rays / max(seconds, 1e-9)
        loss = float(result.loss.detach()) if result.loss is not None else float(figures.get("loss", 0.0))
        stats = StepStats(
            step=self.step, loss=loss, figures=figures, rays=n_rays, samples=result.samples, seconds=seconds
        )
        if self.step % self.config.log_every == 0:
            learning_rate = next(iter(self.optimizers.values())).param_groups[0]["lr"]
            record = {
                "event": "train",
                "step": self.step,
                "loss": loss,
                **figures,
                "rays": n_rays,
                "samples": result.samples,
                "seconds": seconds,
                "train_seconds": self.train_seconds,
                "lr": learning_rate,
            }
            self._append_metrics(record)
        return stats

    def _optimize(self, name: str, loss: torch.Tensor) -> None:
        if name not in self.optimizers:
            raise KeyError(f"{self.config.method} has no optimiser {name!r}; it has {', '.join(self.optimizers)}")
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def checkpoint_due(self, last_checkpoint_seconds: float) -> bool:
        """Every checkpoint_every steps, and after checkpoint_minutes of training since the last one."""
        if self.step % self.config.checkpoint_every == 0:
            return True
        interval = self.config.checkpoint_minutes * 60.0
        return interval > 0 and self.train_seconds - last_checkpoint_seconds >= interval

    def fit(self, progress: bool = True, stop: Any = None, preview: PreviewFile | None = None) -> dict[str, Any]:
        """Train until the budget is used or ``stop.requested`` (a run_folder.StopSignals: Ctrl-C, SIGTERM),
        checkpointing by steps and training time on the way, writing ``preview``'s picture when it is due;
        then save, and evaluate unless stopped."""
        last_print = 0.0
        last_checkpoint = self.train_seconds
        while not self.is_done() and not (stop is not None and stop.requested):
            stats = self.train_step()
            if self.checkpoint_due(last_checkpoint):
                self.save_checkpoint()
                last_checkpoint = self.train_seconds
            if preview is not None:
                preview.maybe_write(self)
            now = time.perf_counter()
            if progress and (now - last_print > 0.5 or self.is_done()):
                last_print = now
                _progress_bar(self, stats)
        if progress:
            sys.stderr.write("\n")
        self.save_checkpoint()
        if preview is not None:
            preview.maybe_write(self, final=True)
        if stop is not None and stop.requested:
            log.info("%s at step %d: checkpoint saved, stopping", stop.signal_name, self.step)
            return {"stopped": stop.signal_name, "step": self.step, "train_seconds": self.train_seconds}
        return self.evaluate_run(progress)

    # -- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt atomically; returns its path."""
        payload = {
            "method": self.config.method,
            "step": self.step,
            "train_seconds": self.train_seconds,
            "model": self.model.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "generator": self.generator.get_state(),
        }
        path = save_checkpoint(self.run_dir / CHECKPOINT_NAME, payload)
        log.info("checkpoint at step %d: %s", self.step, path)
        return path

    def _load(self, path: Path) -> None:
        payload = load_checkpoint(path, self.device)
        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError as error:
            raise ValueError(
                f"{path}: the checkpoint does not fit the {self.config.method} model of {self.run_dir / CONFIG_NAME} "
                f"(were its settings changed?): {error}"
            ) from error
        states = payload["optimizers"]
        for name, optimizer in self.optimizers.items():
            if name in states:
                optimizer.load_state_dict(states[name])
        self.generator.set_state(payload["generator"].cpu())
        self.step = int(payload["step"])
        self.train_seconds = float(payload["train_seconds"])

    # -- helpers ---------------------------------------------------------------------------------

    def _append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / METRICS_NAME, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")


def _make_optimizer(spec: OptimizerSpec, device: torch.device) -> torch.optim.Optimizer:
    groups = [{"params": group.parameters, "lr": group.learning_rate} for group in spec.groups]
    if spec.kind == "adam":
        options: dict[str, Any] = {"betas": (0.9, 0.99), "eps": 1e-15}
        if device.type == "cuda":
            options["fused"] = True
        return torch.optim.Adam(groups, **{**options, **spec.options})
    if spec.kind == "rmsprop":
        return torch.optim.RMSprop(groups, **spec.options)
    raise ValueError(f"unknown optimiser kind {spec.kind!r}; adam or rmsprop")


def _dataset_has_alpha(path: Path) -> bool:
    try:
        return read_transforms(path).has_alpha
    except (OSError, ValueError):
        return False


def _progress_bar(trainer: Trainer, stats: StepStats) -> None:
    filled = int(30 * trainer.budget_fraction())
    figures = {figure.name: figure for figure in trainer.spec.all_figures}
    shown = "  ".join(
        figures[name].text(value) for name, value in stats.figures.items() if name in figures and name != "loss"
    )
    sys.stderr.write(
        f"\r{trainer.config.method} [{'#' * filled}{'.' * (30 - filled)}] step {trainer.step} "
        f"loss {stats.loss:.5f}  {shown}  {trainer.train_seconds:6.0f} s"
    )
    sys.stderr.flush()


def _write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
