"""Shape export and sample making on a subdivided Suzanne (bpy module), printing the figures.

OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_shapes.py [--levels 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402

from addon import shapes  # noqa: E402
from addon.engine.data.shapes import ShapeSampleConfig, read_shape_dataset, shape_samples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=2, help="subdivision levels of the Suzanne")
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add(location=(2.0, -1.0, 0.5), rotation=(0.4, 0.0, 1.2))
    monkey = bpy.context.active_object
    monkey.modifiers.new("Subdivision", "SUBSURF").levels = args.levels
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path, _ = shapes.export_shapes(Path(folder) / "shapes", objects=[monkey])
        export_seconds = time.perf_counter() - start
        dataset = read_shape_dataset(path)
        (entry,) = dataset.shapes
        config = ShapeSampleConfig()
        start = time.perf_counter()
        samples = shape_samples(dataset, entry, config)
        sample_seconds = time.perf_counter() - start
        start = time.perf_counter()
        shape_samples(dataset, entry, config)
        cached_seconds = time.perf_counter() - start
    assert samples.occupancy is not None
    print(f"Suzanne, {args.levels} subdivision levels: {entry.face_count} triangles, watertight {entry.watertight}")
    print(f"export: {export_seconds:.2f} s")
    print(
        f"samples ({config.surface_points} surface, {config.uniform_points} uniform, "
        f"{config.near_surface_points} near-surface, with signed distances): {sample_seconds:.2f} s; "
        f"from the cache: {cached_seconds:.3f} s"
    )
    print(f"inside fraction of the uniform points: {samples.occupancy[: samples.uniform_count].mean():.3f}")


if __name__ == "__main__":
    main()
