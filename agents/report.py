"""Results over seeds with confidence intervals, from run folders (``vmalign report``).

Every run folder under a directory (a sweep's, or any folder of runs) is one seed of
one *grid point*: runs whose ``config.yaml`` agree on everything but ``seed`` and
``out`` are seeds of the same point. For each point the report gives the final
success rate and return of every seed, and their interquartile mean (IQM) and mean
with 95% stratified-bootstrap confidence intervals, computed by the ``rliable``
library (Agarwal et al. 2021), as the field reports RL results. It also plots
aggregate learning curves (IQM over seeds with a 95% band, from each run's
``progress.csv``) and a performance profile (the fraction of runs scoring above
each threshold).

A run's final score is its latest ``vmalign eval`` (``RUN/eval/eval.json``, or the
newest ``RUN/eval-N/eval.json`` when the run was evaluated again: held-out episodes),
else the evaluation its trainer wrote (``train_summary.json``'s ``eval``, the VLA
trainers: the mean over its envs). Runs with neither are listed as not
evaluated and left out of the aggregates.

``rliable`` (with ``arch``) comes with the ``vmalign[sweep]`` extra, which ``run.sh``
installs.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.output import EVAL_DIR, made_output_dirs
from rewards.durable import atomic_save

SWEEP_EXTRA = "pip install 'vmalign[sweep]'  (or: ./run.sh, which installs it)"
IGNORED_KEYS = ("seed", "out")
"""Config keys that do not define a grid point."""
METRICS = ("success_rate", "mean_return")
CURVE_X, CURVE_Y = "time/total_timesteps", "rollout/success_rate"
MARKER = "<!-- vmalign report: {name} -->"
END_MARKER = "<!-- end vmalign report: {name} -->"


@dataclass
class Run:
    """One run folder: its config and final scores (None: not evaluated)."""

    folder: Path
    config: dict[str, Any]
    seed: int
    scores: dict[str, float] | None
    source: str
    """Where the scores came from (``eval/eval.json`` or ``train_summary.json``)."""


@dataclass
class GridPoint:
    """The seeds of one configuration, with their aggregates."""

    label: str
    runs: list[Run]
    aggregates: dict[str, dict[str, float]] = field(default_factory=dict)
    """metric -> {iqm, iqm_low, iqm_high, mean, mean_low, mean_high}."""

    @property
    def evaluated(self) -> list[Run]:
        return [run for run in self.runs if run.scores is not None]


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as error:
        raise ImportError(f"vmalign report needs the rliable library, which is not "
                          f"installed: {SWEEP_EXTRA}") from error
    return library, metrics


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """NumPy's global generator seeded, then restored: rliable's stratified bootstrap
    draws its resamples from ``np.random`` and ignores its ``random_state``."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def find_runs(root: str | Path) -> list[Run]:
    """Every run folder (a folder with ``config.yaml``) under ``root``, sorted by path;
    ``ValueError`` when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    runs = []
    for config_path in sorted(root.rglob("config.yaml")):
        folder = config_path.parent
        if any(part in ("checkpoints", "eval") for part in folder.relative_to(root).parts):
            continue  # a checkpoint's or an eval's copy, not a run
        config = yaml.safe_load(config_path.read_text()) or {}
        if not isinstance(config, dict) or "algo" not in config:
            continue
        scores, source = final_scores(folder)
        runs.append(Run(folder, config, int(config.get("seed", 0)), scores, source))
    if not runs:
        raise ValueError(f"no run folders under {root} (a run folder holds the config.yaml "
                         f"that vmalign train writes)")
    return runs


def latest_evaluation(folder: Path) -> Path | None:
    """The ``eval.json`` of the run's newest finished ``vmalign eval`` (each writes a
    fresh ``eval``, ``eval-1``, ... folder; one killed before its ``eval.json`` is
    passed over), or None."""
    for evaluation in reversed(made_output_dirs(Path(folder) / EVAL_DIR)):
        if (evaluation / "eval.json").is_file():
            return evaluation / "eval.json"
    return None


def final_scores(folder: Path) -> tuple[dict[str, float] | None, str]:
    """A run's final success rate and return (see the module doc), and their source."""
    evaluation = latest_evaluation(folder)
    if evaluation is not None:
        data = json.loads(evaluation.read_text())
        return ({key: float(data[key]) for key in METRICS},
                evaluation.relative_to(folder).as_posix())
    summary = folder / "train_summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text()).get("eval") or {}
        per_env = [value for value in data.values() if isinstance(value, dict)]
        if per_env:
            return ({key: float(np.mean([env[key] for env in per_env])) for key in METRICS},
                    "train_summary.json")
    return None, "not evaluated"


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value, sort_keys=True, default=str)
    return flat


