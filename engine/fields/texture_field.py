"""A texture field (Oechsle et al. 2019) fitted to one scene: colour t(p) on the surface of a given mesh.

The mesh is fixed (an extracted mesh, or any PLY/OBJ in world units); every ray is cast against it
(engine/mesh/raycast.py) and the colour at the hit point, t(p) plus an optional small view-dependent
residual r(p, d), is supervised by the ray's pixel. Only t(p) is baked into a UV texture
(engine/mesh/extract.py): the residual takes what a texture cannot hold (highlights) and is kept small
by an L2 penalty so that it does not take what it can.

The mesh travels in the checkpoint (unit-cube vertices and faces as buffers), so a trained run renders and
bakes without the file it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import SceneNormalization
from ..encodings.hash_grid import HashGrid
from ..encodings.spherical_harmonics import SphericalHarmonics
from ..mesh.io import MeshFileError, read_mesh
from ..mesh.raycast import MeshRaycaster
from ..methods.texture_field import TextureFieldConfig
from ..render.volume import RenderedRays
from .base import (
    MethodContext,
    ModelOutput,
    ParameterGroup,
    RadianceModel,
    RayBatch,
    RayBundle,
    StepContext,
    StepResult,
    psnr_of_mse,
)

# The residual is at most this much colour either way: a highlight, not a second texture.
RESIDUAL_RANGE = 0.25
# What casting one ray against the mesh costs, in field samples (measured on a CPU: about 50 us a ray against
# 6 us a hash-grid sample): the sample budget that sizes batches (engine/data/ray_source.py) counts it.
RAYCAST_SAMPLES = 8


def resolve_mesh_path(setting: str) -> Path:
    """The mesh file a ``mesh`` setting names: the file itself, or the newest .ply/.obj of a run folder (in it
    or its ``meshes/``)."""
    if not setting:
        raise ValueError("texture_field needs a mesh: --set mesh=PATH (a .ply/.obj in world units, or a run folder)")
    path = Path(setting).expanduser()
    if path.is_dir():
        # a run folder keeps the add-on's extractions in meshes/, the CLI's beside its checkpoint
        folders = [path, path / "meshes"]
        candidates = [
            item
            for folder in folders
            if folder.is_dir()
            for item in folder.iterdir()
            if item.suffix.lower() in (".ply", ".obj") and item.is_file()
        ]
        if not candidates:
            raise ValueError(f"texture_field mesh {path}: the folder holds no .ply or .obj mesh (extract one first)")
        return max(candidates, key=lambda item: item.stat().st_mtime)
    if not path.is_file():
        raise ValueError(f"texture_field mesh {path}: no such file")
    if path.suffix.lower() not in (".ply", ".obj"):
        raise ValueError(f"texture_field mesh {path}: must be a .ply or .obj file")
    return path


class TextureField(nn.Module):
    """Hash grid -> MLP -> t(p) in 0..1 (sigmoid); optionally a residual r(p, d) from the same features."""

    def __init__(self, config: TextureFieldConfig, finest_resolution: int) -> None:
        super().__init__()
        self.encoding = HashGrid(
            n_levels=config.levels,
            features_per_level=config.features_per_level,
            log2_table_size=config.log2_table_size,
            base_resolution=config.base_resolution,
            finest_resolution=finest_resolution,
        )
        width = config.hidden_width
        self.trunk = nn.Sequential(
            nn.Linear(self.encoding.out_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.texture_head = nn.Linear(width, 3)
        self.residual_head: nn.Module | None = None
        if config.view_dependent:
            self.direction_encoding = SphericalHarmonics(config.direction_sh_degree)
            self.residual_head = nn.Sequential(
                nn.Linear(width + self.direction_encoding.out_dim, width // 2), nn.ReLU(), nn.Linear(width // 2, 3)
            )

    def forward(self, points: torch.Tensor, directions: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3) unit-cube points, (n, 3) unit directions or None -> texture (n, 3) in 0..1, residual (n, 3)
        (zeros without directions or a residual head)."""
        features = self.trunk(self.encoding(points))
        texture = torch.sigmoid(self.texture_head(features).float())
        if self.residual_head is None or directions is None:
            return texture, torch.zeros_like(texture)
        inputs = torch.cat([features, self.direction_encoding(directions).to(features.dtype)], dim=-1)
        return texture, RESIDUAL_RANGE * torch.tanh(self.residual_head(inputs).float())


