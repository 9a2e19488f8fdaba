"""Image encoders for pixel policies, by the names configs give them.

stable-baselines3's ``CnnPolicy`` encodes images with ``NatureCNN`` (Mnih et al.,
2015), built for 84x84 Atari frames: its first layer, 8x8 filters at stride 4, sees
a 3-pixel object in a 64x64 frame through at most two filters and cannot say where
in its 4-pixel cell it is. :class:`PixelCNN` keeps the detail of small frames with
3x3 filters at stride 2 (as the preference reward's CNN and DrQ's encoder do).

:class:`PretrainedEncoder` puts any encoder of :mod:`rewards.encoders` (ImageNet
EfficientNet-Lite0, timm, open_clip towers) under the policy, frozen by default.

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


class PretrainedEncoder(BaseFeaturesExtractor):
    """A :mod:`rewards.encoders` encoder, then a linear layer, LayerNorm and ReLU.

    Stacked frames (``3 k`` channels) are encoded one frame at a time and their
    features concatenated. A frozen encoder runs without gradients (its features are
    all the policy reads of it); LayerNorm keeps the projection of pretrained
    features, whose offsets dwarf their differences between frames, on one scale.

    :param observation_space: images, channels first, 3 channels per stacked frame.
    :param features_dim: size of the output features (default 256).
    :param encoder: a :func:`rewards.encoders.build_encoder` name (default
        ``"efficientnet_lite0"``).
    :param encoder_weights: that function's ``weights``.
    :param finetune: ``"frozen"`` (default), ``"last_block"`` or ``"full"``.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256,
                 encoder: str = "efficientnet_lite0", encoder_weights: str | None = None,
                 finetune: str = "frozen") -> None:
        from rewards.encoders import build_encoder

        super().__init__(observation_space, features_dim)
        channels, height, width = observation_space.shape
        if channels % 3:
            raise ValueError(f"PretrainedEncoder reads RGB frames (3 channels each, stacked); "
                             f"the observations have {channels} channels")
        self.encoder = build_encoder(encoder, encoder_weights, finetune)
        self.frames = channels // 3
        width_in = self.encoder.feature_dim(height, width) * self.frames
        self.linear = nn.Sequential(nn.Linear(width_in, features_dim),
                                    nn.LayerNorm(features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        # SB3 scales images to [0, 1]; encoders take [0, 255] and normalise themselves.
        frames = (observations * 255.0).chunk(self.frames, dim=1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.encoder.finetune != "frozen"):
            features = torch.cat([self.encoder(frame) for frame in frames], dim=1)
        return self.linear(features)


FEATURES_EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "NatureCNN": NatureCNN,
    "PixelCNN": PixelCNN,
    "PretrainedEncoder": PretrainedEncoder,
}
"""The encoders a config may name in ``policy_kwargs.features_extractor_class``."""
