"""``python -m engine serve``: a live session over stdin/stdout, driven by the Blender add-on.

stdin: framed commands, stdout: framed events only (engine/protocol.py), logs on stderr.
"""

from __future__ import annotations

import argparse

HELP = "run a live training session speaking the framed protocol on stdin/stdout (used by the add-on)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--handshake-timeout", type=float, default=60.0, metavar="SECONDS",
        help="exit when no hello arrives within this time (default: %(default)s)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..server import serve

    return serve(handshake_timeout_s=args.handshake_timeout)
