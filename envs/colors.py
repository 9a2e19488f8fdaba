"""Named colours every environment draws objects from; instructions use the names."""

from __future__ import annotations

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.13, 0.13),
    "green": (0.15, 0.7, 0.22),
    "blue": (0.13, 0.32, 0.88),
    "yellow": (0.93, 0.82, 0.1),
    "purple": (0.56, 0.22, 0.74),
    "orange": (0.97, 0.5, 0.08),
    "cyan": (0.1, 0.78, 0.82),
    "pink": (0.96, 0.45, 0.7),
}
"""RGB in [0, 1] by name. Distinct enough to tell apart at 64x64."""
