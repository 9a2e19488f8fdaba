"""Sweeps: every (grid point x seed) of a config as an ordinary run, scheduled by Ray Tune.

A sweep folder holds ``sweep.json`` (the config, seeds, grid and trial list) and one
run folder per trial under ``trials/``, named by its overrides and seed; each is an
ordinary ``vmalign train`` run (``vmalign eval``, ``--resume`` and ``vmalign report``
work on it); a trial ends with its held-out evaluation (``vmalign eval`` for SB3
runs, the VLA trainers' own), which the report reads. Ray Tune runs the trials
(``ray.init`` locally with ``cpus``/``gpus``, or joins a cluster at ``address``),
each with ``cpus_per_trial``/``gpus_per_trial``. While a trial trains, each row its
run logs to ``progress.csv`` is reported to Ray (Tune's progress table in the
terminal, its result files under ``SWEEP/ray/``), and its summary at the end.

Started again on the same folder, a sweep never redoes work: a finished trial (its
``train_summary.json`` exists) only reports its summary, a trial with a checkpoint
resumes from it (a killed or failed one), and one killed before its first checkpoint
starts over with its old folder kept aside (``partial/NAME.N``). Every trial is
checked (config keys and values) before Ray starts, so a typo stops the sweep before
any trial runs. At the end, :func:`agents.report.report` aggregates the trials.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.logs import PROGRESS_FILE, STEP_KEY
from agents.output import make_output_dir
from rewards.durable import atomic_save

SWEEP_FILE = "sweep.json"
TRIALS = "trials"
PARTIAL = "partial"
"""Where a trial killed before its first checkpoint is kept when it starts over."""
REPORT_EVERY_S = 10.0
"""How often a trial reads its run's new log rows and reports them to Ray."""
SWEEP_EXTRA = "pip install 'vmalign[sweep]'  (or: ./run.sh, which installs it)"


@dataclass(frozen=True)
class Trial:
    """One run of the sweep."""

    name: str
    overrides: list[str]
    """``KEY=VALUE`` overrides of the sweep's config (grid values and the seed); its
    run folder is ``SWEEP/trials/NAME``."""


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``KEY=[a,b]`` (YAML list) or ``KEY=a`` items -> key -> values."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"grid entries are KEY=[v1, v2] (or KEY=VALUE), got {item!r}")
        values = yaml.safe_load(text)
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"grid entry {key} has no values")
        if key == "seed":
            raise ValueError("give seeds with --seeds, not in the grid")
        grid[key] = values
    return grid


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_setup(setup: list[str]) -> None:
    """Calls each ``MODULE:FUNCTION`` (e.g. one that registers your own envs with
    Gymnasium): in the driver before the trials are checked, and in every trial's
    worker before its config is read."""
    import importlib

    for entry in setup:
        module_name, sep, function = entry.partition(":")
        if not sep or not module_name or not function:
            raise ValueError(f"setup entries are MODULE:FUNCTION, got {entry!r}")
        try:
            target = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"setup {entry!r}: {error}") from error
        target()


