"""Evaluate generative scene runs (giraffe, graf) on their collection: controllability, disentanglement, realism.

    python scripts/eval_generative.py --collection clevr32 --runs RUN_A RUN_B ... [--samples 200] [--json OUT]

Nothing is downloaded (no Inception, no pretrained weights). Printed per run (with its method, steps and
training minutes):

(a) controllability (layout methods): one object of a 1-object layout is translated by ``--distance`` world
    units along +X and +Y of the world; the shift of its alpha-mask centroid (at the collection's size) is
    compared with the shift of the projection of its centre: the error in pixels (target <= 1 px at 32^2).
    Rotation: the object is carried by ``--degrees`` around the floor centre (GIRAFFE's circular
    translation), same error; and turned about its own axis, where its centroid should stay (drift in px).
    Layouts whose mask touches the image border, or has under 2 px of alpha, are skipped.
(b) disentanglement (layout methods): in 2-object layouts, a new appearance code for one object; the share
    of the absolute colour change that falls inside its mask (alpha > 0.5, grown by one pixel for the neural
    renderer's 3x3 convolutions; target >= 0.8). New background codes: the share of the change inside the
    objects' masks (0 is ideal; compare with the masks' share of the image, printed beside it).
(c) realism: an oracle CNN trained here on the real images' true parameters (params/*.json: object count,
    which of the 8 colours appear, which cells of a 3x3 floor grid hold an object) scores held-out real
    images and generated ones. For layout methods the generated images' count and floor cells are known
    (the sampled poses), so the oracle's accuracy on them is measured: the target is a count accuracy of at
    least 70% of the real images'. GRAF's images have no known count: the oracle's predicted count
    distribution against the real one (total variation) stands in. Fréchet distance between oracle
    features of generated and held-out real images, and of training against held-out real images (the
    floor a perfect generator reaches with this many samples).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine import layouts  # noqa: E402
from engine.data.collection import load_collection  # noqa: E402
from engine.data.collection_source import split  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

COLOURS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
GRID = 3


# ---------------------------------------------------------------------------- the oracle


class Oracle(nn.Module):
    """A small CNN: (n, 3, s, s) in [0, 1] -> features (n, 128) and heads: count logits, colour and floor-cell
    multi-hot logits."""

    def __init__(self, max_count: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(512, 128), nn.ReLU(),
        )  # fmt: skip
        self.count = nn.Linear(128, max_count)
        self.colours = nn.Linear(128, len(COLOURS))
        self.cells = nn.Linear(128, GRID * GRID)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.body(images * 2.0 - 1.0)
        return features, self.count(features), self.colours(features), self.cells(features)


def floor_cells(translations: np.ndarray, prior: Any) -> np.ndarray:
    """(k, 2) object centres (world x, y) -> (GRID * GRID,) multi-hot of the prior's floor grid cells."""
    cells = np.zeros(GRID * GRID, dtype=np.float32)
    x_range, y_range = prior.object_translation_x, prior.object_translation_y
    for x, y in translations:
        column = min(GRID - 1, max(0, int((x - x_range.low) / (x_range.high - x_range.low) * GRID)))
        row = min(GRID - 1, max(0, int((y - y_range.low) / (y_range.high - y_range.low) * GRID)))
        cells[row * GRID + column] = 1.0
    return cells


def labels_of(collection: Any, indices: list[int]) -> dict[str, np.ndarray]:
    counts, colours, cells = [], [], []
    for index in indices:
        objects = collection.params(index)["objects"]
        counts.append(len(objects))
        colours.append([float(any(obj.get("color") == name for obj in objects)) for name in COLOURS])
        cells.append(floor_cells(np.array([obj["translation"][:2] for obj in objects]), collection.prior))
    return {"count": np.array(counts), "colours": np.array(colours, np.float32), "cells": np.array(cells)}


