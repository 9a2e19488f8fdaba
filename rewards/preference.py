"""A reward learned from preferences (RLHF): an ensemble of small CNNs on pixels.

Each of K members maps a frame to a scalar r_k(s) in (-1, 1) (tanh output, as in
B-Pref/PEBBLE, which keeps the learned reward on a fixed scale for RL). The module's
reward is the ensemble mean, r(s) = mean_k r_k(s), or with ``disagreement_penalty`` k
the pessimistic mean_k r_k(s) - k std_k r_k(s); :meth:`PreferenceReward.member_rewards`
exposes every member, whose spread measures the ensemble's uncertainty.

Training fits the Bradley-Terry model to labelled segment pairs. For segments
a = (s_1..s_T) and b, with returns R_x = sum_t r_k(x_t):

    P_k[a > b] = exp(R_a) / (exp(R_a) + exp(R_b)) = sigmoid(R_a - R_b)

and the loss for a label y in [0, 1] (1 = a preferred, 0 = b, 0.5 = equal) is the
cross-entropy  -y log P_k[a > b] - (1 - y) log(1 - P_k[a > b]),  so ties pull the two
returns together (toward P = 0.5). Each member trains on its own shuffle (or bootstrap
resample) of the pairs; the members' losses are summed.

Frames are resized (bilinear, antialiased) to ``image_size`` x ``image_size`` (squashed:
these frames are square, and a CNN trained on squashed frames only ever sees them so),
rounded back to uint8 so training and scoring see identical pixels, and scaled to
[-0.5, 0.5]. With ``views`` k > 1 a frame is k square camera views side by side (an
env's ``render_camera=[...]``), resized to ``image_size`` x k ``image_size``: one
CNN sees every view, and flattening keeps which view a feature came from; or, with
``view_rewards="min"``, each view has its own CNN, fitted alone to the preferences,
and a frame's reward is the lowest of its views' (one view cannot overrule another).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rewards import arguments
from rewards.base import RewardModel, check_frames
from rewards.device import get_device
from rewards.encoders import (FINETUNE_MODES, SCRATCH_ENCODERS, ImageEncoder, build_encoder,
                              check_encoder_name, check_keypoint_channels, conv_stack,
                              keypoint_stack)
from rewards.preference_store import PreferencePairs, PreferenceStore
from rewards.registry import register

DEFAULT_ENSEMBLE_SIZE = 3
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = (16, 32, 32)
DEFAULT_HIDDEN_SIZE = 64
VIEW_REWARDS = ("joint", "min")


class RewardCNN(nn.Module):
    """One ensemble member: a from-scratch encoder, then an MLP to tanh.

    ``"cnn"``: stride-2 3x3 convolutions with ReLU, flattened (rather than pooled) to
    keep where things are, which is what manipulation progress depends on.
    ``"keypoints"``: convolutions ending in a spatial softmax, so the head reads the
    image coordinates of what each last feature map responds to
    (:func:`rewards.encoders.keypoint_stack`).
    """

    def __init__(self, image_size: int, channels: Sequence[int], hidden_size: int,
                 views: int = 1, encoder: str = "cnn") -> None:
        super().__init__()
        if encoder == "keypoints":
            self.features = keypoint_stack(channels)
            features = 2 * channels[-1]
        else:
            self.features = conv_stack(channels)
            height, width = image_size, image_size * views
            for _ in channels:
                height, width = (height + 1) // 2, (width + 1) // 2
            features = channels[-1] * height * width
        self.head = nn.Sequential(
            nn.Linear(features, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, 1), nn.Tanh(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, S, views x S) in [-0.5, 0.5] -> rewards (B,)."""
        return self.head(self.features(images)).squeeze(-1)

    def view_rewards(self, images: torch.Tensor) -> torch.Tensor:
        """The rewards training fits, (1, B): this CNN sees every view at once."""
        return self.forward(images).unsqueeze(0)


