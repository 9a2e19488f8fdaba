"""Judge a reward module before RL: how well does it agree with the task?

Collects seeded rollouts of an environment (expert, random and noisy-expert
mixtures), scores every frame with the reward module, and reports:

- per step: Pearson and Spearman correlation of the reward with ``info["progress"]``;
- within episodes: the mean over episodes of the Spearman correlation of the reward
  with the environment's reward, step by step. PPO only needs this ordering (a
  constant per episode changes nothing it learns), and a reward can score well on
  the pooled statistics by ranking whole scenes while getting it wrong;
- per episode: correlation of the reward's return with the ground-truth return;
- preference accuracy: on random pairs of equal-length segments from these
  held-out rollouts, how often the reward prefers the segment with the higher
  ground-truth return (pairs of equal return left out).

Writes ``report.json`` and ``report.png`` (reward and progress over time for a few
episodes, and a reward-progress scatter) to a fresh output folder.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.metrics import pearson, preference_accuracy, spearman
from agents.output import make_output_dir
from agents.rollouts import POLICY_HELP, Episode, collect_episodes

DEFAULT_POLICIES = ("expert", "noisy(0.3)", "noisy(0.6)", "random")


def parse_reward_args(pairs: Sequence[str], what: str = "reward argument") -> dict[str, Any]:
    """``["alpha=0.5", "model=ViT-B-32"]`` -> kwargs; values are read as JSON when they
    parse (numbers, true/false, lists), else kept as strings. ``what`` names the
    option in the error for a malformed pair."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {pair!r} is not KEY=VALUE")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


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
        "step_pearson_progress": pearson(step_reward, step_progress),
        "step_spearman_progress": spearman(step_reward, step_progress),
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
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    shown = list(dict.fromkeys(e.policy for e in episodes))[:4]
    figure, axes = plt.subplots(1, len(shown) + 1, figsize=(4 * (len(shown) + 1), 3.4))
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
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=90)
    plt.close(figure)
    tmp.replace(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment id, e.g. vmalign/Push-v0")
    parser.add_argument("--reward", help="reward module name (see rewards.names())")
    parser.add_argument("--reward-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="reward module argument (repeatable), e.g. alpha=0.5")
    parser.add_argument("--load", metavar="DIR", help="a reward module saved with rewards.save "
                        "(instead of --reward)")
    parser.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES),
                        help=f"rollout policies: {POLICY_HELP}")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=10_000, help="first episode seed")
    parser.add_argument("--render-size", type=int, default=64, help="frame size the reward sees")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="environment argument (repeatable), e.g. render_camera=workspace "
                             "or randomize_colors=false (as a training config's env_kwargs)")
    parser.add_argument("--segment", type=int, default=10, help="segment length for pairs")
    parser.add_argument("--pairs", type=int, default=500, help="held-out segment pairs")
    parser.add_argument("--out", help="output folder (default outputs/reward-eval-<time>)")


def run(args: argparse.Namespace) -> int:
    import rewards

    if (args.reward is None) == (args.load is None):
        raise SystemExit("vmalign reward-eval: give exactly one of --reward NAME or --load DIR")
    check_episode_count("--episodes", args.episodes, args.policies)
    if args.load:
        module = rewards.load(args.load, **parse_reward_args(args.reward_arg))
    else:
        module = rewards.make(args.reward, **parse_reward_args(args.reward_arg))
    env_kwargs = parse_reward_args(args.env_arg, what="--env-arg")
    episodes = collect_episodes(args.env, args.policies, args.episodes, seed=args.seed,
                                render_size=args.render_size, env_kwargs=env_kwargs)
    report, scored = evaluate(module, episodes, args.segment, args.pairs, seed=args.seed)
    report = {"env": args.env, "env_kwargs": env_kwargs, "reward": module.name,
              "reward_config": module.config(), "policies": args.policies, "seed": args.seed,
              "render_size": args.render_size, **report}
    out = make_output_dir(args.out, prefix="reward-eval")
    (out / "report.json").write_text(json.dumps(report, indent=2))
    plot_report(episodes, scored, f"{module.name} on {args.env}", out / "report.png")
    print(f"vmalign reward-eval: {module.name} on {args.env}: step Spearman with progress "
          f"{report['step_spearman_progress']:.3f}, within episodes with the env's reward "
          f"{format_statistic(report['within_episode_spearman_reward'])}, preference accuracy "
          f"{report['preference_accuracy']:.3f} -> {out}")
    return 0


def check_episode_count(option: str, episodes: int, policies: Sequence[str]) -> None:
    """Episode returns are correlated across episodes: at least two are needed."""
    if episodes < 1 or episodes * len(policies) < 2:
        raise ValueError(f"{option} {episodes} with {len(policies)} policies gives fewer than the "
                         f"2 episodes needed to correlate returns; ask for more")


def format_statistic(value: float | None) -> str:
    """A statistic for a one-line report: three decimals, or n/a where undefined."""
    return "n/a" if value is None else f"{value:.3f}"