def group_runs(runs: Sequence[Run]) -> list[GridPoint]:
    """Runs grouped into grid points (equal configs but for ``seed`` and ``out``),
    each labelled by the settings in which the points differ."""
    keyed: dict[str, list[Run]] = {}
    flats: dict[str, dict[str, str]] = {}
    for run in runs:
        flat = {k: v for k, v in _flatten(run.config).items() if k not in IGNORED_KEYS}
        key = json.dumps(flat, sort_keys=True)
        keyed.setdefault(key, []).append(run)
        flats[key] = flat
    algos = {key: members[0].config["algo"] for key, members in keyed.items()}

    def varies(name: str, algo: str) -> bool:
        """Two points set it differently, or another point of the same algo leaves it
        out (settings of another algo do not label a point)."""
        values = {flat[name] for flat in flats.values() if name in flat}
        absent = any(name not in flats[key] for key in flats if algos[key] == algo)
        return len(values) > 1 or absent

    points = []
    for key, members in keyed.items():
        flat = flats[key]
        shown = [f"{name}={json.loads(flat[name])}" for name in sorted(flat)
                 if name != "algo" and varies(name, algos[key])]
        label = " ".join([members[0].config["algo"], *shown]) if shown or len(keyed) > 1 \
            else f"{members[0].config['algo']} {members[0].config.get('env', '')}".strip()
        points.append(GridPoint(label, sorted(members, key=lambda run: run.seed)))
    return sorted(points, key=lambda point: point.label)


def interquartile_mean(scores: np.ndarray) -> np.ndarray:
    """IQM over the runs and tasks of ``scores`` (runs, tasks, ...), one value per
    trailing index: rliable's ``aggregate_iqm`` (``scipy.stats.trim_mean``, 25% cut
    each side, counted as ``int(0.25 * n)``) for every time step in one sort. rliable's
    own calls scipy once per bootstrap resample and step, about 170 us each: most of a
    report's time."""
    flat = np.sort(scores.reshape(scores.shape[0] * scores.shape[1], -1), axis=0)
    cut = int(0.25 * flat.shape[0])
    return flat[cut:flat.shape[0] - cut].mean(axis=0).reshape(scores.shape[2:])


def aggregate(points: Sequence[GridPoint], reps: int = 2000, seed: int = 0) -> None:
    """Fills each point's ``aggregates``: IQM and mean over seeds with 95% stratified
    bootstrap intervals (``reps`` resamples, seeded)."""
    library, metrics = _rliable()
    for point in points:
        runs = point.evaluated
        if not runs:
            continue
        for metric in METRICS:
            scores = np.array([[run.scores[metric]] for run in runs], dtype=np.float64)
            with _seeded(seed):
                estimates, intervals = library.get_interval_estimates(
                    {"point": scores},
                    lambda x: np.array([interquartile_mean(x), metrics.aggregate_mean(x)]),
                    reps=reps)
            (iqm, mean), ((iqm_low, mean_low), (iqm_high, mean_high)) = (
                estimates["point"], intervals["point"])
            point.aggregates[metric] = {"iqm": float(iqm), "iqm_low": float(iqm_low),
                                        "iqm_high": float(iqm_high), "mean": float(mean),
                                        "mean_low": float(mean_low),
                                        "mean_high": float(mean_high)}