class PerViewRewardCNN(nn.Module):
    """One ensemble member for ``view_rewards="min"``: a :class:`RewardCNN` per view,
    each fitted to the preferences alone, and the member's reward is their minimum.

    A frame earns a high reward only if every view agrees: a hand that covers the
    goal in one view but is short of it in another scores what the other view says.
    Parameters are named ``views.V.*``.
    """

    def __init__(self, image_size: int, channels: Sequence[int], hidden_size: int,
                 views: int, encoder: str = "cnn") -> None:
        super().__init__()
        self.views = nn.ModuleList(
            RewardCNN(image_size, channels, hidden_size, 1, encoder) for _ in range(views))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, S, views x S) -> rewards (B,): the minimum over views."""
        return self.view_rewards(images).min(dim=0).values

    def view_rewards(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, S, views x S) -> each view's reward (views, B)."""
        tiles = images.chunk(len(self.views), dim=3)
        return torch.stack([cnn(tile) for cnn, tile in zip(self.views, tiles)])


class RewardEnsemble(nn.Module):
    """K independent members (:class:`RewardCNN`, or :class:`PerViewRewardCNN` with
    ``view_rewards="min"``); parameters are named ``members.K.*``."""

    def __init__(self, ensemble_size: int, image_size: int, channels: Sequence[int],
                 hidden_size: int, views: int = 1, view_rewards: str = "joint",
                 encoder: str = "cnn") -> None:
        super().__init__()
        member = PerViewRewardCNN if view_rewards == "min" else RewardCNN
        self.members = nn.ModuleList(
            member(image_size, channels, hidden_size, views, encoder)
            for _ in range(ensemble_size)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, views x S) -> member rewards (K, B)."""
        return torch.stack([member(images) for member in self.members])

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Prepared images in [0, 255] -> member rewards (K, B)."""
        return self(normalise(images))

    def member_view_rewards(self, index: int, images: torch.Tensor) -> torch.Tensor:
        """Member ``index``'s rewards per view (views, B) for prepared images in [0, 255]."""
        return self.members[index].view_rewards(normalise(images))


class EncoderEnsemble(nn.Module):
    """K heads (MLP to tanh) on one shared :mod:`rewards.encoders` encoder; parameters
    ``encoder.*`` and ``heads.K.*``.

    Sharing the encoder is what makes a pretrained one affordable: a frame is
    encoded once for all members (and, frozen, once per training round). With several
    views, each view is encoded alone and the features are concatenated.
    """

    def __init__(self, encoder: ImageEncoder, ensemble_size: int, image_size: int,
                 hidden_size: int, views: int = 1) -> None:
        super().__init__()
        self.encoder = encoder
        self.views = views
        features = encoder.feature_dim(image_size, image_size) * views
        # Pretrained features vary little between frames of one scene next to their
        # offsets (EfficientNet-Lite0 on Push: per-feature spread 0.4, vector norm 85):
        # raw, the heads saturated their tanh within an epoch and learned nothing.
        # Standardising each feature over the frames (running statistics, no affine)
        # puts the differences that matter on the scale the heads learn on.
        self.standardise = nn.BatchNorm1d(features, affine=False)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(features, hidden_size), nn.ReLU(),
                          nn.Linear(hidden_size, 1), nn.Tanh())
            for _ in range(ensemble_size))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Prepared images (B, 3, S, views x S) in [0, 255] -> features (B, views x D)."""
        tiles = images.chunk(self.views, dim=3) if self.views > 1 else (images,)
        return torch.cat([self.encoder(tile.contiguous(memory_format=torch.channels_last))
                          for tile in tiles], dim=1)

    def head_rewards(self, index: int, features: torch.Tensor) -> torch.Tensor:
        """Member ``index``'s rewards (1, B) for encoded features (B, F)."""
        return self.heads[index](self.standardise(features)).squeeze(-1).unsqueeze(0)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        features = self.encode(images)
        return torch.cat([self.head_rewards(k, features) for k in range(len(self.heads))])

    def member_view_rewards(self, index: int, images: torch.Tensor) -> torch.Tensor:
        return self.head_rewards(index, self.encode(images))


