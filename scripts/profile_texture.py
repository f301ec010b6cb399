"""Where a texture benchmark's decibels go: profiles a finished ``scripts/bench_texture.py`` run folder.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/profile_texture.py --out DIR [--fraction 0.1] [--field-views 1]

Reads the run folder that bench_texture wrote (``--out`` there) and measures, masked to the object as the
benchmark does, against its ground-truth renders of the held-out cameras:

- the texture field's own renders of the held-out cameras (its mesh ray-cast, t(p) plus the view-dependent
  residual): what its training reached, before any bake (one ray a pixel centre: no antialiasing, unlike
  Cycles' renders of the bakes, so a little below them where the texture has edges);
- the same without the residual (t(p) alone: what a bake can hold);
- how far the mesh decimated to ``--fraction`` lies from the texture field's own mesh (its face centres
  cast along their normals, either way, against it), against the field's finest hash-grid cell: a bake
  onto the decimated mesh reads t(p) there, off the surface it was trained on;
- with ``--field-views N``, the radiance field's own renders of N held-out cameras (slow on a CPU).

Prints a table (PSNR, SSIM), the distances, and writes ``profile_texture.json`` in the folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="profile_texture.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a bench_texture.py output folder")
    parser.add_argument("--fraction", type=float, default=0.1, help="decimate to this fraction of the faces")
    parser.add_argument("--field-views", type=int, default=0, help="held-out views the radiance field renders")
    return parser.parse_args(argv)


def _premultiplied_rgba(rendered: object, background: np.ndarray) -> np.ndarray:
    """(h, w, 4) premultiplied colour over black and an alpha of one, from a render over ``background``."""
    rgb, opacity = rendered.rgb, rendered.opacity  # type: ignore[attr-defined]
    premultiplied = np.clip(rgb - (1.0 - opacity[..., None]) * background, 0.0, 1.0)
    return np.concatenate([premultiplied, np.ones_like(opacity[..., None])], axis=-1).astype(np.float64)


def decimation_distances(texture_field: object, fraction: float) -> dict[str, float]:
    """World distances from the face centres of the texture field's mesh decimated to ``fraction`` to its own
    mesh, along their normals either way (the nearer hit; centres with neither within the box are left out)."""
    import torch

    from engine.mesh.cleanup import CleanupConfig, clean_mesh
    from engine.mesh.raycast import MeshRaycaster
    from engine.mesh.triangle_mesh import TriangleMesh

    vertices, faces = texture_field.model.surface_mesh()  # type: ignore[attr-defined]
    normalization = texture_field.normalization  # type: ignore[attr-defined]
    world = normalization.to_world(vertices.double().cpu()).numpy()
    full = TriangleMesh(world, faces.cpu().numpy().astype(np.int64))
    box = texture_field.scene_box  # type: ignore[attr-defined]
    diagonal = float(np.linalg.norm(np.subtract(box.maximum, box.minimum)))
    decimated = clean_mesh(full, CleanupConfig(target_faces=max(1, int(fraction * full.n_faces))), diagonal)
    caster = MeshRaycaster(torch.tensor(full.vertices, dtype=torch.float32), torch.tensor(full.faces))
    centres = torch.tensor(decimated.vertices[decimated.faces].mean(axis=1), dtype=torch.float32)
    normals = torch.tensor(decimated.face_normals(), dtype=torch.float32)
    normals = normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-12)
    nearest = torch.full((len(centres),), float("inf"))
    for direction in (normals, -normals):
        # start a hair behind the centre so that a centre on the mesh finds itself
        hits = caster.intersect(centres - 1e-5 * direction, direction)
        nearest = torch.minimum(nearest, torch.where(hits.hit, hits.t - 1e-5, torch.full_like(hits.t, float("inf"))))
    found = nearest[torch.isfinite(nearest)].clamp(min=0.0).numpy()
    finest = texture_field.model.field.encoding.resolutions[-1]  # type: ignore[attr-defined]
    return {
        "median": float(np.median(found)),
        "p90": float(np.percentile(found, 90)),
        "p99": float(np.percentile(found, 99)),
        "finest_cell": float(normalization.size / finest),
        "faces": int(decimated.n_faces),
    }


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    out: Path = args.out
    if not (out / "bench_texture.json").is_file():
        raise SystemExit(f"{out}: no bench_texture.json; run scripts/bench_texture.py --out {out} first")
    import imageio.v3 as iio
    import torch

    from engine.train.trainer import Trainer
    from scripts.bench_texture import _masked_scores

    # bench_texture rendered the truth of each held-out camera as truth/<camera name>.png
    truth_paths = sorted((out / "truth").glob("*.png"))
    truths = [iio.imread(path).astype(np.float64) / 255.0 for path in truth_paths]
    rows: list[dict] = []

    def record(name: str, scores: list[tuple[float, float]]) -> None:
        rows.append(
            {
                "variant": name,
                "psnr": float(np.mean([s[0] for s in scores])),
                "ssim": float(np.mean([s[1] for s in scores])),
            }
        )
        print(f"  {name}: {rows[-1]['psnr']:.2f} dB", flush=True)

    texture_field = Trainer.from_run(out / "run-texture-field", device="cpu")
    dataset = texture_field.dataset
    background = texture_field._evaluation_background().cpu().numpy()
    # the capture names frames after their cameras (spaces may become underscores in file names)
    frames = {frame.name.replace("_", " "): index for index, frame in enumerate(dataset.frames)}
    indices = [frames[path.stem] for path in truth_paths]

    def field_scores(trainer: Trainer, count: int) -> list[tuple[float, float]]:
        scores = []
        for index, truth in list(zip(indices, truths, strict=True))[:count]:
            rendered = trainer.render(dataset.cameras.camera_to_world[index].cpu().numpy(), dataset.intrinsics[index])
            scores.append(_masked_scores(_premultiplied_rgba(rendered, background), truth))
        return scores

    record("texture field render, t(p) + residual", field_scores(texture_field, len(indices)))
    head = texture_field.model.field.residual_head
    texture_field.model.field.residual_head = None
    record("texture field render, t(p) alone", field_scores(texture_field, len(indices)))
    texture_field.model.field.residual_head = head

    distances = decimation_distances(texture_field, args.fraction)
    if args.field_views:
        torch.set_num_threads(1)
        field = Trainer.from_run(out / "run", device="cpu")
        record(f"radiance field render ({args.field_views} views)", field_scores(field, args.field_views))

    print(f"\n{'variant':<52} {'PSNR dB':>8} {'SSIM':>6}")
    for row in rows:
        print(f"{row['variant']:<52} {row['psnr']:>8.2f} {row['ssim']:>6.3f}")
    print(
        f"mesh decimated to {args.fraction:g}: its face centres lie {distances['median']:.4f} (median), "
        f"{distances['p90']:.4f} (90th percentile), {distances['p99']:.4f} (99th) world units from the texture "
        f"field's mesh; its finest hash-grid cell is {distances['finest_cell']:.4f}"
    )
    (out / "profile_texture.json").write_text(
        json.dumps({"rows": rows, "decimation_distances": distances, "args": vars(args)}, default=str, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
