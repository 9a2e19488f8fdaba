"""Image encoders a config names for PPO's pixel policy (agents/encoders.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.config import load_config
from agents.sb3.encoders import FEATURES_EXTRACTORS, PixelCNN

CONFIG = "env: vmalign/Reach-v0\nhyperparams: {n_timesteps: 1000}\n"


def test_pixel_cnn_keeps_where_a_small_object_is():
    space = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
    encoder = PixelCNN(space, features_dim=32, channels=(8, 8, 8))
    assert encoder.features_dim == 32
    assert encoder(torch.zeros(5, 3, 64, 64)).shape == (5, 32)
    # A 3x3 dot moved by 4 pixels changes the features (stride-2 maps keep its place).
    left, right = torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64)
    left[0, :, 30:33, 20:23] = 1.0
    right[0, :, 30:33, 24:27] = 1.0
    assert not torch.allclose(encoder(left)[0], encoder(right)[0])
    with pytest.raises(ValueError, match="channels"):
        PixelCNN(space, channels=())


def test_a_config_builds_ppo_with_the_named_encoder(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    config = load_config(path, ["hyperparams.policy_kwargs={features_extractor_class: PixelCNN, "
                                "features_extractor_kwargs: {features_dim: 16, channels: [4, 8]}}",
                                "hyperparams.n_steps=8", "hyperparams.batch_size=8"])
    kwargs = config.hyperparams.policy_kwargs.arguments()
    assert kwargs["features_extractor_class"] is FEATURES_EXTRACTORS["PixelCNN"]
    venv = make_vec_env("vmalign/Reach-v0", n_envs=1, env_kwargs={"obs_size": 32})
    try:
        model = PPO(config.hyperparams.policy, venv, policy_kwargs=kwargs, n_steps=8, batch_size=8)
        assert isinstance(model.policy.features_extractor, PixelCNN)
        model.learn(8)  # one rollout and update run through it
    finally:
        venv.close()


def test_a_frozen_pretrained_encoder_under_ppo_keeps_its_imagenet_weights(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.sb3.encoders import PretrainedEncoder

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    config = load_config(path, ["hyperparams.policy_kwargs={features_extractor_class: "
                                "PretrainedEncoder, features_extractor_kwargs: {features_dim: 16}}",
                                "hyperparams.n_steps=8", "hyperparams.batch_size=8",
                                "hyperparams.frame_stack=2"])
    kwargs = config.hyperparams.policy_kwargs.arguments()
    venv = make_vec_env("vmalign/Reach-v0", n_envs=1, env_kwargs={"obs_size": 32})
    from stable_baselines3.common.vec_env import VecFrameStack
    venv = VecFrameStack(venv, 2, channels_order="last")
    try:
        model = PPO(config.hyperparams.policy, venv, policy_kwargs=kwargs, n_steps=8, batch_size=8)
        extractor = model.policy.features_extractor
        assert isinstance(extractor, PretrainedEncoder) and extractor.frames == 2
        stem = extractor.encoder.model.conv_stem.weight.clone()
        linear = extractor.linear[0].weight.clone()
        model.learn(8)
        assert torch.equal(stem, extractor.encoder.model.conv_stem.weight)
        assert not torch.equal(linear, extractor.linear[0].weight)
        assert all(p.grad is None for p in extractor.encoder.parameters())
    finally:
        venv.close()
    with pytest.raises(ValueError, match="3 channels each"):
        PretrainedEncoder(gym.spaces.Box(0, 255, (4, 32, 32), np.uint8))
