"""reward-eval: correlation statistics, rollouts, and the command's report files."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from agents import metrics
from agents.cli import main
from agents.evaluation.reward import within_episode_spearman
from agents.rollouts import collect_episode, collect_episodes, parse_policy


def test_spearman_and_pearson_against_known_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert metrics.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert metrics.spearman(x, x ** 3) == pytest.approx(1.0)  # monotone, not linear
    assert metrics.pearson(x, x ** 3) < 0.99
    assert metrics.spearman(x, -x) == pytest.approx(-1.0)
    # Ties share their average rank: ranks of [1, 2, 2, 3] are [0, 1.5, 1.5, 3].
    assert metrics.rank(np.array([1, 2, 2, 3])).tolist() == [0.0, 1.5, 1.5, 3.0]
    # Hand-computed: x=[1,2,3], y=[1,3,2] -> rho = 1 - 6*2/(3*8) = 0.5
    assert metrics.spearman(np.array([1, 2, 3]), np.array([1, 3, 2])) == pytest.approx(0.5)
    assert np.isnan(metrics.pearson(x, np.ones(5)))


def test_reward_progress_spearman_uses_only_steps_with_known_progress():
    # What training logs and `vmalign eval` report as the reward-progress correlation.
    rewards = np.array([[0.1, 5.0], [0.2, -3.0], [0.3, 9.0]])  # (steps, envs)
    progress = np.array([[0.0, np.nan], [0.5, np.nan], [1.0, np.nan]])
    assert metrics.reward_progress_spearman(rewards, progress) == pytest.approx(1.0)
    progress[:, 1] = [0.9, 0.8, 0.7]  # now known: the second env's rewards disagree
    expected = metrics.spearman(rewards.reshape(-1), progress.reshape(-1))
    assert metrics.reward_progress_spearman(rewards, progress) == pytest.approx(expected)
    assert expected < 1.0
    assert metrics.reward_progress_spearman(np.ones(5), np.arange(5.0)) is None  # constant
    assert metrics.reward_progress_spearman(np.arange(4.0), [0, 1, np.nan, np.nan]) is None


def test_preference_accuracy_leaves_out_equal_pairs():
    predicted = np.array([1.0, -2.0, 0.5, 3.0])
    truth = np.array([2.0, 1.0, 0.0, 4.0])
    assert metrics.preference_accuracy(predicted, truth) == pytest.approx(2 / 3)


def test_within_episode_spearman_ignores_what_is_constant_per_episode():
    truth = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([15.0, 14.0, 13.0, 12.0])]
    # Right ordering inside each episode, whatever the offset between episodes.
    assert within_episode_spearman([truth[0] + 100, truth[1] - 100], truth) == pytest.approx(1.0)
    # One episode right, one reversed: the mean is 0, though the pooled steps agree
    # (the reward ranks the better episode's steps above the other's).
    reward = [truth[0], 200 - truth[1]]
    assert within_episode_spearman(reward, truth) == pytest.approx(0.0)
    assert metrics.spearman(np.concatenate(reward), np.concatenate(truth)) > 0.5
    # Episodes with a constant reward (or truth) have no ordering and are left out.
    flat = [np.ones(4), truth[1]]
    assert within_episode_spearman(flat, truth) == pytest.approx(1.0)
    assert within_episode_spearman([np.ones(4)], [truth[0]]) is None


def test_policies_and_rollouts():
    assert parse_policy("expert") == ("expert", 0) and parse_policy("random") == ("expert", 1)
    assert parse_policy("noisy(0.25)") == ("expert", 0.25)
    assert parse_policy("decoy") == ("decoy", 0)
    with pytest.raises(ValueError, match="noisy"):
        parse_policy("greedy")
    episodes = collect_episodes("vmalign/Reach-v0", ["expert", "random"], 1, seed=3,
                                render_size=32)
    expert, random = episodes
    assert expert.frames.shape == (50, 32, 32, 3) and expert.frames.dtype == np.uint8
    assert expert.success and expert.progress[-1] == 1.0
    assert len(random.env_rewards) == 50 and random.env_rewards.sum() < expert.env_rewards.sum()


def test_reward_eval_command_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
                 "--reward-arg", "scale=2", "--policies", "expert", "random", "--episodes", "2",
                 "--render-size", "32", "--pairs", "50", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["reward_config"] == {"scale": 2.0}
    assert report["episodes"] == 4 and report["steps"] == 200
    # The ground truth agrees with itself perfectly on returns and preferences.
    assert report["episode_spearman_return"] == pytest.approx(1.0)
    assert report["preference_accuracy"] == pytest.approx(1.0)
    assert report["step_spearman_progress"] > 0.5
    assert report["within_episode_spearman_reward"] == pytest.approx(1.0)
    assert report["per_policy"]["expert"]["within_episode_spearman_reward"] == pytest.approx(1.0)
    assert Image.open(out / "report.png").size[0] > 100
    assert str(out) in capsys.readouterr().out


def test_reward_eval_on_a_card_game_reports_its_progress_correlation(tmp_path, capsys):
    """Card envs report info["progress"] (issue 23, defect 6): no NaN statistic."""
    out = tmp_path / "cards"
    code = main(["reward-eval", "--env", "vmalign/NumberLine-v0", "--reward", "ground_truth",
                 "--policies", "expert", "random", "--episodes", "3", "--pairs", "50",
                 "--segment", "2", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["step_spearman_progress"] is not None
    assert np.isfinite(report["step_spearman_progress"])
    printed = capsys.readouterr().out
    assert "nan" not in printed and "Spearman with progress" in printed


def test_reward_eval_rejects_bad_input_with_one_line(tmp_path, capsys):
    assert main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "nope",
                 "--out", str(tmp_path)]) == 2
    assert "unknown reward module 'nope'; valid names are" in capsys.readouterr().err
    assert main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
                 "--reward-arg", "scale", "--out", str(tmp_path)]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
    assert main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
                 "--policies", "greedy", "--out", str(tmp_path)]) == 2
    assert "unknown policy 'greedy'" in capsys.readouterr().err
    assert main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
                 "--env-arg", "render_camera", "--out", str(tmp_path)]) == 2
    assert "--env-arg 'render_camera' is not KEY=VALUE" in capsys.readouterr().err
    assert main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
                 "--env-arg", "render_camera=ceiling", "--out", str(tmp_path)]) == 2
    assert "render_camera" in capsys.readouterr().err
    assert main(["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
                 "--policies", "expert", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert "fewer than the 2 episodes needed" in capsys.readouterr().err


def test_reward_eval_env_args_reach_the_environment(tmp_path):
    # The reward must be judged on the env PPO's config builds: --env-arg sets it.
    args = ["reward-eval", "--env", "vmalign/Reach-v0", "--reward", "ground_truth",
            "--policies", "expert", "--episodes", "2", "--render-size", "32", "--pairs", "10"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    assert main(args + ["--env-arg", "terminate_on_success=true", "--env-arg",
                        "render_camera=workspace", "--out", str(tmp_path / "short")]) == 0
    full = json.loads((tmp_path / "full" / "report.json").read_text())
    short = json.loads((tmp_path / "short" / "report.json").read_text())
    assert short["env_kwargs"] == {"terminate_on_success": True, "render_camera": "workspace"}
    assert full["steps"] == 100 and short["steps"] < 100  # the expert succeeds, the episode ends


def test_decoy_rollouts_move_the_tool_not_the_debris():
    decoy, expert = collect_episodes("vmalign/Sweep-v0", ["decoy", "expert"], 1, seed=2,
                                     render_size=32, env_kwargs={"randomize_colors": False})
    assert decoy.policy == "decoy" and decoy.frames.shape == (200, 32, 32, 3)
    assert decoy.progress.max() < 1e-6  # no piece moved toward the zone
    assert expert.progress[-1] > 0.5
    assert decoy.env_rewards.sum() < expert.env_rewards.sum()
    assert not np.array_equal(decoy.frames[-1], decoy.frames[0])  # the arm moved


def test_decoy_on_an_env_without_one_fails_before_any_rollout(monkeypatch):
    def no_rollouts(*args, **kwargs):
        raise AssertionError("a rollout started")

    monkeypatch.setattr("agents.rollouts.collect_episode", no_rollouts)
    with pytest.raises(TypeError, match="no scripted decoy"):
        collect_episodes("vmalign/Reach-v0", ["expert", "decoy"], 1, render_size=32)


def test_decoy_with_expert_labels_plays_the_decoy_and_records_the_expert():
    env = gym.make("vmalign/Sweep-v0", obs_mode="state")
    played = collect_episode(env, "decoy", 5, keep_observations=True, render=False)
    labelled = collect_episode(env, "decoy", 5, keep_observations=True, render=False,
                               record_expert_actions=True)
    np.testing.assert_allclose(labelled.observations, played.observations)  # same path
    assert labelled.progress.max() < 1e-6
    assert not np.allclose(labelled.actions, played.actions)  # the expert's choices
    env.close()
