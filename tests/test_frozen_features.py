"""Frozen-encoder observations: features computed once per step, equal to the encoder's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

import envs  # noqa: F401
from agents.config import load_config
from agents.runs import train
from agents.sb3.frozen_features import VecFrozenFeatures
from rewards.encoders import build_encoder
from tests.test_train import TINY

REACH = {"obs_size": 32, "camera": "workspace", "render_size": 32, "max_episode_steps": 5}


def test_observations_are_the_frozen_encoders_features_of_the_frames():
    frames = make_vec_env("vmalign/Reach-v0", n_envs=2, seed=3, env_kwargs=REACH)
    features = VecFrozenFeatures(make_vec_env("vmalign/Reach-v0", n_envs=2, seed=3,
                                              env_kwargs=REACH), "efficientnet_lite0")
    encoder = build_encoder("efficientnet_lite0", None, "frozen").eval()
    assert features.observation_space.shape == (encoder.feature_dim(32, 32),)

    def expected(images):
        with torch.no_grad():
            return encoder(torch.from_numpy(images).permute(0, 3, 1, 2).float()).numpy()

    np.testing.assert_allclose(features.reset(), expected(frames.reset()), atol=1e-5)
    actions = np.zeros((2, 4), np.float32)
    for _ in range(5):  # the fifth step truncates: the final frame is encoded too
        seen, _, dones, infos = features.step(actions)
        raw, _, _, raw_infos = frames.step(actions)
        np.testing.assert_allclose(seen, expected(raw), atol=1e-5)
    assert dones.all()
    np.testing.assert_allclose(
        infos[0]["terminal_observation"],
        expected(raw_infos[0]["terminal_observation"][None])[0], atol=1e-5)


@pytest.mark.parametrize("overrides, words", [
    (["hyperparams.frozen_encoder=efficientnet_lite0"], "MlpPolicy"),
    (["hyperparams.frozen_encoder=resnet", "hyperparams.policy=MlpPolicy"], "unknown encoder"),
    (["hyperparams.frozen_encoder=efficientnet_lite0", "hyperparams.policy=MlpPolicy",
      "env_kwargs.obs_mode=state"], "obs_mode"),
])
def test_bad_frozen_encoder_settings_stop_before_the_run_folder(tmp_path, overrides, words):
    with pytest.raises(ValueError, match=words):
        config = load_config("reach_ground_truth", overrides)
        train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_a_run_with_a_frozen_encoder_trains_and_evaluates(tmp_path):
    from agents.evaluation import evaluate_run

    config = load_config("reach_pretrained_ground_truth", [
        *TINY, "hyperparams.n_timesteps=64", "checkpoint_every=32", "eval_episodes=1",
        "env_kwargs.obs_size=32", "env_kwargs.render_size=32",
        "env_kwargs.max_episode_steps=10"])
    summary = train(config, tmp_path / "run", progress_bar=False, log=lambda *a: None)
    assert summary["steps"] == 64
    report = evaluate_run(tmp_path / "run", episodes=1, log=lambda *a: None)
    assert report["episodes"] == 1
