"""Small argument parsers shared by the commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def parse_key_values(pairs: Sequence[str], what: str = "reward argument") -> dict[str, Any]:
    """``["alpha=0.5", "model=ViT-B-32"]`` -> kwargs; values are read as JSON when they
    parse (numbers, true/false, lists), else kept as strings. ``what`` names the
    option in the error for a malformed pair."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {pair!r} is not KEY=VALUE")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs
