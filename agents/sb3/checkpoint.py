"""What a stable-baselines3 PPO checkpoint holds, and loading it back.

``checkpoints/step-N/`` of a PPO run: ``policy.safetensors`` (actor, critic and CNN
weights), ``optimizer.pt`` (Adam state, read back with ``weights_only=True``),
``reward/`` (the learned reward module, when there is one) and ``state.json``
(counters, RNG states, the trainer's own state). Durability and lookup are
:mod:`agents.checkpoint`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

import rewards
from agents.checkpoint import Checkpoint, set_rng_state, write_checkpoint


def save_checkpoint(run_dir: Path, model: Any, reward: Any | None,
                    trainer_state: dict[str, Any]) -> Path:
    """Writes a checkpoint of ``model`` (an SB3 PPO) and ``reward`` (a learned reward
    module, or None) into ``run_dir/checkpoints``; returns its folder."""
    def contents(folder: Path) -> None:
        # save_model stores tensors the policy shares (SB3's actor and critic feature
        # extractors are one module) once.
        save_model(model.policy, str(folder / "policy.safetensors"))
        torch.save(model.policy.optimizer.state_dict(), folder / "optimizer.pt")
        if reward is not None:
            rewards.save(reward, folder / "reward")

    counters = {"n_updates": int(model._n_updates), "episode_num": int(model._episode_num)}
    return write_checkpoint(run_dir, int(model.num_timesteps), contents,
                            {**counters, "trainer": trainer_state})


def load_policy_weights(checkpoint: Checkpoint, model: Any, optimizer: bool = True) -> None:
    """Loads the checkpoint's policy (and optimizer) state into ``model`` (an SB3 PPO
    built from the same config); a mismatch names the differing tensors."""
    weights = checkpoint.folder / "policy.safetensors"
    try:
        load_model(model.policy, str(weights), strict=True, device=str(model.device))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{weights} is corrupt or truncated: {error}") from error
    except RuntimeError as error:  # missing, unexpected or reshaped tensors
        raise ValueError(f"{weights} was made for another policy than this config builds: "
                         f"{str(error)[:400]}") from error
    if optimizer:
        path = checkpoint.folder / "optimizer.pt"
        try:
            state = torch.load(path, map_location=model.device, weights_only=True)
        except Exception as error:  # torch raises several types for a bad file
            raise ValueError(f"{path} is corrupt or truncated: {error}") from error
        model.policy.optimizer.load_state_dict(state)


def restore_counters(checkpoint: Checkpoint, model: Any) -> None:
    """Sets the step, update and episode counters and the RNG states from a checkpoint."""
    model.num_timesteps = checkpoint.num_timesteps
    model._n_updates = int(checkpoint.state["n_updates"])
    model._episode_num = int(checkpoint.state["episode_num"])
    set_rng_state(checkpoint.state["rng"])
