"""Live-preview benchmark: transport into a Blender Image, view-change latency, training throughput.

    .venv/bin/python scripts/bench_preview.py [--frames 300] [--steps 200] [--latency-samples 10]
                                              [--batch-rays 1024] [--threads 1] [--out DIR]

1. Transport. A child process writes 256x256 RGBA ``PreviewFrame`` messages (engine/protocol.py)
   to its stdout as fast as the pipe takes them; the add-on's client (``EngineSession``: reader
   thread, frame decoder, queue) receives them and the main thread copies every one into the
   Blender Image "Fieldwork Preview" (``preview.show_frame``: ``pixels.foreach_set``). Frames per
   second and MB/s of the whole path, and the time ``show_frame`` takes. No rendering involved.
2. Latency. The real engine (``python -m engine serve``) trains a small instant-NGP on a tiny
   Cycles-rendered scene; the benchmark sends a new view (``SetView``, 256x256 viewport) about once
   a second and times until a frame rendered from that view is in the Blender Image.
3. Throughput. The same training run twice, with streamed previews (the panel's defaults: every
   0.5 s, up to 256 px) and with previews off; wall-clock steps per second from the progress events,
   and the time from Stop to the engine's Done.

Figures depend on the machine and its load: say which when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from addon import capture, client, preview  # noqa: E402
from addon.engine import protocol  # noqa: E402
from scripts.scenes import build_object_scene  # noqa: E402

FRAME_SIDE = 256
# What the benchmark trains: small enough for a CPU, the real trainer and renderer all the same.
TRAIN_SETTINGS = {
    "compile": "off",
    "log_every": 100000,
    "checkpoint_every": 100000,
    "ngp": {"levels": 8, "log2_table_size": 14, "marching_steps": 64, "occupancy_resolution": 32},
}

PUMP = """
import sys
sys.path.insert(0, {repo!r})
from engine import protocol
frames = [protocol.encode(protocol.PreviewFrame(width={side}, height={side}, step=i, payload=bytes([i * 40 % 256]) *
          ({side} * {side} * 4))) for i in range(2)]
out = sys.stdout.buffer
for index in range({count}):
    out.write(frames[index % 2])
