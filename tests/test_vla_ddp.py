"""vla-bc under torchrun: two gloo processes take the steps one process takes on the
same global batch, resume from the main process's checkpoint, and bad set-ups stop
before the run folder exists."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from agents.collect import collect_dataset
from agents.config import load_config
from agents.runs import preflight, train
from agents.vla.model import VLAPolicy

REPO_ROOT = Path(__file__).resolve().parents[1]
LOSS = "bc/loss/vmalign/NumberLine-v0"


@pytest.fixture(scope="module")
def bc_yaml(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    collect_dataset("vmalign/NumberLine-v0", 6, str(folder / "data"),
                    env_kwargs={"obs_size": 64}, log=lambda *a: None)
    config = {"algo": "vla-bc", "seed": 0, "device": "cpu", "checkpoint_every": 2,
              "eval_episodes": 2, "datasets": [str(folder / "data")],
              "vla": {"preset": "tiny", "image_size": 32, "patch_size": 8},
              "bc": {"steps": 3, "batch_size": 8, "lr": 1e-3, "warmup": 1, "log_every": 1}}
    path = folder / "bc.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "agents", "train", "--no-progress",
                           *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def losses(run: Path) -> list[float]:
    with open(run / "progress.csv", newline="") as handle:
        return [float(row[LOSS]) for row in csv.DictReader(handle) if row[LOSS]]


def test_two_processes_match_one_and_resume(tmp_path, bc_yaml):
    single = tmp_path / "single"  # one process: two steps, then resumed to the third
    train(load_config(bc_yaml, ["bc.steps=2"]), single, log=lambda *a: None)
    train(load_config(bc_yaml), single, resume=True, log=lambda *a: None)

    ddp = tmp_path / "ddp"  # the same with two processes
    first = torchrun("--config", str(bc_yaml), "bc.steps=2", "--out", str(ddp))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 processes" in first.stdout
    second = torchrun("--resume", str(ddp), "bc.steps=3")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("resuming") == 1  # the main process speaks for both
    summary = json.loads((ddp / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["resumed_from"] == 2
    assert sorted(p.name for p in (ddp / "checkpoints").glob("step-*")) == [
        "step-0000000002", "step-0000000003"]

    # Each process saw half of every batch; the averaged gradients make the same
    # steps. The tolerance is well under one step (lr 1e-3): Adam turns float noise
    # in gradients that are zero in exact arithmetic (attention key biases) into
    # updates of up to 1e-4.
    assert losses(ddp) == pytest.approx(losses(single), abs=1e-5)
    assert len(losses(ddp)) == 3
    one = VLAPolicy.load(single / "policy", device="cpu").state_dict()
    two = VLAPolicy.load(ddp / "policy", device="cpu").state_dict()
    start = VLAPolicy.load(ddp / "checkpoints" / "step-0000000002" / "policy",
                           device="cpu").state_dict()
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, atol=2e-4, rtol=0, msg=name)
    moved = max((one[n].float() - start[n].float()).abs().max().item() for n in one)
    assert moved > 5e-4  # the third step was taken, and the comparison can fail


def test_a_batch_that_does_not_split_evenly_stops_before_the_run_folder(tmp_path, bc_yaml):
    out = tmp_path / "odd"
    done = torchrun("--config", str(bc_yaml), "bc.batch_size=7", "--out", str(out))
    assert done.returncode != 0
    assert "bc.batch_size=7 is not a multiple of the 2 torchrun processes" in done.stderr
    assert "bc.batch_size=8" in done.stderr
    assert not out.exists()


def test_an_algorithm_that_is_not_data_parallel_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=r"algo ppo trains in one process, but torchrun "
                                         r"started 2.*data-parallel algos: \['vla-bc'\]"):
        preflight(load_config("reach_ground_truth"))
