"""Shared by the labelling tests: a run folder with a round of pairs pending."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.labelling.pending import PendingQueue
from rewards.preference_store import PreferenceStore

TOKEN = "test-token-0123456789abcdef"


def segments(count: int, steps: int = 4, size: int = 8, offset: int = 0):
    """Pairs whose pixels encode their number (segment a: n, segment b: n + 100)."""
    numbers = np.arange(offset, offset + count)
    frames_a = np.zeros((count, steps, size, size, 3), np.uint8)
    frames_b = np.zeros_like(frames_a)
    frames_a[:] = numbers[:, None, None, None, None]
    frames_b[:] = numbers[:, None, None, None, None] + 100
    frames_a[:, :, 0, 0, 1] = np.arange(steps)  # every frame of a segment differs
    return frames_a, frames_b


def posted_queue(run: Path, count: int = 5, meta: dict | None = None) -> PendingQueue:
    """A run folder whose queue has one open round of ``count`` pairs."""
    queue = PendingQueue(PreferenceStore(run / "preferences"))
    frames_a, frames_b = segments(count)
    queue.post(frames_a, frames_b, [f"reach the red ball {i}" for i in range(count)],
               meta={"round": 0, "step": 100, **(meta or {})})
    return queue
