"""Judge a reward module before RL: how well does it agree with the task?

``vmalign reward-eval --env ID (--reward NAME | --load DIR)``.

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

import rewards
from agents.cli.arguments import parse_key_values
from agents.evaluation.reward import (DEFAULT_POLICIES, check_episode_count, evaluate,
                                      format_statistic, plot_report)
from agents.output import make_output_dir
from agents.rollouts import POLICY_HELP, collect_episodes, parse_policy


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
    if (args.reward is None) == (args.load is None):
        raise SystemExit("vmalign reward-eval: give exactly one of --reward NAME or --load DIR")
    check_episode_count("--episodes", args.episodes, args.policies)
    for policy in args.policies:
        parse_policy(policy)  # before any module is built
    if args.load:
        module = rewards.load(args.load, **parse_key_values(args.reward_arg))
    else:
        module = rewards.make(args.reward, **parse_key_values(args.reward_arg))
    env_kwargs = parse_key_values(args.env_arg, what="--env-arg")
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
          f"{format_statistic(report['step_spearman_progress'])}, within episodes with the env's reward "
          f"{format_statistic(report['within_episode_spearman_reward'])}, preference accuracy "
          f"{report['preference_accuracy']:.3f} -> {out}")
    return 0


