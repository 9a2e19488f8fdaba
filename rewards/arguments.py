"""Checks for reward-module constructor arguments, shared by every module.

Each module's ``__init__`` checks all its arguments with these before it builds or
loads anything, so a wrong value fails at once with a ``ValueError`` that names the
argument, the value and what is allowed, instead of deep inside torch (or, worse,
not at all: ``int(2.5)`` silently becomes 2 and ``True`` passes as 1).

Values from JSON/YAML configs and ``--reward-arg KEY=VALUE`` arrive as Python
``int``, ``float``, ``str``, ``bool``, ``list`` and ``None``; numpy scalars are
accepted too. Integers must be integers: ``2.0`` is refused rather than guessed at.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any


def integer(name: str, value: Any, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as an ``int`` in [``minimum``, ``maximum``] (bounds optional)."""
    # bool is an int subclass, but True for a size is a mistake, never a 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{_bounds(minimum, maximum)}, "
                         f"got {value!r} ({type(value).__name__})")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{_bounds(minimum, maximum)}, got {value!r}")
    return int(value)


def optional_integer(name: str, value: Any, minimum: int | None = None) -> int | None:
    """``None``, or ``value`` as an ``int`` >= ``minimum``."""
    if value is None:
        return None
    try:
        return integer(name, value, minimum)
    except ValueError:
        raise ValueError(f"{name} must be None or an integer{_bounds(minimum, None)}, "
                         f"got {value!r}") from None


def number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
           *, exclusive_minimum: bool = False) -> float:
    """``value`` as a finite ``float`` in [``minimum``, ``maximum``] (or above
    ``minimum`` with ``exclusive_minimum``). Strings are refused: configs and
    ``--reward-arg`` already read numbers as numbers, so ``"0.5"`` is a quoting mistake."""
    if minimum is not None and maximum is not None:
        allowed = f"a finite number in {'(' if exclusive_minimum else '['}{minimum:g}, {maximum:g}]"
    elif minimum is not None:
        allowed = f"a finite number {'>' if exclusive_minimum else '>='} {minimum:g}"
    else:
        allowed = "a finite number" + ("" if maximum is None else f" <= {maximum:g}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    result = float(value)
    too_low = minimum is not None and (result <= minimum if exclusive_minimum
                                       else result < minimum)
    if not math.isfinite(result) or too_low or (maximum is not None and result > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return result


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value``, which must be one of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def integers(name: str, value: Any, minimum: int = 1) -> list[int]:
    """``value`` as a non-empty list of integers >= ``minimum`` (a list or tuple)."""
    # A string is a sequence too: "48" must not become [4, 8].
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of integers >= {minimum}, "
                         f"got {value!r}")
    try:
        return [integer(name, item, minimum) for item in value]
    except ValueError:
        raise ValueError(f"{name} must be a non-empty list of integers >= {minimum}, "
                         f"got {value!r}") from None


def boolean(name: str, value: Any) -> bool:
    """``value``, which must be ``True`` or ``False`` (``"no"`` would be truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def text(name: str, value: Any) -> str:
    """``value``, which must be a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r} "
                         f"({type(value).__name__})")
    return value


def optional_text(name: str, value: Any) -> str | None:
    """``None`` or a string."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None, got {value!r} "
                         f"({type(value).__name__})")
    return value


def optional_path(name: str, value: Any) -> str | os.PathLike[str] | None:
    """``None`` or a file-system path (a string or ``os.PathLike``)."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (a string) or None, got {value!r} "
                         f"({type(value).__name__})")
    return value


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return "" if maximum is None else f" <= {maximum}"