@register("preference")
class PreferenceReward(RewardModel):
    """Reward = mean (optionally minus k x std) of an ensemble trained on preferences
    (see the module doc): K CNNs from scratch (``encoder="cnn"``), or K heads on one
    shared, typically pretrained, encoder (:mod:`rewards.encoders`).

    It scores pixels alone: the instruction is not an input (train one module per task).

    Architecture arguments left as None take their default, or, with ``checkpoint``,
    the checkpoint's value; giving one that differs from the checkpoint's is an error.

    :param checkpoint: a folder written by ``rewards.save`` to load the ensemble from
        (default None: random initialisation).
    :param ensemble_size: number of members K (default 3).
    :param image_size: frames are resized to this square size (default 64).
    :param channels: ``encoder="cnn"``: output channels of each stride-2 convolution
        (default (16, 32, 32)); ``encoder="keypoints"``: the convolutions' output
        channels, then the number of keypoints (default: 16, 32, then 32 keypoints).
    :param hidden_size: width of the hidden layer of each member's head (default 64).
    :param views: how many square camera views each frame holds side by side (default
        1); frames must be ``views`` times as wide as they are high, e.g. an env's
        ``render_camera=["workspace", "side"]`` with ``views=2``.
    :param view_rewards: how several views are scored (default ``"joint"``): ``"joint"``,
        one CNN over all views side by side (a shared encoder encodes each view and
        the head reads all); ``"min"`` (``encoder="cnn"`` only), a CNN per view, each
        trained alone to explain the preferences, and the reward is their minimum, so
        no view can overrule another that disagrees.
    :param encoder: ``"cnn"`` (default: each member its own CNN from scratch),
        ``"keypoints"`` (each member its own CNN from scratch ending in a spatial
        softmax: the head reads image coordinates of what it detects),
        ``"efficientnet_lite0"`` (ImageNet; ``vmalign[pretrained]``), ``"timm:NAME"``
        or ``"open_clip:MODEL"``: one encoder shared by the members' heads.
    :param encoder_weights: where a ``timm:``/``open_clip:`` encoder's weights come
        from (a local file, an open_clip tag, ``"random"``; None: the library's
        pretrained download); see :func:`rewards.encoders.build_encoder`.
    :param finetune: which encoder parameters train: ``"frozen"`` (the default for
        pretrained encoders: features are computed once per training round and
        shared by all members), ``"last_block"`` or ``"full"``.
    :param pool_grid: a named encoder's feature maps are averaged to this grid
        (default 1: one vector per view; 2 keeps which quarter of the frame a feature
        came from).
    :param feature_stage: a timm encoder's features come from the end of this stage
        (timm's ``forward_intermediates`` numbering; negative counts from the end)
        instead of the final map; e.g. -2 is EfficientNet-Lite0's stride-16 map, twice
        as fine as the final one (default None: the final map). Combine with
        ``pool_grid`` to keep where in the frame a feature came from.
    :param encoder_lr_scale: the learning rate of pretrained encoder parameters, as a
        fraction of the heads' (default 0.1): a large step would erase what ImageNet
        taught them before the few hundred labels could replace it.
    :param batch_size: frames per forward pass when scoring (default 256).
    :param disagreement_penalty: ``k`` in reward = mean - ``k`` x std over the members
        (default 0: the mean). A policy trained against a learned reward drifts to
        frames no label covered, where the members disagree; on Reach-v0 the members'
        std was 2-5x larger on the frames PPO exploited than on held-out rollouts of
        the labelled policies, so a penalty makes those frames less attractive (the
        pessimism of model-based and offline RL). Needs ``ensemble_size`` >= 2.
    :param seed: seeds the initial weights (default 0); None draws them from torch's
        global generator.
    :param device: torch device (``rewards.get_device``: CUDA when present).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        ensemble_size: int | None = None,
        image_size: int | None = None,
        channels: Sequence[int] | None = None,
        hidden_size: int | None = None,
        views: int | None = None,
        view_rewards: str | None = None,
        encoder: str | None = None,
        encoder_weights: str | None = None,
        finetune: str | None = None,
        pool_grid: int | None = None,
        feature_stage: int | None = None,
        encoder_lr_scale: float = 0.1,
        batch_size: int = 256,
        disagreement_penalty: float = 0.0,
        seed: int | None = 0,
        device: str | None = None,
    ) -> None:
        # Every argument is checked before a checkpoint is read or a network built.
        given = _check_given_architecture(ensemble_size, image_size, channels, hidden_size,
                                          views, view_rewards, encoder, encoder_weights,
                                          finetune, pool_grid, feature_stage)
        batch_size = arguments.integer("batch_size", batch_size, 1)
        disagreement_penalty = arguments.number("disagreement_penalty", disagreement_penalty, 0.0)
        encoder_lr_scale = arguments.number("encoder_lr_scale", encoder_lr_scale, 0.0)
        seed = arguments.optional_integer("seed", seed, 0)
        arguments.optional_path("checkpoint", checkpoint)
        source = _load_checkpoint(checkpoint) if checkpoint is not None else None
        if source is None:
            defaults = {"ensemble_size": DEFAULT_ENSEMBLE_SIZE, "image_size": DEFAULT_IMAGE_SIZE,
                        "channels": list(DEFAULT_CHANNELS), "hidden_size": DEFAULT_HIDDEN_SIZE,
                        "views": 1, "view_rewards": "joint", "encoder": "cnn",
                        "encoder_weights": None, "finetune": None, "pool_grid": None,
                        "feature_stage": None}
        else:
            defaults = source.architecture()
            conflicts = {key: (value, defaults[key]) for key, value in given.items()
                         if value is not None and value != defaults[key]}
            if conflicts:
                described = ", ".join(f"{key}={asked!r} (checkpoint: {saved!r})"
                                      for key, (asked, saved) in conflicts.items())
                raise ValueError(f"the checkpoint {checkpoint} was made for another architecture "
                                 f"than asked: {described}; leave these out to use the "
                                 f"checkpoint's")
        architecture = {key: defaults[key] if value is None else value
                        for key, value in given.items()}
        _check_architecture(**architecture)
        if disagreement_penalty > 0 and architecture["ensemble_size"] < 2:
            raise ValueError("disagreement_penalty needs ensemble_size >= 2 (the penalty is "
                             "the members' standard deviation), got ensemble_size="
                             f"{architecture['ensemble_size']}")
        self.ensemble_size = int(architecture["ensemble_size"])
        self.image_size = int(architecture["image_size"])
        self.channels = tuple(architecture["channels"])
        self.hidden_size = int(architecture["hidden_size"])
        self.views = int(architecture["views"])
        self.view_rewards = str(architecture["view_rewards"])
        self.encoder = str(architecture["encoder"])
        self.encoder_weights = architecture["encoder_weights"]
        self.pool_grid = architecture["pool_grid"]
        self.feature_stage = architecture["feature_stage"]
        self.encoder_lr_scale = float(encoder_lr_scale)
        self.batch_size = int(batch_size)
        self.disagreement_penalty = float(disagreement_penalty)
        self.seed = seed
        self.device = get_device(device)
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching global state
            if seed is not None:
                torch.manual_seed(seed)
            self.network = self._build_network(architecture["finetune"])
        # Channels-last (NHWC) is the frames' own layout, and the faster one for
        # convolutions (about 25% for the small CNN on a CPU core, 2.4x for
        # EfficientNet-Lite0; cuDNN prefers it for fp16 too).
        self.network.to(self.device, memory_format=torch.channels_last).eval()
        self.finetune = ("full" if self.encoder in SCRATCH_ENCODERS
                         else self.network.encoder.finetune)
        if source is not None:
            self.load_tensors(source.tensors())

    def _build_network(self, finetune: str | None) -> nn.Module:
        if self.encoder in SCRATCH_ENCODERS:
            return RewardEnsemble(self.ensemble_size, self.image_size, self.channels,
                                  self.hidden_size, self.views, self.view_rewards,
                                  self.encoder)
        encoder = build_encoder(self.encoder, self.encoder_weights, finetune,
                                self.pool_grid or 1, feature_stage=self.feature_stage)
        return EncoderEnsemble(encoder, self.ensemble_size, self.image_size,
                               self.hidden_size, self.views)

    # -- interface -----------------------------------------------------------------

    def architecture(self) -> dict[str, Any]:
        """The arguments that fix the shapes of the weights (and, for an encoder,
        where its starting weights come from and which of them train)."""
        return {"ensemble_size": self.ensemble_size, "image_size": self.image_size,
                "channels": list(self.channels), "hidden_size": self.hidden_size,
                "views": self.views, "view_rewards": self.view_rewards,
                "encoder": self.encoder, "encoder_weights": self.encoder_weights,
                "finetune": None if self.encoder in SCRATCH_ENCODERS else self.finetune,
                "pool_grid": self.pool_grid, "feature_stage": self.feature_stage}

    def config(self) -> dict[str, Any]:
        return {**self.architecture(), "encoder_lr_scale": self.encoder_lr_scale,
                "batch_size": self.batch_size,
                "disagreement_penalty": self.disagreement_penalty, "seed": self.seed}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every weight of a from-scratch ensemble; with a pretrained encoder, the heads
        and the encoder parameters that train (the frozen rest is rebuilt from the
        encoder's name, so a saved module stays the size of what was learned)."""
        state = self.network.state_dict(keep_vars=True)
        if self.encoder in SCRATCH_ENCODERS or not self.network.encoder.pretrained:
            return {key: value.data if isinstance(value, nn.Parameter) else value
                    for key, value in state.items()}
        return {key: value.data for key, value in state.items()
                if not key.startswith("encoder.") or (isinstance(value, nn.Parameter)
                                                      and value.requires_grad)}

    @property
    def caches_features(self) -> bool:
        """Whether training may encode each frame once (a frozen shared encoder)."""
        return self.encoder not in SCRATCH_ENCODERS and self.finetune == "frozen"

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimiser's groups: heads (and from-scratch networks) at ``lr``,
        trainable pretrained encoder parameters at ``lr`` x ``encoder_lr_scale``."""
        if self.encoder in SCRATCH_ENCODERS:
            return [{"params": list(self.network.parameters()), "lr": lr}]
        groups = [{"params": list(self.network.heads.parameters()), "lr": lr}]
        trainable = [p for p in self.network.encoder.parameters() if p.requires_grad]
        if trainable:
            scale = self.encoder_lr_scale if self.network.encoder.pretrained else 1.0
            groups.append({"params": trainable, "lr": lr * scale})
        return groups

    def _score(self, frames, instructions, env_rewards):  # noqa: D102 - see base
        members = self.member_rewards(frames)
        if self.disagreement_penalty == 0:
            return members.mean(axis=0)
        return members.mean(axis=0) - self.disagreement_penalty * members.std(axis=0)

    # -- ensemble views --------------------------------------------------------------

    def member_rewards(self, frames: np.ndarray) -> np.ndarray:
        """float32 (K, B): each member's reward for frames uint8 (B, H, W, 3)."""
        frames = check_frames(frames)
        outputs = []
        with torch.no_grad(), _autocast(self.device):
            for start in range(0, len(frames), self.batch_size):
                images = self.prepare(frames[start:start + self.batch_size])
                outputs.append(self.network.score(images).float().cpu())
        if not outputs:
            return np.zeros((self.ensemble_size, 0), np.float32)
        return torch.cat(outputs, dim=1).numpy()

    def preference_probabilities(self, frames_a: np.ndarray, frames_b: np.ndarray) -> np.ndarray:
        """float32 (K, N): each member's P[a > b] = sigmoid(R_a - R_b) for segments
        uint8 (N, T, H, W, 3)."""
        if frames_a.shape != frames_b.shape or frames_a.ndim != 5:
            raise ValueError(f"segments must be two arrays (N, T, H, W, 3) of one shape, got "
                             f"{frames_a.shape} and {frames_b.shape}")
        count, steps = frames_a.shape[:2]
        returns = [self.member_rewards(frames.reshape(-1, *frames.shape[2:]))
                   .reshape(self.ensemble_size, count, steps).sum(axis=2, dtype=np.float64)
                   for frames in (frames_a, frames_b)]
        return (1.0 / (1.0 + np.exp(returns[1] - returns[0]))).astype(np.float32)

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) array -> uint8 (B, 3, S, views x S) tensor on the device,
        resized, in channels-last memory (the network's layout)."""
        height, width = frames.shape[1:3]
        # One view is squashed to a square whatever its shape (the module doc), except
        # an exact row of square views: that is a multi-camera render, and squashing
        # it would silently mix the views. Several views must tile exactly, or they
        # would be cut mid-picture.
        if self.views == 1 and width >= 2 * height and width % height == 0:
            raise ValueError(
                f"frames of {height}x{width} pixels hold {width // height} square views "
                f"side by side (an env's render_camera with {width // height} cameras); "
                f"this module was made for one view: make it with views={width // height}")
        if self.views > 1 and width != self.views * height:
            raise ValueError(
                f"frames of {height}x{width} pixels do not hold {self.views} square "
                f"views side by side; this module was made for views={self.views} "
                f"(frames {self.views} times as wide as high, e.g. an env's "
                f"render_camera with {self.views} cameras)")
        images = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        images = images.permute(0, 3, 1, 2)
        size = (self.image_size, self.views * self.image_size)
        if images.shape[-2:] != size:
            resized = F.interpolate(images.float(), size=size,
                                    mode="bilinear", antialias=True, align_corners=False)
            images = resized.round_().clamp_(0, 255).to(torch.uint8)
        return images.contiguous(memory_format=torch.channels_last)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-0.5, 0.5]."""
    return images.float() / 255.0 - 0.5


def shift_images(images: torch.Tensor, pad: int, rng: np.random.Generator,
                 views: int = 1) -> torch.Tensor:
    """Each image (n, C, H, W) translated by its own whole-pixel offsets in [-pad, pad]
    along each axis; pixels shifted in from outside repeat the edge. With ``views`` k,
    each image is k square views side by side and each view is shifted on its own, so
    no view's pixels slide into its neighbour."""
    if views > 1:
        tiles = images.unflatten(3, (views, -1)).permute(0, 3, 1, 2, 4).flatten(0, 1)
        shifted = shift_images(tiles, pad, rng)
        return shifted.unflatten(0, (len(images), views)).permute(0, 2, 3, 1, 4).flatten(3, 4)
    count, _channels, height, width = images.shape
    offsets = rng.integers(0, 2 * pad + 1, size=(count, 2)) - pad
    # Images that share an offset are moved together, by index with edge indices
    # repeated (replicate padding in any dtype, no padded copy): at most
    # (2 pad + 1)^2 groups, about 3x faster on a CPU than gathering every pixel.
    keys = (offsets[:, 0] + pad) * (2 * pad + 1) + offsets[:, 1] + pad
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    shifted = torch.empty_like(images)
    for key in np.unique(keys):
        chosen = np.flatnonzero(keys == key)
        row, col = offsets[chosen[0]]
        index = torch.as_tensor(chosen, device=images.device)
        shifted[index] = (images[index]
                          .index_select(2, (rows + int(row)).clamp_(0, height - 1))
                          .index_select(3, (cols + int(col)).clamp_(0, width - 1)))
    return shifted


