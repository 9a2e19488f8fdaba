"""PPO training: logs, checkpoints, resume after SIGKILL, episode-level relabelling."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import rewards
from agents.checkpoint import latest_checkpoint
from agents.config import load_config
from agents.sb3.relabel import RelabelRolloutBuffer, VecFrameRecorder
from agents.sb3.reward_wrappers import FrameInInfo
from agents.runs import train
from rewards.base import RewardModel
from rewards.preference_store import PreferenceStore
from tests.preference_data import brightness_pairs

ROOT = Path(__file__).resolve().parents[1]
TINY = ["hyperparams.n_envs=2", "hyperparams.n_steps=16", "hyperparams.batch_size=32",
        "hyperparams.n_epochs=1"]
TINY_PREFERENCE = [*TINY, "reward_kwargs.ensemble_size=1", "preference.initial_queries=8",
                   "preference.queries_per_round=4", "preference.update_every=32",
                   "preference.total_queries=40", "preference.epochs=1", "preference.segment=5",
                   "preference.buffer_steps=100"]


def steps_logged(run_dir: Path) -> list[int]:
    with open(run_dir / "progress.csv", newline="") as handle:
        return [int(float(row["time/total_timesteps"])) for row in csv.DictReader(handle)]


def test_ground_truth_run_writes_logs_and_checkpoints(tmp_path):
    # 64 steps per env: one Reach episode (50 steps) ends in each
    config = load_config("reach_ground_truth", [*TINY, "hyperparams.n_timesteps=128",
                                                "checkpoint_every=64"])
    summary = train(config, tmp_path, progress_bar=False, log=lambda *a: None)
    assert summary["steps"] == 128 and summary["resumed_from"] == 0
    assert steps_logged(tmp_path) == [32, 64, 96, 128]
    with open(tmp_path / "progress.csv", newline="") as handle:
        row = list(csv.DictReader(handle))[-1]
    for key in ("rollout/gt_return", "rollout/learned_return", "time/fps"):
        assert row[key] != "", key
    # ground truth: the learned return is the env's return
    assert float(row["rollout/learned_return"]) == pytest.approx(float(row["rollout/gt_return"]),
                                                                 rel=1e-4)
    assert list((tmp_path / "checkpoints").glob("step-*")) and any(tmp_path.glob("events.out.*"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-0000000064", "step-0000000128"]
    assert latest_checkpoint(tmp_path).num_timesteps == 128


def test_resume_restores_policy_optimizer_and_counters(tmp_path):
    config = load_config("reach_ground_truth", [*TINY, "hyperparams.n_timesteps=64",
                                                "checkpoint_every=32"])
    train(config, tmp_path, progress_bar=False, log=lambda *a: None)
    longer = load_config("reach_ground_truth", [*TINY, "hyperparams.n_timesteps=96",
                                                "checkpoint_every=32"])
    summary = train(longer, tmp_path, resume=True, progress_bar=False, log=lambda *a: None)
    assert summary["resumed_from"] == 64 and summary["steps"] == 96
    assert steps_logged(tmp_path) == [32, 64, 96]
    from agents.checkpoint import read_checkpoint

    state = read_checkpoint(tmp_path / "checkpoints" / "step-0000000096").state
    assert state["n_updates"] == 3  # one epoch per rollout, counted across the resume


def test_reward_normalisation_scales_what_ppo_sees_and_survives_resume(tmp_path):
    overrides = [*TINY, "hyperparams.normalize=true", "checkpoint_every=32"]
    config = load_config("reach_ground_truth", [*overrides, "hyperparams.n_timesteps=128"])
    train(config, tmp_path, progress_bar=False, log=lambda *a: None)
    with open(tmp_path / "progress.csv", newline="") as handle:
        row = list(csv.DictReader(handle))[-1]
    # logged returns are the env's, not the normalised rewards PPO trained on
    assert float(row["rollout/learned_return"]) == pytest.approx(float(row["rollout/gt_return"]),
                                                                 rel=1e-4)
    stats = latest_checkpoint(tmp_path).state["trainer"]["normalize"]
    assert stats["count"] > 100 and stats["var"] > 0
    longer = load_config("reach_ground_truth", [*overrides, "hyperparams.n_timesteps=160"])
    train(longer, tmp_path, resume=True, progress_bar=False, log=lambda *a: None)
    resumed = latest_checkpoint(tmp_path).state["trainer"]["normalize"]
    assert resumed["count"] == pytest.approx(stats["count"] + 32)  # continued, not restarted


def test_reward_normalisation_refuses_episode_level_rewards(tmp_path):
    with pytest.raises(ValueError, match="normalize does not apply to the rapl reward"):
        load_config("sweep_rapl", [*TINY, "hyperparams.normalize=true",
                                   "hyperparams.n_timesteps=32"])


def run_in_subprocess(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "agents", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_then_resume_keeps_every_label_and_the_step_counter(tmp_path):
    run_dir = tmp_path / "run"
    process = run_in_subprocess(["--config", "reach_preference", *TINY_PREFERENCE,
                                 "hyperparams.n_timesteps=100000", "checkpoint_every=32",
                                 "--out", str(run_dir), "--no-progress"])
    store_dir = run_dir / "preferences"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            checkpoint = latest_checkpoint(run_dir) if (run_dir / "checkpoints").exists() else None
            labels = len(PreferenceStore(store_dir)) if store_dir.exists() else 0
            if checkpoint is not None and checkpoint.num_timesteps >= 96 and labels >= 12:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.5)
        else:
            pytest.fail("the run made no checkpoint with labels in time")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = PreferenceStore(store_dir).load_all()
    killed_at = latest_checkpoint(run_dir).num_timesteps

    resumed = load_config(run_dir / "config.yaml", ["hyperparams.n_timesteps=" + str(killed_at + 64)])
    summary = train(resumed, run_dir, resume=True, progress_bar=False, log=lambda *a: None)
    assert summary["resumed_from"] == killed_at
    assert summary["steps"] == killed_at + 64
    after = PreferenceStore(store_dir).load_all()
    assert len(after) >= len(before)
    np.testing.assert_array_equal(after.labels[:len(before)], before.labels)
    np.testing.assert_array_equal(after.frames_a[:len(before)], before.frames_a)
    logged = steps_logged(run_dir)
    assert logged == sorted(set(logged)) and logged[-1] == killed_at + 64
    assert (run_dir / "reward" / "config.json").is_file()
    assert rewards.load(run_dir / "reward").name == "preference"


def test_resume_cli_refuses_other_overrides(tmp_path, capsys):
    from agents.cli import main

    (tmp_path / "config.yaml").write_text(load_config("reach_ground_truth").to_yaml())
    assert main(["train", "--resume", str(tmp_path), "seed=3"]) == 2
    assert "only hyperparams.n_timesteps" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "run folder" in capsys.readouterr().err and not (tmp_path / "nope").exists()
    (tmp_path / "empty").mkdir()
    assert main(["train", "--resume", str(tmp_path / "empty")]) == 2
    assert "not a vmalign run folder" in capsys.readouterr().err


class EpisodeIndexReward(RewardModel):
    """A trajectory reward for the tests: r_t = 100 * episode length + t."""

    name = "episode_index"
    needs_frames = True
    needs_trajectory = True

    def config(self):
        return {}

    def _score(self, frames, instructions, env_rewards):
        raise NotImplementedError

    def score_trajectory(self, frames, instruction, env_rewards=None):
        return (100 * len(frames) + np.arange(len(frames))).astype(np.float32)


def test_frame_recorder_scores_whole_episodes_across_rollouts():
    venv = DummyVecEnv([lambda: FrameInInfo(gym.make("vmalign/NumberLine-v0", obs_size=64,
                                                     render_mode="rgb_array"))] * 2)
    recorder = VecFrameRecorder(venv)
    recorder.reset()
    reward = EpisodeIndexReward()
    lengths = [[], []]
    running = [0, 0]
    all_learned = []
    for _ in range(3):  # three "rollouts" of 7 steps
        for _ in range(7):
            _, _, dones, _ = recorder.step(np.array([0, 0]))
            for i in range(2):
                running[i] += 1
                if dones[i]:
                    lengths[i].append(running[i])
                    running[i] = 0
        learned, env_rewards = recorder.relabel(reward)
        assert learned.shape == env_rewards.shape == (7, 2)
        all_learned.append(learned)
    learned = np.concatenate(all_learned)
    assert any(len(found) > 1 for found in lengths)
    # An episode is scored whole once it ended inside a rollout; steps of a rollout in
    # which it was still running got the score of its frames so far.
    for i in range(2):
        start = 0
        for length in lengths[i]:
            for t in range(start, start + length):
                rollout_end = (t // 7 + 1) * 7
                known = min(start + length, rollout_end) - start
                assert learned[t, i] == 100 * known + (t - start), (i, t)
            start += length


def test_relabel_buffer_swaps_rewards_before_advantages():
    from gymnasium import spaces

    buffer = RelabelRolloutBuffer(
        4, spaces.Box(0, 1, (2,)), spaces.Discrete(2), n_envs=1, gamma=1.0, gae_lambda=1.0,
        relabel=lambda: (np.full((4, 1), 2.0, np.float32), np.full((4, 1), 1.0, np.float32)),
    )
    import torch

    for step in range(4):
        buffer.add(np.zeros((1, 2)), np.zeros((1, 1)), np.array([1.0 + (step == 3) * 5.0]),
                   np.array([step == 0]), torch.zeros(1), torch.zeros(1))
    buffer.compute_returns_and_advantage(torch.zeros(1), np.array([True]))
    # env reward 1 -> learned 2 on every step; the +5 (SB3's bootstrap) is kept.
    np.testing.assert_allclose(buffer.rewards[:, 0], [2, 2, 2, 7])
    np.testing.assert_allclose(buffer.returns[:, 0], [13, 11, 9, 7])


def test_a_reward_that_cannot_score_the_frames_stops_the_run_at_start_up(tmp_path, capsys):
    from agents.cli import main

    # The shipped RAPL config without its reward_checkpoint: no demonstrations.
    code = main(["train", "--config", "sweep_rapl", "--out", str(tmp_path / "run"),
                 "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err
    assert "cannot score vmalign/Sweep-v0's frames" in error and "reward_checkpoint" in error
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_initial_labels_seed_the_reward_once_and_cost_no_queries(tmp_path):
    source = PreferenceStore(tmp_path / "labels")
    pairs = brightness_pairs(48, seed=0, steps=5, size=64)
    frames_a, frames_b, labels = pairs.frames_a, pairs.frames_b, pairs.labels
    source.append(frames_a[:40], frames_b[:40], labels[:40], source="oracle")
    source.append(frames_a[40:], frames_b[40:], labels[40:], source="human",
                  instructions=["reach"] * 8)
    run_dir = tmp_path / "run"
    overrides = [*TINY_PREFERENCE, "preference.total_queries=0", "preference.epochs=15",
                 f"preference.initial_labels={tmp_path / 'labels'}", "hyperparams.n_timesteps=32",
                 "checkpoint_every=32"]
    summary = train(load_config("reach_preference", overrides), run_dir, progress_bar=False,
                    log=lambda *a: None)
    store = PreferenceStore(run_dir / "preferences")
    copied = store.load_all()
    np.testing.assert_array_equal(copied.frames_a, frames_a)
    np.testing.assert_array_equal(copied.labels, labels)
    assert copied.sources == ["oracle"] * 40 + ["human"] * 8
    assert copied.instructions[-1] == "reach"
    assert summary["queries_asked"] == 0 and summary["labels"] == 48
    # The reward trained on them before the first rollout: brighter now scores higher.
    assert summary["reward_training_accuracy"] is not None
    reward = rewards.load(run_dir / "reward")
    greys = np.repeat(np.array([0, 255], np.uint8), 64 * 64 * 3).reshape(2, 64, 64, 3)
    low, high = reward(greys, ["", ""])
    assert high > low

    # Resumed, the run finds them in its store and copies nothing again.
    resumed = load_config(run_dir / "config.yaml", ["hyperparams.n_timesteps=64"])
    train(resumed, run_dir, resume=True, progress_bar=False, log=lambda *a: None)
    assert len(PreferenceStore(run_dir / "preferences")) == 48

    # Online queries count against the budget; the imported labels do not.
    online = train(load_config("reach_preference", [
        *TINY_PREFERENCE, f"preference.initial_labels={tmp_path / 'labels'}",
        "hyperparams.n_timesteps=32"]), tmp_path / "online", progress_bar=False,
        log=lambda *a: None)
    assert online["queries_asked"] == 8 and online["labels"] == 48 + 8


def test_initial_labels_of_another_segment_length_stop_the_run_at_start_up(tmp_path):
    source = PreferenceStore(tmp_path / "labels")
    pairs = brightness_pairs(4, seed=0, steps=3, size=64)
    source.append(pairs.frames_a, pairs.frames_b, pairs.labels, source="oracle")
    config = load_config("reach_preference", [*TINY_PREFERENCE, "hyperparams.n_timesteps=32",
                                              f"preference.initial_labels={tmp_path / 'labels'}"])
    with pytest.raises(ValueError, match=r"holds segments of shape \(3, 64, 64, 3\).*"
                                         r"cuts \(5, 64, 64, 3\)"):
        train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    assert not (tmp_path / "run" / "checkpoints").exists()
