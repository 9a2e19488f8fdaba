"""SAC's replay buffer for learned rewards: frames kept for relabelling, a
state-entropy bonus for pre-training, and a checkpoint format that is not pickle.

PEBBLE (Lee et al., 2021) makes off-policy RL work with a reward that keeps
changing: every time the reward model is refit, every reward in the replay buffer is
recomputed (:meth:`FrameReplayBuffer.relabel`), so the critic never learns from
rewards the current model would not give. Recomputing needs what the reward scores,
so each transition also keeps its reward-view frame (uint8, at the reward's
resolution: 12 KiB a transition at 64 px, 1.2 GB per 100,000) and its instruction.

Before the first queries PEBBLE explores without any reward: for ``pretrain_steps``
the critic learns from a state-entropy bonus instead, the distance from each sampled
next state to its k-th nearest neighbour among the buffer's states (a particle
estimate of the state distribution's entropy), scaled by a running standard
deviation (:meth:`FrameReplayBuffer.enable_entropy_bonus`). The first preference
queries then compare diverse behaviour rather than a random policy's jitter.

:func:`save_replay_buffer` / :func:`load_replay_buffer` write the filled part of any
SB3 ``ReplayBuffer`` to an ``.npz`` read back with ``allow_pickle=False``, so a
resumed run continues with the same transitions (SB3's own ``save_replay_buffer``
pickles the whole object).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from agents.sb3.reward_wrappers import score_in_batches
from rewards.base import RewardModel

ENTROPY_NEIGHBOURS = 5
"""k of the k-nearest-neighbour entropy estimate (PEBBLE's value)."""
ENTROPY_REFERENCE = 4096
"""Buffer states each sampled state is compared with (a uniform sample of them)."""


class FrameReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` plus, per transition, the reward-view frame and the
    instruction (when ``frame_shape`` is given), and an optional entropy bonus.

    :param frames: returns the frames of the step being added, one per env (the
        reward layer's ``last_frames``).
    :param frame_shape: ``(H, W, 3)`` of those frames; None keeps no frames.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space,
                 action_space: spaces.Space, device: torch.device | str = "auto",
                 n_envs: int = 1, optimize_memory_usage: bool = False,
                 handle_timeout_termination: bool = True,
                 frames: Callable[[], np.ndarray | None] | None = None,
                 frame_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, n_envs,
                         optimize_memory_usage, handle_timeout_termination)
        self.frame_source = frames
        self.frames = (np.zeros((self.buffer_size, n_envs, *frame_shape), np.uint8)
                       if frame_shape is not None else None)
        self.instruction_ids = np.zeros((self.buffer_size, n_envs), np.int32)
        self.instructions: list[str] = []
        self._entropy_scale: RunningMeanStd | None = None

    # -- filling ----------------------------------------------------------------------

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray,
            reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        if self.frames is not None:
            frames = self.frame_source() if self.frame_source is not None else None
            if frames is None:
                raise RuntimeError("FrameReplayBuffer keeps frames but its source gave none "
                                   "(build the vector env with keep_frames=True)")
            self.frames[self.pos] = frames
            self.instruction_ids[self.pos] = [self._instruction_id(str(i.get("instruction", "")))
                                              for i in infos]
        super().add(obs, next_obs, action, reward, done, infos)

    def _instruction_id(self, instruction: str) -> int:
        try:
            return self.instructions.index(instruction)
        except ValueError:
            self.instructions.append(instruction)
            return len(self.instructions) - 1

    def filled(self) -> int:
        """Rows of the buffer that hold transitions."""
        return self.buffer_size if self.full else self.pos

    # -- PEBBLE -------------------------------------------------------------------------

    def relabel(self, reward: RewardModel) -> int:
        """Recomputes every stored reward with ``reward`` from its frame; returns how
        many transitions were relabelled."""
        if self.frames is None:
            raise RuntimeError("this replay buffer keeps no frames to relabel from")
        rows = self.filled()
        frames = self.frames[:rows].reshape(-1, *self.frames.shape[2:])
        ids = self.instruction_ids[:rows].reshape(-1)
        texts = [self.instructions[i] for i in ids] if self.instructions else [""] * len(ids)
        scores = score_in_batches(reward, frames, texts, np.zeros(len(frames), np.float32))
        self.rewards[:rows] = scores.reshape(rows, self.n_envs)
        return len(frames)

    def enable_entropy_bonus(self, enabled: bool) -> None:
        """While enabled, sampled rewards are the state-entropy bonus (pre-training)."""
        if enabled and len(self.obs_shape) != 1:
            raise ValueError("the state-entropy bonus (pretrain_steps) needs flat state "
                             f"observations; this buffer holds observations of shape "
                             f"{self.obs_shape} (use env_kwargs obs_mode: state)")
        self._entropy_scale = RunningMeanStd(shape=()) if enabled else None

    @property
    def entropy_bonus(self) -> bool:
        return self._entropy_scale is not None

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None
                     ) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        if self._entropy_scale is None:
            return samples
        bonus = self.state_entropy(samples.next_observations)
        self._entropy_scale.update(bonus.detach().cpu().numpy())
        bonus = bonus / float(np.sqrt(self._entropy_scale.var) + 1e-8)
        return samples._replace(rewards=bonus.reshape(-1, 1))

    def state_entropy(self, states: torch.Tensor) -> torch.Tensor:
        """Each state's distance to its k-th nearest neighbour among (a sample of) the
        buffer's states: large where states are rare."""
        rows = self.filled()
        reference = self.observations[:rows].reshape(-1, *self.obs_shape)
        if len(reference) > ENTROPY_REFERENCE:
            reference = reference[np.random.randint(0, len(reference), ENTROPY_REFERENCE)]
        reference_t = torch.as_tensor(reference, dtype=torch.float32, device=states.device)
        distances = torch.cdist(states.float(), reference_t)
        k = min(ENTROPY_NEIGHBOURS, distances.shape[1] - 1)
        return distances.kthvalue(k + 1, dim=1).values  # +1: a state is its own neighbour


# -- checkpoints ---------------------------------------------------------------------------

_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    """The filled rows of ``buffer`` (and its frames and instructions) as an ``.npz``."""
    rows = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:rows] for name in _ARRAYS
              if getattr(buffer, name, None) is not None}
    if isinstance(buffer, FrameReplayBuffer):
        if buffer.frames is not None:
            arrays["frames"] = buffer.frames[:rows]
        arrays["instruction_ids"] = buffer.instruction_ids[:rows]
        arrays["instructions"] = np.array(buffer.instructions, dtype=str)
    arrays["position"] = np.array([buffer.pos, int(buffer.full), buffer.buffer_size])
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    """Fills ``buffer`` (built by a run with the same config) from :func:`save_replay_buffer`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is corrupt or truncated (or not a replay buffer): "
                         f"{error}") from error
    if "position" not in arrays:
        raise ValueError(f"{path} is not a vmalign replay buffer (no 'position' array)")
    pos, full, size = (int(v) for v in arrays["position"])
    if size != buffer.buffer_size:
        raise ValueError(f"{path} holds a buffer of {size} rows; this run's has "
                         f"{buffer.buffer_size}")
    for name in _ARRAYS:
        if name in arrays and getattr(buffer, name, None) is not None:
            getattr(buffer, name)[:len(arrays[name])] = arrays[name]
    if isinstance(buffer, FrameReplayBuffer):
        if buffer.frames is not None and "frames" in arrays:
            buffer.frames[:len(arrays["frames"])] = arrays["frames"]
        if "instruction_ids" in arrays:
            buffer.instruction_ids[:len(arrays["instruction_ids"])] = arrays["instruction_ids"]
            buffer.instructions = [str(text) for text in arrays["instructions"]]
    buffer.pos, buffer.full = pos, bool(full)
