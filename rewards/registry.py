"""Reward modules by name: ``rewards.make("clip", alpha=0.5)``.

Swapping the reward of an experiment is changing one name (a config key); a wrong
name or argument gives an error listing the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from rewards.base import RewardModel

_MODULES: dict[str, str] = {
    # name -> "module:Class", imported on first use so `import rewards` stays light.
    "ground_truth": "rewards.ground_truth:GroundTruthReward",
    "clip": "rewards.clip:ClipReward",
    "preference": "rewards.preference:PreferenceReward",
    "rapl": "rewards.rapl:RaplReward",
}
_LOADED: dict[str, type[RewardModel]] = {}

T = TypeVar("T", bound=type[RewardModel])


def register(name: str, target: str | None = None) -> Callable[[T], T]:
    """Class decorator (or, with ``target="module:Class"``, a lazy entry) naming a module."""

    def decorate(cls: T) -> T:
        cls.name = name
        _LOADED[name] = cls
        _MODULES.setdefault(name, f"{cls.__module__}:{cls.__qualname__}")
        return cls

    if target is not None:
        _MODULES[name] = target
    return decorate


def names() -> list[str]:
    """Every registered reward module name."""
    return sorted(_MODULES)


def get(name: str) -> type[RewardModel]:
    """The reward module class registered as ``name``."""
    if name not in _MODULES:
        raise ValueError(f"unknown reward module {name!r}; valid names are {names()}")
    if name not in _LOADED:
        module_name, class_name = _MODULES[name].split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        cls.name = name
        _LOADED[name] = cls
    return _LOADED[name]


def make(name: str, **kwargs: Any) -> RewardModel:
    """Builds the reward module ``name`` with keyword arguments ``kwargs``.

    Raises ``ValueError`` for an unknown name or a wrong argument value, and
    ``TypeError`` for an argument the module does not take, each saying what is valid.
    """
    cls = get(name)
    check_argument_names(cls, kwargs)
    # Each module checks its arguments' values in its __init__ (with rewards.arguments)
    # before it builds anything.
    return cls(**kwargs)


def check_argument_names(cls: type[RewardModel], kwargs: dict[str, Any]) -> None:
    """Raises ``TypeError`` listing ``cls``'s arguments if ``kwargs`` names another."""
    parameters = {
        key: parameter
        for key, parameter in inspect.signature(cls.__init__).parameters.items()
        if key != "self" and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    }
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise TypeError(
            f"reward module {cls.name!r} got unknown argument(s) {unknown}; "
            f"valid ones are {sorted(parameters)}"
        )
