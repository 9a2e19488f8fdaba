"""``vmalign demo``: train, evaluate and summarise in one command (on a tiny setting)."""

from __future__ import annotations

import json

import yaml

from agents.cli import main
from tests import easy_env


def test_demo_trains_evaluates_and_writes_the_summary(tmp_path, capsys):
    easy_env.register()
    config = {
        "env": easy_env.ENV_ID, "reward": "preference", "eval_episodes": 3,
        "reward_kwargs": {"ensemble_size": 1, "image_size": 32, "channels": [8],
                          "hidden_size": 16},
        "preference": {"teacher": "oracle", "total_queries": 30, "initial_queries": 20,
                       "queries_per_round": 10, "update_every": 96, "segment": 4,
                       "epochs": 2, "buffer_steps": 100},
        "hyperparams": {"n_timesteps": 384, "policy": "MlpPolicy", "n_envs": 2,
                        "n_steps": 48, "batch_size": 48, "n_epochs": 1},
    }
    path = tmp_path / "tiny_demo.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "demo"
    assert main(["demo", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "summary.json").read_text())
    paragraph = record["summary"]
    assert paragraph in printed and paragraph in (out / "summary.md").read_text()
    assert paragraph.startswith("PPO (MlpPolicy) trained for 384 steps")
    assert "30 preference queries to the simulated oracle teacher" in paragraph
    assert "held-out episodes" in paragraph and "correlation with task progress" in paragraph
    assert record["training"]["queries_asked"] == 30 and record["training"]["steps"] == 384
    evaluation = record["evaluation"]
    assert evaluation["episodes"] == 3 and -1 <= evaluation["reward_progress_spearman"] <= 1
    for name in ("best.mp4", "worst.mp4", "learning_curve.png"):
        assert (out / "eval" / name).stat().st_size > 0
    assert (out / "preferences").is_dir() and (out / "config.yaml").is_file()


def test_the_shipped_demo_is_a_state_policy_against_a_pixel_preference_reward():
    from agents.cli.demo import _policy_input
    from agents.config import load_config

    config = load_config("demo", [])
    assert config.env_kwargs["obs_mode"] == "state" and config.hyperparams.policy == "MlpPolicy"
    assert config.reward == "preference" and config.preference_loop is not None
    assert config.env_kwargs["render_size"] == 64  # the reward's view: pixels
    assert _policy_input(config) == "policy on state"


def test_demo_config_error_stops_before_training(tmp_path, capsys):
    code = main(["demo", "hyperparams.n_envs=0", "--out", str(tmp_path / "bad"), "--no-progress"])
    assert code == 2
    assert "hyperparams.n_envs: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_summary_says_when_demonstrations_joined_the_query_pool():
    from agents.cli.demo import summary_paragraph
    from agents.config import load_config

    training = {"steps": 300_000, "seconds": 600.0, "fps": 500.0, "device": "cpu",
                "queries_asked": 2000, "labels": 2000}
    evaluation = {"success_rate": 0.9, "episodes": 50, "mean_return": -2.5}
    with_demos = summary_paragraph(load_config("reach_state_preference_demos"), training,
                                   evaluation)
    assert ("2000 preference queries to the simulated oracle teacher (2000 labels kept, "
            "budget 2000). Each round's pool of segments also held 40 scripted noisy(0.5) "
            "demonstration episodes.") in with_demos
    assert "demonstration" not in summary_paragraph(load_config("demo"), training, evaluation)
