"""Training checkpoints that survive a killed run.

A run folder keeps ``checkpoints/step-<N>/`` (N = steps trained on), for SB3 runs with:

- ``policy.safetensors``: the policy's (actor, critic, CNN) weights;
- ``optimizer.pt``: the Adam state, written by ``torch.save`` and read back with
  ``weights_only=True`` (tensors and numbers only: nothing is unpickled);
- ``reward/``: the learned reward module (``rewards.save``), when there is one;
- ``state.json``: step and update counters, RNG states, and the trainer's own state
  (e.g. the preference loop's label count and next round).

Each trainer decides what goes in the folder (SB3 runs: :mod:`agents.sb3.checkpoint`;
VLA runs: ``policy/`` through :func:`agents.vla.runs.save_checkpoint`); this module
makes it durable and finds it again.

Each checkpoint is written into a temporary folder, fsynced and renamed into place,
and only then named in ``checkpoints/latest``, so a SIGKILL at any moment leaves the
previous checkpoint whole. Old checkpoints are kept (they are the user's).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewards.durable import atomic_write, fsync_folder, read_json_header

CHECKPOINTS = "checkpoints"
LATEST = "latest"
FORMAT = "vmalign-checkpoint"
VERSION = 1


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    folder: Path
    num_timesteps: int
    state: dict[str, Any]
    """Everything in ``state.json``."""

    @property
    def reward_folder(self) -> Path | None:
        folder = self.folder / "reward"
        return folder if folder.is_dir() else None


def write_checkpoint(run_dir: Path, step: int, contents: Any, state: dict[str, Any]) -> Path:
    """The durable part of every checkpoint: ``contents(folder)`` fills a temporary
    folder, ``state.json`` (``state`` plus the step and RNG states) is added, all is
    fsynced and renamed to ``checkpoints/step-<step>``, and only then named in
    ``checkpoints/latest``. Returns the checkpoint's folder."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:010d}"
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    contents(tmp)
    record = {"format": FORMAT, "version": VERSION, "num_timesteps": int(step),
              "rng": rng_state(), **state}
    (tmp / "state.json").write_text(json.dumps(record))
    for path in [*tmp.rglob("*"), tmp]:
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        else:
            fsync_folder(path)
    if final.exists():  # a checkpoint of this very step (e.g. the final one again)
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_folder(root)
    atomic_write(root / LATEST, lambda handle: handle.write(name.encode()))
    fsync_folder(root)
    return final


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint named in ``run_dir/checkpoints/latest``, or None if there is none."""
    folder = _latest_folder(Path(run_dir) / CHECKPOINTS)
    return None if folder is None else read_checkpoint(folder)


def _latest_folder(root: Path) -> Path | None:
    """The checkpoint folder ``root/latest`` names (a pointer file), or None."""
    pointer = root / LATEST
    return root / pointer.read_text().strip() if pointer.is_file() else None


def checkpoint_folder(run_dir: Path, checkpoint: str | os.PathLike[str]) -> Path:
    """The folder ``checkpoint`` names: a path, a name in ``run_dir/checkpoints``, or
    ``latest`` (the checkpoint ``checkpoints/latest`` names).

    :raises FileNotFoundError: none exists; the message lists the run's checkpoints.
    """
    folder = Path(checkpoint)
    if folder.exists():
        return folder
    root = Path(run_dir) / CHECKPOINTS
    if (root / folder).is_dir():
        return root / folder
    latest = _latest_folder(root) if str(checkpoint) == LATEST else None
    if latest is not None:
        return latest
    saved = sorted(p.name for p in root.glob("step-*") if p.is_dir()) if root.is_dir() else []
    raise FileNotFoundError(
        f"no checkpoint {str(checkpoint)!r}: neither a folder nor a name in {root}; "
        + (f"the run has {', '.join(saved)} (or {LATEST})" if saved
           else "the run has no checkpoints yet"))


def read_checkpoint(folder: Path) -> Checkpoint:
    """Reads ``state.json`` of the checkpoint in ``folder`` (weights load later)."""
    folder = Path(folder)
    state_file = folder / "state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} not found: {folder} is not a vmalign checkpoint")
    state = read_json_header(state_file, FORMAT, VERSION, "a vmalign training checkpoint")
    return Checkpoint(folder=folder, num_timesteps=int(state["num_timesteps"]), state=state)


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's global and torch's CPU RNG states as JSON-able values."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
