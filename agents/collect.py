"""Record demonstrations into a dataset (what ``vmalign collect`` runs).

Runs the env's scripted expert (or a noisy version of it, ``--policy noisy(0.3)``)
on seeds ``--seed``, ``--seed + 1``, ... and appends each finished episode to a
dataset folder with LeRobot-style keys (``observation.image``, ``action``, ``task``,
``episode_index``, ``frame_index``, ``reward``, ``success``; see
:mod:`agents.dataset`). Each episode is committed durably when it ends, so an
interrupted recording keeps every finished episode; running the same command again
on the same ``--out`` resumes it, skipping the seeds already recorded, until the
folder holds ``--episodes`` episodes.

``--action-label expert`` records, at every step, the expert's action in that state
instead of the action the (noisy) policy took: DART-style demonstrations, whose
states leave the expert's path and whose labels say how to get back, which is what
behaviour cloning needs to recover from its own mistakes in closed loop.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

import envs  # noqa: F401  (registers the ids)
from agents.dataset import DatasetWriter
from agents.rollouts import collect_episode, parse_policy


ACTION_LABELS = ("taken", "expert")


def collect_dataset(env_id: str, episodes: int, out: str, seed: int = 0, policy: str = "expert",
                    env_kwargs: dict[str, Any] | None = None, log: Any = print,
                    action_label: str = "taken") -> dict[str, Any]:
    """Records until ``out`` holds ``episodes`` episodes; returns a summary.

    ``action_label``: ``"taken"`` records the executed action, ``"expert"`` the
    expert's action in each state (DART-style, with a noisy ``policy``)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    parse_policy(policy)
    if action_label not in ACTION_LABELS:
        raise ValueError(f"unknown action label {action_label!r}; use one of {ACTION_LABELS}")
    env_kwargs = dict(env_kwargs or {})
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
