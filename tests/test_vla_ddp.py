"""vla-bc, vla-grpo and vla-dpo under torchrun: two gloo processes take the steps one process
takes on the same global batch, resume from the main process's checkpoint, and bad
set-ups stop before the run folder exists."""

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


def refused(config: Path, override: str, out: Path) -> str:
    """The error of a torchrun training that must stop before its run folder exists."""
    done = torchrun("--config", str(config), override, "--out", str(out))
    assert done.returncode != 0
    assert not out.exists()
    return done.stderr


def logged(run: Path, key: str = LOSS) -> list[float]:
    with open(run / "progress.csv", newline="") as handle:
        return [float(row[key]) for row in csv.DictReader(handle) if row[key]]


def losses(run: Path) -> list[float]:
    return logged(run, LOSS)


def assert_same_parameters(one_run: Path, two_run: Path, before: Path) -> None:
    """The final policies agree well within the last step's size, except the
    attention key biases: their gradient is zero in exact arithmetic (softmax ignores
    a shift shared by every key), and Adam scales the float noise in it up to
    updates of about the learning rate."""
    one = VLAPolicy.load(one_run / "policy", device="cpu").state_dict()
    two = VLAPolicy.load(two_run / "policy", device="cpu").state_dict()
    start = VLAPolicy.load(before, device="cpu").state_dict()
    for name in list(one):
        if name.endswith("in_proj_bias"):  # query, key and value biases, stacked
            width = one[name].numel() // 3
            keep = torch.cat([torch.arange(width), torch.arange(2 * width, 3 * width)])
            one[name], two[name], start[name] = (d[name][keep] for d in (one, two, start))
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, atol=2e-5, rtol=0, msg=name)
    moved = max((one[n].float() - start[n].float()).abs().max().item() for n in one)
    assert moved > 5e-4  # the last step was taken, and the comparison can fail


