"""Render each environment's scripted expert to MP4 videos and a contact sheet.

For every environment id (default: all of envs.ENV_IDS) this runs one seeded
episode of the scripted expert, envs.experts.expert_policy, and writes
<out>/<name>.mp4 plus <out>/contact_sheet.png: one row per environment with its
first, middle and last frame, labelled with the id, success and instruction.

An existing non-empty output folder is never written into; a fresh one with a
numbered suffix is made next to it instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.preview import DEFAULT_SIZE, UnknownEnvError, run_preview


def _positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``vmalign preview``'s options to ``parser``."""
    parser.add_argument(
        "--env",
        dest="env_ids",
        metavar="ID",
        nargs="+",
        action="extend",
        default=None,
        help="environment id(s) to preview (repeatable; default: every registered env)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: outputs/preview-<YYYYmmdd-HHMMSS>)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reset seed (default: 0)")
    parser.add_argument(
        "--size",
        type=_positive_int,
        default=DEFAULT_SIZE,
        metavar="PX",
        help=f"frame size in pixels (default: {DEFAULT_SIZE})",
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``vmalign preview``; returns 2 for an unknown environment id."""
    try:
        run_preview(args.env_ids, args.out, seed=args.seed, size=args.size)
    except UnknownEnvError as error:
        print(f"vmalign preview: error: {error}", file=sys.stderr)
        return 2
    return 0
