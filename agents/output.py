"""Output folders for runs: fresh ones, never a folder that already holds files."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path


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


def save_atomically(path: Path, save: Callable[[Path], object]) -> None:
    """``save(partial_path)`` then a rename onto ``path``: an interrupted save never
    leaves a truncated file (a video, a plot) under the final name. The partial name
    keeps the suffix, which is how plotting and video libraries pick the format."""
    path = Path(path)
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        save(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
