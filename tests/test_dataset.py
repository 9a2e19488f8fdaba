"""Demonstration datasets: LeRobot-style keys, lazy reading, durable and resumable recording."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agents.cli import main
from agents.collect import collect_dataset
from agents.dataset import DatasetError, DatasetWriter, EpisodeDataset

ROOT = Path(__file__).resolve().parents[1]


def test_collect_writes_lerobot_style_keys_and_reads_lazily(tmp_path):
    out = tmp_path / "reach"
    summary = collect_dataset("vmalign/Reach-v0", 3, str(out), seed=5, log=lambda *a: None,
                              env_kwargs={"obs_size": 32})
    assert summary["episodes"] == 3 and summary["frames"] == 150  # 50-step episodes
    dataset = EpisodeDataset(out, cache_episodes=1)
    assert len(dataset) == 150 and dataset.num_episodes == 3 and dataset.env == "vmalign/Reach-v0"
    item = dataset[57]
    assert set(item) >= {"observation.image", "action", "task", "episode_index", "frame_index",
                         "reward", "success"}
    assert item["observation.image"].shape == (32, 32, 3) and item["action"].shape == (4,)
    assert (item["episode_index"], item["frame_index"]) == (1, 7)
    assert item["task"].startswith("move the gripper to the")
    episode = dataset.episode(2)
    assert episode["done"][-1] and not episode["done"][:-1].any()
    assert [r["seed"] for r in dataset.episodes] == [5, 6, 7]
    assert episode["success"][-1] == dataset.episodes[2]["success"]
    # The recorded actions replay the episode: the expert's, step for step.
    import gymnasium as gym

    env = gym.make("vmalign/Reach-v0", obs_size=32)
    obs, _ = env.reset(seed=7)
    np.testing.assert_array_equal(obs, episode["observation.image"][0])
    for action, reward in zip(episode["action"][:5], episode["reward"][:5]):
        _, got, *_ = env.step(action)
        assert got == pytest.approx(reward)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["features"]["action"] == {"dtype": "float32", "shape": [4]}


def test_discrete_actions_are_stored_as_integers(tmp_path):
    collect_dataset("vmalign/NumberLine-v0", 2, str(tmp_path / "cards"), log=lambda *a: None,
                    env_kwargs={"obs_size": 64})
    item = EpisodeDataset(tmp_path / "cards")[0]
    assert item["action"].shape == () and np.issubdtype(item["action"].dtype, np.integer)


def test_a_killed_recording_resumes_without_losing_or_corrupting_episodes(tmp_path):
    out = tmp_path / "push"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agents", "collect", "--env", "vmalign/Push-v0", "--episodes",
         "400", "--out", str(out), "--env-arg", "obs_size=32"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    index = out / "meta" / "episodes.jsonl"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if index.is_file() and len(index.read_text().splitlines()) >= 3:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("no episode was recorded in time")
        time.sleep(0.15)  # very likely mid-episode or mid-write
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = EpisodeDataset(out)
    kept = before.num_episodes
    for episode in range(kept):  # every listed episode is whole
        assert len(before.episode(episode)["action"]) == 100
    # A torn index line (a killed append) is ignored, not fatal.
    with open(index, "a") as handle:
        handle.write('{"episode_index": 99, "len')
    summary = collect_dataset("vmalign/Push-v0", kept + 2, str(out), log=lambda *a: None,
                              env_kwargs={"obs_size": 32})
    assert summary["episodes"] == kept + 2 and summary["new_episodes"] == 2
    after = EpisodeDataset(out)
    assert [r["episode_index"] for r in after.episodes] == list(range(kept + 2))
    assert len({r["seed"] for r in after.episodes}) == kept + 2  # no seed recorded twice
    assert not [p for p in (out / "data").rglob("*") if p.name.startswith(".")]


def test_mismatched_resume_and_corrupt_files_fail_clearly(tmp_path):
    out = tmp_path / "d"
    collect_dataset("vmalign/Reach-v0", 1, str(out), log=lambda *a: None,
                    env_kwargs={"obs_size": 32})
    with pytest.raises(DatasetError, match="use another folder"):
        collect_dataset("vmalign/Push-v0", 2, str(out), log=lambda *a: None,
                        env_kwargs={"obs_size": 32})
    with pytest.raises(DatasetError, match="use another folder"):
        DatasetWriter(out, {"observation.image": ("uint8", (64, 64, 3)),
                            "action": ("float32", (4,))}, {"env": "vmalign/Reach-v0",
                                                           "env_kwargs": {"obs_size": 32}})
    dataset = EpisodeDataset(out)
    (out / dataset.episodes[0]["file"]).write_bytes(b"not an npz")
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        EpisodeDataset(out).episode(0)
    with pytest.raises(FileNotFoundError, match="not a vmalign dataset"):
        EpisodeDataset(tmp_path / "none")


def test_collect_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["collect", "--env", "vmalign/NumberLine-v0", "--episodes", "2", "--out",
                 str(out), "--env-arg", "obs_size=64"]) == 0
    assert "2 episodes (2 new" in capsys.readouterr().out
    assert main(["collect", "--env", "vmalign/NumberLine-v0", "--episodes", "0", "--out",
                 str(out)]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
    decoy_out = tmp_path / "decoy"
    assert main(["collect", "--env", "vmalign/NumberLine-v0", "--episodes", "2", "--policy",
                 "decoy", "--out", str(decoy_out)]) == 2
    assert "has no scripted decoy" in capsys.readouterr().err
    assert not decoy_out.exists()


def _slide_expert_action(frame: np.ndarray) -> int:
    """The Slide expert's action read off the frame (the bar's column)."""
    from tests import easy_env

    left = int(np.flatnonzero(frame[16, :, 0] == 255)[0])
    position = (left - 2) // 3
    if position == easy_env.MIDDLE:
        return 2
    return 1 if position < easy_env.MIDDLE else 0


def test_dart_labels_record_the_experts_action_in_states_a_noisy_policy_visits(tmp_path):
    from tests import easy_env

    easy_env.register()
    labelled = {}
    for label in ("taken", "expert"):
        out = tmp_path / label
        collect_dataset(easy_env.ENV_ID, 6, str(out), policy="noisy(1.0)", action_label=label,
                        log=lambda *a: None)
        dataset = EpisodeDataset(out)
        assert dataset.info["action_label"] == label
        items = list(dataset)
        labelled[label] = [int(item["action"]) == _slide_expert_action(item["observation.image"])
                           for item in items]
    # Random execution: the taken actions often disagree with the expert ...
    assert np.mean(labelled["taken"]) < 0.6
    # ... and the expert labels always agree, in the random policy's states.
    assert all(labelled["expert"])
    with pytest.raises(DatasetError, match="records expert actions, not taken"):
        collect_dataset(easy_env.ENV_ID, 7, str(tmp_path / "expert"), policy="noisy(1.0)",
                        log=lambda *a: None)
    with pytest.raises(ValueError, match="unknown action label 'best'"):
        collect_dataset(easy_env.ENV_ID, 1, str(tmp_path / "x"), action_label="best",
                        log=lambda *a: None)