def train_oracle(images: torch.Tensor, labels: dict[str, np.ndarray], max_count: int, epochs: int) -> Oracle:
    torch.manual_seed(0)
    oracle = Oracle(max_count)
    optimizer = torch.optim.Adam(oracle.parameters(), lr=2e-3)
    count = torch.as_tensor(labels["count"] - 1)
    colours, cells = torch.as_tensor(labels["colours"]), torch.as_tensor(labels["cells"])
    for _ in range(epochs):
        order = torch.randperm(images.shape[0])
        for start in range(0, images.shape[0], 64):
            batch = order[start : start + 64]
            # light augmentation: colour jitter would change the labels, a 1-pixel shift does not
            shifted = torch.roll(images[batch], shifts=tuple(int(v) for v in torch.randint(-1, 2, (2,))), dims=(2, 3))
            _, count_logits, colour_logits, cell_logits = oracle(shifted)
            loss = (
                functional.cross_entropy(count_logits, count[batch])
                + functional.binary_cross_entropy_with_logits(colour_logits, colours[batch])
                + functional.binary_cross_entropy_with_logits(cell_logits, cells[batch])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return oracle.eval()


@torch.no_grad()
def oracle_outputs(oracle: Oracle, images: torch.Tensor) -> dict[str, np.ndarray]:
    parts = [oracle(images[start : start + 128]) for start in range(0, images.shape[0], 128)]
    return {
        "features": torch.cat([p[0] for p in parts]).numpy().astype(np.float64),
        "count": torch.cat([p[1] for p in parts]).argmax(dim=1).numpy() + 1,
        "colours": (torch.cat([p[2] for p in parts]) > 0).numpy().astype(np.float32),
        "cells": (torch.cat([p[3] for p in parts]) > 0).numpy().astype(np.float32),
    }


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two (n, d) feature sets (FID's formula, in the oracle's space)."""
    mean_a, mean_b = first.mean(axis=0), second.mean(axis=0)
    cov_a, cov_b = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    # tr sqrt(A B) = sum of square roots of the eigenvalues of A B (real and >= 0 for covariances)
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


# ---------------------------------------------------------------------------- layout figures


def centroid(alpha: np.ndarray) -> np.ndarray:
    rows, columns = np.mgrid[: alpha.shape[0], : alpha.shape[1]] + 0.5
    return np.array([(alpha * columns).sum() / alpha.sum(), (alpha * rows).sum() / alpha.sum()])


def project(point: tuple[float, float, float], camera: layouts.LayoutCamera) -> np.ndarray:
    local = np.linalg.inv(np.array(camera.camera_to_world)) @ np.array([*point, 1.0])
    return np.array([camera.cx + camera.fl_x * local[0] / -local[2], camera.cy - camera.fl_y * local[1] / -local[2]])


def usable(alpha: np.ndarray) -> bool:
    mask = alpha > 0.1
    border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
    return alpha.sum() >= 2.0 and not border


def controllability(model: Any, layouts_wanted: int, distance: float, degrees: float) -> dict[str, Any]:
    translation_errors, orbit_errors, spin_drifts = [], [], []
    floor = model.prior.floor
    centre = (floor.center[0], floor.center[1])
    seed = 0
    while len(translation_errors) < 2 * layouts_wanted and seed < 20 * layouts_wanted:
        layout = model.sample_layout(10_000 + seed, 1)
        seed += 1
        name = layout.objects[0].name
        base = model.render_layout(layout).alphas[0]
        if not usable(base):
            continue
        start = layout.objects[0].translation
        for offset in ((distance, 0.0, 0.0), (0.0, distance, 0.0)):
            moved = layouts.move(layout, name, offset)
            alpha = model.render_layout(moved).alphas[0]
            if usable(alpha):
                predicted = project(moved.objects[0].translation, layout.camera) - project(start, layout.camera)
                translation_errors.append(float(np.linalg.norm(centroid(alpha) - centroid(base) - predicted)))
        angle = math.radians(degrees)
        dx, dy = start[0] - centre[0], start[1] - centre[1]
        carried = (
            centre[0] + dx * math.cos(angle) - dy * math.sin(angle),
            centre[1] + dx * math.sin(angle) + dy * math.cos(angle),
            start[2],
        )
        orbited = layouts.rotate(layouts.place(layout, name, carried), name, degrees)
        alpha = model.render_layout(orbited).alphas[0]
        if usable(alpha):
            predicted = project(carried, layout.camera) - project(start, layout.camera)
            orbit_errors.append(float(np.linalg.norm(centroid(alpha) - centroid(base) - predicted)))
        spun = model.render_layout(layouts.rotate(layout, name, 45.0)).alphas[0]
        if usable(spun):
            spin_drifts.append(float(np.linalg.norm(centroid(spun) - centroid(base))))

    def summary(values: list[float]) -> dict[str, Any]:
        return {
            "mean_px": float(np.mean(values)) if values else None,
            "max_px": float(np.max(values)) if values else None,
            "n": len(values),
        }

    return {
        "translation": summary(translation_errors),
        "orbit": summary(orbit_errors),
        "spin_drift": summary(spin_drifts),
    }


def grow(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel (8-neighbourhood)."""
    padded = np.pad(mask, 1)
    grown = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]]
    return grown