def plan(config: str, seeds: list[int], grid: dict[str, list[Any]]) -> list[Trial]:
    """Every grid point x seed, checked by loading its config (``ValueError`` naming
    the key and the valid ones otherwise)."""
    from agents.config import load_config

    if not seeds:
        raise ValueError("a sweep needs at least one seed (--seeds 0 1 2)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    trials = []
    keys = list(grid)
    for values in itertools.product(*(grid[key] for key in keys)):
        point = [f"{key}={_value_text(value)}" for key, value in zip(keys, values)]
        for seed in seeds:
            overrides = [*point, f"seed={seed}"]
            load_config(config, overrides)  # bad keys or values stop the sweep here
            name = re.sub(r"[^A-Za-z0-9._=-]+", "-", "__".join(overrides)).strip("-")
            trials.append(Trial(name, overrides))
    return trials


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs (or resumes, or only reads) one trial; returns its final summary. This is
    what a Ray worker calls; it is plain Python, so tests can call it directly."""
    from agents.checkpoint import latest_checkpoint
    from agents.config import load_config
    from agents.runs import SUMMARY_FILE, load_run_config, train

    run_setup(spec.get("setup", []))
    run_dir = Path(spec["run_dir"])
    summary_file = run_dir / SUMMARY_FILE
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())  # killed, at worst, during its eval
        return {**summary, **_evaluated(run_dir, summary), "trial_status": "finished before"}
    if run_dir.is_dir() and latest_checkpoint(run_dir) is not None:
        summary = train(load_run_config(run_dir), run_dir, resume=True, progress_bar=False)
        return {**summary, **_evaluated(run_dir, summary), "trial_status": "resumed"}
    if run_dir.exists():  # killed before its first checkpoint: keep what it wrote,
        kept = run_dir.parent.parent / PARTIAL  # outside trials/, which the report reads
        kept.mkdir(exist_ok=True)
        index = 1
        while (kept / f"{run_dir.name}.{index}").exists():
            index += 1
        run_dir.rename(kept / f"{run_dir.name}.{index}")
    config = load_config(spec["config"], spec["overrides"])
    summary = train(config, run_dir, progress_bar=False)
    return {**summary, **_evaluated(run_dir, summary), "trial_status": "trained"}


def _evaluated(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The held-out evaluation the report reads: the VLA trainers evaluate themselves
    (``summary["eval"]``); SB3 runs get ``vmalign eval`` here (``eval/eval.json``) unless
    one finished before (an eval killed before its ``eval.json`` does not count)."""
    from agents.report import latest_evaluation

    if summary.get("eval") or latest_evaluation(run_dir) is not None:
        return {}
    from agents.evaluation import evaluate_run

    result = evaluate_run(run_dir, log=lambda *_: None)
    return {"eval_success_rate": result["success_rate"],
            "eval_mean_return": result["mean_return"]}


class ProgressFollower:
    """Reads the rows a run appends to its ``progress.csv`` while it trains, each once:
    what a trial reports to Ray as it goes. Rows are told apart by their step (and
    their order among rows of the same step), so a resumed run's rewrite of the file
    reports nothing twice; a row still being written waits for the next read."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / PROGRESS_FILE
        self.last_step, self.seen_at_last = -math.inf, 0

    def new_rows(self) -> list[dict[str, float]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        rows, seen = [], 0
        for row in csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1])):
            numbers = {key: float(value) for key, value in row.items()
                       if key and _is_number(value)}
            step = numbers.get(STEP_KEY)
            if step is None or step < self.last_step:
                continue
            seen = seen + 1 if step == self.last_step else 1
            if step == self.last_step and seen <= self.seen_at_last:
                continue
            rows.append(numbers)
            self.last_step, self.seen_at_last = step, seen
        return rows


def _is_number(value: str | None) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except ValueError:
        return False


def _trial_name(trial: Any) -> str:
    return str(trial.config["trial"])


def _tune_trainable(config: dict[str, Any], specs: dict[str, dict[str, Any]]) -> None:
    """Trains the trial in a thread and reports its log rows to Ray as they appear
    (Ray Tune's progress table and its result logs), then its summary."""
    from ray import tune

    spec = specs[config["trial"]]
    follower = ProgressFollower(Path(spec["run_dir"]))
    with ThreadPoolExecutor(max_workers=1) as pool:
        trial = pool.submit(run_trial, spec)
        while True:
            finished = bool(wait([trial], timeout=REPORT_EVERY_S).done)
            for row in follower.new_rows():
                tune.report(row)
            if finished:
                break
        summary = trial.result()  # re-raises the trial's error
    tune.report({key: value for key, value in summary.items()
                 if isinstance(value, (int, float, str)) and not isinstance(value, bool)})


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """``ValueError`` unless something listens at the HOST:PORT of ``address``."""
    import socket

    host, sep, port = address.split("://")[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address must be HOST:PORT (or auto), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ValueError(f"could not start or join the Ray cluster at {address!r}: nothing "
                         f"answers there ({error}); start one with `ray start --head` or "
                         f"leave out --address for a local instance") from error


def write_sweep_file(root: Path, config: str, seeds: list[int], grid: dict[str, list[Any]],
                     trials: list[Trial]) -> None:
    """Writes ``sweep.json``; refuses a folder that holds another sweep."""
    record = {"config": config, "seeds": seeds, "grid": grid,
              "trials": [asdict(trial) for trial in trials]}
    path = root / SWEEP_FILE
    if path.is_file():
        existing = json.loads(path.read_text())
        if {k: existing.get(k) for k in ("config", "seeds", "grid")} != \
                {k: record[k] for k in ("config", "seeds", "grid")}:
            raise ValueError(f"{root} holds another sweep ({path}: config "
                             f"{existing.get('config')!r}, seeds {existing.get('seeds')}, grid "
                             f"{existing.get('grid')}); use another --out, or the same "
                             f"arguments to continue it")
        return
    root.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda partial: partial.write_text(json.dumps(record, indent=2)))


def sweep(config: str, seeds: list[int], grid: dict[str, list[Any]], root: str | Path | None,
          cpus: int | None = None, gpus: int | None = None, cpus_per_trial: float = 1.0,
          gpus_per_trial: float = 0.0, address: str | None = None, report: bool = True,
          setup: list[str] | None = None, verbose: int = 1) -> tuple[Path, dict[str, Any]]:
    """Runs the sweep (see the module doc) in the folder ``root`` (None: a new
    ``outputs/sweep-<time>``, made once the trials are checked and Ray runs); returns
    the sweep folder and {trial name: summary}."""
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ImportError(f"vmalign sweep needs Ray Tune, which is not installed: "
                          f"{SWEEP_EXTRA}") from error
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ValueError(f"cpus_per_trial must be > 0 and gpus_per_trial >= 0, got "
                         f"{cpus_per_trial} and {gpus_per_trial}")
    setup = list(setup or [])
    run_setup(setup)
    if Path(config).is_file():  # Ray Tune runs each trial in its own working directory
        config = str(Path(config).resolve())
    trials = plan(config, seeds, grid)  # every trial checked before Ray starts
    if address is not None and address != "auto":
        _check_reachable(address)  # ray.init would retry an unreachable head for minutes
    try:
        if address is not None:
            ray.init(address=address, include_dashboard=False, configure_logging=False,
                     log_to_driver=verbose > 1)
        else:
            ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False,
                     configure_logging=False, log_to_driver=verbose > 1)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise ValueError(f"could not start or join {where}: {error}") from error
    try:
        root = (Path(root) if root is not None else make_output_dir(None, prefix="sweep")
                ).resolve()
        write_sweep_file(root, config, seeds, grid, trials)
        specs = {trial.name: {"config": config, "setup": setup,
                              "run_dir": str(root / TRIALS / trial.name), **asdict(trial)}
                 for trial in trials}
        # Ray sees only each trial's name (its progress table's column, its folders'
        # names); the specs reach the workers through Ray's object store.
        trainable = tune.with_resources(tune.with_parameters(_tune_trainable, specs=specs),
                                        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(list(specs))},
            tune_config=tune.TuneConfig(trial_name_creator=_trial_name,
                                        trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(storage_path=str(root / "ray"), name="tune",
                                      verbose=verbose))
        results = tuner.fit()
    finally:
        ray.shutdown()
    outcome: dict[str, Any] = {}
    for result in results:
        name = result.config["trial"]
        outcome[name] = ({"error": str(result.error)} if result.error is not None
                         else dict(result.metrics))
    if report:
        from agents.report import report as write_report

        if any("error" not in value for value in outcome.values()):
            write_report(root / TRIALS, out=root)
    return root, outcome
