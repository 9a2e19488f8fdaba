"""Task progress in [0, 1], the measure learned rewards are judged against."""

from __future__ import annotations

import numpy as np


def progress_toward(distance: float, start: float, threshold: float) -> float:
    """Linear progress from ``start`` distance (0) down to the success ``threshold`` (1)."""
    if start <= threshold:
        return 1.0 if distance <= threshold else 0.0
    return float(np.clip((start - distance) / (start - threshold), 0.0, 1.0))
