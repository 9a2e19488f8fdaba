"""The online preference loop: which labels each round retrains on, and when rounds are
asked (the same schedule whether or not the run was stopped and resumed)."""

from __future__ import annotations

import numpy as np
import pytest

import agents.labelling
from agents.config import load_config
from agents.sb3.preference_loop import PreferenceLoop
from agents.labelling import round_training_pairs
from agents.runs import train
from rewards.preference_store import PreferenceStore
from tests.test_train import TINY_PREFERENCE


def test_without_a_limit_or_under_it_every_label_trains():
    rng = np.random.default_rng(0)
    assert round_training_pairs(50, 40, None, rng) is None
    assert round_training_pairs(50, 40, 50, rng) is None


def test_a_limit_keeps_every_new_label_and_samples_the_older_ones():
    chosen = round_training_pairs(100, 90, 30, np.random.default_rng(0))
    assert len(chosen) == 30 and len(set(chosen.tolist())) == 30
    assert set(range(90, 100)) <= set(chosen.tolist())
    older = chosen[chosen < 90]
    assert len(older) == 20 and older.min() >= 0
    # Another round's seed rehearses other old labels.
    again = round_training_pairs(100, 90, 30, np.random.default_rng(1))
    assert set(again[again < 90].tolist()) != set(older.tolist())


def test_more_new_labels_than_the_limit_are_sampled_uniformly():
    chosen = round_training_pairs(100, 0, 10, np.random.default_rng(0))
    assert len(set(chosen.tolist())) == 10 and chosen.min() >= 0 and chosen.max() < 100
    assert chosen.tolist() != list(range(90, 100))  # not just the newest
    assert set(round_training_pairs(100, 60, 10, np.random.default_rng(0)).tolist()) \
        <= set(range(60, 100))


def test_a_run_with_train_pairs_retrains_on_that_many(tmp_path, monkeypatch):
    seen = []
    real = agents.labelling.train_preference_reward

    def recording(model, data, **kwargs):
        pairs = data.load_all() if isinstance(data, PreferenceStore) else data
        seen.append(pairs.labels.copy())
        return real(model, pairs, **kwargs)

    monkeypatch.setattr(agents.labelling, "train_preference_reward", recording)
    config = load_config("reach_preference", [*TINY_PREFERENCE, "preference.train_pairs=10",
                                              "hyperparams.n_timesteps=96"])
    summary = train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    store_labels = PreferenceStore(tmp_path / "run" / "preferences").load_all().labels
    assert summary["labels"] == len(store_labels) > 10
    assert [len(labels) for labels in seen] == [min(8 + 4 * k, 10) for k in range(len(seen))]
    # The last round trained on its own 4 new labels plus 6 older ones.
    np.testing.assert_array_equal(seen[-1][-4:], store_labels[-4:])


def round_steps(run_dir) -> list[int]:
    """The step at which each round of the run's store was asked, in order."""
    steps = {}
    for record in PreferenceStore(run_dir / "preferences").records():
        steps[record["batch"]] = record["meta"]["step"]
    return list(steps.values())


class Killed(Exception):
    """Stands in for SIGKILL inside the test process."""


def test_a_resumed_run_asks_on_the_schedule_of_one_never_stopped(tmp_path, monkeypatch):
    # Rounds every 32 steps (one rollout); checkpoints every 96. The run is killed right
    # after its round at step 128, before the next checkpoint (192): the resumed run
    # starts from step 96 knowing (from its store) that step 128's round was asked.
    overrides = [*TINY_PREFERENCE, "hyperparams.n_timesteps=320", "checkpoint_every=96"]
    config = load_config("reach_preference", overrides)
    train(config, tmp_path / "whole", progress_bar=False, log=lambda *a: None)
    whole = round_steps(tmp_path / "whole")
    assert whole == [32 * k for k in range(1, 10)]  # 8 + 8 x 4 = 40 queries

    real_ask = PreferenceLoop._ask

    def ask_then_die(self, count, method):
        asked = real_ask(self, count, method)
        if self.num_timesteps == 128:
            raise Killed
        return asked

    monkeypatch.setattr(PreferenceLoop, "_ask", ask_then_die)
    with pytest.raises(Killed):
        train(config, tmp_path / "stopped", progress_bar=False, log=lambda *a: None)
    monkeypatch.setattr(PreferenceLoop, "_ask", real_ask)
    summary = train(config, tmp_path / "stopped", resume=True, progress_bar=False,
                    log=lambda *a: None)
    assert summary["resumed_from"] == 96
    assert round_steps(tmp_path / "stopped") == whole
    assert summary["queries_asked"] == 40


