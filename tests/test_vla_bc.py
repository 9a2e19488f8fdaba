"""vla-bc: behaviour cloning learns an easy task; checkpoints, resume, config errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from agents.cli import main
from agents.collect import collect_dataset
from agents.config import ConfigError, load_config
from agents.runs import train
from agents.vla.model import VLAPolicy
from tests import easy_env


@pytest.fixture(scope="module")
def slide_data(tmp_path_factory):
    easy_env.register()
    folder = tmp_path_factory.mktemp("data") / "slide"
    collect_dataset(easy_env.ENV_ID, 40, str(folder), log=lambda *a: None)
    return folder


def bc_config(tmp_path, datasets, steps=150, vla=None, **bc):
    config = {"algo": "vla-bc", "seed": 0, "device": "cpu", "checkpoint_every": 50,
              "eval_episodes": 10, "datasets": [str(d) for d in datasets],
              "vla": vla or {"preset": "tiny", "image_size": 32, "patch_size": 8},
              "bc": {"steps": steps, "batch_size": 32, "lr": 1e-3, "warmup": 10,
                     "log_every": 25, **bc}}
    path = tmp_path / "bc.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bc_learns_the_expert_and_resumes_from_its_checkpoint(tmp_path, slide_data):
    easy_env.register()
    run = tmp_path / "run"
    short = load_config(bc_config(tmp_path, [slide_data], steps=100))
    first = train(short, run, log=lambda *a: None)
    assert first["steps"] == 100 and first["resumed_from"] == 0
    longer = load_config(bc_config(tmp_path, [slide_data], steps=150))
    summary = train(longer, run, resume=True, log=lambda *a: None)
    assert summary["resumed_from"] == 100 and summary["steps"] == 150
    # The expert moves the bar to the middle: a random policy almost never ends there.
    assert summary["eval"][easy_env.ENV_ID]["success_rate"] >= 0.8
    with open(run / "progress.csv", newline="") as handle:
        steps = [int(float(r["time/total_timesteps"])) for r in csv.DictReader(handle)]
    assert steps == sorted(steps) and steps[-1] == 150
    losses = [float(r[f"bc/loss/{easy_env.ENV_ID}"]) for r in
              csv.DictReader(open(run / "progress.csv")) if r.get(f"bc/loss/{easy_env.ENV_ID}")]
    assert losses[-1] < losses[0]
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*"))[-1] == "step-0000000150"
    policy = VLAPolicy.load(run / "policy", device="cpu")
    assert policy.config.image_size == 32
    assert json.loads((run / "train_summary.json").read_text())["algo"] == "vla-bc"


def test_bc_config_errors_name_the_key(tmp_path, slide_data):
    easy_env.register()
    with pytest.raises(ConfigError, match="not a vmalign dataset"):
        load_config(bc_config(tmp_path, [tmp_path / "none"]))
    with pytest.raises(ConfigError, match=r"unknown key 'bc.epochs'; valid keys of bc are \['batch_size'"):
        load_config(bc_config(tmp_path, [slide_data], epochs=3))
    with pytest.raises(ConfigError, match="do not apply to algo vla-bc"):
        load_config(bc_config(tmp_path, [slide_data]), ["reward=clip"])
    with pytest.raises(ConfigError, match="vla: unknown VLA setting"):
        load_config(bc_config(tmp_path, [slide_data]), ["vla.depht=3"])
    with pytest.raises(ConfigError, match="vla: init is required"):
        load_config(bc_config(tmp_path, [slide_data]), ["algo=vla-ppo", "datasets=[]",
                                                         "bc={}", f"env={easy_env.ENV_ID}"])


def test_train_cli_with_algo_and_resume_length_override(tmp_path, slide_data, capsys):
    easy_env.register()
    path = bc_config(tmp_path, [slide_data], steps=20)
    out = tmp_path / "cli"
    assert main(["train", "--config", str(path), "--algo", "vla-bc", "--out", str(out)]) == 0
    assert "vla-bc, 20 gradient steps" in capsys.readouterr().out
    assert main(["train", "--resume", str(out), "bc.steps=30"]) == 0
    assert json.loads((out / "train_summary.json").read_text())["resumed_from"] == 20
    assert main(["train", "--resume", str(out), "hyperparams.n_timesteps=5"]) == 2
    assert "only bc.steps=N" in capsys.readouterr().err


def test_eval_of_a_vla_run_writes_success_videos_and_curve(tmp_path, slide_data, capsys):
    easy_env.register()
    run = tmp_path / "run"
    train(load_config(bc_config(tmp_path, [slide_data], steps=30)), run, log=lambda *a: None)
    assert main(["eval", str(run), "--episodes", "3"]) == 0
    saved = json.loads((run / "eval" / "eval.json").read_text())
    result = saved["envs"][easy_env.ENV_ID]
    assert saved["algo"] == "vla-bc" and len(result["episode_results"]) == 3
    assert 0.0 <= result["success_rate"] <= 1.0
    progress = [e["final_progress"] for e in result["episode_results"]]
    assert result["mean_final_progress"] == pytest.approx(sum(progress) / 3, abs=1e-4)
    for name in ("slide-best.mp4", "slide-worst.mp4", "learning_curve.png"):
        assert (run / "eval" / name).stat().st_size > 0
    # --checkpoint takes a checkpoint's name; a wrong one names the ones there are.
    step = sorted(p.name for p in (run / "checkpoints").glob("step-*"))[-1]
    assert main(["eval", str(run), "--episodes", "1", "--checkpoint", step]) == 0
    saved = json.loads((run / "eval-1" / "eval.json").read_text())
    assert saved["policy"] == str(run / "checkpoints" / step / "policy")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--checkpoint", "step-9"]) != 0
    err = capsys.readouterr().err
    assert "no checkpoint 'step-9'" in err and step in err


@pytest.mark.parametrize("name", ["vla_ppo", "vla_dpo"])
def test_shipped_vla_configs_ask_for_the_policy_to_start_from(name):
    with pytest.raises(ConfigError, match="vla: init is required"):
        load_config(name)


def test_a_config_yaml_written_before_the_schemas_were_split_still_loads(tmp_path, slide_data):
    """Run folders of earlier versions list every trainer's keys at their defaults."""
    easy_env.register()
    config = yaml.safe_load(bc_config(tmp_path, [slide_data]).read_text())
    old = {**config, "out": None, "eval_envs": None, "env": None, "env_kwargs": {},
           "reward": "ground_truth", "reward_kwargs": {}, "reward_checkpoint": None,
           "reward_frames": "render", "ppo": {}, "dpo": {}}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    loaded = load_config(tmp_path / "old.yaml")
    assert loaded == load_config(bc_config(tmp_path, [slide_data]))
    (tmp_path / "clash.yaml").write_text(yaml.safe_dump({**old, "reward": "clip"}))
    with pytest.raises(ConfigError, match=r"\['reward'\] do not apply to algo vla-bc"):
        load_config(tmp_path / "clash.yaml")


