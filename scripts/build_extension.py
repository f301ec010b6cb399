"""Build ``dist/fieldwork-<version>.zip`` with Blender's own extension tool.

The package root is staged first: the manifest, the add-on's files at the top and the
pure-Python engine inside it (``fieldwork/engine``), so the add-on and the engine it
launches always come from one version. Then ``blender_ext.py build`` zips it and
``blender_ext.py validate`` checks the result.

    python scripts/build_extension.py [--output-dir dist] [--stage-only DIR]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def find_blender_ext() -> Path:
    """``blender_ext.py`` inside the installed bpy package (bpy/<version>/scripts/addons_core/bl_pkg/cli)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise SystemExit("bpy is not installed in this interpreter: run scripts/setup.sh first")
    matches = sorted(glob.glob(str(Path(spec.origin).parent / "*" / "scripts/addons_core/bl_pkg/cli/blender_ext.py")))
    if not matches:
        raise SystemExit(f"blender_ext.py not found inside {Path(spec.origin).parent}")
    return Path(matches[-1])


def manifest_version() -> str:
    with open(REPO / "blender_manifest.toml", "rb") as handle:
        return str(tomllib.load(handle)["version"])


def stage(destination: Path) -> Path:
    """Lay out the extension's package root in ``destination`` (created; must not exist)."""
    shutil.copytree(REPO / "addon", destination, symlinks=False, ignore=_IGNORE)  # follows addon/engine
    shutil.copy2(REPO / "blender_manifest.toml", destination / "blender_manifest.toml")
    return destination


def run_tool(blender_ext: Path, *args: str) -> str:
    completed = subprocess.run([sys.executable, str(blender_ext), *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"blender_ext.py {args[0]} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def build(output_dir: Path) -> Path:
    blender_ext = find_blender_ext()
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"fieldwork-{manifest_version()}.zip"
    with tempfile.TemporaryDirectory(prefix="fieldwork-stage-") as tmp:
        source = stage(Path(tmp) / "fieldwork")
        run_tool(blender_ext, "validate", str(source))
        # Build to a temporary name, then rename: a failed build never leaves a half zip.
        partial = output_dir / (zip_path.name + ".partial.zip")
        run_tool(blender_ext, "build", "--source-dir", str(source), "--output-filepath", str(partial))
    run_tool(blender_ext, "validate", str(partial))
    partial.replace(zip_path)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist")
    parser.add_argument("--stage-only", type=Path, help="only lay out the package root in this new folder")
    args = parser.parse_args(argv)
    if args.stage_only:
        print(stage(args.stage_only))
        return 0
    zip_path = build(args.output_dir)
    print(f"built and validated {zip_path} ({zip_path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
