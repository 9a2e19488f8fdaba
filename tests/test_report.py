"""``vmalign report``: grid points from run folders, IQM and bootstrap intervals (rliable)
checked against values computed by hand, plots, and the results-file section."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from agents.cli import main
from agents.report import find_runs, group_runs, replace_section, report

GROUND_TRUTH = [0.1, 0.5, 0.6, 0.7, 1.0]
PREFERENCE = [0.3, 0.3, 0.3]
CLIP = [round(float(x), 4) for x in np.linspace(0.0, 1.0, 16) ** 2]
"""Enough seeds for a smooth bootstrap distribution (with 5, its 2.5th percentile sits
on a jump between resampled values, where two correct bootstraps may differ)."""


def make_run(folder, seed, reward, success, curve=True, evaluated=True):
    folder.mkdir(parents=True)
    config = {"algo": "ppo", "env": "vmalign/Reach-v0", "seed": seed, "out": str(folder),
              "reward": reward, "hyperparams": {"n_timesteps": 1000}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if evaluated:
        (folder / "eval").mkdir()
        (folder / "eval" / "eval.json").write_text(json.dumps(
            {"success_rate": success, "mean_return": 10 * success - 5}))
    if curve:
        lines = ["time/total_timesteps,rollout/success_rate"]
        lines += [f"{step},{success * step / 1000}" for step in (100, 400, 700, 1000)]
        (folder / "progress.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "sweep"
    for seed, success in enumerate(GROUND_TRUTH):
        make_run(root / f"gt-seed{seed}", seed, "ground_truth", success)
    for seed, success in enumerate(PREFERENCE):
        make_run(root / f"pref-seed{seed}", seed, "preference", success)
    make_run(root / "pref-seed9", 9, "preference", 0.0, evaluated=False)
    for seed, success in enumerate(CLIP):
        make_run(root / f"clip-seed{seed}", seed, "clip", success, curve=False)
    return root


def iqm(values):
    """The interquartile mean as rliable defines it (scipy's trim_mean, 25% each side)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    cut = int(0.25 * len(ordered))
    return ordered[cut:len(ordered) - cut].mean()


def bootstrap_interval(values, statistic, reps=20000, seed=1):
    rng = np.random.default_rng(seed)
    values = np.asarray(values)
    draws = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(reps)]
    return np.percentile(draws, [2.5, 97.5])


def test_runs_group_by_config_without_seed_and_aggregate_as_computed_by_hand(runs_dir):
    points = {point.label: point for point in group_runs(find_runs(runs_dir))}
    assert set(points) == {"ppo reward=ground_truth", "ppo reward=preference",
                           "ppo reward=clip"}
    record = report(runs_dir, reps=5000)
    by_label = {point["label"]: point for point in record["points"]}
    truth = by_label["ppo reward=ground_truth"]["aggregates"]["success_rate"]
    assert truth["iqm"] == pytest.approx(0.6) and truth["mean"] == pytest.approx(0.58)
    assert truth["iqm_low"] < 0.6 < truth["iqm_high"] and truth["mean_low"] < 0.58 < truth["mean_high"]
    clip = by_label["ppo reward=clip"]["aggregates"]["success_rate"]
    assert clip["iqm"] == pytest.approx(iqm(CLIP)) and clip["mean"] == pytest.approx(np.mean(CLIP))
    for name, statistic in (("iqm", iqm), ("mean", np.mean)):
        low, high = bootstrap_interval(CLIP, statistic)
        assert clip[f"{name}_low"] == pytest.approx(low, abs=0.02)
        assert clip[f"{name}_high"] == pytest.approx(high, abs=0.02)
    preference = by_label["ppo reward=preference"]
    assert preference["aggregates"]["success_rate"] == pytest.approx(
        {"iqm": 0.3, "iqm_low": 0.3, "iqm_high": 0.3, "mean": 0.3, "mean_low": 0.3,
         "mean_high": 0.3})
    assert [run["scores"] for run in preference["runs"]][-1] is None  # seed 9: no eval
    assert report(runs_dir, reps=5000) == record  # the bootstrap is seeded