class TextureFieldModel(RadianceModel):
    """A TextureField on a mesh; rays render the colour where they first hit it, background elsewhere."""

    def __init__(self, config: TextureFieldConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.has_alpha = context.has_alpha
        finest_resolution = config.finest_resolution or context.finest_resolution
        if finest_resolution < 1:
            raise ValueError(f"texture_field needs a finest_resolution >= 1, got {finest_resolution}")
        self.field = TextureField(config, finest_resolution)
        self.register_buffer("mesh_vertices", torch.zeros(0, 3))  # unit cube
        self.register_buffer("mesh_faces", torch.zeros(0, 3, dtype=torch.long))
        self._raycaster: MeshRaycaster | None = None
        self._mesh_problem = ""
        try:
            path = resolve_mesh_path(config.mesh)
            if context.scene_box is None:
                raise ValueError("texture_field needs the scene box to place its mesh in the unit cube")
            mesh = read_mesh(path)
            normalization = SceneNormalization.from_box(context.scene_box)
            vertices = normalization.to_unit(torch.as_tensor(mesh.vertices, dtype=torch.float32))
            self.mesh_vertices = vertices.to(context.device)
            self.mesh_faces = torch.as_tensor(mesh.faces, dtype=torch.long, device=context.device)
        except (ValueError, MeshFileError) as error:
            # A trained run carries its mesh in the checkpoint: the file may be gone by then. A new run
            # fails on its first step with this message.
            self._mesh_problem = str(error)

    # -- the mesh ---------------------------------------------------------------------------------

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # the checkpoint's mesh replaces whatever was read at construction, whatever its size
        for name in ("mesh_vertices", "mesh_faces"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        self._raycaster = None
        self._mesh_problem = ""
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def surface_mesh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mesh the field lives on: unit-cube vertices (n, 3) and faces (m, 3)."""
        if self.mesh_faces.shape[0] == 0:
            raise ValueError(self._mesh_problem or "texture_field has no mesh")
        return self.mesh_vertices, self.mesh_faces

    @property
    def raycaster(self) -> MeshRaycaster:
        if self._raycaster is None:
            vertices, faces = self.surface_mesh()
            self._raycaster = MeshRaycaster(vertices, faces, self.config.raycast_resolution)
        return self._raycaster

    def texture(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) unit-cube surface points -> (n, 3) the view-independent colour t(p), 0..1: what is baked."""
        return self.field(points, None)[0]

    # -- rendering --------------------------------------------------------------------------------

    def _shade(self, rays: RayBundle) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """hit (n,), t (n,) (0 where missed), texture (k, 3), residual (k, 3) at the k hits, their index (k,)."""
        with torch.no_grad():
            hits = self.raycaster.intersect(rays.origins, rays.directions)
        index = hits.hit.nonzero(as_tuple=True)[0]
        t = torch.where(hits.hit, hits.t, torch.zeros_like(hits.t))
        points = rays.origins[index] + rays.directions[index] * t[index, None]
        texture, residual = self.field(points.clamp(0.0, 1.0), rays.directions[index])
        return hits.hit, t, texture, residual, index

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> ModelOutput:
        hit, t, texture, residual, index = self._shade(rays)
        rgb = torch.zeros(rays.origins.shape[0], 3, device=rays.origins.device, dtype=texture.dtype)
        rgb = rgb.index_put((index,), (texture + residual).clamp(0.0, 1.0))
        opacity = hit.to(rgb.dtype)
        rendered = RenderedRays(rgb=rgb, depth=t, opacity=opacity, weights=opacity[:, None])
        return ModelOutput(main=rendered, samples=RAYCAST_SAMPLES * rays.origins.shape[0] + int(index.numel()))

    def training_step(self, batch: RayBatch, step: StepContext) -> StepResult:
        hit, _, texture, residual, index = self._shade(batch.rays)
        target = batch.target[index]
        # With masks, a hit on a background pixel is the mesh overhanging the object: not its colour.
        weights = (batch.alpha[index] > 0.5).float() if batch.has_alpha else torch.ones_like(target[:, 0])
        count = weights.sum().clamp(min=1.0)
        squared = ((texture + residual - target) ** 2).mean(dim=1)
        mse = (weights * squared).sum() / count
        residual_penalty = (weights * (residual**2).mean(dim=1)).sum() / count
        loss = mse + self.config.residual_weight * residual_penalty
        figures = {
            "psnr": psnr_of_mse(float(mse.detach())),
            "hit_share": float(hit.float().mean()),
            "residual": float(residual.detach().abs().mean()) if residual.numel() else 0.0,
        }
        samples = RAYCAST_SAMPLES * batch.rays.origins.shape[0] + int(index.numel())
        return StepResult(loss=loss, figures=figures, samples=samples)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        # a texture field has no volume; nothing is extracted from it by level (surface kind: none)
        return torch.zeros(points.shape[0], device=points.device)

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        texture, residual = self.field(points, directions)
        return self.density(points), (texture + residual).clamp(0.0, 1.0)

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]


def texture_colour_function(
    model: TextureFieldModel, normalization: SceneNormalization, colours_are_linear: bool, batch_points: int = 1 << 16
) -> Any:
    """The bake's colour callback (engine/mesh/bake.py) of a trained texture field: world points (n, 3) and
    normals (ignored: t(p) needs none) -> (n, 3) sRGB t(p) in 0..1."""
    from ..mesh.io import linear_to_srgb

    device = model.mesh_vertices.device

    @torch.no_grad()
    def colour(points_world: np.ndarray, _normals: np.ndarray) -> np.ndarray:
        model.eval()
        out = np.empty((len(points_world), 3), dtype=np.float32)
        for start in range(0, len(points_world), batch_points):
            chunk = torch.as_tensor(np.asarray(points_world[start : start + batch_points], dtype=np.float32))
            unit = normalization.to_unit(chunk.to(device)).clamp(0.0, 1.0)
            out[start : start + len(chunk)] = model.texture(unit).float().cpu().numpy()
        return linear_to_srgb(out).astype(np.float32) if colours_are_linear else np.clip(out, 0.0, 1.0)

    return colour
