"""Evaluation: how well a trained run does its task, and how well a reward agrees with it.

- :func:`evaluate_run` (``vmalign eval RUN``): plays a run's policy on held-out
  seeds and writes ``RUN/eval/`` (success, returns, videos, learning curve), through
  the evaluator its algorithm names in :mod:`agents.algorithms`
  (:mod:`agents.evaluation.policy` for PPO, :mod:`agents.vla.evaluate` for VLA runs);
- :mod:`agents.evaluation.reward`: a reward module's agreement with task progress
  (``vmalign reward-eval``);
- :mod:`agents.evaluation.curves`: learning curves from ``progress.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.algorithms import ALGORITHMS
from agents.runs import load_run_config

EVAL_SEED_OFFSET = 1_000_000
"""Evaluation seeds start at the config's seed plus this (held out from training,
whose seeds count up from the config's seed)."""
MIN_VIDEO_SIZE = 16


def evaluate_run(
    run_dir: str | os.PathLike[str],
    episodes: int | None = None,
    seed: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    video_size: int | None = None,
    deterministic: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluates the run in ``run_dir``; writes its eval folder and returns the summary
    written to ``eval.json``, plus ``out_dir``.

    :param episodes: episodes to play (default: the config's ``eval_episodes``).
    :param seed: seed of the first episode; episode i uses ``seed + i`` (default: the
        config's seed + 1,000,000).
    :param checkpoint: a checkpoint folder (``checkpoints/step-N``, or just its name,
        or ``latest``) instead of the latest one.
    :param video_size: rendered frame size of the videos (default: the run's
        ``render_size``).
    :param deterministic: the policy's most likely action (default) or a sampled one.
    :raises FileNotFoundError: no run folder, no ``config.yaml`` or no such checkpoint.
    :raises ValueError: the run has no checkpoint yet, or a bad argument.
    """
    if episodes is not None and (isinstance(episodes, bool) or not isinstance(episodes, int)
                                 or episodes < 1):
        raise ValueError(f"--episodes must be an integer >= 1, got {episodes!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"--seed must be an integer >= 0, got {seed!r}")
    if video_size is not None and (isinstance(video_size, bool) or not isinstance(video_size, int)
                                   or video_size < MIN_VIDEO_SIZE):
        raise ValueError(f"--video-size must be an integer >= {MIN_VIDEO_SIZE} pixels, "
                         f"got {video_size!r}")
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    evaluator = ALGORITHMS[config.algo].evaluate()
    return evaluator(run_dir, config, episodes=episodes, seed=seed, checkpoint=checkpoint,
                     video_size=video_size, deterministic=deterministic, log=log)
