"""A short PPO run per reward kind beats a random policy on an easy pixel task.

On ``vmalign-test/Slide-v0`` (tests/easy_env.py), PPO trains against each kind of
reward module through the same config path as ``vmalign train``: the ground truth,
a preference ensemble learned online from the oracle teacher, a (random-weight,
tiny) CLIP reward and a RAPL reward loaded from a saved module. Each trained policy
must collect more of the reward it was trained on than a random policy does; for
the ground truth and the preference reward, more ground-truth return as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import rewards
from agents.config import load_config
from agents.evaluation import evaluate_run
from agents.runs import train
from rewards.clip import TINY_MODEL_CONFIG
from tests import easy_env

EPISODES = 16


def write_config(folder: Path, reward: str, steps: int, **extra) -> Path:
    config = {
        "env": easy_env.ENV_ID, "reward": reward, "seed": 0, "checkpoint_every": 100_000,
        "eval_episodes": EPISODES,
        "hyperparams": {"n_timesteps": steps, "policy": "MlpPolicy", "n_envs": 4,
                        "n_steps": 48, "batch_size": 64, "n_epochs": 4, "learning_rate": 1e-3,
                        "ent_coef": 0.01, "gamma": 0.9},
        **extra,
    }
    path = folder / f"{reward}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def random_policy_returns(module, episodes: int = EPISODES) -> tuple[float, float]:
    """Mean ground-truth and learned return of uniformly random actions."""
    env = easy_env.SlideEnv(render_mode="rgb_array")
    rng = np.random.default_rng(123)
    truth, learned = [], []
    for index in range(episodes):
        env.reset(seed=10_000 + index)
        frames, env_rewards, done = [], [], False
        while not done:
            _, reward, terminated, truncated, info = env.step(int(rng.integers(3)))
            frames.append(env.render())
            env_rewards.append(reward)
            done = terminated or truncated
        frames, env_rewards = np.stack(frames), np.asarray(env_rewards, np.float32)
        truth.append(env_rewards.sum())
        learned.append(module.score_trajectory(frames, info["instruction"], env_rewards).sum())
    return float(np.mean(truth)), float(np.mean(learned))


def trained_returns(config_path: Path, run_dir: Path) -> tuple[dict, object]:
    config = load_config(config_path)
    train(config, run_dir, progress_bar=False, log=lambda *args: None)
    result = evaluate_run(run_dir, log=lambda *args: None)
    return result, rewards.load(run_dir / "reward") if (run_dir / "reward").is_dir() else None


@pytest.fixture(autouse=True)
def registered():
    easy_env.register()


def test_ground_truth_ppo_beats_random(tmp_path):
    result, _ = trained_returns(write_config(tmp_path, "ground_truth", 4800), tmp_path / "run")
    random_truth, _ = random_policy_returns(rewards.make("ground_truth"))
    assert result["mean_return"] > random_truth + 1.0, (result["mean_return"], random_truth)
    assert result["success_rate"] >= 0.5


def test_preference_ppo_with_the_online_oracle_beats_random(tmp_path):
    config = write_config(
        tmp_path, "preference", 6000,
        reward_kwargs={"ensemble_size": 2, "image_size": 32, "channels": [8, 16],
                       "hidden_size": 32},
        preference={"teacher": "oracle", "total_queries": 120, "initial_queries": 60,
                    "queries_per_round": 30, "update_every": 1000, "segment": 4,
                    "epochs": 15, "buffer_steps": 300, "query": "disagreement"},
    )
    result, module = trained_returns(config, tmp_path / "run")
    random_truth, random_learned = random_policy_returns(module)
    assert result["mean_return"] > random_truth + 1.0, (result["mean_return"], random_truth)
    assert result["mean_learned_return"] > random_learned
    # Reported for the eval episodes (a trained policy's: mostly at the goal, so the
    # figure is noisy here; the statistic itself is tested in tests/test_reward_eval.py).
    assert -1.0 <= result["reward_progress_spearman"] <= 1.0


def test_clip_ppo_raises_the_clip_reward_over_random(tmp_path):
    # Random CLIP weights: a meaningless reward, but one PPO must still climb.
    kwargs = {"model": "tiny", "pretrained": None, "model_config": TINY_MODEL_CONFIG,
              "alpha": 1.0}
    result, module = trained_returns(write_config(tmp_path, "clip", 4800, reward_kwargs=kwargs),
                                     tmp_path / "run")
    assert module.name == "clip"  # random weights are saved with the run
    _, random_learned = random_policy_returns(module)
    spread = abs(random_learned) * 0.01 + 1e-4
    assert result["mean_learned_return"] > random_learned + spread, (
        result["mean_learned_return"], random_learned)


def test_rapl_ppo_from_a_saved_module_beats_random(tmp_path):
    env = easy_env.SlideEnv(render_mode="rgb_array")
    demos = []
    for index in range(3):
        env.reset(seed=index)
        frames, done = [], False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.expert_action())
            frames.append(env.render())
            done = terminated or truncated
        demos.append(np.stack(frames))
    import torch

    torch.manual_seed(0)
    module = rewards.make("rapl", encoder_channels=[8, 16], embedding_dim=16, image_size=32,
                          demos=demos, device="cpu")
    rewards.save(module, tmp_path / "rapl")
    # n_steps (48) is a multiple of the 12-step episode: every episode is scored whole.
    config = write_config(tmp_path, "rapl", 4800, reward_checkpoint=str(tmp_path / "rapl"))
    result, _ = trained_returns(config, tmp_path / "run")
    random_truth, random_learned = random_policy_returns(module)
    assert result["mean_learned_return"] > random_learned, (result["mean_learned_return"],
                                                            random_learned)
    assert result["mean_return"] > random_truth  # the demos move the bar to the middle
