"""Judging a reward module before RL: how well does it agree with the task?

Scores every frame of recorded rollouts (expert, random and noisy-expert mixtures)
with the reward module, and reports:

- per step: Pearson and Spearman correlation of the reward with ``info["progress"]``
  (None where the env reports no progress);
- within episodes: the mean over episodes of the Spearman correlation of the reward
  with the environment's reward, step by step. PPO only needs this ordering (a
  constant per episode changes nothing it learns), and a reward can score well on
  the pooled statistics by ranking whole scenes while getting it wrong;
- per episode: correlation of the reward's return with the ground-truth return;
- preference accuracy: on random pairs of equal-length segments from these
  held-out rollouts, how often the reward prefers the segment with the higher
  ground-truth return (pairs of equal return left out).

``vmalign reward-eval`` (:mod:`agents.cli.reward_eval`) writes the report as
``report.json`` and ``report.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents.metrics import pearson, preference_accuracy, spearman
from agents.rollouts import Episode
from rewards.durable import atomic_save

DEFAULT_POLICIES = ("expert", "noisy(0.3)", "noisy(0.6)", "random")


def score_episodes(module: Any, episodes: Sequence[Episode]) -> list[np.ndarray]:
    """The module's reward for every step of every episode."""
    if module.needs_trajectory:
        return [
            module.score_trajectory(e.frames, e.instruction, e.env_rewards) for e in episodes
        ]
    return [module(e.frames, [e.instruction] * len(e.frames), e.env_rewards) for e in episodes]


def segment_pairs(
    episodes: Sequence[Episode], length: int, count: int, rng: np.random.Generator
) -> list[tuple[int, int, int, int]]:
    """``count`` random pairs of segments ``(episode_a, start_a, episode_b, start_b)``."""
    usable = [i for i, e in enumerate(episodes) if len(e.env_rewards) >= length]
    if not usable:
        raise ValueError(f"no episode has {length} steps for a segment")
    pairs = []
    for _ in range(count):
        a, b = rng.choice(usable, size=2)
        pairs.append((
            int(a), int(rng.integers(len(episodes[a].env_rewards) - length + 1)),
            int(b), int(rng.integers(len(episodes[b].env_rewards) - length + 1)),
        ))
    return pairs


def evaluate(
    module: Any,
    episodes: Sequence[Episode],
    segment_length: int = 10,
    pairs: int = 500,
    seed: int = 0,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The agreement statistics of ``module`` on ``episodes``, and its rewards."""
    scored = score_episodes(module, episodes)
    step_reward = np.concatenate(scored)
    step_progress = np.concatenate([e.progress for e in episodes])
    returns = np.array([r.sum() for r in scored])
    true_returns = np.array([e.env_rewards.sum() for e in episodes])
    rng = np.random.default_rng(seed)
    chosen = segment_pairs(episodes, segment_length, pairs, rng)
    end = segment_length

    def segment_sum(values: Sequence[np.ndarray], episode: int, start: int) -> float:
        return float(values[episode][start : start + end].sum())

    env_values = [e.env_rewards for e in episodes]
    predicted = [segment_sum(scored, a, i) - segment_sum(scored, b, j) for a, i, b, j in chosen]
    truth = [segment_sum(env_values, a, i) - segment_sum(env_values, b, j) for a, i, b, j in chosen]
    report = {
        "steps": int(len(step_reward)),
        "episodes": len(episodes),
        "step_pearson_progress": _defined(pearson(step_reward, step_progress)),
        "step_spearman_progress": _defined(spearman(step_reward, step_progress)),
        "within_episode_spearman_reward": within_episode_spearman(scored, env_values),
        "episode_pearson_return": pearson(returns, true_returns),
        "episode_spearman_return": spearman(returns, true_returns),
        "preference_accuracy": preference_accuracy(np.array(predicted), np.array(truth)),
        "preference_pairs": len(chosen),
        "segment_length": segment_length,
        "per_policy": {
            policy: {
                "episodes": sum(e.policy == policy for e in episodes),
                "within_episode_spearman_reward": within_episode_spearman(
                    [r for r, e in zip(scored, episodes) if e.policy == policy],
                    [e.env_rewards for e in episodes if e.policy == policy]),
                "success_rate": float(np.mean([e.success for e in episodes if e.policy == policy])),
                "mean_return": float(np.mean([r.sum() for r, e in zip(scored, episodes)
                                              if e.policy == policy])),
            }
            for policy in dict.fromkeys(e.policy for e in episodes)
        },
    }
    return report, scored


def _defined(value: float) -> float | None:
    """A correlation, or None where it is undefined (no progress reported, a constant)."""
    return float(value) if np.isfinite(value) else None


def within_episode_spearman(scored: Sequence[np.ndarray],
                            env_rewards: Sequence[np.ndarray]) -> float | None:
    """Mean over episodes of the Spearman correlation between a reward and the env's
    reward within the episode; episodes where either is constant are left out (None
    when all are)."""
    values = [spearman(reward, truth) for reward, truth in zip(scored, env_rewards)
              if len(reward) >= 3]
    values = [value for value in values if np.isfinite(value)]
    return float(np.mean(values)) if values else None


def plot_report(episodes: Sequence[Episode], scored: Sequence[np.ndarray], title: str,
                path: Path) -> None:
    """Reward and progress over time for a few episodes, and a scatter of all steps."""
    shown = list(dict.fromkeys(e.policy for e in episodes))[:4]
    figure = Figure(figsize=(4 * (len(shown) + 1), 3.4), layout="tight")
    FigureCanvasAgg(figure)  # files only, no display
    axes = figure.subplots(1, len(shown) + 1)
    for axis, policy in zip(axes, shown):
        index = next(i for i, e in enumerate(episodes) if e.policy == policy)
        reward = scored[index]
        span = reward.max() - reward.min()
        normalised = (reward - reward.min()) / span if span > 0 else np.zeros_like(reward)
        axis.plot(episodes[index].progress, label="progress", color="tab:green")
        axis.plot(normalised, label="reward (min-max)", color="tab:blue")
        axis.set_title(f"{policy} (seed {episodes[index].seed})", fontsize=9)
        axis.set_xlabel("step")
        axis.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    scatter = axes[-1]
    scatter.scatter(np.concatenate([e.progress for e in episodes]), np.concatenate(scored),
                    s=3, alpha=0.4)
    scatter.set_xlabel("progress")
    scatter.set_ylabel("reward")
    scatter.set_title("all steps", fontsize=9)
    figure.suptitle(title, fontsize=10)
    atomic_save(path, lambda partial: figure.savefig(partial, dpi=90, format="png"))


def check_episode_count(option: str, episodes: int, policies: Sequence[str]) -> None:
    """Episode returns are correlated across episodes: at least two are needed."""
    if episodes < 1 or episodes * len(policies) < 2:
        raise ValueError(f"{option} {episodes} with {len(policies)} policies gives fewer than the "
                         f"2 episodes needed to correlate returns; ask for more")


def format_statistic(value: float | None) -> str:
    """A statistic for a one-line report: three decimals, or n/a where undefined."""
    return "n/a" if value is None else f"{value:.3f}"
