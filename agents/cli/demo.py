"""The whole loop in one command: a policy trained against a reward learned from
preferences over pixels.

``vmalign demo`` trains ``agents/configs/demo.yaml``: PPO on Reach's state vector
(the split of VLM-RM, RL-VLM-F and PEBBLE: the policy reads the simulator's state,
the reward only rendered frames) against a Bradley-Terry reward ensemble learned
online from a simulated B-Pref teacher; it evaluates the final policy on held-out
seeds, and ends with:

- ``RUN/eval/best.mp4``, ``worst.mp4`` and ``learning_curve.png`` (``vmalign eval``);
- ``RUN/summary.md`` and ``summary.json``: one paragraph with the ground-truth
  success rate, the preference queries used and the learned reward's correlation
  with task progress, also printed.

Sized to finish in about 15 minutes on a 2-core CPU. ``KEY=VALUE`` overrides work as
for ``vmalign train`` (``hyperparams.n_timesteps=...`` for a shorter or longer run).
A killed demo is continued with ``vmalign train --resume RUN`` and ``vmalign eval RUN``
(labels and checkpoints are on disk, as for any run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from agents.config import load_config
from agents.evaluation import evaluate_run
from agents.output import make_output_dir, write_json
from agents.runs import preflight_run, train
from agents.sb3.config import SB3Config
from rewards.durable import atomic_save

DEFAULT_CONFIG = "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. hyperparams.n_timesteps=50000")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="config file or shipped name (default: demo)")
    parser.add_argument("--out", help="run folder (default outputs/demo-<time>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def summary_paragraph(config: Any, training: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """The demo's closing paragraph, from the training and evaluation summaries."""
    rate = evaluation.get("success_rate")
    success = "unknown" if rate is None else f"{100 * rate:.0f}%"
    minutes = training["seconds"] / 60
    text = (f"{config.algo.upper()} ({_policy_input(config)}) trained for "
            f"{training['steps']:,} steps on {config.env} in {minutes:.1f} min "
            f"({training['fps']} steps/s, {training['device']}) against the "
            f"{config.reward} reward. On {evaluation['episodes']} held-out episodes the "
            f"policy succeeds {success} of the time (ground truth), with a mean "
            f"ground-truth return of {evaluation['mean_return']:.2f}.")
    loop = config.preference_loop
    if loop is not None:
        text += (f" The reward was learned online from {training.get('queries_asked', 0)} "
                 f"preference queries to the simulated {loop.teacher} teacher "
                 f"({training.get('labels', 0)} labels kept, budget "
                 f"{loop.total_queries}).")
        if loop.demo_episodes:
            text += (f" Each round's pool of segments also held {loop.demo_episodes} "
                     f"scripted {loop.demo_policy} demonstration episodes.")
    correlation = evaluation.get("reward_progress_spearman")
    if correlation is not None:
        text += (f" On those episodes the learned reward's Spearman correlation with task "
                 f"progress is {correlation:.2f} (1 would rank every step as the task does).")
    return text


def _policy_input(config: Any) -> str:
    """What the policy reads, in words, for the summary."""
    mode = config.env_kwargs.get("obs_mode")
    if mode is not None:
        return {"state": "policy on state", "rgb": "policy on pixels"}.get(
            mode, f"policy on {mode}")
    return "policy on pixels" if config.hyperparams.policy == "CnnPolicy" else \
        config.hyperparams.policy


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = load_config(args.config, args.overrides)
    if not isinstance(config, SB3Config):
        raise ValueError(f"vmalign demo runs PPO or SAC configs; {args.config} has algo "
                         f"{config.algo} (use vmalign train for it)")
    checked = preflight_run(config, None)  # before any folder exists
    run_dir = make_output_dir(args.out, prefix="demo")
    print(f"vmalign demo: {config.algo.upper()} ({_policy_input(config)}) on {config.env} "
          f"against the {config.reward} reward, "
          f"{config.hyperparams.n_timesteps:,} steps; writing to {run_dir}\n"
          f"  (if interrupted: vmalign train --resume {run_dir}, then vmalign eval {run_dir})")
    training = train(config, run_dir, checked=checked, progress_bar=not args.no_progress)
    evaluation = evaluate_run(run_dir)
    paragraph = summary_paragraph(config, training, evaluation)
    outputs = {name: str(Path(evaluation["out_dir"]) / name)
               for name in ("best.mp4", "worst.mp4", "learning_curve.png")}
    record = {"summary": paragraph, "training": training,
              "evaluation": {key: value for key, value in evaluation.items()
                             if key != "episode_results"},
              "outputs": outputs, "seconds": round(time.perf_counter() - started, 1)}
    write_json(run_dir / "summary.json", record)
    files = "\n".join(f"- {name}: `{path}`" for name, path in outputs.items())
    atomic_save(run_dir / "summary.md", lambda partial: partial.write_text(
        f"# vmalign demo\n\n{paragraph}\n\n{files}\n"))
    print(f"\n{paragraph}\n\nVideos and learning curve: {evaluation['out_dir']}\n"
          f"Summary: {run_dir / 'summary.md'} ({record['seconds'] / 60:.1f} min in all)")
    return 0
