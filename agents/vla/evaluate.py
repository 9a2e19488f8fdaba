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

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.vla.runs import EVAL_SEED_OFFSET


def evaluate_vla_run(run_dir: Path, config: Any, episodes: int | None, seed: int | None,
                     checkpoint: Any, log: Any) -> dict[str, Any]:
    from agents.callbacks import read_rows
    from agents.checkpoint import checkpoint_folder, latest_checkpoint
    from agents.output import make_output_dir
    from agents.preview import write_video
    from agents.vla.model import VLAPolicy
    from agents.vla.rollout import rollout_episodes, success_rate
    from rewards.device import get_device
    from rewards.durable import atomic_write

    if checkpoint is not None:
        source = checkpoint_folder(run_dir, checkpoint) / "policy"
    elif (run_dir / "policy" / "config.json").is_file():
        source = run_dir / "policy"
    else:
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise ValueError(f"{run_dir} has no policy yet (no policy/ and no checkpoint)")
        source = latest.folder / "policy"
    device = str(get_device(None if config.device == "auto" else config.device))
    policy = VLAPolicy.load(source, device=device)
    count = episodes or config.eval_episodes
    first = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    out = make_output_dir(run_dir / "eval")
    summary: dict[str, Any] = {"run_dir": str(run_dir), "algo": config.algo,
                               "policy": str(source), "episodes": count, "seed": first,
                               "envs": {}}
    for env_id, kwargs in config.eval_envs.items():
        played = rollout_episodes(policy, env_id, kwargs, range(first, first + count),
                                  render=True)
        returns = np.array([e.ground_truth_return for e in played])
        name = env_id.split("/")[-1].removesuffix("-v0").lower()
        best, worst = int(returns.argmax()), int(returns.argmin())
        for label, index in (("best", best), ("worst", worst)):
            write_video(played[index].frames, out / f"{name}-{label}.mp4", fps=10)
        summary["envs"][env_id] = {
            "success_rate": round(success_rate(played), 4),
            "mean_return": round(float(returns.mean()), 4),
            "std_return": round(float(returns.std()), 4),
            "videos": {"best": f"{name}-best.mp4", "worst": f"{name}-worst.mp4"},
            "episode_results": [{"seed": e.seed, "return": round(e.ground_truth_return, 6),
                                 "success": e.success, "length": len(e)} for e in played],
        }
        log(f"  {env_id}: success rate {summary['envs'][env_id]['success_rate']:.2f}, "
            f"mean return {returns.mean():.3f} over {count} episode(s)")
    rows = read_rows(run_dir / "progress.csv")
    summary["learning_curve"] = ("learning_curve.png"
                                 if write_curve(rows, out / "learning_curve.png") else None)
    text = json.dumps(summary, indent=2)
    atomic_write(out / "eval.json", lambda handle: handle.write(text.encode()))
    log(f"vmalign eval: wrote eval.json, videos and learning curve to {out}")
    return {**summary, "out_dir": str(out)}


def write_curve(rows: list[dict[str, str]], path: Path) -> bool:
    """Every logged training series (losses, returns, success) against steps."""
    if not rows:
        return False
    keys = [key for key in rows[0] if key.startswith(("bc/loss", "dpo/", "rollout/"))]
    series = {}
    for key in keys:
        points = []
        for row in rows:
            try:
                step, value = float(row["time/total_timesteps"]), float(row.get(key) or "nan")
            except (KeyError, ValueError):
                continue
            if math.isfinite(value):
                points.append((step, value))
        if points:
            series[key] = points
    if not series:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.6 * len(series)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (key, points) in zip(axes, series.items()):
        steps, values = zip(*points)
        axis.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3)
        axis.set_ylabel(key, fontsize=8)
    axes[-1].set_xlabel("training step (gradient steps for bc/dpo, env steps for ppo)")
    from agents.output import save_atomically

    save_atomically(path, lambda partial: figure.savefig(partial, format="png"))
    return True
