"""Image observations replaced by a frozen pretrained encoder's features, once per step.

With a frozen encoder under the policy (``PretrainedEncoder``, ``finetune: frozen``),
PPO runs the encoder on every minibatch of every epoch: ``n_epochs`` forward passes
per frame on top of the rollout's own, about 97 minutes of EfficientNet-Lite0 per
300k steps on one CPU thread at 64 px. The encoder's output cannot change, so
``frozen_encoder: NAME`` computes it once, as the env steps, and the policy
(``MlpPolicy``) reads the feature vector: the same function of the frame, about 10x
fewer encoder passes. A fine-tuned encoder still belongs under the policy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper


class VecFrozenFeatures(VecEnvWrapper):
    """A vector env whose uint8 (H, W, 3) frames become float32 features.

    :param encoder: a :func:`rewards.encoders.build_encoder` name.
    :param weights: that function's ``weights`` (None: the name's default).
    """

    def __init__(self, venv: VecEnv, encoder: str, weights: str | None = None) -> None:
        from rewards.encoders import build_encoder  # torch and the encoder's weights

        space = venv.observation_space
        if not (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
                and len(space.shape) == 3 and space.shape[-1] == 3):
            raise ValueError(f"frozen_encoder encodes RGB frames (uint8 H x W x 3 "
                             f"observations, obs_mode: rgb); this env observes {space}")
        self.encoder = build_encoder(encoder, weights, "frozen").eval()
        height, width, _ = space.shape
        features = self.encoder.feature_dim(height, width)
        super().__init__(venv, observation_space=gym.spaces.Box(
            -np.inf, np.inf, (features,), np.float32))

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> float32 (N, features)."""
        images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        return self.encoder(images).numpy().astype(np.float32, copy=False)

    def reset(self) -> np.ndarray:
        return self.encode(self.venv.reset())

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        observations, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            # PPO bootstraps truncated episodes from the final observation: encode it too.
            if "terminal_observation" in info:
                info["terminal_observation"] = self.encode(info["terminal_observation"][None])[0]
        return self.encode(observations), rewards, dones, infos
