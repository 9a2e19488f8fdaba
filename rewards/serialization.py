"""Saving and loading reward modules: safetensors weights plus a JSON config.

A saved module is a folder::

    config.json          {"format": "vmalign-reward", "version": 1, "module": NAME, "config": {...}}
    weights.safetensors  the learned tensors (absent for modules without any)

Nothing is ever unpickled. Files are written to temporary names and renamed, so a
save killed halfway leaves any earlier save intact. A corrupt or truncated file,
weights made for another architecture, or weights holding NaN or inf (a module saved
after training diverged) give a ``ValueError`` that says which.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rewards.base import RewardModel
from rewards.durable import atomic_write, fsync_folder, read_json_header
from rewards.registry import check_argument_names, get

FORMAT = "vmalign-reward"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


def save(module: RewardModel, path: str | os.PathLike[str]) -> Path:
    """Writes ``module`` to the folder ``path`` (created if needed); returns it."""
    from safetensors.torch import save as tensors_to_bytes

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in module.tensors().items()}
    if tensors:
        data = tensors_to_bytes(tensors)
        atomic_write(folder / WEIGHTS_FILE, lambda handle: handle.write(data))
    header = {"format": FORMAT, "version": VERSION, "module": module.name,
              "config": module.config()}
    text = json.dumps(header, indent=2, sort_keys=True)
    atomic_write(folder / CONFIG_FILE, lambda handle: handle.write(text.encode()))
    fsync_folder(folder)
    return folder


def load(path: str | os.PathLike[str], **overrides: Any) -> RewardModel:
    """Rebuilds the module saved in the folder ``path``.

    ``overrides`` replace saved constructor arguments that do not change the
    architecture (e.g. ``device="cpu"``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: {folder} is not a saved reward module")
    header = read_json_header(config_path, FORMAT, VERSION, "a vmalign reward module config")
    cls = get(header["module"])
    check_argument_names(cls, overrides)
    module = cls(**{**header.get("config", {}), **overrides})
    weights = folder / WEIGHTS_FILE
    if module.tensors():
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found; the module has learned weights")
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as error:
            raise ValueError(f"{weights} is corrupt or truncated: {error}") from error
        check_finite_tensors(tensors, folder)
        module.load_tensors(tensors)
    return module


def check_finite_tensors(tensors: dict[str, Any], folder: Path) -> None:
    """Raises ``ValueError`` naming the tensors of ``folder`` that hold NaN or inf.

    Such a module scores NaN, and nothing notices until PPO fails far away with
    torch's "Expected parameter loc of distribution Normal" error, which never names
    the reward; refusing here names the culprit.
    """
    import torch

    bad = []
    for key, value in tensors.items():
        if value.is_floating_point() or value.is_complex():  # integers are always finite
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad.append(f"{key} ({count} of {value.numel()} values)")
    if bad:
        listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(
            f"the reward module saved in {folder} is unusable: its weights hold NaN or inf in "
            f"{len(bad)} tensor(s): {listed}. It was most likely saved after training "
            f"diverged; retrain it (e.g. with a lower learning rate) or load an earlier save"
        )
