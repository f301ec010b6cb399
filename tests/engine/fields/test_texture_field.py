"""The texture field: fits an analytic colour on a meshed sphere from analytic views, trains through the trainer,
and bakes from its own mesh, which its checkpoint carries."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.dataset import SceneNormalization, WorldRays
from engine.data.ray_source import unit_rays
from engine.data.transforms import SceneBox
from engine.fields.base import MethodContext, RayBatch, StepContext
from engine.fields.texture_field import TextureFieldModel
from engine.mesh.extract import ExtractSettings, extract_mesh_from_trainer
from engine.mesh.io import write_mesh
from engine.mesh.triangle_mesh import TriangleMesh
from engine.methods.texture_field import TextureFieldConfig
from engine.train.config import TrainConfig
from engine.train.trainer import Trainer
from tests.engine.sphere_dataset import (
    CAMERA_DISTANCE,
    SPHERE_RADIUS,
    icosphere,
    look_at,
    make_sphere_dataset,
    sphere_colour,
)

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[3]

BOX = SceneBox(minimum=(-0.6, -0.6, -0.6), maximum=(0.6, 0.6, 0.6))


def write_sphere_mesh(path: Path, subdivisions: int = 3) -> Path:
    vertices, faces = icosphere(subdivisions)
    return write_mesh(TriangleMesh(vertices, faces), path, overwrite=True)


def analytic_views(n_views: int = 6, size: int = 24) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """World rays of n_views cameras around the sphere and their pixels: origins, directions (n, 3), colour (n, 3)
    of the analytic sphere where they hit it (0 elsewhere), alpha (n,)."""
    focal = 0.5 * size / math.tan(math.radians(40.0) / 2)
    columns, rows = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    camera_directions = np.stack([(columns - size / 2) / focal, -(rows - size / 2) / focal, -np.ones_like(rows)], -1)
    origins, directions = [], []
    for index in range(n_views):
        angle = 2 * math.pi * index / n_views
        position = CAMERA_DISTANCE * np.array([math.cos(angle), math.sin(angle), 0.4 * (-1) ** index])
        camera_to_world = look_at(position, np.zeros(3))
        world = camera_directions.reshape(-1, 3) @ camera_to_world[:3, :3].T
        directions.append(world / np.linalg.norm(world, axis=1, keepdims=True))
        origins.append(np.broadcast_to(position, world.shape))
    origin, direction = np.concatenate(origins), np.concatenate(directions)
    half_b = (origin * direction).sum(1)
    discriminant = half_b**2 - ((origin * origin).sum(1) - SPHERE_RADIUS**2)
    hit = discriminant > 0
    points = origin + direction * (-half_b - np.sqrt(np.maximum(discriminant, 0)))[:, None]
    colour = np.where(hit[:, None], sphere_colour(points), 0.0)
    as_tensor = lambda array: torch.tensor(np.ascontiguousarray(array), dtype=torch.float32)  # noqa: E731
    return as_tensor(origin), as_tensor(direction), as_tensor(colour), as_tensor(hit.astype(np.float32))


def test_the_texture_field_reproduces_an_analytic_colour_on_a_meshed_sphere(tmp_path: Path) -> None:
    mesh_path = write_sphere_mesh(tmp_path / "sphere.ply")
    config = TextureFieldConfig(mesh=str(mesh_path), levels=8, log2_table_size=14, view_dependent=False)
    model = TextureFieldModel(config, MethodContext(device=torch.device("cpu"), finest_resolution=64, scene_box=BOX))
    normalization = SceneNormalization.from_box(BOX)
    origins, directions, colour, alpha = analytic_views()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    foreground = alpha.nonzero(as_tuple=True)[0]
    for step in range(100):
        # mostly rays that meet the sphere, a few that do not
        pick = torch.cat(
            [
                foreground[torch.randint(0, len(foreground), (448,), generator=generator)],
                torch.randint(0, len(origins), (64,), generator=generator),
            ]
        )
        rays = unit_rays(WorldRays(origins[pick], directions[pick]), normalization)
        batch = RayBatch(rays, colour[pick], torch.zeros(512, 3), alpha[pick], has_alpha=True)
        result = model.training_step(batch, StepContext(step, step / 100, generator))
        optimiser.zero_grad()
        assert result.loss is not None
        result.loss.backward()
        optimiser.step()
    # the foreground rays meet the mesh (inscribed in the sphere, it misses a few at the silhouette)
    assert 0.8 < result.figures["hit_share"] < 0.95
    # t(p) at the mesh's own vertices is the analytic colour of the sphere point above them
    vertices, _ = icosphere(3)
    with torch.no_grad():
        texture = model.texture(normalization.to_unit(torch.tensor(vertices, dtype=torch.float32))).numpy()
    on_sphere = vertices * SPHERE_RADIUS / np.linalg.norm(vertices, axis=1, keepdims=True)
    seen = np.abs(vertices[:, 2]) < 0.3  # the cameras circle the equator; the poles are barely seen
    error = np.abs(texture - sphere_colour(on_sphere))[seen]
    assert float(error.mean()) < 0.02 and float(np.percentile(error, 95)) < 0.06


def test_a_trained_run_bakes_from_its_own_mesh_without_the_file(tmp_path: Path) -> None:
    dataset = make_sphere_dataset(tmp_path / "data", n_views=8, size=8)
    mesh_path = write_sphere_mesh(tmp_path / "given.ply", subdivisions=2)
    settings = {"mesh": str(mesh_path), "levels": 4, "log2_table_size": 12}
    config = TrainConfig(
        method="texture_field", steps=2, warmup_steps=0, compile="off", settings=settings, eval_views=1
    )
    trainer = Trainer.create(dataset, tmp_path / "run", config)
    result = trainer.fit(progress=False)
    assert trainer.step == 2 and result["psnr"] is not None
    mesh_path.unlink()
    # the CLI bakes it as the add-on's Extract does: a real engine process
    command = [sys.executable, "-m", "engine", "extract", str(tmp_path / "run"), "--texture", "256"]
    completed = subprocess.run(
        [*command, "--out", str(tmp_path / "textured.obj"), "--json", "--device", "cpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["texture_size"] == 256 and summary["level"] == "the given mesh"
    assert all((tmp_path / name).is_file() for name in ("textured.obj", "textured.mtl", "textured.png"))
    reloaded = Trainer.from_run(tmp_path / "run", device="cpu")
    baked = extract_mesh_from_trainer(reloaded, ExtractSettings(texture_size=256))
    assert baked.texture is not None and baked.mesh.uvs is not None and baked.level is None
    # the world-space mesh is the given one: an icosphere of the sphere's radius
    radii = np.linalg.norm(baked.mesh.vertices, axis=1)
    assert np.allclose(radii, SPHERE_RADIUS, atol=1e-5)
    coloured = extract_mesh_from_trainer(reloaded, ExtractSettings())
    assert coloured.mesh.vertex_colors is not None and coloured.mesh.n_faces == 320
    # a new run whose mesh is missing says so
    missing = TrainConfig(method="texture_field", steps=1, warmup_steps=0, settings={"mesh": str(mesh_path)})
    with pytest.raises(ValueError, match="given.ply: no such file"):
        Trainer.create(dataset, tmp_path / "run2", missing).fit(progress=False)
