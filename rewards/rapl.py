"""RAPL: a preference-aligned visual representation and an optimal-transport reward.

After Tian et al., "What Matters to You? Towards Visual Representation Alignment for
Robot Learning" (ICLR 2024). Two steps:

1. **Align the representation.** An encoder ``phi`` (a small CNN on pixels) is
   trained on ranked trajectory triplets ``(t+, t0, t-)`` (``t+`` preferred over
   ``t0``, preferred over ``t-``). Trajectories are compared by optimal transport
   between their embedded frames::

       C_ij = 1 - cos(phi(a_i), phi(b_j)),    d(a, b) = sum_ij P_ij C_ij,

   with ``P`` the entropic (Sinkhorn) plan under uniform marginals. The most
   preferred trajectory is the anchor; it should be closer to the middle one than
   to the worst::

       p = exp(-d(t+, t0)) / (exp(-d(t+, t0)) + exp(-d(t+, t-))),
       loss = -log p = softplus(d(t+, t0) - d(t+, t-)).

   Gradients flow through the unrolled Sinkhorn iterations into ``phi``.

2. **Reward by matching expert demonstrations.** For a rollout ``o_1..o_T`` and
   each of K expert demonstrations, ``P*`` is the Sinkhorn plan between the
   rollout's and the demonstration's embedded frames, and::

       r_t = -scale * T * sum_j P*_tj C_tj.

   Rows of ``P*`` sum to ``1 / T``, so ``T * P*_t.`` is a distribution over the
   demonstration's frames and ``r_t`` is minus the expected cost of frame ``t``
   under its transport: in ``[-2 * scale, 0]`` whatever the episode length. Of the
   K demonstrations, the one whose rewards have the highest total (the closest in
   transport distance) gives the rewards.

The reward depends on the whole rollout (the plan couples its frames), so this
module scores trajectories (:meth:`RaplReward.score_trajectory`), not batches of
unrelated frames.

The encoder ``phi`` is, by default and as published, an ImageNet-pretrained network
(:mod:`rewards.encoders`: EfficientNet-Lite0 here, RAPL's ResNet-18 as
``timm:resnet18.a1_in1k``) with a linear head, its last stage fine-tuned by the
triplet loss; or a small CNN trained from scratch (``encoder="cnn"``); or an
open_clip visual tower with a linear head (``encoder="clip"``), initialised from any
weights :mod:`rewards.clip` can load (a pretrained tag, a local checkpoint, or a
random ``model_config`` for tests) and fine-tuned whole.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewards import arguments
from rewards.base import RewardModel, check_finite_rewards, check_frames, check_tensors_match
from rewards.device import get_device
from rewards.encoders import FINETUNE_MODES, ImageEncoder, build_encoder, check_encoder_name
from rewards.optimal_transport import (
    DEFAULT_EPSILON,
    DEFAULT_ITERATIONS,
    cosine_cost,
    sinkhorn,
)
from rewards.registry import register

_ENCODER_PREFIX = "encoder."
_DEMO_KEY = re.compile(r"^demo\.(\d+)\.(frames|embeddings)$")


class RaplEncoder(nn.Module):
    """``phi``: pixels -> embedding.

    A stack of 4x4 stride-2 convolutions with ReLU (each halves the image), then a
    linear layer on the flattened feature map. Flattening, rather than pooling,
    keeps *where* things are, which is what manipulation progress is about.

    :param image_size: side of the square input images.
    :param channels: output channels of each convolution.
    :param embedding_dim: size of the embedding.
    """

    def __init__(self, image_size: int, channels: Sequence[int], embedding_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            previous = width
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 3, image_size, image_size)).numel()
        self.head = nn.Linear(flat, embedding_dim)
        self.image_size = image_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` normalised images -> ``(N, embedding_dim)``."""
        return self.head(self.features(images).flatten(1))


    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, H, W)`` images -> float ``(N, 3, S, S)`` in [-1, 1], resized
        bilinearly with antialiasing (non-square frames are squashed, which is
        harmless for an encoder that learns from such frames)."""
        images = images.float()
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size),
                                   mode="bilinear", antialias=True, align_corners=False)
        return images / 127.5 - 1.0


class ClipVisualEncoder(nn.Module):
    """``phi`` from an open_clip visual tower: ``head(visual(x))``.

    Frames are preprocessed as :class:`rewards.clip.ClipReward` does (resized keeping
    the aspect ratio, the model's mean and standard deviation); the head maps the
    CLIP image embedding to ``embedding_dim``. The tower's text half is dropped.

    :param visual: the open_clip model's ``visual`` module.
    :param preprocess_cfg: open_clip's preprocess config of that model (``size``,
        ``mean``, ``std``, ``interpolation``).
    :param embedding_dim: size of the embedding.
    """

    def __init__(self, visual: nn.Module, preprocess_cfg: dict[str, Any], embedding_dim: int) -> None:
        super().__init__()
        self.visual = visual
        size = preprocess_cfg["size"]
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        interpolation = preprocess_cfg.get("interpolation", "bicubic")
        self.interpolation = interpolation if interpolation in ("bilinear", "bicubic") else "bicubic"
        self.register_buffer("mean", torch.tensor(preprocess_cfg["mean"]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(preprocess_cfg["std"]).view(1, 3, 1, 1),
                             persistent=False)
        with torch.no_grad():
            width = visual(torch.zeros(1, 3, *self.input_size)).shape[-1]
        self.head = nn.Linear(width, embedding_dim)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, H, W)`` -> the tower's normalised float input."""
        from rewards.clip import resize_keep_aspect

        images = resize_keep_aspect(images, self.input_size, "shortest", self.interpolation)
        return (images.float() / 255.0 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, h, w)`` preprocessed images -> ``(N, embedding_dim)``."""
        return self.head(self.visual(images).float())


ENCODERS = ("cnn", "clip", "efficientnet_lite0", "timm:<model>", "open_clip:<model>")
DEFAULT_ENCODER = "efficientnet_lite0"


class PretrainedEmbedding(nn.Module):
    """``phi`` from a :mod:`rewards.encoders` encoder: ``head(standardise(encoder(x)))``.

    RAPL as published: an ImageNet-pretrained network aligned with the preferences.
    Pretrained features vary little between frames of one scene next to their
    offsets, so each is standardised over the frames (running statistics, as in the
    preference ensemble) before the linear head, or every cosine cost would start
    near zero.
    """

    def __init__(self, encoder: ImageEncoder, image_size: int, embedding_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size = image_size
        features = encoder.feature_dim(image_size, image_size)
        self.standardise = nn.BatchNorm1d(features, affine=False)
        self.head = nn.Linear(features, embedding_dim)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, H, W)`` -> float ``(N, 3, S, S)`` in [0, 255] (the encoder
        normalises itself)."""
        images = images.float()
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size),
                                   mode="bilinear", antialias=True, align_corners=False)
        return images.contiguous(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.standardise(self.encoder(images)))


