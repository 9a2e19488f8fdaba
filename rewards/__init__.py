"""Reward modules that score pixels.

This package may use ``envs`` for types and data but never imports ``agents``:
agents depend on rewards, not the other way round.
"""

from __future__ import annotations

from rewards.device import get_device

__all__ = ["get_device"]
