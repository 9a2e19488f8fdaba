"""What runs write for people: fresh output folders (never one that already holds
files), and videos, plots and JSON files written atomically (an interrupted write
never leaves a truncated file under the final name)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

from rewards.durable import atomic_save


EVAL_DIR = "eval"
"""The folder ``vmalign eval`` writes in a run (``eval-1``, ... when it is taken)."""


def make_output_dir(requested: str | os.PathLike[str] | None = None, prefix: str = "run") -> Path:
    """Creates and returns an empty output folder, never reusing a non-empty one.

    :param requested: the wished-for folder (default ``outputs/<prefix>-<timestamp>``);
        if it exists and is not empty, ``<requested>-1``, ``-2``, ... is used instead,
        so nothing a user made is ever overwritten.
    """
    base = Path(requested) if requested is not None else Path(
        "outputs", f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    candidate, suffix = base, 0
    while True:
        try:
            # mkdir (not exists-then-create) so two concurrent runs never share a folder.
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            if candidate.is_dir() and not any(candidate.iterdir()):
                return candidate
        suffix += 1
        candidate = base.with_name(f"{base.name}-{suffix}")


def made_output_dirs(requested: str | os.PathLike[str]) -> list[Path]:
    """The folders :func:`make_output_dir` has made for ``requested``, oldest first:
    ``requested``, ``requested-1``, ``requested-2``, ... (those that exist)."""
    base = Path(requested)
    pattern = re.compile(re.escape(base.name) + r"(?:-(\d+))?")
    found = []
    if base.parent.is_dir():
        for path in base.parent.iterdir():
            if path.is_dir() and (match := pattern.fullmatch(path.name)):
                found.append((int(match.group(1) or 0), path))
    return [path for _, path in sorted(found)]


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, default=str)
    atomic_save(Path(path), lambda partial: partial.write_text(text))


def write_video(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    """Writes ``frames`` (uint8 (H, W, 3) each) as an H.264 MP4, atomically."""
    def encode(partial: Path) -> None:
        # macro_block_size=1: keep the true frame size instead of imageio's
        # rescale to multiples of 16; _even_size pads for yuv420p instead.
        with imageio.get_writer(
            partial, fps=fps, codec="libx264", macro_block_size=1, ffmpeg_log_level="error"
        ) as writer:
            for frame in frames:
                writer.append_data(_even_size(frame))

    atomic_save(path, encode)


def _even_size(frame: np.ndarray) -> np.ndarray:
    """Pads odd heights/widths by one edge pixel: H.264 in yuv420p needs even sizes."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame
