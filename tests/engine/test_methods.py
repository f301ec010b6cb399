"""The method registry: listed, typed, extensible without touching the trainer, and every image method trains."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine import methods
from engine.fields.base import ModelOutput, ParameterGroup, RadianceModel, RayBundle
from engine.mesh.io import write_mesh
from engine.mesh.triangle_mesh import TriangleMesh
from engine.render.volume import RenderedRays
from engine.train.config import TrainConfig
from engine.train.trainer import Trainer
from tests.engine.sphere_dataset import icosphere, make_sphere_dataset

REPO = Path(__file__).resolve().parents[2]

# Tiny settings per image method, so the smoke test takes seconds on 2 CPU cores; a method missing here
# trains with its defaults, which must still work.
TINY_SETTINGS: dict[str, dict] = {
    "ngp": {"log2_table_size": 12, "levels": 4, "occupancy_resolution": 16},
    "nerf": {"hidden_width": 32, "coarse_samples": 8, "fine_samples": 8},
    "neus": {"log2_table_size": 12, "levels": 4, "occupancy_resolution": 16},
    "unisurf": {"log2_table_size": 12, "levels": 4, "root_steps": 16, "interval_samples": 8, "free_samples": 4},
    "dvr": {"log2_table_size": 12, "levels": 4, "hidden_width": 16, "marching_steps": 16, "secant_steps": 2},
    # "{dataset}" is the sphere dataset's folder, where the fixture writes the mesh the texture field lives on
    "texture_field": {"mesh": "{dataset}/sphere.ply", "log2_table_size": 12, "levels": 4, "hidden_width": 16},
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sphere_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_sphere_dataset(tmp_path_factory.mktemp("sphere"), n_views=8, size=8)
    write_mesh(TriangleMesh(*icosphere(2)), path.parent / "sphere.ply")
    return path


@dataclasses.dataclass
class ConstantConfig:
    grey: float = 0.5
    learning_rate: float = 1e-2


class ConstantModel(RadianceModel):
    """A one-parameter 'field': every ray renders the same learnt opaque grey."""

    def __init__(self, config: ConstantConfig, context: object) -> None:
        super().__init__()
        self.config = config
        self.logit = nn.Parameter(torch.tensor([config.grey]))

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> ModelOutput:
        n = rays.origins.shape[0]
        rgb = torch.sigmoid(self.logit).expand(n, 3)
        ones = torch.ones(n, device=rgb.device)
        return ModelOutput(main=RenderedRays(rgb=rgb, depth=ones, opacity=ones, weights=ones[:, None]), samples=n)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return torch.ones(points.shape[0])

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.density(points), torch.sigmoid(self.logit).expand(points.shape[0], 3)

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup([self.logit], self.config.learning_rate, self.config.learning_rate)]


@pytest.fixture
def constant_method() -> Iterator[methods.MethodSpec]:
    spec = methods.register(
        methods.MethodSpec(
            name="constant",
            label="Constant",
            description="a test method",
            family=methods.IMAGES,
            surface=methods.DENSITY,
            config=ConstantConfig,
            model="tests.engine.test_methods:ConstantModel",
            renders=True,
        )
    )
    yield spec
    methods.unregister("constant")


def test_a_method_registered_in_a_test_is_listed_trained_and_checkpointed(
    constant_method: methods.MethodSpec, sphere_dataset: Path, tmp_path: Path
) -> None:
    assert "constant" in methods.names(methods.IMAGES)
    config = TrainConfig(method="constant", steps=2, batch_rays=16, warmup_steps=0, settings={"grey": 0.1})
    trainer = Trainer.create(sphere_dataset, tmp_path / "run", config)
    before = trainer.model.logit.detach().clone()
    result = trainer.fit(progress=False)
    assert trainer.step == 2 and not torch.equal(before, trainer.model.logit)
    assert result["psnr"] is not None
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["method"] == "constant" and saved["config"]["settings"] == {"grey": 0.1, "learning_rate": 0.01}
    reloaded = Trainer.from_run(tmp_path / "run")
    assert reloaded.step == 2 and torch.equal(reloaded.model.logit, trainer.model.logit)


def test_unknown_methods_and_settings_are_named() -> None:
    with pytest.raises(ValueError, match="unknown method 'ngpp'; choose one of ngp, nerf, neus, unisurf"):
        methods.get("ngpp")
    with pytest.raises(ValueError, match="unknown ngp setting 'level'; known: levels,"):
        methods.get("ngp").make_config({"level": 4})
    with pytest.raises(ValueError, match="ngp setting 'occupancy_decay' must be a finite number, got inf"):
        methods.get("ngp").make_config({"occupancy_decay": float("inf")})
    with pytest.raises(ValueError, match="unknown setting 'levelz'"):
        methods.parse_setting(methods.get("ngp").config, "levelz=3")
    with pytest.raises(ValueError, match="setting 'levels' must be a int, got 'x'"):
        methods.parse_setting(methods.get("ngp").config, "levels=x")
    assert methods.parse_setting(methods.get("ngp").config, "occupancy_decay=0.9") == ("occupancy_decay", 0.9)


def test_a_config_of_engine_0_1_still_reads() -> None:
    old = {"field": "nerf", "steps": 5, "ngp": {"levels": 8}, "nerf": {"hidden_width": 64}}
    config = TrainConfig.from_dict(old)
    assert config.method == "nerf" and config.settings.hidden_width == 64


def test_methods_command_lists_the_registry_without_torch() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "engine", "methods", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    listed = {entry["name"]: entry for entry in json.loads(completed.stdout)}
    assert {"ngp", "nerf"} <= set(listed)
    assert listed["ngp"]["family"] == "images" and listed["ngp"]["surface"] == "density"
    assert {"name": "levels", "type": "int", "default": 16} in listed["ngp"]["config"]
    code = "import sys, engine.methods, engine.train.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60, check=False).returncode == 0


@pytest.mark.parametrize("name", methods.names(methods.IMAGES))
def test_every_image_method_trains_two_steps_and_renders(name: str, sphere_dataset: Path, tmp_path: Path) -> None:
    # nerfstudio's method smoke test: any registered image method, 2 steps on CPU, a finite loss and render
    settings = {
        key: value.format(dataset=sphere_dataset.parent) if isinstance(value, str) else value
        for key, value in TINY_SETTINGS.get(name, {}).items()
    }
    config = TrainConfig(method=name, steps=2, warmup_steps=0, compile="off", settings=settings, eval_views=1)
    trainer = Trainer.create(sphere_dataset, tmp_path / name, config)
    result = trainer.fit(progress=False)
    assert trainer.step == 2 and len(result["views"]) == 1
    assert all(0.0 <= view["ssim"] <= 1.0 for view in result["views"])
    assert (tmp_path / name / "checkpoint.pt").is_file()


@pytest.mark.parametrize("name", ["neus", "unisurf"])
def test_surface_methods_extract_a_closed_coloured_mesh_at_their_own_level(
    name: str, sphere_dataset: Path, tmp_path: Path
) -> None:
    from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer

    config = TrainConfig(method=name, steps=2, warmup_steps=0, compile="off", settings=TINY_SETTINGS[name])
    trainer = Trainer.create(sphere_dataset, tmp_path / name, config)
    while not trainer.is_done():
        trainer.train_step()
    result = extract_mesh_from_trainer(trainer, ExtractSettings(resolution=32))
    assert result.level.value == (0.0 if name == "neus" else 0.5)
    edges = np.concatenate([result.mesh.faces[:, [0, 1]], result.mesh.faces[:, [1, 2]], result.mesh.faces[:, [2, 0]]])
    _, uses = np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)
    assert set(uses.tolist()) == {2}  # watertight
    assert result.mesh.vertex_colors is not None and np.isfinite(result.mesh.vertex_colors).all()
