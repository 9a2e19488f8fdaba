"""What a stable-baselines3 checkpoint holds, and loading it back.

``checkpoints/step-N/`` of a PPO or SAC run: ``policy.safetensors`` (actor, critics
and encoder weights; SAC's target critic too), ``optimizer.pt`` (the Adam states,
and SAC's entropy coefficient; tensors only, read back with ``weights_only=True``),
``replay_buffer.npz`` (SAC: every stored transition, :mod:`agents.sb3.replay`),
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
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

import rewards
from agents.checkpoint import Checkpoint, set_rng_state, write_checkpoint
from agents.sb3.replay import load_replay_buffer, save_replay_buffer

REPLAY_FILE = "replay_buffer.npz"


def save_checkpoint(run_dir: Path, model: Any, reward: Any | None,
                    trainer_state: dict[str, Any]) -> Path:
    """Writes a checkpoint of ``model`` (an SB3 PPO or SAC) and ``reward`` (a learned
    reward module, or None) into ``run_dir/checkpoints``; returns its folder."""
    def contents(folder: Path) -> None:
        # save_model stores tensors the policy shares (SB3's actor and critic feature
        # extractors are one module) once.
        save_model(model.policy, str(folder / "policy.safetensors"))
        torch.save(optimizer_state(model), folder / "optimizer.pt")
        if isinstance(model, OffPolicyAlgorithm):
            save_replay_buffer(model.replay_buffer, folder / REPLAY_FILE)
        if reward is not None:
            rewards.save(reward, folder / "reward")

    counters = {"n_updates": int(model._n_updates), "episode_num": int(model._episode_num)}
    return write_checkpoint(run_dir, int(model.num_timesteps), contents,
                            {**counters, "trainer": trainer_state})


def load_policy_weights(checkpoint: Checkpoint, model: Any, optimizer: bool = True) -> None:
    """Loads the checkpoint's policy (and optimiser) state into ``model`` (an SB3
    algorithm built from the same config); a mismatch names the differing tensors."""
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
        load_optimizer_state(model, state)


def optimizer_state(model: BaseAlgorithm) -> dict[str, Any]:
    """The optimisers' states: PPO's one Adam (as always saved), or SAC's actor,
    critic and entropy-coefficient ones with the coefficient itself."""
    if not hasattr(model, "actor"):
        return model.policy.optimizer.state_dict()
    state: dict[str, Any] = {"actor": model.actor.optimizer.state_dict(),
                             "critic": model.critic.optimizer.state_dict()}
    if getattr(model, "ent_coef_optimizer", None) is not None:
        state["ent_coef"] = model.ent_coef_optimizer.state_dict()
        state["log_ent_coef"] = model.log_ent_coef.detach().cpu()
    return state


def load_optimizer_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    if not hasattr(model, "actor"):
        model.policy.optimizer.load_state_dict(state)
        return
    model.actor.optimizer.load_state_dict(state["actor"])
    model.critic.optimizer.load_state_dict(state["critic"])
    if "ent_coef" in state:
        model.ent_coef_optimizer.load_state_dict(state["ent_coef"])
        with torch.no_grad():
            model.log_ent_coef.copy_(state["log_ent_coef"].to(model.log_ent_coef.device))


def load_replay(checkpoint: Checkpoint, model: OffPolicyAlgorithm) -> None:
    """Refills ``model``'s replay buffer from the checkpoint."""
    path = checkpoint.folder / REPLAY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the checkpoint holds no replay buffer")
    load_replay_buffer(model.replay_buffer, path)


def restore_counters(checkpoint: Checkpoint, model: Any) -> None:
    """Sets the step, update and episode counters and the RNG states from a checkpoint."""
    model.num_timesteps = checkpoint.num_timesteps
    model._n_updates = int(checkpoint.state["n_updates"])
    model._episode_num = int(checkpoint.state["episode_num"])
    set_rng_state(checkpoint.state["rng"])
