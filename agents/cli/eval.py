"""Evaluate a trained run: success rate, best and worst episode videos, learning curve.

``vmalign eval RUN_DIR`` loads the run's config (``config.yaml``) and latest checkpoint
(or ``--checkpoint``), rebuilds the policy exactly as training built it, and plays
``--episodes`` episodes (default: the config's ``eval_episodes``) on held-out seeds:
episode i is reset with seed ``S + i``, where ``S`` is ``--seed`` or the config's seed
+ 1,000,000 (training seeds count up from the config's seed). It writes into
``RUN_DIR/eval/`` (``eval-1``, ``eval-2``, ... when that already holds files;
nothing is overwritten):

- ``eval.json``: success rate, mean and std of the ground-truth return (the env's own
  reward), the mean final progress (``info["progress"]`` after each episode's last
  step: partial success, such as Sweep's share of the debris in the zone), and per
  episode its seed, return, success, length and final progress; for PPO runs also
  the learned return (the reward module PPO trained on) where it can be recomputed;
- ``best.mp4`` and ``worst.mp4`` (per env for VLA runs): the episodes with the
  highest and lowest ground-truth return;
- ``learning_curve.png``: from the run's ``progress.csv``.

Videos show ``env.render()``, the reward-model view, at the run's ``render_size``
unless ``--video-size`` asks for another (PPO runs); a learned reward that scores
rendered frames is then not recomputed (its frames would differ from training's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.evaluation import EVAL_SEED_OFFSET, evaluate_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``vmalign eval``'s options to ``parser``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a run folder written by vmalign train")
    parser.add_argument("--episodes", type=int, default=None, metavar="N",
                        help="episodes to play (default: the config's eval_episodes)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help=f"seed of the first episode, S+i for episode i (default: the "
                             f"config's seed + {EVAL_SEED_OFFSET:,})")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                        help="a checkpoint folder, its name in RUN_DIR/checkpoints, or "
                             "'latest' (the default)")
    parser.add_argument("--video-size", type=int, default=None, metavar="PX",
                        help="video frame size in pixels (default: the run's render_size)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                      help="take the policy's most likely action (default)")
    mode.add_argument("--stochastic", dest="deterministic", action="store_false",
                      help="sample actions from the policy")


def run(args: argparse.Namespace) -> int:
    """Runs ``vmalign eval``."""
    evaluate_run(args.run_dir, episodes=args.episodes, seed=args.seed,
                 checkpoint=args.checkpoint, video_size=args.video_size,
                 deterministic=args.deterministic)
    return 0
