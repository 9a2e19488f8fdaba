"""``vmalign eval RUN`` for VLA runs: success per env, best and worst videos, curve.

Loads the run's final ``policy/`` (or a checkpoint's), plays ``episodes`` episodes of
every eval env on held-out seeds with the policy's most likely actions, and writes
into ``RUN/eval/`` (``eval-1``, ... when that holds files already):

- ``eval.json``: per env the success rate, mean and std of the ground-truth return,
  and per episode its seed, return, success and length;
- ``<env>-best.mp4`` and ``<env>-worst.mp4`` (``env.render()`` frames);
- ``learning_curve.png`` from ``progress.csv``: the training losses (BC, DPO) or the
  ground-truth return and success (PPO).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.checkpoint import checkpoint_folder, latest_checkpoint
from agents.evaluation import EVAL_SEED_OFFSET
from agents.evaluation.curves import write_training_series
from agents.logs import PROGRESS_FILE, read_rows
from agents.output import EVAL_DIR, make_output_dir, write_json, write_video
from agents.rollouts import mean_final_progress
from agents.vla.config import VLARunConfig
from agents.vla.model import VLAPolicy
from agents.vla.rollout import rollout_episodes, success_rate
from rewards.device import get_device


def evaluate(run_dir: Path, config: VLARunConfig, episodes: int | None, seed: int | None,
             checkpoint: str | Path | None, video_size: int | None, deterministic: bool,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Evaluates the VLA run in ``run_dir``; writes its eval folder and returns the
    summary written to ``eval.json``, plus ``out_dir``."""
    if video_size is not None:
        raise ValueError("--video-size applies to PPO runs; a VLA run's videos show its "
                         "envs' own render size")
    source = _policy_folder(run_dir, checkpoint)
    device = str(get_device(None if config.device == "auto" else config.device))
    policy = VLAPolicy.load(source, device=device)
    count = episodes or config.eval_episodes
    first = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    summary: dict[str, Any] = {"run_dir": str(run_dir), "algo": config.algo,
                               "policy": str(source), "episodes": count, "seed": first,
                               "deterministic": deterministic, "envs": {}}
    played_per_env = {}
    for env_id, kwargs in config.eval_env_kwargs.items():
        played = rollout_episodes(policy, env_id, kwargs, range(first, first + count),
                                  deterministic=deterministic, render=True)
        played_per_env[env_id] = played
        returns = np.array([e.ground_truth_return for e in played])
        name = env_id.split("/")[-1].removesuffix("-v0").lower()
        summary["envs"][env_id] = {
            "success_rate": round(success_rate(played), 4),
            "mean_return": round(float(returns.mean()), 4),
            "std_return": round(float(returns.std()), 4),
            "videos": {"best": {"file": f"{name}-best.mp4", "episode": int(returns.argmax())},
                       "worst": {"file": f"{name}-worst.mp4", "episode": int(returns.argmin())}},
            "episode_results": [{"seed": e.seed, "return": round(e.ground_truth_return, 6),
                                 "success": e.success, "length": len(e),
                                 **({} if e.final_progress is None
                                    else {"final_progress": round(e.final_progress, 4)})}
                                for e in played],
        }
        partial = mean_final_progress(played)  # partial success, as for PPO runs
        if partial is not None:
            summary["envs"][env_id]["mean_final_progress"] = partial
        log(f"  {env_id}: success rate {summary['envs'][env_id]['success_rate']:.2f}, "
            f"mean return {returns.mean():.3f} over {count} episode(s)")
    out = make_output_dir(run_dir / EVAL_DIR)
    for env_id, played in played_per_env.items():
        for video in summary["envs"][env_id]["videos"].values():
            write_video(played[video["episode"]].video_frames(), out / video["file"], fps=10)
    rows = read_rows(run_dir / PROGRESS_FILE)
    summary["learning_curve"] = ("learning_curve.png"
                                 if write_training_series(rows, out / "learning_curve.png")
                                 else None)
    write_json(out / "eval.json", summary)
    log(f"vmalign eval: wrote eval.json, videos and learning curve to {out}")
    return {**summary, "out_dir": str(out)}


def _policy_folder(run_dir: Path, checkpoint: str | Path | None) -> Path:
    """The policy to evaluate: a checkpoint's, else the final ``policy/``, else the
    latest checkpoint's."""
    if checkpoint is not None:
        return checkpoint_folder(run_dir, checkpoint) / "policy"
    if (run_dir / "policy" / "config.json").is_file():
        return run_dir / "policy"
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise ValueError(f"{run_dir} has no policy yet (no policy/ and no checkpoint)")
    return latest.folder / "policy"