def one_and_two_processes(tmp_path: Path, config: Path, length_key: str
                          ) -> tuple[Path, Path, subprocess.CompletedProcess,
                                     subprocess.CompletedProcess]:
    """The run of ``config`` for 2 steps (of ``length_key``) and then resumed to 3: in
    one process (``RUN/single``) and under torchrun with two (``RUN/ddp``). Returns
    both run folders and the two torchrun commands' results (the first and the
    resume), after checking that both succeeded as one two-process run."""
    single = tmp_path / "single"
    train(load_config(config, [f"{length_key}=2"]), single, log=lambda *a: None)
    train(load_config(config), single, resume=True, log=lambda *a: None)

    ddp = tmp_path / "ddp"
    first = torchrun("--config", str(config), f"{length_key}=2", "--out", str(ddp))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 processes" in first.stdout
    second = torchrun("--resume", str(ddp), f"{length_key}=3")
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((ddp / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["resumed_from"] == 2
    return single, ddp, first, second


def test_two_processes_match_one_and_resume(tmp_path, bc_yaml):
    single, ddp, _, second = one_and_two_processes(tmp_path, bc_yaml, "bc.steps")
    assert second.stdout.count("resuming") == 1  # the main process speaks for both
    assert sorted(p.name for p in (ddp / "checkpoints").glob("step-*")) == [
        "step-0000000002", "step-0000000003"]

    # Each process saw half of every batch; the averaged gradients make the same steps.
    assert losses(ddp) == pytest.approx(losses(single), abs=1e-5)
    assert len(losses(ddp)) == 3
    assert_same_parameters(single, ddp, ddp / "checkpoints" / "step-0000000002" / "policy")


def test_a_batch_that_does_not_split_evenly_stops_before_the_run_folder(tmp_path, bc_yaml):
    error = refused(bc_yaml, "bc.batch_size=7", tmp_path / "odd")
    assert "bc.batch_size=7 is not a multiple of the 2 torchrun processes" in error
    assert "bc.batch_size=8" in error


def test_an_algorithm_that_is_not_data_parallel_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=r"algo ppo trains in one process, but torchrun "
                                         r"started 2.*data-parallel algos: \['vla-bc', "
                                         r"'vla-dpo', 'vla-grpo'\]"):
        preflight(load_config("reach_ground_truth"))


def rl_yaml(tmp_path_factory, random_tiny_policy: Path, algo: str, settings: dict) -> Path:
    """A config file for ``algo`` (``vla-grpo``, ``vla-dpo``) on NumberLine from the
    random tiny policy, with ``settings`` as its section (``grpo:``, ``dpo:``)."""
    folder = tmp_path_factory.mktemp(algo)
    config = {"algo": algo, "seed": 0, "device": "cpu", "checkpoint_every": 1,
              "eval_episodes": 2, "env": "vmalign/NumberLine-v0",
              "env_kwargs": {"obs_size": 64}, "vla": {"init": str(random_tiny_policy)},
              algo.removeprefix("vla-"): settings}
    path = folder / f"{algo}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def grpo_yaml(tmp_path_factory, random_tiny_policy):
    # Two chunks of two groups (parallel 8 // group_size 4): one per process.
    return rl_yaml(tmp_path_factory, random_tiny_policy, "vla-grpo",
                   {"iterations": 3, "groups": 4, "group_size": 4, "n_epochs": 2,
                    "batch_size": 16, "lr": 1e-3, "parallel": 8})


def test_grpo_two_processes_play_half_the_groups_each_and_match_one(tmp_path, grpo_yaml):
    single, ddp, first, _ = one_and_two_processes(tmp_path, grpo_yaml, "grpo.iterations")
    assert first.stdout.count("iteration 1/2") == 1

    # The same rollouts (each chunk of groups has its own sampler, whoever plays it),
    # and the shared minibatches make the same updates.
    returns = logged(single, "rollout/gt_return")
    assert logged(ddp, "rollout/gt_return") == returns and len(returns) == 3
    assert logged(ddp, "grpo/policy_loss") == pytest.approx(logged(single, "grpo/policy_loss"),
                                                            abs=1e-5)
    assert_same_parameters(single, ddp, ddp / "checkpoints" / "step-0000000002" / "policy")


def test_grpo_with_fewer_chunks_than_processes_stops_before_the_run_folder(tmp_path,
                                                                           grpo_yaml):
    error = refused(grpo_yaml, "grpo.parallel=16", tmp_path / "one-chunk")
    assert "make 1 chunk(s) for 2 torchrun processes" in error
    assert "grpo.groups=8 or more, or grpo.parallel=8 or less" in error


@pytest.fixture(scope="module")
def dpo_yaml(tmp_path_factory, random_tiny_policy):
    # 24 rollouts: two chunks (16 + 8), one per process. Batches of 3 pairs: one process
    # takes two pairs, the other one, and the last batch leaves one process none.
    return rl_yaml(tmp_path_factory, random_tiny_policy, "vla-dpo",
                   {"rollouts": 24, "rollouts_per_start": 4, "pairs": 10, "epochs": 3,
                    "batch_pairs": 3, "lr": 1e-3, "beta": 0.5, "nll_coef": 0.5})


def test_dpo_two_processes_share_rollouts_and_pairs_and_match_one(tmp_path, dpo_yaml):
    single, ddp, first, _ = one_and_two_processes(tmp_path, dpo_yaml, "dpo.epochs")
    assert first.stdout.count("recording 24 rollouts") == 1

    # The processes played a chunk each, and the main process wrote the rollouts one
    # process records, in order; the same pairs were labelled once.
    for name in ("rollouts/meta/episodes.jsonl", "preferences.jsonl"):
        assert (ddp / name).read_bytes() == (single / name).read_bytes(), name
    lengths = [json.loads(line)["length"] for line in
               (ddp / "rollouts/meta/episodes.jsonl").read_text().splitlines()]
    assert len(lengths) == 24
    decided = [json.loads(line) for line in (ddp / "preferences.jsonl").read_text().splitlines()]
    assert sum(p["label"] != 0.5 for p in decided) >= 4, "the test needs decided pairs"
    # Every pair counts once in the logged means; the summed gradients take one
    # process's steps.
    for key in ("dpo/loss", "dpo/preference_accuracy"):
        assert logged(ddp, key) == pytest.approx(logged(single, key), abs=1e-5), key
    assert_same_parameters(single, ddp, ddp / "checkpoints" / "step-0000000002" / "policy")
