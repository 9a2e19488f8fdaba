"""Input checks shared by every environment: actions and constructor arguments."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from gymnasium import spaces


def check_box_action(action: Any, space: spaces.Box) -> np.ndarray:
    """Returns ``action`` as a float array of the space's shape, clipped to its bounds.

    Raises ``ValueError`` naming the expected space when the action has the wrong
    shape, is not real-valued (strings, booleans, complex numbers, objects), or
    holds NaN or infinity. In-shape finite values outside the bounds are clipped,
    as documented by every environment that uses this.
    """
    try:
        array = np.asarray(action)
    except Exception as error:  # ragged lists and the like
        raise ValueError(f"action {action!r} is not an array; expected {space}") from error
    if array.dtype.kind not in "fiu":
        raise ValueError(
            f"action has dtype {array.dtype}; expected real numbers for {space}"
        )
    if array.shape != space.shape:
        raise ValueError(f"action has shape {array.shape}; expected {space}")
    array = array.astype(space.dtype, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"action {array.tolist()} holds NaN or infinity; expected {space}")
    return np.clip(array, space.low, space.high)


def check_discrete_action(action: Any, space: spaces.Discrete) -> int:
    """Returns ``action`` as a Python int in ``space``; raises ``ValueError`` otherwise."""
    array = np.asarray(action)
    if array.shape != () or array.dtype.kind not in "iu":
        raise ValueError(f"action {action!r} is not an integer; expected {space}")
    value = int(array)
    if not space.contains(value):
        raise ValueError(f"action {value} is out of range; expected {space}")
    return value


def reject_unknown_kwargs(cls: type, unknown: dict[str, Any]) -> None:
    """Raises ``TypeError`` listing the valid keyword arguments of ``cls``."""
    if not unknown:
        return
    valid: set[str] = set()
    for klass in cls.__mro__:  # a subclass adds its own arguments to its bases'
        if "__init__" in vars(klass) and klass is not object:
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                    valid.add(name)
    valid.discard("self")
    raise TypeError(
        f"{cls.__name__} got unknown keyword argument(s) {sorted(unknown)}; "
        f"valid ones are {sorted(valid)}"
    )


def check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def check_bool(name: str, value: Any) -> bool:
    """Returns ``value`` if it is a bool; else ``ValueError`` (so ``"false"`` from a
    config or command line is refused instead of being read as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_int_range(name: str, value: Any, low: int, high: int) -> int:
    """Returns ``value`` as int if it is an integer in [low, high]; else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def check_cameras(name: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Returns ``value`` as a tuple of camera names: one name, or a list of distinct
    names (views rendered side by side); else ``ValueError`` naming what is allowed."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"{name}={value!r} is not allowed; give one of {list(allowed)} "
                         "or a list of them")
    for camera in names:
        check_choice(name, camera, allowed)
    if len(set(names)) != len(names):
        raise ValueError(f"{name}={value!r} names a camera twice")
    return tuple(names)