def bradley_terry_loss(returns_a: torch.Tensor, returns_b: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of labels y against P[a > b] = sigmoid(R_a - R_b):
    mean(-y log P - (1 - y) log(1 - P)), computed stably from the logit R_a - R_b."""
    return F.binary_cross_entropy_with_logits(returns_a - returns_b, labels.to(returns_a.dtype))


@dataclasses.dataclass
class TrainingMetrics:
    """What :func:`train_preference_reward` reports."""

    losses: list[float]
    """Mean Bradley-Terry loss per epoch (summed over members, averaged over batches)."""
    accuracies: list[float]
    """Per epoch, the fraction of decided pairs (label != 0.5) each member ordered
    right while training on them, averaged over members."""
    member_accuracies: list[float]
    """Each member's accuracy in the last epoch."""
    pairs: int
    seconds: float

    @property
    def accuracy(self) -> float:
        """The last epoch's training accuracy (NaN when every label is a tie)."""
        return self.accuracies[-1] if self.accuracies else float("nan")


def train_preference_reward(
    model: PreferenceReward,
    data: PreferenceStore | PreferencePairs,
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    bootstrap: bool = False,
    random_shift: int | None = None,
    seed: int | None = 0,
) -> TrainingMetrics:
    """Fits ``model``'s ensemble to labelled pairs with the Bradley-Terry loss.

    :param data: a :class:`PreferenceStore` (all its pairs) or :class:`PreferencePairs`.
    :param epochs: passes over the pairs (default 50).
    :param batch_size: pairs per gradient step, per member (default 32).
    :param lr: Adam learning rate (default 1e-3). B-Pref's 3e-4 suits its small
        state-input MLPs; these CNNs on pixels are left under-trained by it at the epoch
        counts an online loop can afford. On Reach-v0 (2000 same-episode oracle labels,
        15 epochs, one member) 1e-3 raised the held-out step Spearman with the
        ground-truth reward from 0.74-0.82 to 0.86-0.91; 3e-4 needed 40 epochs for that.
    :param weight_decay: Adam L2 penalty (default 0).
    :param bootstrap: each member trains on its own resample with replacement of the
        pairs (default False: each member on its own shuffle of all pairs, as B-Pref).
    :param random_shift: augmentation: each training frame is translated by a random
        whole number of pixels in [-random_shift, random_shift] along each axis, edges
        repeated (DrQ's random shift); 0 turns it off. Default None: ``image_size // 16``
        (2 pixels at 32, 4 at 64). On Push-v0 it raised held-out Spearman with progress
        from about 0.5 to 0.65-0.75 (200 oracle pairs), by curbing overfitting.
    :param seed: seeds the shuffles and resamples (default 0).
    """
    if isinstance(data, PreferenceStore):
        data = data.load_all()
    if not isinstance(data, PreferencePairs):
        raise TypeError(f"data must be a PreferenceStore or PreferencePairs, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("no labelled pairs to train on")
    if random_shift is None:
        random_shift = model.image_size // 16
    if not 0 <= random_shift < model.image_size // 2:
        raise ValueError(f"random_shift must lie in [0, {model.image_size // 2}) pixels, got {random_shift}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, "
                         f"{batch_size}, {lr}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    device = model.device
    count, steps = data.frames_a.shape[:2]

    # Resize once up front, kept as uint8 (N, 2, T, 3, S, S): a quarter of float memory.
    # A frozen shared encoder goes further: every frame is encoded once, here, and the
    # epochs train the heads on the features (no random shifts then: they would need
    # a fresh encoding per epoch).
    segments = torch.stack([_prepare_segments(model, frames) for frames in
                            (data.frames_a, data.frames_b)], dim=1)
    if model.caches_features:
        segments = _encode_segments(model, segments)
        random_shift = 0
    labels = torch.as_tensor(data.labels, dtype=torch.float32, device=device)
    members = model.ensemble_size
    samples = [rng.integers(0, count, count) if bootstrap else np.arange(count)
               for _ in range(members)]

    optimizer = torch.optim.Adam(model.parameter_groups(lr), lr=lr, weight_decay=weight_decay)
    model.network.train()
    losses, accuracies, member_accuracies = [], [], [0.0] * members
    try:
        for _ in range(epochs):
            orders = [torch.as_tensor(rng.permutation(sample), device=device) for sample in samples]
            correct = np.zeros(members)
            decided = np.zeros(members)
            epoch_loss, batches = 0.0, 0
            for start in range(0, count, batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss = torch.zeros((), device=device)
                for index in range(members):
                    rows = orders[index][start:start + batch_size]
                    inputs = segments[rows].flatten(0, 2)  # (b*2*T, ...): frames or features
                    if model.caches_features:
                        frame_rewards = model.network.head_rewards(index, inputs)
                    else:
                        if random_shift:
                            inputs = shift_images(inputs, random_shift, rng, model.views)
                        # Every view's reward is fitted alone (a joint CNN is one "view");
                        # accuracy is the member's own reward, the minimum over views.
                        frame_rewards = model.network.member_view_rewards(index, inputs)
                    target = labels[rows]
                    for view_returns in frame_rewards.view(-1, len(rows), 2, steps).sum(dim=3):
                        loss = loss + bradley_terry_loss(view_returns[:, 0], view_returns[:, 1],
                                                         target)
                    with torch.no_grad():
                        returns = (frame_rewards.min(dim=0).values
                                   .view(len(rows), 2, steps).sum(dim=2))
                        mask = target != 0.5
                        predicted = returns[:, 0] > returns[:, 1]
                        correct[index] += (predicted == (target > 0.5))[mask].sum().item()
                        decided[index] += mask.sum().item()
                loss.backward()
                optimizer.step()
                epoch_loss += loss.item()
                batches += 1
            losses.append(epoch_loss / batches)
            with np.errstate(invalid="ignore", divide="ignore"):
                member_accuracies = list(correct / decided)
            accuracies.append(float(np.mean(member_accuracies)))
    finally:
        model.network.eval()
    return TrainingMetrics(losses=losses, accuracies=accuracies,
                           member_accuracies=[float(a) for a in member_accuracies],
                           pairs=count, seconds=time.perf_counter() - started)


def _prepare_segments(model: PreferenceReward, frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) -> uint8 (N, T, 3, S, views x S) on the model's device."""
    count, steps = frames.shape[:2]
    flat = frames.reshape(count * steps, *frames.shape[2:])
    chunks = [model.prepare(flat[start:start + model.batch_size])
              for start in range(0, len(flat), model.batch_size)]
    return torch.cat(chunks).view(count, steps, 3, model.image_size,
                                  model.views * model.image_size)


def _encode_segments(model: PreferenceReward, segments: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 2, T, 3, S, views x S) -> float features (N, 2, T, F), in batches."""
    flat = segments.flatten(0, 2)
    with torch.no_grad(), _autocast(model.device):
        features = [model.network.encode(flat[start:start + model.batch_size]).float()
                    for start in range(0, len(flat), model.batch_size)]
    return torch.cat(features).view(*segments.shape[:3], -1)


def _check_given_architecture(ensemble_size: Any, image_size: Any, channels: Any,
                              hidden_size: Any, views: Any, view_rewards: Any,
                              encoder: Any = None, encoder_weights: Any = None,
                              finetune: Any = None, pool_grid: Any = None,
                              feature_stage: Any = None) -> dict[str, Any]:
    """The architecture arguments given (None: not given), each checked on its own."""
    return {
        "ensemble_size": None if ensemble_size is None
        else arguments.integer("ensemble_size", ensemble_size, 1),
        "image_size": None if image_size is None
        else arguments.integer("image_size", image_size, 8),
        "channels": None if channels is None else arguments.integers("channels", channels),
        "hidden_size": None if hidden_size is None
        else arguments.integer("hidden_size", hidden_size, 1),
        "views": None if views is None else arguments.integer("views", views, 1, 8),
        "view_rewards": None if view_rewards is None
        else arguments.choice("view_rewards", view_rewards, VIEW_REWARDS),
        "encoder": None if encoder is None else arguments.text("encoder", encoder),
        "encoder_weights": arguments.optional_text("encoder_weights", encoder_weights),
        "finetune": None if finetune is None
        else arguments.choice("finetune", finetune, FINETUNE_MODES),
        "pool_grid": None if pool_grid is None else arguments.integer("pool_grid", pool_grid, 1),
        "feature_stage": arguments.optional_integer("feature_stage", feature_stage),
    }


def _check_architecture(ensemble_size: int, image_size: int, channels: Sequence[int],
                        hidden_size: int, views: int, view_rewards: str, encoder: str,
                        encoder_weights: str | None, finetune: str | None,
                        pool_grid: int | None, feature_stage: int | None) -> None:
    """Checks the arguments together, once defaults and the checkpoint's are filled in."""
    _check_given_architecture(ensemble_size, image_size, channels, hidden_size, views,
                              view_rewards, encoder, encoder_weights, finetune, pool_grid,
                              feature_stage)
    if view_rewards == "min" and views < 2:
        raise ValueError("view_rewards='min' takes the minimum over several views; give "
                         f"views >= 2 (got views={views})")
    if encoder in SCRATCH_ENCODERS and (
            encoder_weights, finetune, pool_grid, feature_stage) != (None,) * 4:
        raise ValueError(f"encoder={encoder!r} trains every member's network from scratch: "
                         "encoder_weights, finetune, pool_grid and feature_stage apply to a "
                         "named encoder (e.g. encoder='efficientnet_lite0')")
    if encoder == "keypoints":
        check_keypoint_channels(channels)
    if encoder not in SCRATCH_ENCODERS and view_rewards == "min":
        raise ValueError("view_rewards='min' needs a CNN per view (encoder='cnn'); a shared "
                         f"encoder ({encoder!r}) scores the views jointly: view_rewards='joint'")
    check_encoder_name(encoder)


def _load_checkpoint(checkpoint: str | os.PathLike[str]) -> PreferenceReward:
    """The module saved in ``checkpoint``, through ``rewards.serialization.load``, which
    checks the file format and that the weights fit the saved architecture."""
    from rewards.serialization import load

    module = load(checkpoint)
    if not isinstance(module, PreferenceReward):
        raise ValueError(f"{checkpoint} holds a {module.name!r} reward module, not 'preference'")
    return module


def _autocast(device: torch.device) -> Any:
    """fp16 autocast on CUDA (inference only); a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", enabled=False)
