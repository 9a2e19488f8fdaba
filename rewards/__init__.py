"""Reward modules that score pixels.

``rewards.make(name, **kwargs)`` builds a module by name; every module maps a batch of
frames and their instructions to one reward each (see :mod:`rewards.base`).
``rewards.save`` / ``rewards.load`` store modules as safetensors plus JSON.

This package scores arrays of pixels and trajectories: it never imports ``envs`` or
``agents`` (agents depend on rewards, not the other way round).
"""

from __future__ import annotations

from rewards.base import RewardModel
from rewards.device import get_device
from rewards.registry import get, make, names, register
from rewards.serialization import load, save

__all__ = ["RewardModel", "get", "get_device", "load", "make", "names", "register", "save"]
