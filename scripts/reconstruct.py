"""Headless reconstruction: cameras of a .blend in, a trained field and a coloured mesh out.

    blender -b scene.blend --python scripts/reconstruct.py -- [options]
    python scripts/reconstruct.py -- scene.blend [more.blend | folder ...] [options]   (bpy module)

For each .blend: export the cameras (rendering the views, or using existing images), train a
field through the same engine session the add-on uses, extract a coloured mesh, import it
into a "Fieldwork" collection, save the result as a new .blend (the original only with
``--overwrite``) and write ``report.json``. Several files (or folders of them) run one
after another, each in a fresh Blender process: a crash in one never takes the others down.
Files whose output folder already holds a successful report are skipped (``--force`` redoes
them). A summary table ends the run; the exit code is 0 only when every file succeeded.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bpy  # noqa: E402

from scripts import pipeline  # noqa: E402

# Exit codes: 0 every file succeeded, 1 at least one failed, 2 bad command line.
EXIT_FAILED = 1
EXIT_USAGE = 2
# The hidden flag a batch parent passes to the child that reconstructs one file.
CHILD_FLAG = "--one-file"
MINUTES_ONLY_STEPS = 1_000_000
# Lines of a failed child's stderr kept to say why it failed.
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class BatchRow:
    """One line of the summary table."""

    blend: str
    status: str  # ok | failed | skipped
    seconds: float
    psnr: float | None
    output: str
    error: str


def script_argv(argv: list[str]) -> list[str]:
    """The script's own arguments: everything after ``--`` (Blender keeps the rest for itself)."""
    return argv[argv.index("--") + 1 :] if "--" in argv else []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconstruct.py",
        description="Train a neural field on the cameras of .blend files and bring back a coloured mesh.",
    )
    parser.add_argument(
        "blends",
        nargs="*",
        type=Path,
        help=".blend files or folders of them (default: the file Blender opened with -b)",
    )
    parser.add_argument(
        "--method",
        "--field",
        dest="method",
        default="ngp",
        help="image method to train (default: ngp)",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="training steps (default: 2000)")
    budget.add_argument("--minutes", type=float, default=None, help="training time budget in minutes")
    parser.add_argument(
        "--resolution", type=int, default=None, help="longest side of the rendered views in pixels (default: scene's)"
    )
    parser.add_argument("--mesh-resolution", type=int, default=128, help="marching-cubes grid resolution")
    parser.add_argument(
        "--mesh-level", type=float, default=0.0, help="surface density level per world unit (0: automatic)"
    )
    parser.add_argument(
        "--texture",
        type=int,
        default=0,
        help="bake a UV texture this many texels square (256-8192, power of two; 0: vertex colours)",
    )
    parser.add_argument("--camera-collection", default="", help="use the cameras of this collection only")
    parser.add_argument("--box-object", default="", help="object whose bounds are the scene box")
    parser.add_argument(
        "--images",
        default=None,
        type=Path,
        help="folder of existing images named after the cameras (default: render every camera)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="output folder (default: <blend folder>/<blend name>_fieldwork)"
    )
    parser.add_argument("--engine-python", default="", help="interpreter that runs the engine (has torch)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads of the engine (0: torch's default, one per core)"
    )
    parser.add_argument("--batch-rays", type=int, default=0, help="rays per training step (0: the trainer's default)")
    parser.add_argument(
        "--warmup-steps", type=int, default=0, help="learning-rate warm-up steps (0: the trainer's default)"
    )
    parser.add_argument(
        "--compile", choices=("auto", "on", "off"), default="auto", help="torch.compile the field (off: no warm-up)"
    )
    parser.add_argument("--overwrite", action="store_true", help="save the result over the source .blend")
    parser.add_argument("--force", action="store_true", help="redo files whose output already has a report")
    parser.add_argument(CHILD_FLAG, dest="one_file", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def settings_from_args(args: argparse.Namespace) -> pipeline.PipelineSettings:
    return pipeline.PipelineSettings(
        method=args.method,
        # A time budget alone: the step count is only an upper bound the budget reaches first.
        steps=args.steps if args.steps is not None else MINUTES_ONLY_STEPS if args.minutes else pipeline.DEFAULT_STEPS,
        minutes=args.minutes or 0.0,
        resolution=args.resolution,
        mesh_resolution=args.mesh_resolution,
        camera_collection=args.camera_collection,
        box_object=args.box_object,
        images_dir=str(args.images) if args.images else "",
        engine_python=args.engine_python,
        device=args.device,
        seed=args.seed,
        compile=args.compile,
        batch_rays=args.batch_rays,
        warmup_steps=args.warmup_steps,
        mesh_level=args.mesh_level,
        texture=args.texture,
    )


def output_dir_for(blend: Path, output: Path | None, batch: bool) -> Path:
    """Where one file's outputs go: ``--output`` itself for one file, a subfolder per file in a batch."""
    if output is None:
        return blend.parent / f"{blend.stem}_fieldwork"
    return output / blend.stem if batch else output


def expand_blends(paths: list[Path]) -> list[Path]:
    """Files as given, folders as their .blend files in name order; missing paths kept (they fail clearly)."""
    blends: list[Path] = []
    for path in paths:
        if path.is_dir():
            blends.extend(sorted(child for child in path.iterdir() if child.suffix == ".blend"))
        else:
            blends.append(path)
    return [blend.resolve() for blend in blends]


def already_done(out_dir: Path) -> bool:
    report_path = out_dir / pipeline.REPORT_NAME
    try:
        report = json.loads(report_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    saved = report.get("outputs", {}).get("blend", "")
    return report.get("status") == "ok" and bool(saved) and Path(saved).is_file()


def child_command(blend: Path, args: argparse.Namespace, out_dir: Path) -> list[str]:
    """A fresh Blender for one file: the Blender binary when there is one, else this Python with bpy."""
    if bpy.app.binary_path:
        # --python-exit-code: an uncaught exception in the script must not look like success.
        script = str(Path(__file__).resolve())
        prefix = [bpy.app.binary_path, "-b", "--factory-startup", "--python-exit-code", "1", "--python", script]
    else:
        prefix = [sys.executable, str(Path(__file__).resolve())]
    return [*prefix, "--", *option_argv(args), "--output", str(out_dir), CHILD_FLAG, str(blend)]


def option_argv(args: argparse.Namespace) -> list[str]:
    """The options of a parsed command line written back as arguments, without files and ``--output``."""
    argv = ["--method", args.method, "--mesh-resolution", str(args.mesh_resolution), "--device", args.device]
    argv += ["--seed", str(args.seed), "--compile", args.compile, "--batch-rays", str(args.batch_rays)]
    argv += ["--warmup-steps", str(args.warmup_steps), "--mesh-level", repr(args.mesh_level)]
    argv += ["--texture", str(args.texture)]
    argv += ["--threads", str(args.threads)]
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    if args.minutes is not None:
        argv += ["--minutes", str(args.minutes)]
    if args.resolution is not None:
        argv += ["--resolution", str(args.resolution)]
    for option, value in (
        ("--camera-collection", args.camera_collection),
        ("--box-object", args.box_object),
        ("--images", str(args.images) if args.images else ""),
        ("--engine-python", args.engine_python),
    ):
        if value:
            argv += [option, value]
    if args.overwrite:
        argv.append("--overwrite")
    return argv


def run_batch(args: argparse.Namespace) -> int:
    blends = expand_blends(args.blends)
    if not blends:
        print("reconstruct: no .blend files found in " + ", ".join(map(str, args.blends)), file=sys.stderr)
        return EXIT_USAGE
    rows: list[BatchRow] = []
    for index, blend in enumerate(blends, start=1):
        out_dir = output_dir_for(blend, args.output, batch=len(blends) > 1)
        print(f"[{index}/{len(blends)}] {blend}", flush=True)
        if not args.force and already_done(out_dir):
            print(f"  already done ({out_dir / pipeline.REPORT_NAME}); --force redoes it", flush=True)
            rows.append(row_from_report(blend, out_dir, "skipped", 0.0))
            continue
        started = time.monotonic()
        returncode, stderr_tail = run_child(child_command(blend, args, out_dir))
        seconds = time.monotonic() - started
        status = "ok" if returncode == 0 else "failed"
        row = row_from_report(blend, out_dir, status, seconds)
        if status == "failed" and not row.error:
            row = BatchRow(str(blend), status, seconds, None, str(out_dir), child_failure(returncode, stderr_tail))
        rows.append(row)
    print_summary(rows)
    return 0 if all(row.status in ("ok", "skipped") for row in rows) else EXIT_FAILED


def run_child(command: list[str], tail_lines: int = STDERR_TAIL_LINES) -> tuple[int, list[str]]:
    """Run a child with its stdout on ours and its stderr copied to ours line by line as it comes (the user
    sees it live); returns its exit code and the last ``tail_lines`` lines of its stderr, which say why a
    child that died before writing its report failed."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    assert process.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    for raw in process.stderr:
        sys.stderr.buffer.write(raw)
        sys.stderr.flush()
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            tail.append(line)
    return process.wait(), list(tail)


def child_failure(returncode: int, stderr_tail: list[str]) -> str:
    """One line for the summary table (the child's last words: for Python the exception, for Blender its
    error), then the rest of the tail."""
    if not stderr_tail:
        return f"Blender exited with code {returncode} and wrote nothing on stderr"
    reason = next((line for line in reversed(stderr_tail) if _looks_like_an_error(line)), stderr_tail[-1])
    return f"Blender exited with code {returncode}: {reason.strip()}\n" + "\n".join(stderr_tail)


def _looks_like_an_error(line: str) -> bool:
    text = line.strip()
    return bool(re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt|Exit)\b", text)) or text.lower().startswith(
        ("error", "reconstruct:", "fatal", "segmentation fault")
    )


def row_from_report(blend: Path, out_dir: Path, status: str, seconds: float) -> BatchRow:
    try:
        report = json.loads((out_dir / pipeline.REPORT_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        report = {}
    psnr = report.get("metrics", {}).get("psnr")
    return BatchRow(
        blend=str(blend),
        status=status,
        seconds=seconds,
        psnr=float(psnr) if psnr is not None else None,
        output=str(out_dir),
        error=str(report.get("error", "")) if status == "failed" else "",
    )


def print_summary(rows: list[BatchRow]) -> None:
    name_width = max(len(Path(row.blend).name) for row in rows)
    print()
    print(f"{'file':<{name_width}}  {'status':<7}  {'time':>7}  {'PSNR':>6}  output / error")
    for row in rows:
        psnr = f"{row.psnr:6.2f}" if row.psnr is not None else "     -"
        detail = row.error.splitlines()[0] if row.error else row.output
        print(f"{Path(row.blend).name:<{name_width}}  {row.status:<7}  {row.seconds:6.1f}s  {psnr}  {detail}")
    failed = sum(row.status == "failed" for row in rows)
    print(f"{len(rows) - failed} of {len(rows)} succeeded" + (f", {failed} failed" if failed else ""), flush=True)


def run_one(args: argparse.Namespace, blend: Path) -> int:
    """Reconstruct one file in this process; the report says what happened, the exit code whether it worked."""
    out_dir = output_dir_for(blend, args.output, batch=False)
    settings = settings_from_args(args)
    if not bpy.data.filepath or Path(bpy.data.filepath).resolve() != blend:
        try:
            pipeline.open_blend(blend)
        except pipeline.PipelineError as error:
            pipeline.write_failure_report(out_dir, blend, settings, "open", str(error))
            print(f"reconstruct: {error}", file=sys.stderr)
            return EXIT_FAILED
    report = pipeline.reconstruct_open_file(
        settings, out_dir, overwrite=args.overwrite, progress=pipeline.print_progress
    )
    if report.status != "ok":
        print(f"reconstruct: {blend.name} failed during {report.failed_stage}: {report.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"reconstruct: {blend.name} done: {out_dir / pipeline.REPORT_NAME}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option, value in (("--steps", args.steps), ("--resolution", args.resolution)):
        if value is not None and value < 1:
            parser.error(f"{option} must be positive, got {value}")
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    if args.threads:
        # The engine processes inherit the environment; OpenMP reads this when torch starts.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.one_file is not None:
        return run_one(args, args.one_file.resolve())
    if args.blends:
        return run_batch(args)
    if bpy.data.filepath:
        return run_one(args, Path(bpy.data.filepath).resolve())
    parser.print_usage(sys.stderr)
    print(
        "reconstruct: no .blend given: pass files or folders after '--', or open one with 'blender -b scene.blend'",
        file=sys.stderr,
    )
    return EXIT_USAGE


if __name__ == "__main__":
    exit_code = main(script_argv(sys.argv))
    # Inside Blender (-b --python) SystemExit ends Blender with this code; a plain return would give 0.
    sys.exit(exit_code)