out.flush()
"""


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames for the transport measurement")
    parser.add_argument("--steps", type=int, default=200, help="training steps per throughput run")
    parser.add_argument("--latency-samples", type=int, default=10)
    parser.add_argument("--batch-rays", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for the engine (0: leave as is)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the dataset, runs and bench_preview.json")
    return parser.parse_args(argv)


def bench_transport(frame_count: int) -> dict[str, float]:
    session = client.EngineSession("bench-transport", Path(sys.executable))
    pump = PUMP.format(repo=str(REPO), side=FRAME_SIDE, count=frame_count)
    started = time.perf_counter()
    session.start([sys.executable, "-c", pump])
    applied, show_seconds = 0, []
    while applied < frame_count:
        result = session.drain(budget_s=0.5, block_s=1.0)
        for event in result.events:
            if isinstance(event, protocol.PreviewFrame):
                before = time.perf_counter()
                preview.show_frame(event)
                show_seconds.append(time.perf_counter() - before)
                applied += 1
        if result.ended and applied < frame_count:
            raise RuntimeError(f"the frame pump ended after {applied} frames: {session.last_log_lines()}")
    elapsed = time.perf_counter() - started
    session.close()
    megabytes = applied * FRAME_SIDE * FRAME_SIDE * 4 / 1e6
    return {
        "frames": applied,
        "seconds": elapsed,
        "frames_per_second": applied / elapsed,
        "megabytes_per_second": megabytes / elapsed,
        "show_frame_ms_median": 1000 * statistics.median(show_seconds),
        "show_frame_ms_max": 1000 * max(show_seconds),
    }


def make_dataset(folder: Path) -> Path:
    info = build_object_scene(camera_count=16, resolution=64, samples=8)
    dataset = folder / "dataset"
    capture.export_dataset(info.scene, dataset, overwrite=True)
    return dataset


def start_training(dataset: Path, run_dir: Path, steps: int, batch_rays: int, previews: bool) -> client.EngineSession:
    session = client.EngineSession(f"bench-{run_dir.name}", Path(sys.executable))
    session.start()
    session.send(
        protocol.Train(
            dataset=str(dataset),
            out_dir=str(run_dir),
            steps=steps,
            device="cpu",
            preview_every_s=0.5 if previews else 0.0,
            preview_max_side=256,
            settings={**TRAIN_SETTINGS, "batch_rays": batch_rays},
        )
    )
    return session


def orbit_view(base: list[list[float]], angle: float, fl: float) -> protocol.SetView:
    """The dataset's first camera turned by ``angle`` about the world Z axis, as a 256x256 viewport."""
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.array([[cos, -sin, 0, 0], [sin, cos, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    matrix = turn @ np.asarray(base)
    return protocol.SetView(
        camera_to_world=matrix.tolist(), fl_x=fl, fl_y=fl, cx=FRAME_SIDE / 2, cy=FRAME_SIDE / 2,
        width=FRAME_SIDE, height=FRAME_SIDE,
    )  # fmt: skip


def run_training(
    dataset: Path, run_dir: Path, args: argparse.Namespace, previews: bool, view_changes: int
) -> dict[str, object]:
    """One training run; with ``view_changes`` > 0 a new view goes out about once a second and is timed."""
    from engine.data.transforms import read_transforms

    first = read_transforms(dataset).frames[0]
    fl = first.intrinsics.fl_x * FRAME_SIDE / first.intrinsics.width
    session = start_training(dataset, run_dir, args.steps, args.batch_rays, previews)
    progress: list[tuple[int, float]] = []
    latencies: list[float] = []
    pending: tuple[int, float] | None = None
    next_view_at = time.perf_counter() + 3.0
    frames = 0
    preview_share = 0.0
    stop_sent_at = done_at = None
    while session.state.active:
        result = session.drain(budget_s=0.05, block_s=0.05)
        for event in result.events:
            if isinstance(event, protocol.Progress):
                progress.append((event.step, event.elapsed_s))
                preview_share = event.preview_s / event.elapsed_s if event.elapsed_s > 0 else 0.0
            elif isinstance(event, protocol.Done) and stop_sent_at is not None:
                done_at = time.perf_counter()
        if result.latest_frame is not None:
            preview.show_frame(result.latest_frame)
            frames += 1
            if pending is not None and result.latest_frame.view_id == pending[0]:
                latencies.append(time.perf_counter() - pending[1])
                pending = None
        now = time.perf_counter()
        wants_view = len(latencies) < view_changes and pending is None and now >= next_view_at
        if wants_view and session.state.status == "training":
            view_id = session.set_view(orbit_view(first.camera_to_world, 0.1 * (len(latencies) + 1), fl))
            pending = (view_id, time.perf_counter())
            next_view_at = now + 1.0
        if progress and progress[-1][0] >= args.steps - 5 and stop_sent_at is None:
            # Stop a few steps before the end: that also times Stop -> Done.
            stop_sent_at = time.perf_counter()
            session.send(protocol.Stop())
    if session.state.status == "failed":
        raise RuntimeError(session.state.error)
    session.close()
    # Skip the first 10 % of steps: start-up and the occupancy grid's warm-up.
    warm = [entry for entry in progress if entry[0] >= args.steps // 10]
    steps_per_second = (warm[-1][0] - warm[0][0]) / (warm[-1][1] - warm[0][1])
    return {
        "steps_per_second": steps_per_second,
        "preview_frames": frames,
        "preview_share": preview_share,
        "stop_to_done_s": (done_at - stop_sent_at) if done_at and stop_sent_at else None,
        "latencies_s": latencies,
    }


def bench_latency_and_throughput(dataset: Path, folder: Path, args: argparse.Namespace) -> dict[str, object]:
    """Throughput runs alternate (on, off, on, off) so that a change in the machine's load hits both alike."""
    runs: dict[str, list[dict[str, object]]] = {"with_previews": [], "without_previews": []}
    for index in range(2):
        for previews in (True, False):
            name = "with_previews" if previews else "without_previews"
            runs[name].append(run_training(dataset, folder / f"{name}-{index}", args, previews, view_changes=0))
    latency_run = run_training(dataset, folder / "latency", args, True, view_changes=args.latency_samples)
    latencies: list[float] = latency_run["latencies_s"]  # type: ignore[assignment]
    results: dict[str, object] = {}
    for name, entries in runs.items():
        steps_per_second = statistics.mean(float(entry["steps_per_second"]) for entry in entries)  # type: ignore[arg-type]
        results[name] = {
            "steps_per_second": steps_per_second,
            "rays_per_second": steps_per_second * args.batch_rays,
            "runs_steps_per_second": [entry["steps_per_second"] for entry in entries],
            "preview_frames": [entry["preview_frames"] for entry in entries],
            "preview_share": [entry["preview_share"] for entry in entries],
            "stop_to_done_s": [entry["stop_to_done_s"] for entry in entries],
        }
    results["latency_s"] = {
        "samples": len(latencies),
        "median": statistics.median(latencies) if latencies else None,
        "max": max(latencies) if latencies else None,
        "all": latencies,
    }
    with_previews = results["with_previews"]["steps_per_second"]  # type: ignore[index]
    without_previews = results["without_previews"]["steps_per_second"]  # type: ignore[index]
    results["throughput_kept"] = with_previews / without_previews
    return results


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    folder = args.out or Path(tempfile.mkdtemp(prefix="fieldwork-bench-preview-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    transport = bench_transport(args.frames)
    print(
        f"transport 256x256 RGBA -> Blender Image: {transport['frames_per_second']:.1f} frames/s, "
        f"{transport['megabytes_per_second']:.1f} MB/s; show_frame median {transport['show_frame_ms_median']:.2f} ms,"
        f" max {transport['show_frame_ms_max']:.2f} ms ({transport['frames']} frames)"
    )
    dataset = make_dataset(folder)
    session_results = bench_latency_and_throughput(dataset, folder, args)
    latency = session_results["latency_s"]
    print(
        f"view change -> new frame in the Image: median {latency['median']:.3f} s, max {latency['max']:.3f} s "  # type: ignore[index]
        f"({latency['samples']} samples, while training)"  # type: ignore[index]
    )
    for name in ("with_previews", "without_previews"):
        run = session_results[name]
        print(
            f"training {name.replace('_', ' ')}: {run['steps_per_second']:.2f} steps/s "  # type: ignore[index]
            f"({run['rays_per_second']:.0f} rays/s; runs {run['runs_steps_per_second']}), "  # type: ignore[index]
            f"preview frames {run['preview_frames']}, wall time in previews {run['preview_share']}, "  # type: ignore[index]
            f"stop -> done {run['stop_to_done_s']} s"  # type: ignore[index]
        )
    print(f"throughput kept with previews: {100 * session_results['throughput_kept']:.1f} %")  # type: ignore[operator]
    report = {"transport": transport, **session_results, "load_average": os.getloadavg(), "args": vars(args)}
    (folder / "bench_preview.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {folder / 'bench_preview.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