def frames_to_tensor(frames: np.ndarray, encoder: nn.Module, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> the encoder's float input on ``device``.

    The uint8 frames travel to the device first (4x less to copy), then the
    encoder's own ``preprocess`` resizes and normalises them there.
    """
    images = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2)
    return encoder.preprocess(images)


def triplet_loss(distance_to_middle: torch.Tensor, distance_to_worst: torch.Tensor) -> torch.Tensor:
    """``-log p`` per triplet, with ``p = exp(-d(t+, t0)) / (exp(-d(t+, t0)) + exp(-d(t+, t-)))``.

    Equal to ``softplus(d(t+, t0) - d(t+, t-))``, which is how it is computed (stable
    for any distances).
    """
    return F.softplus(distance_to_middle - distance_to_worst)


def pad_embeddings(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacks ``(T_k, D)`` embeddings into ``(K, T_max, D)`` (zero padding) and the
    marginal weights ``(K, T_max)``: ``1 / T_k`` on real frames, 0 on padding."""
    longest = max(len(sequence) for sequence in sequences)
    first = sequences[0]
    padded = first.new_zeros(len(sequences), longest, first.shape[-1])
    weights = first.new_zeros(len(sequences), longest)
    for index, sequence in enumerate(sequences):
        padded[index, : len(sequence)] = sequence
        weights[index, : len(sequence)] = 1.0 / len(sequence)
    return padded, weights


@register("rapl")
class RaplReward(RewardModel):
    """Optimal-transport reward against expert demonstrations in a learned embedding.

    See the module docstring for the maths. Train the encoder with
    :func:`train_rapl`, give demonstrations (``demos=`` or
    :meth:`set_demonstrations`), then score episodes with :meth:`score_trajectory`.
    :func:`rewards.save` stores the encoder weights and the demonstrations (frames
    and embeddings), so a loaded module gives exactly the same rewards.

    :param encoder: ``"efficientnet_lite0"`` (default: ImageNet weights, as RAPL
        starts from an ImageNet ResNet-18; needs ``vmalign[pretrained]``), any other
        :mod:`rewards.encoders` name (``"timm:resnet18.a1_in1k"`` is RAPL's own choice,
        for users with network access), ``"cnn"`` (a small CNN from random weights) or
        ``"clip"`` (an open_clip visual tower plus a linear head, fine-tuned whole).
    :param encoder_weights: a registry encoder's weights (see
        :func:`rewards.encoders.build_encoder`; default None: its pretrained ones).
    :param finetune: which registry-encoder parameters the triplet loss trains
        (default ``"last_block"``: RAPL fine-tunes its encoder; the last stage keeps
        that affordable on a CPU), ``"frozen"`` or ``"full"``.
    :param encoder_lr_scale: learning rate of pretrained encoder parameters as a
        fraction of the head's (default 0.1).
    :param pool_grid: a registry encoder's feature map is averaged to this grid
        before the head (default 1: one vector per frame; 2 or more keep where in the
        frame a feature came from, which manipulation progress depends on).
    :param feature_stage: a timm encoder's features come from the end of this stage
        (timm's ``forward_intermediates`` numbering; e.g. -2, EfficientNet-Lite0's
        stride-16 map) instead of the final map (default None). ``"last_block"`` then
        fine-tunes that stage.
    :param encoder_channels: ``cnn``: output channels of the encoder's stride-2
        convolutions (default ``(16, 32, 64)``).
    :param embedding_dim: size of the embedding ``phi(o)`` (default 64).
    :param image_size: ``cnn``: frames are resized to ``image_size`` x ``image_size``
        before encoding (default 64). The CLIP tower uses its own input size.
    :param clip_model: ``clip``: the open_clip model name (default ``"ViT-B-32"``); see
        :class:`rewards.clip.ClipReward` for names, tags, checkpoints and configs.
    :param clip_pretrained: ``clip``: pretrained tag the tower starts from (default
        ``"openai"``; None for random weights).
    :param clip_checkpoint: ``clip``: a local open_clip weights file to start from
        (default None).
    :param clip_model_config: ``clip``: a custom open_clip architecture (default None),
        e.g. :data:`rewards.clip.TINY_MODEL_CONFIG` in tests.
    :param clip_initial_weights: ``clip``: load the starting weights named above
        (default True). :func:`rewards.save` writes False, because the saved file
        holds the fine-tuned tower: loading it builds the architecture without
        downloading or reading the original weights.
    :param epsilon: Sinkhorn entropy weight, in cosine-cost units (default 0.05).
    :param sinkhorn_iterations: Sinkhorn iterations, for training and rewards
        (default 100).
    :param scale: multiplies the rewards; with 1, ``r_t`` lies in [-2, 0]
        (default 1.0).
    :param demos: expert demonstrations, each uint8 ``(T, H, W, 3)``; default none
        (give them later with :meth:`set_demonstrations`, or load a saved module).
    :param encode_batch_size: frames per encoder call when scoring (bounds memory;
        does not change results) (default 256).
    :param device: torch device (see :func:`rewards.device.get_device`); default
        CUDA when available.
    """

    needs_trajectory = True

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        encoder_weights: str | None = None,
        finetune: str | None = None,
        encoder_lr_scale: float = 0.1,
        pool_grid: int = 1,
        feature_stage: int | None = None,
        encoder_channels: Sequence[int] = (16, 32, 64),
        embedding_dim: int = 64,
        image_size: int = 64,
        clip_model: str = "ViT-B-32",
        clip_pretrained: str | None = "openai",
        clip_checkpoint: str | os.PathLike[str] | None = None,
        clip_model_config: dict[str, Any] | str | os.PathLike[str] | None = None,
        clip_initial_weights: bool = True,
        epsilon: float = DEFAULT_EPSILON,
        sinkhorn_iterations: int = DEFAULT_ITERATIONS,
        scale: float = 1.0,
        demos: Sequence[np.ndarray] | None = None,
        encode_batch_size: int = 256,
        device: str | None = None,
    ) -> None:
        # Every argument is checked before anything is built (see rewards.arguments).
        self.encoder_kind = _check_encoder(encoder)
        self.encoder_weights = arguments.optional_text("encoder_weights", encoder_weights)
        self.finetune = (None if finetune is None
                         else arguments.choice("finetune", finetune, FINETUNE_MODES))
        self.encoder_lr_scale = arguments.number("encoder_lr_scale", encoder_lr_scale, 0.0)
        self.pool_grid = arguments.integer("pool_grid", pool_grid, 1)
        self.feature_stage = arguments.optional_integer("feature_stage", feature_stage)
        if encoder in ("cnn", "clip") and (
                (encoder_weights, finetune, feature_stage) != (None,) * 3 or pool_grid != 1):
            raise ValueError(f"encoder={encoder!r} takes no encoder_weights, finetune, "
                             f"pool_grid or feature_stage: they apply to a named encoder "
                             f"(e.g. 'efficientnet_lite0')")
        channels = arguments.integers("encoder_channels", encoder_channels)
        self.embedding_dim = arguments.integer("embedding_dim", embedding_dim, 1)
        self.image_size = arguments.integer("image_size", image_size, 1)
        self.sinkhorn_iterations = arguments.integer("sinkhorn_iterations",
                                                     sinkhorn_iterations, 1)
        self.encode_batch_size = arguments.integer("encode_batch_size", encode_batch_size, 1)
        if encoder == "cnn" and image_size < 2 ** len(channels):
            raise ValueError(f"image_size {image_size} is too small for {len(channels)} "
                             f"stride-2 convolutions; use at least {2 ** len(channels)}")
        self.epsilon = arguments.number("epsilon", epsilon, 0.0, exclusive_minimum=True)
        self.scale = arguments.number("scale", scale)
        arguments.text("clip_model", clip_model)
        arguments.optional_text("clip_pretrained", clip_pretrained)
        arguments.optional_path("clip_checkpoint", clip_checkpoint)
        clip_initial_weights = arguments.boolean("clip_initial_weights", clip_initial_weights)
        checked_demos = None if demos is None else _check_demos(demos)
        self.encoder_channels = channels
        self.device = get_device(device)
        self.clip_source = {"clip_model": clip_model, "clip_pretrained": clip_pretrained,
                            "clip_checkpoint": None, "clip_model_config": None}
        if encoder == "cnn":
            self.encoder: nn.Module = RaplEncoder(self.image_size, channels, self.embedding_dim)
        elif encoder == "clip":
            self.encoder = self._clip_encoder(clip_model, clip_pretrained, clip_checkpoint,
                                              clip_model_config, clip_initial_weights)
        else:
            tower = build_encoder(encoder, encoder_weights, self.finetune or "last_block",
                                  self.pool_grid, feature_stage=self.feature_stage)
            self.finetune = tower.finetune
            self.encoder = PretrainedEmbedding(tower, self.image_size, self.embedding_dim)
        self.encoder.to(self.device)
        self.encoder.eval()
        self._demo_frames: list[torch.Tensor] = []
        self._demo_embeddings: list[torch.Tensor] = []
        if checked_demos is not None:
            self.set_demonstrations(checked_demos)

    def _clip_encoder(self, model: str, pretrained: str | None,
                      checkpoint: str | os.PathLike[str] | None,
                      model_config: dict[str, Any] | str | os.PathLike[str] | None,
                      initial_weights: bool) -> ClipVisualEncoder:
        """The open_clip visual tower (with its tag's activation and normalisation)
        and a fresh linear head; starting weights only when ``initial_weights``."""
        from rewards.clip import _read_model_config, load_open_clip

        config = None if model_config is None else _read_model_config(model_config)
        path = None if checkpoint is None else str(os.path.abspath(checkpoint))
        self.clip_source.update(clip_checkpoint=path, clip_model_config=config)
        net, _, preprocess_cfg = load_open_clip(model, pretrained, path, config,
                                                load_weights=initial_weights)
        return ClipVisualEncoder(net.visual, preprocess_cfg, self.embedding_dim)

    # -- embedding -------------------------------------------------------------------

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """``phi`` of uint8 ``(N, H, W, 3)`` frames, with gradients: ``(N, D)``."""
        return self.encoder(frames_to_tensor(frames, self.encoder, self.device))

    @torch.no_grad()
    def embed(self, frames: np.ndarray) -> torch.Tensor:
        """``phi`` of uint8 ``(N, H, W, 3)`` frames for scoring (no gradients, in
        chunks of ``encode_batch_size``): float32 ``(N, D)`` on the module's device."""
        frames = check_frames(frames)
        chunks = [self.encode(frames[start:start + self.encode_batch_size])
                  for start in range(0, len(frames), self.encode_batch_size)]
        return torch.cat(chunks).float()

    # -- demonstrations --------------------------------------------------------------

    def set_demonstrations(self, demos: Sequence[np.ndarray]) -> None:
        """Replaces the expert demonstrations: a list of uint8 ``(T, H, W, 3)``
        episodes (lengths and sizes may differ). Their embeddings are computed now."""
        self._demo_frames = [torch.from_numpy(demo.copy()) for demo in _check_demos(demos)]
        self.refresh_demo_embeddings()

    def refresh_demo_embeddings(self) -> None:
        """Recomputes the demonstrations' embeddings (after the encoder changed)."""
        self._demo_embeddings = [self.embed(frames.numpy()) for frames in self._demo_frames]

    @property
    def demonstrations(self) -> list[np.ndarray]:
        """The stored demonstrations, uint8 ``(T, H, W, 3)`` each (copies)."""
        return [frames.numpy().copy() for frames in self._demo_frames]

    # -- rewards ---------------------------------------------------------------------

    def score_trajectory(
        self, frames: np.ndarray, instruction: str = "", env_rewards: np.ndarray | None = None
    ) -> np.ndarray:
        """Rewards of one episode's frames ``(T, H, W, 3)``: float32 ``(T,)``.

        ``r_t = -scale * T * sum_j P*_tj C_tj`` against the demonstration with the
        highest total reward. ``instruction`` and ``env_rewards`` are not used (the
        demonstrations define the task).
        """
        return self.score_against_demonstrations(frames)[0]

    def score_against_demonstrations(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rewards against every demonstration.

        :return: ``(rewards, totals)``: ``rewards`` float32 ``(T,)`` from the best
            demonstration, and ``totals`` float32 ``(K,)``, the total reward against
            each demonstration (the best is ``argmax(totals)``).
        """
        if not self._demo_embeddings:
            raise RuntimeError("the RAPL reward has no expert demonstrations: pass demos=[...] "
                               "to the constructor, call set_demonstrations([...]) first, or "
                               "load a trained module (vmalign reward-train --reward rapl "
                               "writes one; a training config names it as reward_checkpoint)")
        frames = check_frames(frames)
        if len(frames) == 0:
            raise ValueError("cannot score an empty trajectory")
        rollout = self.embed(frames)
        demos, weights = pad_embeddings(self._demo_embeddings)
        with torch.no_grad():
            cost = cosine_cost(rollout.unsqueeze(0), demos)  # (K, T, T_max)
            plan, _ = sinkhorn(cost, target_weights=weights, epsilon=self.epsilon,
                               iterations=self.sinkhorn_iterations)
            rewards = -self.scale * len(frames) * (plan * cost).sum(dim=-1)  # (K, T)
            totals = rewards.sum(dim=-1)
            best = int(torch.argmax(totals))
        best_rewards = rewards[best].cpu().numpy().astype(np.float32)
        # This path bypasses RewardModel.__call__, so it runs the base class's check here.
        check_finite_rewards(best_rewards, self)
        return best_rewards, totals.cpu().numpy().astype(np.float32)

    def _score(self, frames, instructions, env_rewards):  # noqa: D102 - see base
        raise RuntimeError(
            "the 'rapl' reward scores whole trajectories (optimal transport of an episode "
            "against expert demonstrations), not batches of single frames: call "
            "score_trajectory(frames (T, H, W, 3), instruction) once per episode"
        )

    # -- saving ----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        clip = {}
        if self.encoder_kind == "clip":
            # The saved weights are the fine-tuned tower: loading must not fetch the
            # starting weights again (nor need them to exist).
            clip = {**self.clip_source, "clip_initial_weights": False}
        registry = {}
        if isinstance(self.encoder, PretrainedEmbedding):
            registry = {"encoder_weights": self.encoder_weights, "finetune": self.finetune,
                        "encoder_lr_scale": self.encoder_lr_scale, "pool_grid": self.pool_grid,
                        "feature_stage": self.feature_stage}
        return {
            "encoder": self.encoder_kind,
            **clip,
            **registry,
            "encoder_channels": list(self.encoder_channels),
            "embedding_dim": self.embedding_dim,
            "image_size": self.image_size,
            "epsilon": self.epsilon,
            "sinkhorn_iterations": self.sinkhorn_iterations,
            "scale": self.scale,
            "encode_batch_size": self.encode_batch_size,
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """Encoder weights (``encoder.*``) and, per demonstration k, its frames
        (``demo.k.frames``, uint8) and embeddings (``demo.k.embeddings``): storing the
        embeddings makes a loaded module's rewards exactly the saved one's."""
        result = self._encoder_tensors()
        for index, (frames, embeddings) in enumerate(zip(self._demo_frames,
                                                         self._demo_embeddings)):
            result[f"demo.{index}.frames"] = frames
            result[f"demo.{index}.embeddings"] = embeddings
        return result

    def load_tensors(self, tensors: dict[str, Any]) -> None:
        """Restores the encoder (names and shapes must match this architecture) and
        the demonstrations (any number, any lengths)."""
        demo_parts: dict[int, dict[str, torch.Tensor]] = {}
        others = {}
        for key, value in tensors.items():
            match = _DEMO_KEY.match(key)
            if match:
                demo_parts.setdefault(int(match.group(1)), {})[match.group(2)] = value
            else:
                others[key] = value
        expected = self._encoder_tensors()
        check_tensors_match(expected, others, type(self).__name__)
        frames, embeddings = self._check_demo_tensors(demo_parts)
        for key, value in others.items():
            expected[key].copy_(value)
        self._demo_frames = frames
        self._demo_embeddings = embeddings

    def _encoder_tensors(self) -> dict[str, torch.Tensor]:
        """``encoder.*``: every weight, except a pretrained tower's frozen ones (its
        name rebuilds them, so a saved module stays the size of what was learned)."""
        state = self.encoder.state_dict(keep_vars=True)
        tower = getattr(self.encoder, "encoder", None)
        skip = set()
        if isinstance(tower, ImageEncoder) and tower.pretrained:
            skip = {f"encoder.{name}" for name, p in tower.named_parameters() if not p.requires_grad}
            skip |= {f"encoder.{name}" for name, _ in tower.named_buffers()}
        return {f"{_ENCODER_PREFIX}{key}": value.data for key, value in state.items()
                if key not in skip}

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimiser's groups: a pretrained tower's trainable parameters at ``lr``
        x ``encoder_lr_scale``, everything else that trains at ``lr``."""
        tower = getattr(self.encoder, "encoder", None)
        if not (isinstance(tower, ImageEncoder) and tower.pretrained):
            return [{"params": list(self.encoder.parameters()), "lr": lr}]
        in_tower = {id(p) for p in tower.parameters()}
        rest = [p for p in self.encoder.parameters() if id(p) not in in_tower]
        groups = [{"params": rest, "lr": lr}]
        tuned = [p for p in tower.parameters() if p.requires_grad]
        if tuned:
            groups.append({"params": tuned, "lr": lr * self.encoder_lr_scale})
        return groups

    def _check_demo_tensors(
        self, parts: dict[int, dict[str, torch.Tensor]]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if sorted(parts) != list(range(len(parts))):
            raise ValueError(f"saved demonstrations are numbered {sorted(parts)}, "
                             f"expected 0..{len(parts) - 1}")
        frames, embeddings = [], []
        for index in range(len(parts)):
            part = parts[index]
            if set(part) != {"frames", "embeddings"}:
                raise ValueError(f"saved demonstration {index} lacks its "
                                 f"{sorted({'frames', 'embeddings'} - set(part))}")
            demo, embedded = part["frames"], part["embeddings"]
            if demo.dtype != torch.uint8 or demo.ndim != 4 or demo.shape[-1] != 3:
                raise ValueError(f"saved demonstration {index} frames must be uint8 "
                                 f"(T, H, W, 3), got {demo.dtype} {tuple(demo.shape)}")
            if tuple(embedded.shape) != (len(demo), self.embedding_dim):
                raise ValueError(
                    f"saved demonstration {index} embeddings have shape "
                    f"{tuple(embedded.shape)}, expected ({len(demo)}, {self.embedding_dim}): "
                    "the file was made for another architecture"
                )
            frames.append(demo.cpu().contiguous())
            embeddings.append(embedded.to(self.device, torch.float32))
        return frames, embeddings


def _check_encoder(encoder: Any) -> str:
    """``encoder`` if RAPL can build it (see :class:`RaplReward`), else ``ValueError``
    listing what is allowed."""
    if encoder == "clip":
        return encoder
    try:
        return check_encoder_name(encoder)
    except ValueError:
        raise ValueError(f"unknown encoder {encoder!r}; valid: {', '.join(ENCODERS)}") from None


def _check_demos(demos: Any) -> list[np.ndarray]:
    """``demos`` as a non-empty list of uint8 ``(T, H, W, 3)`` episodes, T >= 1."""
    if isinstance(demos, np.ndarray) and demos.ndim == 4:
        raise ValueError("demos must be a list of episodes, each (T, H, W, 3); got one "
                         "array of frames: wrap it in a list for a single demonstration")
    if isinstance(demos, (str, bytes)) or not isinstance(demos, (Sequence, np.ndarray)):
        raise ValueError(f"demos must be a list of episodes, each uint8 (T, H, W, 3), got "
                         f"{demos!r:.100} ({type(demos).__name__})")
    if len(demos) == 0:
        raise ValueError("demos must hold at least one demonstration")
    checked = []
    for index, demo in enumerate(demos):
        try:
            checked.append(check_frames(demo))
        except ValueError as error:
            raise ValueError(f"demonstration {index}: {error}") from None
        if len(checked[-1]) == 0:
            raise ValueError(f"demonstration {index} has no frames")
    return checked


# -- training ------------------------------------------------------------------------


Triplet = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Ranked trajectories ``(t+, t0, t-)``: best, middle, worst; uint8 ``(T, H, W, 3)`` each."""


@dataclasses.dataclass
class RaplTrainingMetrics:
    """Per-epoch means over the training triplets (and validation, when given).

    ``accuracy`` is the fraction of triplets with ``d(t+, t0) < d(t+, t-)``.
    """

    loss: list[float] = dataclasses.field(default_factory=list)
    accuracy: list[float] = dataclasses.field(default_factory=list)
    validation_loss: list[float] = dataclasses.field(default_factory=list)
    validation_accuracy: list[float] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        return dataclasses.asdict(self)


def triplet_distances(
    model: RaplReward, triplets: Sequence[Triplet], frame_stride: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d(t+, t0), d(t+, t-))`` for each triplet, differentiable in the encoder.

    All frames go through the encoder in one call; trajectories of different
    lengths are zero-padded and given zero transport mass.
    """
    episodes = [episode[::frame_stride] for triplet in triplets for episode in triplet]
    lengths = [len(episode) for episode in episodes]
    if len({episode.shape[1:] for episode in episodes}) == 1:
        embedded = model.encode(np.concatenate(episodes)).float()
    else:  # frames of different sizes cannot share one array
        embedded = torch.cat([model.encode(episode) for episode in episodes]).float()
    per_episode = list(torch.split(embedded, lengths))
    best, best_weights = pad_embeddings(per_episode[0::3])
    middle, middle_weights = pad_embeddings(per_episode[1::3])
    worst, worst_weights = pad_embeddings(per_episode[2::3])
    options = {"epsilon": model.epsilon, "iterations": model.sinkhorn_iterations}
    _, to_middle = sinkhorn(cosine_cost(best, middle), best_weights, middle_weights, **options)
    _, to_worst = sinkhorn(cosine_cost(best, worst), best_weights, worst_weights, **options)
    return to_middle, to_worst


def train_rapl(
    model: RaplReward,
    triplets: Sequence[Triplet],
    epochs: int = 50,
    lr: float = 1e-3,
    batch_size: int = 8,
    weight_decay: float = 0.0,
    frame_stride: int = 1,
    validation: Sequence[Triplet] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Aligns ``model``'s encoder with ranked triplets (Adam on the RAPL loss).

    :param model: the module whose encoder is trained in place; its Sinkhorn
        settings (``epsilon``, ``sinkhorn_iterations``) define the distances.
    :param triplets: ranked ``(t+, t0, t-)`` trajectories, uint8 ``(T, H, W, 3)``
        each (lengths may differ).
    :param epochs: passes over the triplets (default 50).
    :param lr: Adam learning rate (default 1e-3).
    :param batch_size: triplets per gradient step (default 8).
    :param weight_decay: Adam weight decay (default 0).
    :param frame_stride: use every ``frame_stride``-th frame of each trajectory
        while training (faster; the reward still uses every frame) (default 1).
    :param validation: held-out triplets, measured after every epoch (default none).
    :param checkpoint: folder to :func:`rewards.save` the module to after every
        epoch (atomic, so a killed run keeps the last finished epoch) (default none).
    :param seed: seeds the order of the triplets (default 0).
    :param log: called with one line per epoch (default silent).
    :return: per-epoch ``loss``, ``accuracy`` and, with ``validation``,
        ``validation_loss`` and ``validation_accuracy``
        (see :class:`RaplTrainingMetrics`).
    """
    triplets = _check_triplets(triplets, "triplets")
    validation = _check_triplets(validation, "validation") if validation is not None else None
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("frame_stride", frame_stride)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameter_groups(lr), lr=lr, weight_decay=weight_decay)
    metrics = RaplTrainingMetrics()
    try:
        for epoch in range(int(epochs)):
            model.encoder.train()
            losses, correct = [], []
            order = rng.permutation(len(triplets))
            for start in range(0, len(order), batch_size):
                batch = [triplets[i] for i in order[start:start + batch_size]]
                to_middle, to_worst = triplet_distances(model, batch, frame_stride)
                loss = triplet_loss(to_middle, to_worst)
                optimizer.zero_grad()
                loss.mean().backward()
                optimizer.step()
                losses += loss.detach().cpu().tolist()
                correct += (to_middle < to_worst).cpu().tolist()
            metrics.loss.append(float(np.mean(losses)))
            metrics.accuracy.append(float(np.mean(correct)))
            model.encoder.eval()
            if validation is not None:
                loss, accuracy = evaluate_triplets(model, validation, batch_size, frame_stride)
                metrics.validation_loss.append(loss)
                metrics.validation_accuracy.append(accuracy)
            if checkpoint is not None:
                from rewards.serialization import save

                model.refresh_demo_embeddings()
                save(model, checkpoint)
            if log is not None:
                line = (f"epoch {epoch + 1}/{epochs}: loss {metrics.loss[-1]:.4f} "
                        f"accuracy {metrics.accuracy[-1]:.3f}")
                if validation is not None:
                    line += (f" validation loss {metrics.validation_loss[-1]:.4f} "
                             f"accuracy {metrics.validation_accuracy[-1]:.3f}")
                log(line)
    finally:
        # The demonstrations must be embedded by the encoder that now scores rollouts.
        model.encoder.eval()
        model.refresh_demo_embeddings()
    return metrics.as_dict()


@torch.no_grad()
def evaluate_triplets(
    model: RaplReward, triplets: Sequence[Triplet], batch_size: int = 8, frame_stride: int = 1
) -> tuple[float, float]:
    """Mean RAPL loss and accuracy (``d(t+, t0) < d(t+, t-)``) over ``triplets``."""
    triplets = _check_triplets(triplets, "triplets")
    losses, correct = [], []
    for start in range(0, len(triplets), batch_size):
        to_middle, to_worst = triplet_distances(model, triplets[start:start + batch_size],
                                                frame_stride)
        losses += triplet_loss(to_middle, to_worst).cpu().tolist()
        correct += (to_middle < to_worst).cpu().tolist()
    return float(np.mean(losses)), float(np.mean(correct))


def _check_triplets(triplets: Sequence[Any], name: str) -> list[Triplet]:
    """Each item must be three uint8 ``(T, H, W, 3)`` trajectories with T >= 1."""
    checked = []
    for index, triplet in enumerate(triplets):
        if len(triplet) != 3:
            raise ValueError(f"{name}[{index}] must be (t+, t0, t-): three trajectories, "
                             f"got {len(triplet)}")
        try:
            episodes = tuple(check_frames(episode) for episode in triplet)
        except ValueError as error:
            raise ValueError(f"{name}[{index}]: {error}") from None
        if min(len(episode) for episode in episodes) == 0:
            raise ValueError(f"{name}[{index}] has an empty trajectory")
        checked.append(episodes)
    if not checked:
        raise ValueError(f"{name} is empty: give at least one ranked triplet")
    return checked
