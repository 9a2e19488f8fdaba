"""Labelled segment pairs with a known answer, for the preference tests."""

from __future__ import annotations

import numpy as np

from rewards.preference_store import PreferencePairs


def brightness_pairs(count: int, seed: int, steps: int = 2, size: int = 8) -> PreferencePairs:
    """Uniform-grey segments; the brighter segment is preferred."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 256, size=(count, 2))
    frames = np.broadcast_to(levels[:, :, None, None, None, None].astype(np.uint8),
                             (count, 2, steps, size, size, 3)).copy()
    labels = (levels[:, 0] > levels[:, 1]).astype(np.float32)
    return PreferencePairs(frames[:, 0], frames[:, 1], labels, ["oracle"] * count)
