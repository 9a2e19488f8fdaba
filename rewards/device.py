"""Choosing the torch device that reward models and agents run on.

It lives in ``rewards`` because both ``rewards`` and ``agents`` need it and
``rewards`` must never import ``agents``.
"""

from __future__ import annotations

import os

import torch

DEVICE_ENV_VAR = "VMALIGN_DEVICE"
"""Environment variable that picks the device when no argument is given."""

_DEVICE_TYPES = ("cpu", "cuda", "mps")
_ALLOWED = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Returns the torch device to use, validated against this machine.

    Resolution order: the ``device`` argument, else the ``VMALIGN_DEVICE``
    environment variable, else ``cuda`` when available and ``cpu`` otherwise.
    ``"auto"`` (or an empty environment variable) means that last default.

    :param device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, a
        :class:`torch.device`, or ``None`` to consult the environment.
    :raises ValueError: the device is not one of the allowed kinds, or it is not
        available here (e.g. ``"cuda"`` on a machine without CUDA).
    """
    if device is not None:
        source = "device argument"
        requested: str | torch.device = device
    elif os.environ.get(DEVICE_ENV_VAR, "").strip():
        source = f"{DEVICE_ENV_VAR} environment variable"
        requested = os.environ[DEVICE_ENV_VAR].strip()
    else:
        return _default_device()

    if isinstance(requested, str) and requested.strip().lower() == "auto":
        return _default_device()
    spec = requested.strip().lower() if isinstance(requested, str) else requested
    try:
        resolved = torch.device(spec)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"unknown device {requested!r} (from the {source}); allowed: {_ALLOWED}"
        ) from error
    if resolved.type not in _DEVICE_TYPES:
        raise ValueError(
            f"unsupported device {requested!r} (from the {source}); allowed: {_ALLOWED}"
        )
    _check_available(resolved, requested, source)
    return resolved


def _default_device() -> torch.device:
    """CUDA when this machine has it, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_available(resolved: torch.device, requested: str | torch.device, source: str) -> None:
    """Raises ``ValueError`` if ``resolved`` cannot be used on this machine."""
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {requested!r} (from the {source}) asks for CUDA, but CUDA is not "
                f"available on this machine; available: {_available()}"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(
                f"device {requested!r} (from the {source}) does not exist: this machine has "
                f"{count} CUDA device(s); available: {_available()}"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {requested!r} (from the {source}) asks for Apple MPS, which is not "
            f"available on this machine; available: {_available()}"
        )


def _available() -> str:
    """Human-readable list of the devices this machine can use."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return ", ".join(names)
