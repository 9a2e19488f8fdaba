"""Judge a reward module before RL: how well does it agree with the task?

``vmalign reward-eval --env ID (--reward NAME | --load DIR)`` collects seeded
rollouts of the env (expert, random and noisy-expert mixtures), scores every frame
with the reward module and writes ``report.json`` and ``report.png`` to a fresh
output folder: the reward's correlation with ``info["progress"]`` step by step, its
agreement with the env's reward within episodes and over whole episodes, and its
preference accuracy on held-out segment pairs (each statistic is defined in
:mod:`agents.evaluation.reward`).
"""

from __future__ import annotations

import argparse
import json

import rewards
from agents.cli.arguments import parse_key_values
from agents.evaluation.reward import (DEFAULT_POLICIES, check_episode_count, evaluate,
                                      format_statistic, plot_report)
from agents.output import make_output_dir
from agents.rollouts import POLICY_HELP, check_policies, collect_episodes


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
    env_kwargs = parse_key_values(args.env_arg, what="--env-arg")
    check_policies(args.env, args.policies, env_kwargs)  # before any module is built
    if args.load:
        module = rewards.load(args.load, **parse_key_values(args.reward_arg))
    else:
        module = rewards.make(args.reward, **parse_key_values(args.reward_arg))
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


