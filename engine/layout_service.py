"""Layouts in the live session: a trained generative run opened without training, sampling and rendering
layouts for the add-on (``open_run``, ``sample_layout``, ``render_layout`` in engine/protocol.py).

The model's own API (engine/layouts.py: ``sample_layout``, ``render_layout``) does the work; this wraps it for
the session: a clear refusal for runs whose method makes no layouts, any pinhole camera (the model renders
square images: a wider or taller view is rendered square around it and cropped), the per-object alphas packed
four to a frame, a proxy mesh per object marched from that object's own density, and the facts of the prior
the add-on warns with.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import layouts as layout_format
from . import methods

LOG = logging.getLogger("fieldwork.engine")
CONFIG_NAME = "config.json"
# A proxy's surface: the density at which a ray crossing a tenth of the object's box (its half-extent is 1 in
# object space, ``scale`` world units) reaches an opacity of 1 - 1/e. Density is per world unit.
PROXY_OPTICAL_DEPTH = 1.0
PROXY_CROSSING = 0.2  # in object-box units (the box is 2 wide)
ALPHAS_PER_FRAME = 4


class LayoutRunError(ValueError):
    """A run that cannot be opened for layouts; the message names the run (and its method)."""


def check_layout_run(run_dir: Path) -> str:
    """The method of ``run_dir`` when it makes layouts, else LayoutRunError naming the run and the method."""
    config = Path(run_dir) / CONFIG_NAME
    try:
        document = json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutRunError(f"{run_dir} is not a training run: it has no {CONFIG_NAME}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise LayoutRunError(f"{config}: not a readable run config ({error})") from None
    method = document.get("method") if isinstance(document, dict) else None
    if not isinstance(method, str) or method not in methods.names():
        raise LayoutRunError(f"{config}: names no known method (got {method!r})")
    if not methods.get(method).layouts:
        raise LayoutRunError(f"run {run_dir} trains {method}, which makes no layouts")
    if not (Path(run_dir) / "checkpoint.pt").is_file():
        raise LayoutRunError(f"run {run_dir} has no checkpoint.pt yet: train it first")
    return method


@dataclass
class Camera:
    """A pinhole view in Blender world space: camera_to_world (4, 4), intrinsics in pixels."""

    camera_to_world: np.ndarray
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass
class Rendered:
    """colour (h, w, 3) in [0, 1]; alphas (k, h, w) per object in layout order; depth (h, w); rows from the top."""

    colour: np.ndarray
    alphas: np.ndarray
    depth: np.ndarray


class LayoutService:
    """A trained run's generative model, opened for layouts."""

    def __init__(self, run_dir: Path, device: str = "auto") -> None:
        self.method = check_layout_run(run_dir)
        from .train.trainer import Trainer

        self.run_dir = Path(run_dir)
        self.trainer = Trainer.from_run(self.run_dir, device=device)
        self.model = self.trainer.model
        for name in ("sample_layout", "render_layout"):
            if not callable(getattr(self.model, name, None)):
                raise LayoutRunError(f"run {run_dir}: the {self.method} model has no {name}()")
        self.current: layout_format.Layout | None = None

    @property
    def step(self) -> int:
        return int(self.trainer.step)

    # -- facts -----------------------------------------------------------------------------------

    def facts(self) -> dict[str, Any]:
        """What the add-on needs to build and check layouts (RunOpened.facts)."""
        prior = self.model.prior
        settings = self.model.settings

        def span(value: Any) -> list[float]:
            return [float(value.low), float(value.high)]

        return {
            "method": self.method,
            "shape_code_size": int(settings.shape_code_size),
            "appearance_code_size": int(settings.appearance_code_size),
            "background_code_size": int(settings.background_code_size),
            "object_count": [int(prior.object_count[0]), int(prior.object_count[1])],
            "slots": int(getattr(self.model, "slots", prior.object_count[1])),
            "object_scale": span(prior.object_scale),
            "object_translation_x": span(prior.object_translation_x),
            "object_translation_y": span(prior.object_translation_y),
            "object_rotation_z_deg": span(prior.object_rotation_z_deg),
            "floor": {"height": float(prior.floor.height), "center": [float(v) for v in prior.floor.center]},
            "image_size": [int(self.model.generator.width), int(self.model.generator.height)],
        }

    # -- sampling --------------------------------------------------------------------------------

    def sample(self, seed: int, n_objects: int | None, proxy_resolution: int) -> tuple[dict, list[dict], bytes]:
        """(layout document, proxy descriptions, proxy payload); see protocol.LayoutReady."""
        layout = self.model.sample_layout(seed, n_objects)
        layout = layout_format.Layout.from_dict(
            {**layout.to_dict(), "extra": {**layout.extra, "run": str(self.run_dir), "step": self.step}}
        )
        self.current = layout
        proxies: list[dict] = []
        chunks: list[bytes] = []
        if proxy_resolution > 0 and layout.objects:
            colours = self.object_colours(layout)
            for index, obj in enumerate(layout.objects):
                vertices, faces, kind = self.proxy_mesh(obj, proxy_resolution)
                proxies.append(
                    {
                        "name": obj.name,
                        "kind": kind,
                        "vertices": len(vertices),
                        "faces": len(faces),
                        "colour": [float(v) for v in colours[index]],
                    }
                )
                chunks.append(vertices.astype("<f4").tobytes() + faces.astype("<i4").tobytes())
        return layout.to_dict(), proxies, b"".join(chunks)

    def object_colours(self, layout: layout_format.Layout) -> np.ndarray:
        """(k, 3) each object's mean rendered colour (alpha-weighted, from the layout's own camera; grey
        where an object is not seen)."""
        rendered = self.model.render_layout(layout)
        weights = rendered.alphas.reshape(len(layout.objects), -1)
        colour = rendered.colour.reshape(-1, 3)
        total = weights.sum(axis=1, keepdims=True)
        mean = (weights @ colour) / np.maximum(total, 1e-6)
        return np.where(total > 1e-3, mean, 0.5).astype(np.float32)

    def proxy_mesh(self, obj: layout_format.LayoutObject, resolution: int) -> tuple[np.ndarray, np.ndarray, str]:
        """A mesh of one object in its own box [-1, 1]^3: marched from its density at the proxy level
        (PROXY_OPTICAL_DEPTH over PROXY_CROSSING of the box), or the box itself when the density has no
        surface there (nothing, or everything, above the level)."""
        density = self.object_density(obj, resolution)
        level = PROXY_OPTICAL_DEPTH / (PROXY_CROSSING * obj.scale)
        above = density > level
        if above.any() and not above.all():
            import mcubes

            # Closed at the box's faces: pad with empty space, so the mesh has no holes where it meets the box.
            padded = np.pad(density - level, 1, constant_values=-1.0)
            vertices, faces = mcubes.marching_cubes(padded, 0.0)
            if len(faces):
                cell = 2.0 / resolution
                vertices = np.clip(-1.0 + (vertices - 1.0) * cell, -1.0, 1.0)
                return vertices.astype(np.float32), faces.astype(np.int32), "density"
        return box_mesh()[0], box_mesh()[1], "box"

    def object_density(self, obj: layout_format.LayoutObject, resolution: int) -> np.ndarray:
        """(r + 1)^3 densities (per world unit) of one object's field on the lattice of its box, axes x, y, z."""
        import torch

        field = self.model.generator_ema.objects
        device = self.model.device
        axis = torch.linspace(-1.0, 1.0, resolution + 1, device=device)
        points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)
        directions = torch.zeros_like(points)
        directions[..., 2] = -1.0
        n = points.shape[1]
        shape = torch.tensor(obj.shape_code, dtype=torch.float32, device=device).expand(1, n, -1)
        appearance = torch.tensor(obj.appearance_code, dtype=torch.float32, device=device).expand(1, n, -1)
        with torch.no_grad():
            density, _ = field(points, directions, shape, appearance)
        return density.reshape(resolution + 1, resolution + 1, resolution + 1).float().cpu().numpy()

    # -- rendering -------------------------------------------------------------------------------

    def render(self, layout: layout_format.Layout, camera: Camera) -> Rendered:
        """Render ``layout`` from any pinhole camera: a non-square view is rendered square (its longer side)
        around the same optical axis and cropped, so pixels keep the camera's focal lengths."""
        from .data.transforms import Intrinsics

        self.current = layout
        side = max(camera.width, camera.height)
        pad_x, pad_y = (side - camera.width) // 2, (side - camera.height) // 2
        intrinsics = Intrinsics(camera.fl_x, camera.fl_y, camera.cx + pad_x, camera.cy + pad_y, side, side)
        result = self.model.render_layout(layout, camera.camera_to_world, intrinsics)
        rows = slice(pad_y, pad_y + camera.height)
        columns = slice(pad_x, pad_x + camera.width)
        return Rendered(
            colour=np.ascontiguousarray(result.colour[rows, columns]),
            alphas=np.ascontiguousarray(result.alphas[:, rows, columns]),
            depth=np.ascontiguousarray(result.depth[rows, columns]),
        )


def box_mesh() -> tuple[np.ndarray, np.ndarray]:
    """The box [-1, 1]^3 as 8 vertices and 12 outward triangles."""
    vertices = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)], dtype=np.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))], dtype=np.int32)
    return vertices, faces


def alpha_pixels(alphas: np.ndarray, layer: int) -> bytes:
    """RGBA uint8 bytes, bottom row first, of objects ALPHAS_PER_FRAME * layer .. + 3 (zero channels past the
    last object). alphas (k, h, w) in [0, 1], rows from the top."""
    _, height, width = alphas.shape
    rgba = np.zeros((height, width, ALPHAS_PER_FRAME), dtype=np.float32)
    first = ALPHAS_PER_FRAME * layer
    chosen = alphas[first : first + ALPHAS_PER_FRAME]
    rgba[..., : len(chosen)] = np.moveaxis(chosen, 0, -1)
    pixels = (np.clip(np.nan_to_num(rgba), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return pixels[::-1].tobytes()


def alpha_layers(k: int) -> int:
    return math.ceil(k / ALPHAS_PER_FRAME)
