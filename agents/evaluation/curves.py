"""Learning curves from a run's ``progress.csv``, drawn for ``vmalign eval``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents.logs import STEP_KEY
from rewards.durable import atomic_save

CURVES = {
    "gt_return": "rollout/gt_return",
    "success_rate": "rollout/success_rate",
    "learned_return": "rollout/learned_return",
}
"""The PPO curve's series and their ``progress.csv`` columns."""


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for row in rows:
        try:
            step, value = float(row.get(STEP_KEY) or "nan"), float(row.get(key) or "nan")
        except ValueError:
            continue
        if math.isfinite(step) and math.isfinite(value):
            steps.append(step)
            values.append(value)
    return steps, values


def write_learning_curve(rows: list[dict[str, str]], path: Path, reward: str,
                         evaluated: tuple[int, dict[str, Any]] | None = None,
                         ) -> tuple[bool, str | None]:
    """Plots ground-truth return and learned return (top, twin axes) and success rate
    (bottom) against training steps from ``progress.csv`` rows; marks this evaluation
    at its checkpoint step. Returns whether it was written (not without rows) and a
    note on what is missing, if anything."""
    if not rows:
        return False, "no learning curve: the run has no progress.csv rows yet"
    series = {name: _series(rows, key) for name, key in CURVES.items()}
    if reward == "ground_truth":
        series["learned_return"] = ([], [])  # the same numbers as gt_return
    empty = not any(values for _steps, values in series.values())

    figure = Figure(figsize=(7, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    # Points as well as lines for short logs (a single row is no line).
    style = {"marker": "o", "markersize": 3} if len(rows) < 30 else {}
    top.plot(*series["gt_return"], color="tab:blue", label="ground-truth return", **style)
    top.set_ylabel("ground-truth return", color="tab:blue")
    handles, labels = top.get_legend_handles_labels()
    if series["learned_return"][1]:
        twin = top.twinx()
        twin.plot(*series["learned_return"], color="tab:orange", label=f"learned return ({reward})",
                  **style)
        twin.set_ylabel("learned return", color="tab:orange")
        more, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more, labels + more_labels
    bottom.plot(*series["success_rate"], color="tab:green", label="success rate", **style)
    bottom.set_ylabel("success rate")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("environment steps")
    if evaluated is not None:
        step, summary = evaluated
        label = f"this eval, ground truth ({summary['episodes']} episodes)"
        marker = top.scatter([step], [summary["mean_return"]], color="black", marker="x", zorder=3)
        if summary.get("success_rate") is not None:
            bottom.scatter([step], [summary["success_rate"]], color="black", marker="x", zorder=3,
                           label=label)
        handles.append(marker)
        labels.append(label)
    top.legend(handles, labels, loc="best", fontsize="small")
    bottom.legend(loc="best", fontsize="small")
    top.set_title("training progress (rollout means of the last 100 episodes)")
    if empty:
        top.text(0.5, 0.5, "no finished training episode logged yet", transform=top.transAxes,
                 ha="center", va="center", color="gray")
    atomic_save(path, lambda partial: figure.savefig(partial, format="png"))
    if empty:
        return True, ("the learning curve is empty: progress.csv logs no finished training "
                      "episode yet")
    return True, None


def write_training_series(rows: list[dict[str, str]], path: Path) -> bool:
    """Every logged training series (losses, returns, success) against steps."""
    if not rows:
        return False
    keys = [key for key in rows[0] if key.startswith(("bc/loss", "dpo/", "rollout/"))]
    series = {}
    for key in keys:
        points = []
        for row in rows:
            try:
                step, value = float(row[STEP_KEY]), float(row.get(key) or "nan")
            except (KeyError, ValueError):
                continue
            if math.isfinite(value):
                points.append((step, value))
        if points:
            series[key] = points
    if not series:
        return False
    figure = Figure(figsize=(7, 2.6 * len(series)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (key, points) in zip(axes, series.items()):
        steps, values = zip(*points)
        axis.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3)
        axis.set_ylabel(key, fontsize=8)
    axes[-1].set_xlabel("training step (gradient steps for bc/dpo, env steps for ppo)")
    atomic_save(path, lambda partial: figure.savefig(partial, format="png"))
    return True
