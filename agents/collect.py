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
import time
from typing import Any

from agents.reward_eval import parse_reward_args
from agents.rollouts import POLICY_HELP, parse_policy


ACTION_LABELS = ("taken", "expert")


def collect_dataset(env_id: str, episodes: int, out: str, seed: int = 0, policy: str = "expert",
                    env_kwargs: dict[str, Any] | None = None, log: Any = print,
                    action_label: str = "taken") -> dict[str, Any]:
    """Records until ``out`` holds ``episodes`` episodes; returns a summary.

    ``action_label``: ``"taken"`` records the executed action, ``"expert"`` the
    expert's action in each state (DART-style, with a noisy ``policy``)."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)
    from agents.dataset import DatasetWriter
    from agents.rollouts import collect_episode

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
                              env_kwargs=parse_reward_args(args.env_arg),
                              action_label=args.action_label)
    rate = summary["success_rate_new"]
    print(f"vmalign collect: {summary['episodes']} episodes ({summary['new_episodes']} new, "
          f"{summary['frames']} frames) in {out}"
          + (f"; {100 * rate:.0f}% of the new ones succeeded" if rate is not None else ""))
    return 0
