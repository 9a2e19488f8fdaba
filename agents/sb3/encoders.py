"""Image encoders for pixel policies, by the names configs give them.

stable-baselines3's ``CnnPolicy`` encodes images with ``NatureCNN`` (Mnih et al.,
2015), built for 84x84 Atari frames: its first layer, 8x8 filters at stride 4, sees
a 3-pixel object in a 64x64 frame through at most two filters and cannot say where
in its 4-pixel cell it is. :class:`PixelCNN` keeps the detail of small frames with
3x3 filters at stride 2 (as the preference reward's CNN and DrQ's encoder do).

A config picks one with ``hyperparams.policy_kwargs.features_extractor_class`` (a
name from :data:`FEATURES_EXTRACTORS`) and sizes it with
``features_extractor_kwargs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn


class PixelCNN(BaseFeaturesExtractor):
    """Stride-2 3x3 convolutions with ReLU, flattened, then a linear layer with ReLU.

    Flattening (rather than pooling) keeps where things are, which is what reaching
    and pushing depend on.

    :param observation_space: images, channels first (SB3 transposes HWC for us).
    :param features_dim: size of the output features (default 256).
    :param channels: output channels of each stride-2 convolution (default
        (32, 64, 64): 64x64 frames become 8x8 maps).
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256,
                 channels: Sequence[int] = (32, 64, 64)) -> None:
        super().__init__(observation_space, features_dim)
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive integers, "
                             f"got {channels!r}")
        layers: list[nn.Module] = []
        in_channels = observation_space.shape[0]
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, int(out_channels), 3, stride=2, padding=1),
                       nn.ReLU()]
            in_channels = int(out_channels)
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


FEATURES_EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "NatureCNN": NatureCNN,
    "PixelCNN": PixelCNN,
}
"""The encoders a config may name in ``policy_kwargs.features_extractor_class``."""