def test_the_report_writes_its_table_and_plots_and_a_results_section(runs_dir, tmp_path,
                                                                    capsys):
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nkept above\n")
    assert main(["report", str(runs_dir), "--reps", "500", "--results-md", str(results),
                 "--section", "reach"]) == 0
    assert "3 grid point(s), 25 run(s)" in capsys.readouterr().out
    table = (runs_dir / "report.md").read_text()
    assert ("| ppo reward=ground_truth | 0/1/2/3/4 | 0.10 / 0.50 / 0.60 / 0.70 / 1.00 | 0.60 ["
            in table)
    assert "| 0/1/2 (1 not evaluated) |" in table
    for name in ("learning_curves.png", "performance_profile.png"):
        assert (runs_dir / name).read_bytes()[:4] == b"\x89PNG"
    first = results.read_text()
    assert first.startswith("# Results\n\nkept above\n") and first.count("vmalign report: reach") == 2
    results.write_text(first + "\nkept below\n")
    replace_section(results, "reach", "| new table |\n")
    text = results.read_text()
    assert "| new table |" in text and "0.10 / 0.50" not in text
    # Everything outside the markers is kept as it was, the blank line after them too.
    assert text.startswith("# Results\n\nkept above\n")
    assert text.endswith("<!-- end vmalign report: reach -->\n\nkept below\n")


def test_bad_input_stops_before_anything_is_written(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "no run folders under" in capsys.readouterr().err
    assert list(empty.iterdir()) == []
    make_run(empty / "run", 0, "ground_truth", 1.0)
    with pytest.raises(ValueError, match="needs a section name"):
        report(empty, results_md=tmp_path / "results.md")
    with pytest.raises(ValueError, match="reps must be >= 100"):
        report(empty, reps=10)
    assert not (empty / "report.md").exists() and not (tmp_path / "results.md").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_the_score_is_the_newest_finished_eval_of_a_run(tmp_path):
    """``vmalign eval`` never overwrites: a second eval writes ``eval-1``, and an eval
    killed before its ``eval.json`` leaves a folder without one, which is passed over."""
    from agents.report import final_scores

    run = tmp_path / "run"
    make_run(run, 0, "ground_truth", 0.2)
    assert final_scores(run) == ({"success_rate": 0.2, "mean_return": -3.0}, "eval/eval.json")
    for index, success in [(1, 0.4), (2, 0.6), (10, 0.8)]:  # 10 is newer than 2
        (run / f"eval-{index}").mkdir()
        (run / f"eval-{index}" / "eval.json").write_text(json.dumps(
            {"success_rate": success, "mean_return": 0.0}))
    (run / "eval-11").mkdir()  # killed mid-eval: videos, no eval.json
    (run / "eval-11" / "best.mp4").write_bytes(b"")
    (run / "evaluation-notes").mkdir()  # not an eval folder
    (run / "evaluation-notes" / "eval.json").write_text("{}")
    assert final_scores(run) == ({"success_rate": 0.8, "mean_return": 0.0}, "eval-10/eval.json")

    killed = tmp_path / "killed"
    make_run(killed, 0, "ground_truth", 0.0, evaluated=False)
    (killed / "eval").mkdir()
    assert final_scores(killed) == (None, "not evaluated")


def test_the_fast_iqm_is_rliables_for_any_count_and_per_time_step():
    from rliable import metrics

    from agents.report import interquartile_mean

    rng = np.random.default_rng(0)
    for runs in range(1, 13):
        scores = rng.random((runs, 2))
        assert interquartile_mean(scores) == pytest.approx(metrics.aggregate_iqm(scores))
    curves = rng.random((7, 1, 5))
    np.testing.assert_allclose(interquartile_mean(curves),
                               [metrics.aggregate_iqm(curves[..., t]) for t in range(5)])