def markdown_table(points: Sequence[GridPoint]) -> str:
    """The report's table: one row per grid point."""
    lines = ["| grid point | seeds | success per seed | success IQM [95% CI] | success mean "
             "[95% CI] | return per seed | return IQM [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for point in points:
        runs = point.evaluated
        seeds = "/".join(str(run.seed) for run in runs) or "-"
        missing = len(point.runs) - len(runs)
        if missing:
            seeds += f" ({missing} not evaluated)"
        cells = [point.label, seeds]
        for metric in METRICS:
            per_seed = " / ".join(f"{run.scores[metric]:.2f}" for run in runs) or "-"
            found = point.aggregates.get(metric)
            if found is None:
                cells += [per_seed, "-"] + (["-"] if metric == "success_rate" else [])
                continue
            interval = f"{found['iqm']:.2f} [{found['iqm_low']:.2f}, {found['iqm_high']:.2f}]"
            cells += [per_seed, interval]
            if metric == "success_rate":
                cells.append(f"{found['mean']:.2f} [{found['mean_low']:.2f}, "
                             f"{found['mean_high']:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def learning_curves(point: GridPoint, samples: int = 50
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """Each seed's training success curve (``progress.csv``) on a common step grid:
    steps (S,) and scores (seeds, S); None without curves."""
    curves = []
    for run in point.runs:
        path = run.folder / "progress.csv"
        if not path.is_file():
            continue
        with path.open() as handle:
            rows = [(float(row[CURVE_X]), float(row[CURVE_Y])) for row in csv.DictReader(handle)
                    if row.get(CURVE_X) and row.get(CURVE_Y)]
        if len(rows) >= 2:
            curves.append(np.array(rows))
    if not curves:
        return None
    end = min(curve[-1, 0] for curve in curves)
    start = max(curve[0, 0] for curve in curves)
    if end <= start:
        return None
    steps = np.linspace(start, end, samples)
    return steps, np.stack([np.interp(steps, curve[:, 0], curve[:, 1]) for curve in curves])


def plot(points: Sequence[GridPoint], out: Path, reps: int, seed: int) -> list[Path]:
    """``learning_curves.png`` (IQM over seeds, 95% band) and
    ``performance_profile.png``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    library, _ = _rliable()
    written = []
    figure, axis = plt.subplots(figsize=(7, 4))
    drawn = False
    for point in points:
        curves = learning_curves(point)
        if curves is None:
            continue
        steps, scores = curves
        with _seeded(seed):
            estimates, intervals = library.get_interval_estimates(
                {"p": scores[:, None, :]},
                interquartile_mean,
                reps=max(reps // 10, 100))
        axis.plot(steps, estimates["p"], label=point.label)
        axis.fill_between(steps, intervals["p"][0], intervals["p"][1], alpha=0.2)
        drawn = True
    if drawn:
        written.append(_save_figure(figure, axis, out / "learning_curves.png",
                                    "environment steps",
                                    "success (training rollouts), IQM over seeds"))
    plt.close(figure)
    scored = {point.label: np.array([[run.scores["success_rate"]] for run in point.evaluated])
              for point in points if point.evaluated}
    if scored:
        thresholds = np.linspace(0.0, 1.0, 21)
        with _seeded(seed):
            profiles, bands = library.create_performance_profile(scored, thresholds,
                                                                 reps=max(reps // 10, 100))
        figure, axis = plt.subplots(figsize=(6, 4))
        for label, profile in profiles.items():
            axis.plot(thresholds, profile, label=label)
            axis.fill_between(thresholds, bands[label][0], bands[label][1], alpha=0.2)
        written.append(_save_figure(figure, axis, out / "performance_profile.png",
                                    "success rate threshold", "fraction of runs above"))
        plt.close(figure)
    return written


def _save_figure(figure: Any, axis: Any, path: Path, xlabel: str, ylabel: str) -> Path:
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7)
    figure.tight_layout()
    atomic_save(path, lambda partial: figure.savefig(partial, format="png", dpi=120))
    return path


def replace_section(markdown: Path, name: str, table: str) -> None:
    """Writes ``table`` into ``markdown`` between the report markers named ``name``
    (appended with its markers when they are not there yet); the rest is kept."""
    start, end = MARKER.format(name=name), END_MARKER.format(name=name)
    text = markdown.read_text() if markdown.is_file() else ""
    block = f"{start}\n{table}{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]  # what followed, blank lines included
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    atomic_save(markdown, lambda partial: partial.write_text(text))


def report(root: str | Path, out: str | Path | None = None, reps: int = 2000, seed: int = 0,
           results_md: str | Path | None = None, section: str | None = None
           ) -> dict[str, Any]:
    """Groups, aggregates and writes ``report.md``, ``report.json`` and the plots to
    ``out`` (default ``root``); with ``results_md`` the table also replaces the
    section ``section`` there. Returns the report's record."""
    if reps < 100:
        raise ValueError(f"reps must be >= 100 (bootstrap resamples), got {reps}")
    if results_md is not None and not section:
        raise ValueError("results_md needs a section name (the markers around the table)")
    _rliable()  # the missing extra is reported before anything is read or written
    root = Path(root)
    points = group_runs(find_runs(root))
    aggregate(points, reps, seed)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(points)
    plots = plot(points, out, reps, seed)
    record = {"root": str(root), "reps": reps, "seed": seed, "points": [
        {"label": point.label, "runs": [{"folder": str(run.folder), "seed": run.seed,
                                         "scores": run.scores, "source": run.source}
                                        for run in point.runs],
         "aggregates": point.aggregates} for point in points],
        "plots": [str(path) for path in plots]}
    atomic_save(out / "report.json", lambda partial: partial.write_text(
        json.dumps(record, indent=2, default=str)))
    figures = "".join(f"\n![{path.stem}]({path.name})\n" for path in plots)
    atomic_save(out / "report.md", lambda partial: partial.write_text(
        f"# vmalign report: {root}\n\nFinal scores: held-out evaluation of each run "
        f"(`vmalign eval`, else the trainer's own). IQM and mean over seeds with 95% "
        f"stratified bootstrap intervals ({reps} resamples, rliable).\n\n{table}{figures}"))
    if results_md is not None:
        replace_section(Path(results_md), str(section), table)
    return record