def disentanglement(model: Any, count: int) -> dict[str, Any]:
    appearance_shares, background_shares, object_areas = [], [], []
    for seed in range(count):
        layout = model.sample_layout(20_000 + seed, 2)
        base = model.render_layout(layout)
        name = layout.objects[0].name
        changed = model.render_layout(layouts.resample_codes(layout, name, 30_000 + seed, "appearance"))
        change = np.abs(changed.colour - base.colour).sum(axis=-1)
        mask = grow(base.alphas[0] > 0.5)
        if change.sum() > 1e-6 and mask.any():
            appearance_shares.append(float(change[mask].sum() / change.sum()))
        background = layouts.set_background(
            layout,
            layouts.random_code(layout.background_code_size, 40_000 + seed),
            layouts.random_code(layout.background_code_size, 50_000 + seed),
        )
        changed = model.render_layout(background)
        change = np.abs(changed.colour - base.colour).sum(axis=-1)
        objects = (base.alphas > 0.5).any(axis=0)
        if change.sum() > 1e-6 and objects.any():
            background_shares.append(float(change[objects].sum() / change.sum()))
            object_areas.append(float(objects.mean()))
    mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
    return {
        "appearance_share_inside": mean(appearance_shares),
        "appearance_n": len(appearance_shares),
        "background_share_inside_objects": mean(background_shares),
        "objects_share_of_image": mean(object_areas),
        "background_n": len(background_shares),
    }


def edit_strip(model: Any, path: Path) -> Path:
    """One PNG (4x enlarged) of a 2-object layout and its edits, left to right: as sampled, object_0 moved 0.6 along +X,
    turned 45 degrees, both objects' appearance codes swapped, new background codes, object_1 removed."""
    import imageio.v3 as iio

    for seed in range(3, 100):  # the first layout whose two objects are both seen and do not overlap
        layout = model.sample_layout(seed, 2)
        masks = model.render_layout(layout).alphas > 0.5
        if masks[0].sum() >= 4 and masks[1].sum() >= 4 and not (masks[0] & masks[1]).any():
            break
    edits = [
        layout,
        layouts.move(layout, "object_0", (0.6, 0.0, 0.0)),
        layouts.rotate(layout, "object_0", 45.0),
        layouts.swap_codes(layout, "object_0", "object_1", "appearance"),
        layouts.set_background(
            layout,
            layouts.random_code(layout.background_code_size, 1),
            layouts.random_code(layout.background_code_size, 2),
        ),
        layouts.remove_object(layout, "object_1"),
    ]
    images = [model.render_layout(edit).colour for edit in edits]
    gap = np.ones((images[0].shape[0], 1, 3), np.float32)
    strip = np.concatenate([part for image in images for part in (image, gap)][:-1], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, (np.kron(strip, np.ones((4, 4, 1))) * 255 + 0.5).astype(np.uint8))
    return path


# ---------------------------------------------------------------------------- main


