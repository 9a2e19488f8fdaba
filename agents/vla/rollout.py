"""Running a VLA policy in an environment: evaluation episodes and DPO's rollouts.

:func:`rollout_episodes` plays one episode per seed, ``parallel`` envs in lockstep so
that each step is one batched policy call, and keeps what the caller asks for: the
observations and action indices (DPO's trajectories), the rendered frames (videos),
always the rewards, success and instruction, as :class:`agents.rollouts.Episode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the ids)
from agents.rollouts import NO_FRAMES, Episode
from agents.vla.model import ActionSpec, VLAPolicy

MAX_STEPS = 2000
"""Safety cap on an episode's length (every vmalign env truncates well before)."""


class _Recording:
    """One episode's steps as they are played."""

    def __init__(self, seed: int, instruction: str, first_frame: np.ndarray | None) -> None:
        self.seed, self.instruction, self.first_frame = seed, instruction, first_frame
        self.rewards: list[float] = []
        self.progress: list[float] = []
        self.success = False
        self.observations: list[np.ndarray] = []
        self.indices: list[np.ndarray] = []
        self.masks: list[np.ndarray | None] = []
        self.frames: list[np.ndarray] = []

    def episode(self) -> Episode:
        has_masks = bool(self.masks) and self.masks[0] is not None
        return Episode(
            frames=np.stack(self.frames) if self.frames else NO_FRAMES,
            env_rewards=np.asarray(self.rewards, np.float32), instruction=self.instruction,
            progress=np.asarray(self.progress, np.float32), success=self.success,
            policy="vla", seed=self.seed,
            observations=np.stack(self.observations) if self.observations else None,
            action_indices=np.stack(self.indices) if self.indices else None,
            action_masks=np.stack(self.masks) if has_masks else None,
            first_frame=self.first_frame)


def rollout_episodes(policy: VLAPolicy, env_id: str, env_kwargs: dict[str, Any],
                     seeds: Sequence[int], deterministic: bool = True, parallel: int = 8,
                     keep_trajectories: bool = False, render: bool = False,
                     generator: torch.Generator | None = None) -> list[Episode]:
    """One episode per seed, in seed order."""
    kwargs = dict(env_kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    environments = [gym.make(env_id, **kwargs) for _ in range(max(1, min(parallel, len(seeds))))]
    spec = ActionSpec.of(environments[0].action_space)
    results: list[Episode] = []
    queue = list(seeds)
    try:
        while queue:
            batch, queue = queue[: len(environments)], queue[len(environments):]
            results += _play(policy, environments[: len(batch)], batch, spec, deterministic,
                             keep_trajectories, render, generator)
    finally:
        for env in environments:
            env.close()
    return results


def _play(policy: VLAPolicy, environments: list[gym.Env], seeds: list[int], spec: ActionSpec,
          deterministic: bool, keep: bool, render: bool,
          generator: torch.Generator | None) -> list[Episode]:
    recordings, observations, infos = [], [], []
    for env, seed in zip(environments, seeds):
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        recordings.append(_Recording(seed, str(info.get("instruction", "")),
                                     env.render() if render else None))
        observations.append(obs)
        infos.append(info)
    alive = list(range(len(environments)))
    was_training = policy.training
    policy.eval()
    try:
        for _ in range(MAX_STEPS):
            if not alive:
                break
            images = np.stack([observations[i] for i in alive])
            texts = [recordings[i].instruction for i in alive]
            masks = [infos[i].get("action_mask") for i in alive]
            mask = np.stack(masks) if spec.kind == "discrete" and masks[0] is not None else None
            with torch.no_grad():
                features = policy.features(policy.preprocess(images), policy.tokenize(texts), texts)
                dist = policy.distribution(features, spec, mask)
                indices = dist.mode() if deterministic else dist.sample(generator)
            actions = dist.to_env(indices)
            indices = indices.cpu().numpy()
            still = []
            for row, i in enumerate(alive):
                recording = recordings[i]
                if keep:
                    recording.observations.append(observations[i])
                    recording.indices.append(indices[row])
                    recording.masks.append(None if mask is None else mask[row])
                obs, reward, terminated, truncated, info = environments[i].step(actions[row])
                recording.rewards.append(float(reward))
                recording.progress.append(float(info.get("progress", np.nan)))
                recording.success = bool(info.get("is_success", False))
                if render:
                    recording.frames.append(environments[i].render())
                observations[i], infos[i] = obs, info
                if not (terminated or truncated):
                    still.append(i)
            alive = still
    finally:
        policy.train(was_training)
    return [recording.episode() for recording in recordings]


def success_rate(episodes: Sequence[Episode]) -> float:
    return float(np.mean([bool(e.success) for e in episodes])) if episodes else float("nan")