def test_an_env_with_more_actions_than_the_policy_emits_stops_before_the_run_folder(
        tmp_path, slide_data, capsys):
    easy_env.register()
    path = bc_config(tmp_path, [slide_data], steps=5)
    out = tmp_path / "too-few"
    assert main(["train", "--config", str(path), "vla.discrete_actions=2",
                 "--out", str(out)]) == 2
    assert ("has 3 discrete actions; the policy emits at most 2 (discrete_actions): set "
            "vla.discrete_actions=3") in capsys.readouterr().err
    assert not out.exists()


def test_a_frozen_encoder_encodes_each_frame_once_and_trains_as_encoding_every_batch(
        tmp_path, slide_data, monkeypatch):
    """bc.encoder_cache_gib: the frozen ImageNet encoder's tokens are computed once per
    dataset frame; the steps then give the losses and parameters that encoding every
    batch gives."""
    easy_env.register()
    monkeypatch.setattr("agents.vla.runs.evaluate", lambda policy, config: {})
    encoded = []
    original = VLAPolicy.encoder_tokens
    monkeypatch.setattr(VLAPolicy, "encoder_tokens",
                        lambda self, images: encoded.append(len(images)) or original(self, images))
    vla = {"preset": "tiny", "image_encoder": "registry", "vision_encoder": "efficientnet_lite0",
           "image_size": 32, "vision_grid": 1}
    results = {}
    for limit in (8.0, 0):
        encoded.clear()
        lines = []
        config = load_config(bc_config(tmp_path, [slide_data], steps=6, vla=vla,
                                       encoder_cache_gib=limit, log_every=1))
        run = tmp_path / f"run-{limit}"
        summary = train(config, run, log=lines.append)
        frames = summary["datasets"][easy_env.ENV_ID]["frames"]
        rows = list(csv.DictReader(open(run / "progress.csv")))
        loss = [float(r[f"bc/loss/{easy_env.ENV_ID}"]) for r in rows
                if r.get(f"bc/loss/{easy_env.ENV_ID}")]
        results[limit] = (loss, VLAPolicy.load(run / "policy", device="cpu").state_dict(),
                          sum(encoded), "\n".join(lines))
    cached, live = results[8.0], results[0]
    assert cached[2] == frames  # every frame once, nothing at the steps
    assert live[2] == 6 * 32  # every step's batch
    assert "computed once" in cached[3] and "encodes every batch" in live[3]
    assert len(cached[0]) == 6 and cached[0][-1] != cached[0][0]  # the steps learn
    assert cached[0] == pytest.approx(live[0], abs=1e-5)
    assert all(torch.allclose(cached[1][k], live[1][k], atol=1e-5) for k in live[1])