def evaluate_run(
    run: Path, oracle: Oracle, real: dict[str, Any], samples: int, args: argparse.Namespace
) -> dict[str, Any]:
    trainer = Trainer.from_run(run, "cpu")
    model = trainer.model
    started = time.perf_counter()
    images, poses = model.sample_images(samples, seed=7)
    generated = oracle_outputs(oracle, images.float())
    result: dict[str, Any] = {
        "run": str(run),
        "method": trainer.config.method,
        "step": trainer.step,
        "train_minutes": trainer.train_seconds / 60.0,
        "frechet_to_heldout": frechet_distance(generated["features"], real["heldout"]["features"]),
    }
    counts = np.bincount(generated["count"], minlength=len(real["count_distribution"]))[
        : len(real["count_distribution"])
    ]
    predicted = counts / max(1, counts.sum())
    result["count_distribution"] = predicted.tolist()
    result["count_distribution_tv"] = float(0.5 * np.abs(predicted - real["count_distribution"]).sum())
    if poses is not None:
        true_counts = poses.present.sum(dim=1).cpu().numpy()
        placed = [poses.translation[i][poses.present[i]][:, :2].cpu().numpy() for i in range(samples)]
        true_cells = np.stack([floor_cells(centres, model.prior) for centres in placed])
        result["count_accuracy"] = float((generated["count"] == true_counts).mean())
        result["count_accuracy_vs_real"] = result["count_accuracy"] / max(real["count_accuracy"], 1e-9)
        result["cell_accuracy"] = float((generated["cells"] == true_cells).mean())
    if trainer.spec.layouts and args.demo is not None:
        result["demo"] = str(edit_strip(model, args.demo / f"{run.name}_edits.png"))
    if trainer.spec.layouts:
        result["controllability"] = controllability(model, args.layouts, args.distance, args.degrees)
        result["disentanglement"] = disentanglement(model, args.layouts)
    result["eval_seconds"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, required=True, help="the collection the runs trained on")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (giraffe, graf)")
    parser.add_argument("--samples", type=int, default=200, help="generated images per run for realism")
    parser.add_argument("--layouts", type=int, default=8, help="layouts for controllability and disentanglement")
    parser.add_argument("--distance", type=float, default=0.3, help="translation in world units")
    parser.add_argument("--degrees", type=float, default=15.0, help="circular translation about the floor centre")
    parser.add_argument("--oracle-epochs", type=int, default=25)
    parser.add_argument("--oracle-cache", type=Path, help="keep the trained oracle here and reuse it when it exists")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--demo", type=Path, help="write a strip of layout edits per layout run into this folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    collection = load_collection(args.collection)
    train, heldout = split(len(collection))
    max_count = collection.prior.object_count[1]
    started = time.perf_counter()
    train_images = torch.from_numpy(collection.images(train).transpose(0, 3, 1, 2).copy())
    heldout_images = torch.from_numpy(collection.images(heldout).transpose(0, 3, 1, 2).copy())
    train_labels, heldout_labels = labels_of(collection, train), labels_of(collection, heldout)
    if args.oracle_cache is not None and args.oracle_cache.is_file():
        oracle = Oracle(max_count)
        oracle.load_state_dict(torch.load(args.oracle_cache, weights_only=True))
        oracle.eval()
    else:
        oracle = train_oracle(train_images, train_labels, max_count, args.oracle_epochs)
        if args.oracle_cache is not None:
            torch.save(oracle.state_dict(), args.oracle_cache)
    heldout_out = oracle_outputs(oracle, heldout_images)
    train_out = oracle_outputs(oracle, train_images[: len(heldout)])
    real = {
        "heldout": heldout_out,
        "count_accuracy": float((heldout_out["count"] == heldout_labels["count"]).mean()),
        "colour_accuracy": float((heldout_out["colours"] == heldout_labels["colours"]).mean()),
        "cell_accuracy": float((heldout_out["cells"] == heldout_labels["cells"]).mean()),
        "count_distribution": np.bincount(heldout_labels["count"], minlength=max_count + 1)[: max_count + 1]
        / len(heldout),
        "frechet_train_to_heldout": frechet_distance(train_out["features"], heldout_out["features"]),
    }
    print(
        f"oracle on {len(heldout)} held-out real images "
        f"(trained on {len(train)} in {time.perf_counter() - started:.0f} s): "
        f"count {real['count_accuracy']:.2f}, colours {real['colour_accuracy']:.2f}, floor cells "
        f"{real['cell_accuracy']:.2f}; Fréchet train-vs-held-out {real['frechet_train_to_heldout']:.3g}"
    )
    results = []
    for run in args.runs:
        result = evaluate_run(run, oracle, real, args.samples, args)
        results.append(result)
        line = (
            f"{result['method']:8s} step {result['step']:6d}  {result['train_minutes']:5.1f} min  "
            f"Fréchet {result['frechet_to_heldout']:8.3g}  count TV {result['count_distribution_tv']:.2f}"
        )
        if "count_accuracy" in result:
            line += (
                f"  count acc {result['count_accuracy']:.2f} ({result['count_accuracy_vs_real']:.0%} of real)"
                f"  cells {result['cell_accuracy']:.2f}"
            )
        if "controllability" in result:
            c, d = result["controllability"], result["disentanglement"]
            fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
            line += (
                f"\n         translate err {fmt(c['translation']['mean_px'])} px "
                f"(max {fmt(c['translation']['max_px'])}, "
                f"n {c['translation']['n']})  orbit err {fmt(c['orbit']['mean_px'])} px  spin drift "
                f"{fmt(c['spin_drift']['mean_px'])} px  appearance inside {fmt(d['appearance_share_inside'])}  "
                f"background inside objects {fmt(d['background_share_inside_objects'])} "
                f"(objects cover {fmt(d['objects_share_of_image'])})"
            )
        print(line, flush=True)
    if args.json is not None:
        serialisable = {key: value for key, value in real.items() if key != "heldout"}
        serialisable["count_distribution"] = real["count_distribution"].tolist()
        args.json.write_text(json.dumps({"real": serialisable, "runs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
