"""PPO training speed with the ground-truth reward against a learned reward.

Prints one JSON line. Both runs train the same config (env, PPO settings, seed) for
the same number of steps in this process, one after the other; the only difference
is the reward module: ``ground_truth`` (no frames rendered for the reward) against
``--learned`` (default ``preference``: the Bradley-Terry CNN ensemble, which needs the
reward-model view rendered every step and one batched model call per vector step).
The learned module is used as built (untrained): its speed does not depend on its
weights, and the online preference loop is off so only the per-step cost is compared.

``ratio`` = learned_fps / ground_truth_fps (target >= 0.8, issue #6).

    python benchmarks/train_fps.py [--config reach_preference] [--steps 8192]
        [--learned preference] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed_run(config_name: str, overrides: list[str], reward: str, steps: int) -> dict:
    from agents.config import load_config
    from agents.runs import train

    # The online preference loop is off: this measures the per-step reward cost.
    if reward == "preference":
        extra = ["preference=false"]
    else:  # a preference config's own section and reward arguments do not apply
        extra = ["preference=null", "reward_kwargs={}"]
    config = load_config(config_name, [*overrides, f"reward={reward}", *extra,
                                       f"hyperparams.n_timesteps={steps}",
                                       f"checkpoint_every={10 * steps}"])
    with tempfile.TemporaryDirectory(prefix="vmalign-train-fps-") as folder:
        started = time.perf_counter()
        summary = train(config, folder, progress_bar=False, log=lambda *args: None)
        seconds = time.perf_counter() - started
    return {"reward": reward, "steps": summary["steps"], "seconds": round(seconds, 2),
            "fps": round(summary["steps"] / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="reach_preference",
                        help="a shipped config name or YAML path (its reward is replaced); "
                             "the default renders the reward view from the observation "
                             "camera, as the shipped learned-reward configs do")
    parser.add_argument("--steps", type=int, default=8192, help="environment steps per run")
    parser.add_argument("--learned", default="preference", help="the learned reward module")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides for both runs, e.g. hyperparams.n_envs=4")
    args = parser.parse_args()
    import torch

    # A warm-up run of a few rollouts: imports, GL contexts and allocator caches
    # would otherwise count against whichever run goes first.
    timed_run(args.config, args.overrides, "ground_truth", min(args.steps, 2048))
    truth = timed_run(args.config, args.overrides, "ground_truth", args.steps)
    learned = timed_run(args.config, args.overrides, args.learned, args.steps)
    print(json.dumps({
        "benchmark": "train_fps", "config": args.config, "overrides": args.overrides,
        "ground_truth_fps": truth["fps"], "learned_reward": args.learned,
        "learned_fps": learned["fps"], "ratio": round(learned["fps"] / truth["fps"], 3),
        "steps": args.steps, "runs": [truth, learned],
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }))


if __name__ == "__main__":
    main()
