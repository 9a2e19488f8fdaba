"""A run's ``progress.csv``: appended row by row, kept across resumes, read back for curves.

SB3's logger writes it through :class:`AppendingCSV` (PPO runs and the VLA
trainers alike); :func:`truncate_log` trims it when a run resumes from a checkpoint
older than its last rows, and :func:`read_rows` reads it for learning curves.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter

from rewards.durable import atomic_write

PROGRESS_FILE = "progress.csv"
STEP_KEY = "time/total_timesteps"


class AppendingCSV(KVWriter):
    """``progress.csv`` that a resumed run continues instead of overwriting.

    SB3's CSV writer truncates its file on open. This one appends a row per dump,
    flushed and fsynced (a row per rollout: cheap), and rewrites the file (atomically)
    only when a new column appears.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, newline="") as handle:
                self.columns = next(csv.reader(handle), [])

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        values = {key: value for key, value in key_values.items()
                  if not (key_excluded.get(key) and "csv" in key_excluded[key])
                  and isinstance(value, (int, float, np.integer, np.floating, str))}
        new = [key for key in values if key not in self.columns]
        if new:
            rows = read_rows(self.path) if self.path.is_file() else []
            self.columns += sorted(new)
            _rewrite(self.path, self.columns, rows)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.columns).writerow(
                {key: values.get(key, "") for key in self.columns})
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        pass


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``progress.csv`` (an empty list when there is none)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def truncate_log(path: Path, last_step: int) -> int:
    """Keeps the rows of ``path`` up to ``last_step`` (a resumed run's checkpoint) and
    moves later ones (training the checkpoint does not hold, about to be redone) to
    ``<name>.discarded.csv``; returns how many moved."""
    path = Path(path)
    rows = read_rows(path)
    if not rows:
        return 0
    with open(path, newline="") as handle:
        columns = next(csv.reader(handle), [])
    keep = [row for row in rows if _step(row) <= last_step]
    moved = [row for row in rows if _step(row) > last_step]
    if moved:
        discarded = path.with_name(path.stem + ".discarded.csv")
        old = read_rows(discarded)
        _rewrite(discarded, list(dict.fromkeys([*columns, *(old[0] if old else [])])), old + moved)
        _rewrite(path, columns, keep)
    return len(moved)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get(STEP_KEY) or 0)
    except ValueError:
        return 0.0


def _rewrite(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode()))
