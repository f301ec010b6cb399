#!/usr/bin/env bash
# Idempotent set-up of everything the tests and the demo need; a second run takes seconds.
#   .venv            Python 3.11: engine (engine/requirements.txt: torch 2.13.0 CPU, numpy<2, pymcubes, imageio,
#                    scipy), bpy 5.0.1, pytest, ruff, mypy
#   .venv-blender52  Python 3.13: bpy 5.2.3 LTS, the second Blender leg of the extension tests
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # find_python 3.11 -> an interpreter of that minor version, or nothing
  local want=$1 candidate
  for candidate in "python$want" python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    local version
    version=$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}\.[0-9]+$" | sort -V | tail -1 || true)
    if [ -n "$version" ]; then echo "$(pyenv root)/versions/$version/bin/python"; return 0; fi
  fi
  return 1
}

make_venv() {  # make_venv DIR PYTHON_VERSION REQUIREMENTS...  (every file named, none pulled in by -r:
  #                                                 the stamp hashes exactly these, so any change reinstalls)
  local dir=$1 version=$2; shift 2
  local stamp="$dir/.fieldwork-stamp" want
  want=$(cat "$@" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup: $dir is up to date"; return 0
  fi
  local python
  python=$(find_python "$version") || { echo "setup: WARNING: no Python $version found; $dir not created" >&2; return 1; }
  [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
  echo "setup: installing into $dir (Python $version)"
  local requirement_args=()
  for file in "$@"; do requirement_args+=(-r "$file"); done
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${requirement_args[@]}"
  echo "$want" > "$stamp"
}

make_venv .venv 3.11 engine/requirements.txt scripts/requirements-dev.txt
# The Blender 5.2 leg is optional here: without Python 3.13 the tests that need it skip and say why.

make_venv .venv-blender52 3.13 scripts/requirements-blender52.txt || echo "setup: WARNING: Blender 5.2 leg unavailable (needs Python 3.13)" >&2
