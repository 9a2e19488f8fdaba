"""Recording scripted episodes into a dataset, resumably (``vmalign collect``).

:func:`collect_dataset` plays the env's expert (or a noisy version of it) on
consecutive seeds and appends each finished episode to a
:class:`agents.dataset.DatasetWriter` folder, committed when the episode ends; a
second call on the same folder skips the seeds already there. With
``action_label="expert"`` each step is labelled with the clean expert's action
(DART-style data).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

import envs  # noqa: F401  (registers the ids)
from agents.dataset import DatasetWriter
from agents.rollouts import check_policies, collect_episode


ACTION_LABELS = ("taken", "expert")


def collect_dataset(env_id: str, episodes: int, out: str, seed: int = 0, policy: str = "expert",
                    env_kwargs: dict[str, Any] | None = None, log: Any = print,
                    action_label: str = "taken") -> dict[str, Any]:
    """Records until ``out`` holds ``episodes`` episodes; returns a summary.

    ``action_label``: ``"taken"`` records the executed action, ``"expert"`` the
    expert's action in each state (DART-style, with a noisy ``policy``)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if action_label not in ACTION_LABELS:
        raise ValueError(f"unknown action label {action_label!r}; use one of {ACTION_LABELS}")
    env_kwargs = dict(env_kwargs or {})
    check_policies(env_id, [policy], env_kwargs)
    env = gym.make(env_id, **env_kwargs)
    try:
        obs, _ = env.reset(seed=seed)
        action_space = env.action_space
        features = {"observation.image": ("uint8", obs.shape),
                    "action": (str(action_space.dtype), action_space.shape)}
        meta = {"env": env_id, "env_kwargs": env_kwargs, "policy": policy,
                "fps": env.metadata.get("render_fps"),
                "action_space": repr(action_space), "action_label": action_label}
        writer = DatasetWriter(out, features, meta)
        done_before = len(writer)
        recorded = writer.seeds
        started = time.perf_counter()
        next_seed, successes = seed, 0
        while len(writer) < episodes:
            if next_seed in recorded:
                next_seed += 1
                continue
            episode = collect_episode(env, policy, next_seed, keep_observations=True,
                                      render=False,
                                      record_expert_actions=action_label == "expert")
            writer.add_episode(episode.observations, episode.actions, episode.env_rewards,
                               episode.step_success, episode.instruction, next_seed)
            successes += episode.success
            next_seed += 1
            if len(writer) % 10 == 0 or len(writer) == episodes:
                log(f"  {len(writer)}/{episodes} episodes")
    finally:
        env.close()
    new = len(writer) - done_before
    frames = sum(record["length"] for record in writer.episodes)
    return {"episodes": len(writer), "new_episodes": new, "frames": frames,
            "success_rate_new": successes / new if new else None,
            "seconds": round(time.perf_counter() - started, 1)}
