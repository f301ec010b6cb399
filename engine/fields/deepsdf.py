"""DeepSDF (Park et al. 2019): an auto-decoder of signed distances over a shape collection.

Every training shape has a latent code (an ``nn.Embedding`` row) learnt jointly with the decoder f(z, x) ->
signed distance; no encoder. The loss is the clamped L1 |clamp(f, delta) - clamp(s, delta)| on SDF samples
plus a code regulariser (a zero-mean Gaussian prior on the codes). Inference on a new or partial shape
optimises a code alone with the decoder frozen (:func:`fit_code`): shape completion from whatever samples
the partial observation gives. All in the shape's normalised space [-1, 1]^3; distances in its units.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..data.shape_source import ShapeBatch, ShapeSource, ShapeTensors
from ..methods.deepsdf import DeepSdfConfig
from .base import ParameterGroup, StepContext, StepResult
from .shape_model import ShapeModel


def clamped_l1(predicted: torch.Tensor, sdf: torch.Tensor, delta: float) -> torch.Tensor:
    """Mean |clamp(predicted, -delta, delta) - clamp(sdf, -delta, delta)|: detail near the surface only."""
    return (predicted.clamp(-delta, delta) - sdf.clamp(-delta, delta)).abs().mean()


class SdfDecoder(nn.Module):
    """(n, latent) codes and (n, 3) points -> (n,) signed distance: weight-normalised ReLU layers, the input
    concatenated again at ``skip_layer``, tanh out (DeepSDF's decoder)."""

    def __init__(self, latent_size: int, width: int, layers: int, skip_layer: int, dropout: float) -> None:
        super().__init__()
        input_size = latent_size + 3
        self.skip_layer = skip_layer
        self.layers = nn.ModuleList()
        for index in range(layers):
            in_width = input_size if index == 0 else width
            if index == skip_layer:
                in_width = width + input_size
            self.layers.append(weight_norm(nn.Linear(in_width, width)))
        self.out = nn.Linear(width, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, codes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([codes, points], dim=-1)
        hidden = inputs
        for index, layer in enumerate(self.layers):
            if index == self.skip_layer:
                hidden = torch.cat([hidden, inputs], dim=-1)
            hidden = self.dropout(torch.relu(layer(hidden)))
        return torch.tanh(self.out(hidden)).squeeze(-1)


def fit_code(
    decoder: SdfDecoder,
    points: torch.Tensor,
    sdf: torch.Tensor,
    latent_size: int,
    *,
    steps: int = 400,
    learning_rate: float = 5e-3,
    regularization: float = 1e-4,
    delta: float = 0.1,
    batch_points: int = 8192,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """DeepSDF's inference: a code z (latent_size,) minimising clamped L1 + regularization * mean(z^2) over the
    (n, 3) points' (n,) SDF samples, the decoder frozen; Adam, its rate halved at 3/4 of the steps. Returns
    the code and the loss at every step (the first is that of the initial code, N(0, 0.01^2))."""
    device = points.device
    code = (torch.randn(latent_size, generator=generator, device=device) * 0.01).requires_grad_(True)
    optimizer = torch.optim.Adam([code], lr=learning_rate)
    was_training = decoder.training
    decoder.eval()
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    losses = []
    try:
        for step in range(steps):
            if step == (3 * steps) // 4:
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate / 2
            pick = torch.randint(
                0, points.shape[0], (min(batch_points, points.shape[0]),), generator=generator, device=device
            )
            predicted = decoder(code.expand(len(pick), -1), points[pick])
            loss = clamped_l1(predicted, sdf[pick], delta) + regularization * code.pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for parameter in decoder.parameters():
            parameter.requires_grad_(True)
        decoder.train(was_training)
    return code.detach(), losses


def completion_samples(
    shape: ShapeTensors, offset: float, count: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDF samples a partial observation gives: its surface points (0) and, where it has normals, points
    ``offset`` along and against them (+offset, -offset), as DeepSDF makes samples of a depth scan.
    Winding-number labels are not used: a partial mesh's inside is not known."""
    pick = torch.randint(0, shape.surface.shape[0], (count,), generator=generator, device=shape.surface.device)
    surface = shape.surface[pick]
    zeros = torch.zeros(count, device=surface.device)
    if shape.normals is None:
        return surface, zeros
    normals = shape.normals[pick]
    points = torch.cat([surface, surface + offset * normals, surface - offset * normals])
    return points, torch.cat([zeros, zeros + offset, zeros - offset])


class DeepSdfModel(ShapeModel):
    """Codes (one per shape of the run's dataset) and the decoder they share."""

    sdf_output = True

    def __init__(self, config: DeepSdfConfig, context: Any) -> None:
        super().__init__(context)
        self.config = config
        count = max(1, int(context.data.get("shape_count", len(self.shape_names) or 1)))
        self.codes = nn.Embedding(count, config.latent_size)
        nn.init.normal_(self.codes.weight, 0.0, config.code_init_std)
        self.decoder = SdfDecoder(
            config.latent_size, config.hidden_width, config.hidden_layers, config.skip_layer, config.dropout
        )

    def field(self, points: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        if code is None:
            code = self.codes.weight[0]
        return self.decoder(code.expand(points.shape[0], -1), points)

    def training_step(self, batch: ShapeBatch, step: StepContext) -> StepResult:
        if batch.points is None or batch.sdf is None:
            raise ValueError("deepsdf needs signed-distance samples: its shapes must be meshes")
        codes = self.codes(batch.shape_indices)  # (b, latent)
        b, k, _ = batch.points.shape
        predicted = self.decoder(codes[:, None].expand(b, k, -1).reshape(b * k, -1), batch.points.reshape(-1, 3))
        l1 = clamped_l1(predicted, batch.sdf.reshape(-1), self.config.clamp)
        code_norm = codes.pow(2).sum(-1).mean()
        # DeepSDF ramps the code prior in over its first epochs; here over the first tenth of the budget
        ramp = min(1.0, step.fraction * 10.0)
        loss = l1 + self.config.code_regularization * ramp * code_norm
        figures = {"clamped_l1": float(l1.detach()), "code_norm": float(code_norm.detach()) ** 0.5}
        return StepResult(loss=loss, figures=figures, samples=b * k)

    def optimizers(self) -> dict[str, Any]:
        from .base import OptimizerSpec

        groups = [
            ParameterGroup(list(self.decoder.parameters()), self.config.learning_rate, self.config.final_learning_rate),
            ParameterGroup([self.codes.weight], self.config.code_learning_rate, self.config.final_code_learning_rate),
        ]
        return {"main": OptimizerSpec(groups)}

    # -- codes ---------------------------------------------------------------------------------

    def trained_codes(self) -> torch.Tensor:
        rows = [index for index, name in enumerate(self.shape_names) if name not in self.holdout] or [0]
        return self.codes.weight[rows]

    def code_of_shape(self, index: int, source: ShapeSource | None) -> torch.Tensor | None:
        """A trained shape's code; a held-out one's fitted to its SDF samples (fit_code)."""
        name = self.shape_names[index] if index < len(self.shape_names) else ""
        if name not in self.holdout:
            return self.codes.weight[index].detach()
        assert source is not None
        shape = source.shapes[source.index_of(name)]
        assert shape.points is not None and shape.sdf is not None
        generator = torch.Generator(device=source.device)
        generator.manual_seed(index)
        with torch.enable_grad():
            code, _ = self._fit(shape.points, shape.sdf, generator)
        return code

    def complete(self, shape: ShapeTensors) -> torch.Tensor:
        """A code for a new, possibly partial, shape from its surface points (and normals)."""
        generator = torch.Generator(device=shape.surface.device)
        generator.manual_seed(0)
        points, sdf = completion_samples(shape, self.config.completion_offset, 8192, generator)
        with torch.enable_grad():
            code, _ = self._fit(points, sdf, generator)
        return code

    def _fit(
        self, points: torch.Tensor, sdf: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, list[float]]:
        config = self.config
        return fit_code(
            self.decoder,
            points,
            sdf,
            config.latent_size,
            steps=config.inference_steps,
            learning_rate=config.inference_learning_rate,
            regularization=config.inference_regularization,
            delta=config.clamp,
            batch_points=config.inference_batch,
            generator=generator,
        )

    def random_code(self, generator: torch.Generator) -> torch.Tensor:
        """A code from the Gaussian of the trained codes (per-dimension mean and spread)."""
        codes = self.trained_codes().detach()
        spread = codes.std(dim=0) if codes.shape[0] > 1 else torch.full_like(codes[0], self.config.code_init_std)
        noise = torch.randn(codes.shape[1], generator=generator, device=codes.device)
        return codes.mean(dim=0) + spread * noise
