"""Running a VLA policy in an environment: evaluation episodes and DPO's rollouts.

:func:`rollout_episodes` plays one episode per seed, ``parallel`` envs in lockstep so
that each step is one batched policy call, and keeps what the caller asks for: the
observations and action indices (DPO's trajectories), the rendered frames (videos),
always the rewards, success and instruction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the ids)
from agents.vla.model import ActionSpec, VLAPolicy

MAX_STEPS = 2000
"""Safety cap on an episode's length (every vmalign env truncates well before)."""


@dataclasses.dataclass
class VLAEpisode:
    seed: int
    instruction: str
    rewards: list[float] = dataclasses.field(default_factory=list)
    success: bool = False
    observations: list[np.ndarray] = dataclasses.field(default_factory=list)
    indices: list[np.ndarray] = dataclasses.field(default_factory=list)
    """The action index chosen at each step (bins per dimension, or the action id)."""
    masks: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    frames: list[np.ndarray] = dataclasses.field(default_factory=list)
    """``env.render()`` at reset and after each step (with ``render=True``)."""

    @property
    def ground_truth_return(self) -> float:
        return float(np.sum(self.rewards))

    def __len__(self) -> int:
        return len(self.rewards)


def rollout_episodes(policy: VLAPolicy, env_id: str, env_kwargs: dict[str, Any],
                     seeds: Sequence[int], deterministic: bool = True, parallel: int = 8,
                     keep_trajectories: bool = False, render: bool = False,
                     generator: torch.Generator | None = None) -> list[VLAEpisode]:
    """One episode per seed, in seed order."""
    kwargs = dict(env_kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    environments = [gym.make(env_id, **kwargs) for _ in range(max(1, min(parallel, len(seeds))))]
    spec = ActionSpec.of(environments[0].action_space)
    results: list[VLAEpisode] = []
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
          generator: torch.Generator | None) -> list[VLAEpisode]:
    episodes, observations, infos = [], [], []
    for env, seed in zip(environments, seeds):
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        episodes.append(VLAEpisode(seed=seed, instruction=str(info.get("instruction", ""))))
        if render:
            episodes[-1].frames.append(env.render())
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
            texts = [episodes[i].instruction for i in alive]
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
                episode = episodes[i]
                if keep:
                    episode.observations.append(observations[i])
                    episode.indices.append(indices[row])
                    episode.masks.append(None if mask is None else mask[row])
                obs, reward, terminated, truncated, info = environments[i].step(actions[row])
                episode.rewards.append(float(reward))
                episode.success = bool(info.get("is_success", False))
                if render:
                    episode.frames.append(environments[i].render())
                observations[i], infos[i] = obs, info
                if not (terminated or truncated):
                    still.append(i)
            alive = still
    finally:
        policy.train(was_training)
    return episodes


def success_rate(episodes: Sequence[VLAEpisode]) -> float:
    return float(np.mean([e.success for e in episodes])) if episodes else float("nan")
