"""Seeded rollouts of an environment under expert, random and noisy-expert policies.

The raw material for judging a reward before RL (``vmalign reward-eval``) and for
training learned rewards (``vmalign reward-train``): every episode keeps the frames
a reward model would see (``env.render()``, the reward-model view), the
environment's reward, ``info["progress"]`` and success, step by step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)
from envs.experts import decoy_policy, expert_policy

_NOISY = re.compile(r"^noisy(?:\(([0-9.]+)\))?$")
POLICY_HELP = ("expert, random, noisy(P): the expert with each action random with probability "
               "P, or decoy: the env's scripted decoy (Sweep: the lowered tool parked away "
               "from the debris)")


@dataclasses.dataclass
class Episode:
    """One recorded episode (or a stretch of one); arrays are indexed by step.

    The one episode record of ``agents``: scripted rollouts (this module), the online
    preference loop's recent steps, evaluation episodes and the VLA's rollouts all
    fill it, and :mod:`rewards.query` and the teachers read it. Fields a recorder
    does not keep stay None."""

    frames: np.ndarray
    """uint8 (T, H, W, 3): ``env.render()`` (or the observation) after each step;
    empty (0, 1, 1, 3) when frames were not recorded."""
    env_rewards: np.ndarray
    """float32 (T,): the environment's (ground-truth) reward."""
    instruction: str = ""
    progress: np.ndarray | None = None
    """float32 (T,): ``info["progress"]`` after each step (NaN where not reported)."""
    success: bool | None = None
    """``info["is_success"]`` at the last step (None where the env does not say)."""
    policy: str = ""
    """The policy that played it (``expert``, ``noisy(0.3)``, ``random``, ``vla``...)."""
    seed: int | None = None
    step_success: np.ndarray | None = None
    """bool (T,): ``info["is_success"]`` after each step."""
    actions: np.ndarray | None = None
    """The action taken at each step (the env's dtype), kept by ``keep_observations``."""
    observations: np.ndarray | None = None
    """The observation each action was chosen on (before the step), kept by
    ``keep_observations``."""
    action_indices: np.ndarray | None = None
    """A VLA policy's action bins (per dimension) or action ids, one row per step."""
    action_masks: np.ndarray | None = None
    """bool (T, n): the legal actions of a discrete env at each step."""
    first_frame: np.ndarray | None = None
    """The frame at reset, before the first step (kept for videos)."""
    done: bool = True
    """False when the recording stopped before the episode ended (a step cap)."""

    def __len__(self) -> int:
        return len(self.env_rewards)

    @property
    def ground_truth_return(self) -> float:
        return float(np.sum(self.env_rewards))

    @property
    def final_progress(self) -> float | None:
        """``info["progress"]`` after the last step: partial success (e.g. Sweep's
        share of the debris moved, X-Magical's score); None where not reported."""
        if self.progress is None or len(self.progress) == 0:
            return None
        last = float(self.progress[-1])
        return None if np.isnan(last) else last

    def video_frames(self) -> list[np.ndarray]:
        """The reset frame (if kept) and every step's frame, for a video."""
        first = [] if self.first_frame is None else [self.first_frame]
        return first + list(self.frames)


def mean_final_progress(episodes: Sequence[Episode]) -> float | None:
    """The mean of the episodes' :attr:`Episode.final_progress` (those that report
    one), rounded for ``eval.json``; None when none does."""
    progress = [e.final_progress for e in episodes if e.final_progress is not None]
    return round(float(np.mean(progress)), 4) if progress else None


NO_FRAMES = np.zeros((0, 1, 1, 3), np.uint8)
"""``Episode.frames`` of an episode recorded without frames."""


def parse_policy(name: str) -> tuple[str, float]:
    """The scripted policy a policy name plays (``"expert"`` or ``"decoy"``) and its
    probability of a random action instead (expert 0, random 1)."""
    if name in ("expert", "decoy"):
        return name, 0.0
    if name == "random":
        return "expert", 1.0
    match = _NOISY.match(name)
    if match:
        probability = float(match.group(1) or 0.3)
        if 0.0 <= probability <= 1.0:
            return "expert", probability
    raise ValueError(f"unknown policy {name!r}; use {POLICY_HELP}")


def check_policies(env_id: str, policies: Sequence[str],
                   env_kwargs: dict[str, Any] | None = None) -> None:
    """Before any rollout: ``ValueError`` for a policy name ``parse_policy`` rejects,
    ``TypeError`` for ``decoy`` on an env without a scripted decoy (made, without
    rendering, only to ask)."""
    if not any(parse_policy(policy)[0] == "decoy" for policy in policies):
        return
    env = gym.make(env_id, **(env_kwargs or {}))
    try:
        decoy_policy(env)
    finally:
        env.close()


def collect_episode(env: gym.Env, policy: str, seed: int, keep_observations: bool = False,
                    render: bool = True, record_expert_actions: bool = False) -> Episode:
    """Runs one episode of ``policy`` in ``env`` (made with ``render_mode="rgb_array"``
    unless ``render=False``, which records no frames: ``frames`` is then empty).

    ``keep_observations`` also records each step's observation and action (what a
    demonstration dataset stores). With ``record_expert_actions`` the action recorded
    is the expert's choice in that state, whatever the policy executed (DART-style
    data: a noisy policy visits states off the expert's path, each labelled with how
    the expert would recover)."""
    scripted, random_probability = parse_policy(policy)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    expert = expert_policy(env)
    chosen = decoy_policy(env) if scripted == "decoy" else expert
    obs, info = env.reset(seed=seed)
    frames, env_rewards, progress, actions, observations, successes = [], [], [], [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        # The expert is asked only when its action is used (it reads the live state).
        label = expert(obs) if record_expert_actions else None
        if rng.random() < random_probability:
            action = env.action_space.sample()
        else:
            action = label if label is not None and chosen is expert else chosen(obs)
        if keep_observations:
            observations.append(obs)
            actions.append(label if record_expert_actions else action)
        obs, reward, terminated, truncated, info = env.step(action)
        if render:
            frames.append(env.render())
        env_rewards.append(reward)
        progress.append(info.get("progress", np.nan))
        successes.append(bool(info.get("is_success", False)))
    return Episode(
        frames=np.stack(frames) if frames else NO_FRAMES,
        env_rewards=np.asarray(env_rewards, np.float32),
        progress=np.asarray(progress, np.float32),
        success=bool(info.get("is_success", False)),
        instruction=str(info.get("instruction", "")),
        policy=policy,
        seed=seed,
        step_success=np.asarray(successes, bool),
        actions=np.stack([np.asarray(a) for a in actions]) if keep_observations else None,
        observations=np.stack(observations) if keep_observations else None,
    )


def collect_episodes(
    env_id: str,
    policies: Sequence[str],
    episodes_per_policy: int,
    seed: int = 0,
    render_size: int = 64,
    env_kwargs: dict[str, Any] | None = None,
) -> list[Episode]:
    """``episodes_per_policy`` episodes of each policy, with seeds ``seed, seed+1, ...``
    per policy (so policies meet the same starting states)."""
    check_policies(env_id, policies, env_kwargs)  # fail before any rollout
    env = gym.make(env_id, render_mode="rgb_array", render_size=render_size, **(env_kwargs or {}))
    try:
        return [
            collect_episode(env, policy, seed + index)
            for policy in policies
            for index in range(episodes_per_policy)
        ]
    finally:
        env.close()