def test_ppo_rewrites_the_rollout_a_round_was_asked_after(tmp_path, monkeypatch):
    """Issue 24: the round runs before advantages, and the rollout it was asked after
    is rescored by the refit reward (as RAPL's episode rewards are swapped in)."""
    from agents.sb3.relabel import RelabelRolloutBuffer

    checks = []
    real = RelabelRolloutBuffer.compute_returns_and_advantage

    def checking(self, last_values, dones):
        loop = self.relabel.__closure__[0].cell_contents[0]
        rounds_before = loop.rounds
        frames = np.stack(loop._rollout_frames)
        texts = loop._rollout_texts
        real(self, last_values, dones)
        if loop.rounds > rounds_before:  # a round (and a refit) happened just now
            fresh = np.stack([loop.reward(f, t, np.zeros(len(t), np.float32))
                              for f, t in zip(frames, texts)])
            checks.append(np.abs(self.rewards - fresh).max())

    monkeypatch.setattr(RelabelRolloutBuffer, "compute_returns_and_advantage", checking)
    config = load_config("reach_preference", [*TINY_PREFERENCE, "hyperparams.n_timesteps=32",
                                              "env_kwargs.obs_mode=state",
                                              "hyperparams.policy=MlpPolicy"])
    summary = train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    assert summary["queries_asked"] == 8  # the first round, after the first rollout
    # No episode ended in these 16 steps (no truncation bootstrap): the buffer holds
    # exactly the refit module's scores of the rollout's frames.
    assert checks and checks[0] < 1e-5


def segments_from(episodes, length: int) -> set[bytes]:
    """Every window of ``length`` frames of the episodes, as bytes."""
    return {e.frames[start:start + length].tobytes()
            for e in episodes for start in range(len(e) - length + 1)}


@pytest.mark.parametrize("demo_episodes", [0, 2])
def test_demonstrations_join_the_query_pool(tmp_path, demo_episodes):
    """``preference.demo_episodes``: the scripted episodes' segments are among those the
    teacher labels (and, without them, none is)."""
    from agents.sb3.preference_loop import demonstrations

    overrides = [*TINY_PREFERENCE, "hyperparams.n_timesteps=32", "env_kwargs.obs_mode=state",
                 "hyperparams.policy=MlpPolicy", f"preference.demo_episodes={demo_episodes}",
                 "preference.demo_policy=expert"]
    config = load_config("reach_preference", overrides)
    summary = train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    assert summary["demo_episodes"] == demo_episodes and summary["queries_asked"] == 8
    pairs = PreferenceStore(tmp_path / "run" / "preferences").load_all()
    segment = config.preference.segment
    demos = demonstrations(config.env, config.env_kwargs, "expert", 2, config.seed)
    assert all(e.success for e in demos)  # the expert's: the task done, to compare with
    windows = segments_from(demos, segment)
    labelled = [frames.tobytes() for frames in (*pairs.frames_a, *pairs.frames_b)]
    from_demos = sum(frames in windows for frames in labelled)
    if demo_episodes:
        assert 0 < from_demos < len(labelled)  # both the demos and the policy's steps
    else:
        assert from_demos == 0
