"""NeRF (Mildenhall et al. 2020) as in the seeds: positional encoding (L=10 positions, L=4 directions),
an 8x256 ReLU MLP with the input concatenated again after the fifth layer, density from position only,
colour from position features and viewing direction; a coarse network on stratified samples and a fine
network on those plus samples drawn from the coarse weights (hierarchical sampling), both supervised.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encodings.positional import PositionalEncoding
from ..methods.nerf import NerfConfig
from ..render.samplers import sample_pdf, samples_from_positions, stratified_samples
from ..render.volume import volume_render
from .base import MethodContext, ModelOutput, ParameterGroup, RadianceModel, RayBundle


class NerfMLP(nn.Module):
    """F_theta: (x, d) -> (sigma, c). Positions in the unit cube are mapped to [-1, 1] before encoding."""

    def __init__(self, config: NerfConfig) -> None:
        super().__init__()
        # The skip concatenates after layer skip_layer, so a later layer must take it.
        if config.hidden_layers < 2 or not 0 <= config.skip_layer < config.hidden_layers - 1:
            raise ValueError(
                f"need 0 <= skip_layer < hidden_layers - 1, got skip_layer {config.skip_layer}, "
                f"hidden_layers {config.hidden_layers}"
            )
        width = config.hidden_width
        self.skip_layer = config.skip_layer
        self.position_encoding = PositionalEncoding(3, config.position_frequencies)
        self.direction_encoding = PositionalEncoding(3, config.direction_frequencies)
        encoded = self.position_encoding.out_dim
        in_dims = [encoded] + [
            width + encoded if index == config.skip_layer + 1 else width for index in range(1, config.hidden_layers)
        ]
        self.trunk = nn.ModuleList(nn.Linear(in_dim, width) for in_dim in in_dims)
        self.density_head = nn.Linear(width, 1)
        self.feature_layer = nn.Linear(width, width)
        self.colour_layer = nn.Linear(width + self.direction_encoding.out_dim, width // 2)
        self.colour_head = nn.Linear(width // 2, 3)

    def _trunk(self, points: torch.Tensor) -> torch.Tensor:
        encoded = self.position_encoding(points * 2.0 - 1.0)
        hidden = encoded
        for index, layer in enumerate(self.trunk):
            hidden = torch.relu(layer(hidden))
            if index == self.skip_layer:
                hidden = torch.cat([hidden, encoded], dim=-1)
        return hidden

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """(n, 3) -> (n,)"""
        return torch.relu(self.density_head(self._trunk(points))).squeeze(-1)

    def forward(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3), (n, 3) -> densities (n,), colours (n, 3)."""
        hidden = self._trunk(points)
        densities = torch.relu(self.density_head(hidden)).squeeze(-1)
        colour_input = torch.cat([self.feature_layer(hidden), self.direction_encoding(directions)], dim=-1)
        colours = torch.sigmoid(self.colour_head(torch.relu(self.colour_layer(colour_input))))
        return densities, colours


class NerfModel(RadianceModel):
    """Coarse and fine NerfMLPs with hierarchical sampling."""

    def __init__(self, config: NerfConfig, context: MethodContext) -> None:
        super().__init__()
        if context.compile == "on":
            raise ValueError("compile=on is only supported for the ngp method")
        self.config = config
        self.coarse = NerfMLP(config)
        self.fine = NerfMLP(config)

    def render_rays(self, rays: RayBundle, training: bool, generator: torch.Generator | None) -> ModelOutput:
        coarse_samples = stratified_samples(
            rays.t_near, rays.t_far, self.config.coarse_samples, jitter=training, generator=generator
        )
        coarse = volume_render(self.coarse, rays.origins, rays.directions, coarse_samples.t, coarse_samples.deltas)
        assert coarse_samples.edges is not None
        fine_t = sample_pdf(
            coarse_samples.edges, coarse.weights, self.config.fine_samples, jitter=training, generator=generator
        )
        merged_t = torch.cat([coarse_samples.t, fine_t], dim=-1).sort(dim=-1).values
        fine_samples = samples_from_positions(merged_t, rays.t_near, rays.t_far)
        fine = volume_render(self.fine, rays.origins, rays.directions, fine_samples.t, fine_samples.deltas)
        n_rays = rays.origins.shape[0]
        samples = n_rays * (coarse_samples.t.shape[1] + fine_samples.t.shape[1])
        return ModelOutput(main=fine, auxiliary=[coarse], samples=samples)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.fine.density(points)

    def radiance(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fine(points, directions)

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup(list(self.parameters()), self.config.learning_rate, self.config.final_learning_rate)]
