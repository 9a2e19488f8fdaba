"""Record demonstrations into a dataset: ``vmalign collect --env ID --episodes N``.

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

import argparse

from agents.cli.arguments import parse_key_values
from agents.collect import ACTION_LABELS, collect_dataset
from agents.rollouts import POLICY_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment id, e.g. vmalign/Push-v0")
    parser.add_argument("--episodes", type=int, required=True,
                        help="episodes the dataset should hold (a resumed one counts its own)")
    parser.add_argument("--out", help="dataset folder (default outputs/data-<env>; an "
                                      "existing dataset there is resumed)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--policy", default="expert", help=POLICY_HELP)
    parser.add_argument("--action-label", choices=ACTION_LABELS, default="taken",
                        help="record the action taken (default), or the expert's action "
                             "in each state (DART-style data with a noisy --policy)")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="environment argument (repeatable), e.g. obs_size=64")


def run(args: argparse.Namespace) -> int:
    out = args.out or f"outputs/data-{args.env.split('/')[-1].removesuffix('-v0').lower()}"
    print(f"vmalign collect: {args.env}, {args.policy} policy -> {out}")
    summary = collect_dataset(args.env, args.episodes, out, seed=args.seed, policy=args.policy,
                              env_kwargs=parse_key_values(args.env_arg),
                              action_label=args.action_label)
    rate = summary["success_rate_new"]
    print(f"vmalign collect: {summary['episodes']} episodes ({summary['new_episodes']} new, "
          f"{summary['frames']} frames) in {out}"
          + (f"; {100 * rate:.0f}% of the new ones succeeded" if rate is not None else ""))
    return 0
