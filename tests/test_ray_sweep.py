"""``vmalign sweep`` on a local Ray instance: trials as run folders, a real kill and a
rerun that skips the finished trial and resumes the other, and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from agents.cli import main
from agents.sweep import ProgressFollower, parse_grid, plan
from tests import easy_env

pytest.importorskip("ray")  # the vmalign[sweep] extra; run.sh installs it

LAUNCH = "import sys; from agents.cli import main; sys.exit(main(sys.argv[1:]))"


def tiny_config(tmp_path):
    config = {
        "algo": "ppo", "env": easy_env.ENV_ID, "reward": "ground_truth", "eval_episodes": 2,
        "checkpoint_every": 256,
        "hyperparams": {"n_timesteps": 256, "policy": "MlpPolicy", "n_envs": 2,
                        "n_steps": 64, "batch_size": 64, "n_epochs": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sweep_command(config, out):
    # Trial "long" trains for minutes, trial "short" for a second: the kill lands
    # while the long one is past its first checkpoint and the short one is done.
    return [sys.executable, "-c", LAUNCH, "sweep", "--config", str(config), "--seeds", "0",
            "--grid", "hyperparams.n_timesteps=[256, 200000]", "--cpus", "2",
            "--setup", "tests.easy_env:register", "--out", str(out)]


def test_a_killed_sweep_reruns_skipping_the_finished_trial_and_resuming_the_other(tmp_path):
    config, out = tiny_config(tmp_path), tmp_path / "sweep"
    # Ray starts its workers at nice 15: beside other busy processes (the suite's other
    # worker, say) the trials would wait minutes for a core. Here they get normal priority.
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1",
           "RAY_worker_niceness": "0"}
    process = subprocess.Popen(sweep_command(config, out), env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    short = out / "trials" / "hyperparams.n_timesteps=256__seed=0"
    long = out / "trials" / "hyperparams.n_timesteps=200000__seed=0"
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline and not (
            (short / "train_summary.json").is_file()
            and (long / "checkpoints" / "latest").is_file()):
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (short / "train_summary.json").is_file(), "the short trial never finished"
    assert not (long / "train_summary.json").exists(), "the long trial finished before the kill"
    finished = (short / "train_summary.json").stat().st_mtime_ns
    sweep_file = json.loads((out / "sweep.json").read_text())
    assert [trial["name"] for trial in sweep_file["trials"]] == [short.name, long.name]

    # The rerun: same command with a shorter long trial so the test ends (the sweep
    # file pins the grid, so the length is changed in the trial's own config instead).
    saved = yaml.safe_load((long / "config.yaml").read_text())
    saved["hyperparams"]["n_timesteps"] = 1024
    (long / "config.yaml").write_text(yaml.safe_dump(saved))
    result = subprocess.run(sweep_command(config, out), env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"{short.name}: finished before" in result.stdout
    assert f"{long.name}: resumed" in result.stdout
    assert (short / "train_summary.json").stat().st_mtime_ns == finished  # not rerun
    assert json.loads((long / "train_summary.json").read_text())["resumed_from"] > 0
    assert (long / "eval" / "eval.json").is_file()  # the held-out evaluation the report reads
    report = json.loads((out / "report.json").read_text())
    assert len(report["points"]) == 2
    # Each trial's held-out evaluation: eval/, or eval-1/ when the kill came during
    # the short trial's eval (its partial eval/ is kept, and passed over).
    assert all(re.fullmatch(r"eval(-1)?/eval.json", run["source"])
               for point in report["points"] for run in point["runs"])
    assert (out / "report.md").is_file()
    # The long trial reported its log rows to Ray as it trained (before the kill too),
    # not only its summary at the end.
    reported = [json.loads(line) for path in (out / "ray").rglob("result.json")
                for line in path.read_text().splitlines()]
    steps = [row["time/total_timesteps"] for row in reported if "time/total_timesteps" in row
             and "rollout/ep_rew_mean" in row]
    assert len(set(steps)) >= 3


def test_a_trial_reports_each_log_row_once_across_torn_lines_and_resume_rewrites(tmp_path):
    follower = ProgressFollower(tmp_path)
    assert follower.new_rows() == []  # no log yet
    log = tmp_path / "progress.csv"
    log.write_text("loss,time/total_timesteps\n1.5,100\n1.0,200\n0.9,3")  # last row torn
    assert follower.new_rows() == [{"loss": 1.5, "time/total_timesteps": 100.0},
                                   {"loss": 1.0, "time/total_timesteps": 200.0}]
    log.write_text("loss,time/total_timesteps\n1.5,100\n1.0,200\n0.9,300\n,300\n")
    assert [row.get("loss") for row in follower.new_rows()] == [0.9, None]  # same step twice
    assert follower.new_rows() == []
    # A resume from step 200 rewrites the file without the rows after 200, then logs on.
    log.write_text("loss,time/total_timesteps,eval\n1.5,100,\n1.0,200,\n0.8,300,\n0.7,400,nan\n")
    assert follower.new_rows() == [{"loss": 0.7, "time/total_timesteps": 400.0}]


def test_bad_grid_keys_and_values_stop_before_any_trial(tmp_path, capsys):
    easy_env.register()
    config = tiny_config(tmp_path)
    out = tmp_path / "bad"
    assert main(["sweep", "--config", str(config), "--grid", "hyperparams.n_stepz=[1,2]",
                 "--out", str(out)]) == 2
    assert "unknown key 'hyperparams.n_stepz'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sweep", "--config", str(config), "--grid", "hyperparams.n_envs=[2,0]",
                 "--out", str(out)]) == 2
    assert "hyperparams.n_envs: must be >= 1" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="KEY=\\[v1, v2\\]"):
        parse_grid(["reward"])
    with pytest.raises(ValueError, match="--seeds"):
        parse_grid(["seed=[1,2]"])
    with pytest.raises(ValueError, match="at least one seed"):
        plan(str(config), [], {})


def test_an_unreachable_cluster_address_is_a_clear_error(tmp_path, capsys):
    easy_env.register()
    out = tmp_path / "remote"
    assert main(["sweep", "--config", str(tiny_config(tmp_path)), "--address",
                 "127.0.0.1:1", "--out", str(out)]) == 2
    assert "could not start or join the Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err


def test_a_trial_killed_before_its_first_checkpoint_starts_over_and_keeps_its_folder(tmp_path):
    from agents.sweep import run_trial

    easy_env.register()
    config = tiny_config(tmp_path)
    run_dir = tmp_path / "sweep" / "trials" / "seed=0"
    run_dir.mkdir(parents=True)
    (run_dir / "progress.csv").write_text("written before the kill\n")
    spec = {"config": str(config), "overrides": ["seed=0"], "run_dir": str(run_dir),
            "setup": ["tests.easy_env:register"]}
    summary = run_trial(spec)
    assert summary["trial_status"] == "trained" and summary["steps"] == 256
    assert (tmp_path / "sweep" / "partial" / "seed=0.1" / "progress.csv").read_text() == \
        "written before the kill\n"
    assert (run_dir / "eval" / "eval.json").is_file()
    assert run_trial(spec)["trial_status"] == "finished before"
    assert not (run_dir / "eval-1").exists()  # evaluated already: not again

    # Killed during its evaluation: the rerun evaluates into a fresh folder (the
    # partial one is kept), once, and the report reads that one.
    (run_dir / "eval" / "eval.json").unlink()
    assert run_trial(spec)["trial_status"] == "finished before"
    assert (run_dir / "eval-1" / "eval.json").is_file()
    assert run_trial(spec)["trial_status"] == "finished before"
    assert not (run_dir / "eval-2").exists()
