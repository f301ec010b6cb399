#!/usr/bin/env bash
# The main job on a built-in demo scene: set up (idempotent), then run scripts/demo.py.
#   bash scripts/demo.sh            full demo, at most 10 minutes on 2 CPU cores (outputs in out/demo)
#   bash scripts/demo.sh --quick    the same pipeline shrunk to well under a minute
# Extra arguments go to scripts/demo.py (--output DIR, --minutes M, --steps N, --device cuda, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
