"""A compact vision-language-action (VLA) policy: pixels + instruction -> action.

Architecture (sizes in :class:`VLAConfig`; presets ``tiny`` for CPU tests, ``small``
and ``base`` for a GPU):

- **image encoder**: a conv stem that cuts the (resized) frame into
  ``(image_size / patch_size)^2`` patch tokens (``"conv"``), a ViT patch embedding
  (``"vit"``), an open_clip visual tower (``"clip"``), whose patch tokens are
  projected to the model width, or any encoder of the registry in
  :mod:`rewards.encoders` (``"registry"`` with ``vision_encoder``, e.g. ImageNet
  EfficientNet-Lite0), whose feature map (the final one, or stage ``vision_stage``'s)
  pooled to ``vision_grid`` x ``vision_grid`` cells gives the patch tokens; frozen by
  default (``vision_finetune``);
- **instruction encoder**: a small transformer over open_clip's BPE tokens
  (``"small"``), or the open_clip text tower (``"clip"``, its pooled embedding as one
  token; frozen by default, so each instruction is encoded once and cached);
- **fusion**: a pre-norm transformer over ``[CLS] + text tokens + image tokens``, with
  a learned type embedding per source; the ``[CLS]`` output feeds the heads;
- **action heads**: for continuous actions in [-1, 1], a factorised categorical with
  ``action_bins`` bins per dimension (RT-2 / OpenVLA style), decoded in parallel, whose
  log-probability is the sum over dimensions; for discrete actions a categorical over
  the env's actions, masked by the env's ``action_mask`` where it has one;
- **value head** on the same ``[CLS]`` features, for PPO.

One model serves envs with different action spaces (multi-task): each call names the
:class:`ActionSpec` (``ActionSpec.of(env.action_space)``). Saved as safetensors plus
a JSON config (:meth:`VLAPolicy.save`, :meth:`VLAPolicy.load`); nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewards.durable import atomic_write, fsync_folder, read_json_header

FORMAT = "vmalign-vla"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
IMAGE_ENCODERS = ("conv", "vit", "clip", "registry")
TEXT_ENCODERS = ("small", "clip")
VOCAB_SIZE = 49408
"""open_clip's BPE vocabulary (the tokenizer the small text encoder shares with CLIP)."""


@dataclasses.dataclass
class VLAConfig:
    """Every architecture setting of :class:`VLAPolicy` (saved with the weights)."""

    image_size: int = 64
    """Frames are resized to this square size (the CLIP encoder uses its own)."""
    patch_size: int = 8
    image_encoder: str = "conv"
    width: int = 128
    depth: int = 4
    """Fusion transformer layers."""
    heads: int = 4
    text_encoder: str = "small"
    text_depth: int = 2
    context_length: int = 32
    """Instruction tokens kept (open_clip BPE, with start and end tokens)."""
    action_bins: int = 256
    continuous_dims: int = 4
    """Largest continuous action the model can emit (0: none)."""
    discrete_actions: int = 16
    """Largest discrete action set the model can emit (0: none)."""
    dropout: float = 0.0
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "openai"
    clip_checkpoint: str | None = None
    clip_model_config: dict[str, Any] | None = None
    clip_initial_weights: bool = True
    """Load the CLIP weights named above; a saved policy's file holds them instead."""
    freeze_clip_text: bool = True
    vision_encoder: str | None = None
    """``image_encoder="registry"``: a :mod:`rewards.encoders` name, e.g.
    ``"efficientnet_lite0"`` (ImageNet, from ``vmalign[pretrained]``) or ``"timm:NAME"``."""
    vision_weights: str | None = None
    """Where that encoder's weights come from (``rewards.encoders.build_encoder``)."""
    vision_finetune: str = "frozen"
    """``"frozen"``, ``"last_block"`` or ``"full"`` (BatchNorm statistics stay frozen)."""
    vision_grid: int = 4
    """The feature map is average-pooled to this grid: ``vision_grid``^2 image tokens.
    EfficientNet-Lite0 has stride 32, so ``image_size`` 128 gives a 4x4 map."""
    vision_stage: int | None = None
    """Tokens from this stage of a timm encoder (``rewards.encoders.build_encoder``'s
    ``feature_stage``; negative from the end) instead of its final map: e.g. -2 is
    EfficientNet-Lite0's stride-16 map, 8x8 cells of 112 channels at ``image_size``
    128 (with ``vision_grid`` 8), finer about where the hand and objects are."""

    def __post_init__(self) -> None:
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder must be one of {list(IMAGE_ENCODERS)}, "
                             f"got {self.image_encoder!r}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder must be one of {list(TEXT_ENCODERS)}, "
                             f"got {self.text_encoder!r}")
        for name in ("image_size", "patch_size", "width", "depth", "heads", "context_length",
                     "action_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        if self.image_encoder == "registry":
            from rewards.encoders import FINETUNE_MODES, check_encoder_name

            if self.vision_encoder is None:
                raise ValueError("image_encoder 'registry' needs vision_encoder: a registry "
                                 "name such as 'efficientnet_lite0' or 'timm:resnet18.a1_in1k'")
            check_encoder_name(self.vision_encoder)
            if self.vision_finetune not in FINETUNE_MODES:
                raise ValueError(f"vision_finetune must be one of {list(FINETUNE_MODES)}, got "
                                 f"{self.vision_finetune!r}")
            if isinstance(self.vision_grid, bool) or not isinstance(self.vision_grid, int) \
                    or self.vision_grid < 1:
                raise ValueError(f"vision_grid must be a positive integer, got "
                                 f"{self.vision_grid!r}")
            if self.vision_stage is not None:
                from rewards.encoders import build_encoder

                # The bare architecture (milliseconds) checks the stage and its finetune
                # mode before any run folder exists.
                build_encoder(self.vision_encoder, "random", self.vision_finetune,
                              feature_stage=self.vision_stage)
        elif self.vision_encoder is not None or self.vision_stage is not None:
            raise ValueError(f"vision_encoder and vision_stage apply to image_encoder "
                             f"'registry', not {self.image_encoder!r}")
        if self.image_encoder in ("conv", "vit") and (self.image_size % self.patch_size
                                                      or self.patch_size < 4):
            raise ValueError(f"patch_size must be >= 4 and divide image_size; got "
                             f"{self.patch_size} and {self.image_size}")
        if self.continuous_dims < 0 or self.discrete_actions < 0 or \
                self.continuous_dims + self.discrete_actions == 0:
            raise ValueError("continuous_dims and discrete_actions must be >= 0, not both 0")
        if self.action_bins < 2:
            raise ValueError(f"action_bins must be >= 2, got {self.action_bins}")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"image_size": 64, "patch_size": 16, "width": 64, "depth": 2, "heads": 4,
             "text_depth": 1, "context_length": 16},
    "small": {"image_size": 64, "patch_size": 8, "width": 256, "depth": 6, "heads": 8,
              "text_depth": 2, "context_length": 32},
    "base": {"image_size": 96, "patch_size": 8, "width": 512, "depth": 8, "heads": 8,
             "text_depth": 4, "context_length": 32},
}
"""Named sizes: ``tiny`` (3.4 M parameters, 3.2 M of them the token embedding) for a
CPU, ``small`` (19.5 M) and ``base`` (65 M) for one GPU."""


def make_config(preset: str | None = "tiny", **overrides: Any) -> VLAConfig:
    """A :class:`VLAConfig` from a preset name plus overrides (unknown keys refused)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown VLA preset {preset!r}; valid ones are {sorted(PRESETS)}")
    fields = {field.name for field in dataclasses.fields(VLAConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown VLA setting(s) {unknown}; valid ones are {sorted(fields)}")
    return VLAConfig(**{**(PRESETS[preset] if preset else {}), **overrides})


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """The kind and size of an env's actions, as the heads see them."""

    kind: str
    """``"continuous"`` (a Box in [-1, 1]) or ``"discrete"``."""
    size: int
    """Dimensions of a continuous action, or the number of discrete actions."""

    @classmethod
    def of(cls, space: Any) -> ActionSpec:
        """The spec of a Gymnasium action space (``Box(-1, 1, (d,))`` or ``Discrete(n)``)."""
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            return cls("discrete", int(space.n))
        if isinstance(space, spaces.Box) and len(space.shape) == 1:
            if not (np.allclose(space.low, -1) and np.allclose(space.high, 1)):
                raise ValueError(f"continuous actions must lie in [-1, 1] (the bins' range), "
                                 f"got {space}")
            return cls("continuous", int(space.shape[0]))
        raise ValueError(f"the VLA policy emits Discrete(n) or Box(-1, 1, (d,)) actions, "
                         f"not {space}")


class ActionDistribution:
    """The policy's distribution over one spec's actions for a batch.

    Actions are handled as *indices*: bin indices ``(B, d)`` for continuous actions,
    action indices ``(B,)`` for discrete ones; :meth:`to_env` and
    :meth:`VLAPolicy.action_indices` convert to and from env actions.
    """

    def __init__(self, logits: torch.Tensor, spec: ActionSpec, bins: int) -> None:
        self.logits = logits  # (B, d, bins) or (B, n)
        self.spec = spec
        self.bins = bins
        self.log_probs = F.log_softmax(logits.float(), dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = self.log_probs.exp()
        flat = probs.reshape(-1, probs.shape[-1])
        drawn = torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
        return drawn

    def mode(self) -> torch.Tensor:
        return self.log_probs.argmax(dim=-1)

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        """(B,) log-probability; for continuous actions the sum over dimensions."""
        picked = self.log_probs.gather(-1, indices.long().unsqueeze(-1)).squeeze(-1)
        return picked.sum(dim=-1) if self.spec.kind == "continuous" else picked

    def entropy(self) -> torch.Tensor:
        """(B,) entropy (summed over dimensions for continuous actions)."""
        probs = self.log_probs.exp()
        entropy = -(probs * self.log_probs.clamp_min(-1e9)).sum(dim=-1)
        return entropy.sum(dim=-1) if self.spec.kind == "continuous" else entropy

    def to_env(self, indices: torch.Tensor) -> np.ndarray:
        """Env actions for indices: bin centres in [-1, 1] (float32), or action ids."""
        return indices_to_actions(indices.detach().cpu().numpy(), self.spec, self.bins)


def indices_to_actions(indices: np.ndarray, spec: ActionSpec, bins: int) -> np.ndarray:
    """Env actions for action indices: the centres in [-1, 1] of ``bins`` bins per
    continuous dimension (float32), or the discrete action ids (int64). The inverse
    of :meth:`VLAPolicy.action_indices` on bin centres."""
    indices = np.asarray(indices)
    if spec.kind == "continuous":
        return (indices.astype(np.float32) / (bins - 1) * 2.0 - 1.0).astype(np.float32)
    return indices.astype(np.int64)


class _TextEncoder(nn.Module):
    """A small pre-norm transformer over BPE tokens; returns tokens and a padding mask."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, config.width)
        self.position = nn.Parameter(torch.zeros(1, config.context_length, config.width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(config.width, config.heads, 4 * config.width,
                                           config.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.text_depth,
                                                 enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padding = tokens == 0
        padding[:, 0] = False  # never a fully masked row
        hidden = self.embed(tokens) + self.position[:, : tokens.shape[1]]
        return self.transformer(hidden, src_key_padding_mask=padding), padding


class VLAPolicy(nn.Module):
    """See the module docstring. Build with ``VLAPolicy(make_config("tiny"))``.

    :param config: the architecture.
    :param device: torch device (``rewards.get_device``: CUDA when present).
    """

    def __init__(self, config: VLAConfig, device: str | torch.device | None = None) -> None:
        super().__init__()
        from rewards.device import get_device

        self.config = config
        width = config.width
        self._clip_tokenizer = None
        clip = self._build_clip() if "clip" in (config.image_encoder, config.text_encoder) else None
        if config.image_encoder == "clip":
            self.clip_visual = clip.visual
            self.clip_visual.output_tokens = True
            with torch.no_grad():
                _, tokens = self.clip_visual(torch.zeros(1, 3, *self._clip_input))
            self.image_proj = nn.Linear(tokens.shape[-1], width)
            image_tokens = tokens.shape[1]
        elif config.image_encoder == "registry":
            from rewards.encoders import build_encoder

            self.vision = build_encoder(config.vision_encoder, config.vision_weights,
                                        config.vision_finetune, config.vision_grid,
                                        feature_stage=config.vision_stage)
            with torch.no_grad():
                tokens = self.vision.tokens(torch.zeros(1, 3, config.image_size,
                                                        config.image_size))
            self.image_proj = nn.Linear(tokens.shape[-1], width)
            image_tokens = tokens.shape[1]
        else:
            grid = config.image_size // config.patch_size
            image_tokens = grid * grid
            if config.image_encoder == "vit":
                self.patchify = nn.Conv2d(3, width, config.patch_size, stride=config.patch_size)
            else:  # conv stem: two stride-2 3x3 convolutions, then the rest of the patch
                self.patchify = nn.Sequential(
                    nn.Conv2d(3, width // 4, 3, stride=2, padding=1), nn.GELU(),
                    nn.Conv2d(width // 4, width // 2, 3, stride=2, padding=1), nn.GELU(),
                    nn.Conv2d(width // 2, width, config.patch_size // 4,
                              stride=config.patch_size // 4),
                )
        self.image_position = nn.Parameter(torch.zeros(1, image_tokens, width))
        if config.text_encoder == "clip":
            clip.visual = nn.Identity()  # encode_text never uses it; clip_visual holds it
            self.clip_text = clip
            embed = clip.text_projection
            dim = embed.shape[-1] if isinstance(embed, torch.Tensor) else embed.out_features
            self.text_proj = nn.Linear(dim, width)
        else:
            self.text = _TextEncoder(config)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.types = nn.Parameter(torch.zeros(3, width))  # cls, text, image
        for parameter in (self.image_position, self.cls, self.types):
            nn.init.normal_(parameter, std=0.02)
        layer = nn.TransformerEncoderLayer(width, config.heads, 4 * width, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.fusion = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.continuous_head = (nn.Linear(width, config.continuous_dims * config.action_bins)
                                if config.continuous_dims else None)
        self.discrete_head = (nn.Linear(width, config.discrete_actions)
                              if config.discrete_actions else None)
        self.value_head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1))
        if config.text_encoder == "clip" and config.freeze_clip_text:
            self.clip_text.requires_grad_(False)
        self._token_cache: dict[str, torch.Tensor] = {}
        self._text_cache: dict[str, torch.Tensor] = {}
        self.device = get_device(device)
        self.to(self.device)

    # -- construction ----------------------------------------------------------------

    def _build_clip(self) -> nn.Module:
        from rewards.clip import _read_model_config, load_open_clip

        config = self.config
        model_config = (None if config.clip_model_config is None
                        else _read_model_config(config.clip_model_config))
        net, tokenizer, preprocess = load_open_clip(
            config.clip_model, config.clip_pretrained, config.clip_checkpoint, model_config,
            load_weights=config.clip_initial_weights)
        size = preprocess["size"]
        self._clip_input = (size, size) if isinstance(size, int) else tuple(size)
        self.register_buffer("clip_mean", torch.tensor(preprocess["mean"]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("clip_std", torch.tensor(preprocess["std"]).view(1, 3, 1, 1),
                             persistent=False)
        self._clip_tokenizer = tokenizer
        return net

    # -- inputs ----------------------------------------------------------------------

    def tokenize(self, instructions: Sequence[str]) -> torch.Tensor:
        """Instruction strings -> token ids (B, context_length) on the device (cached)."""
        missing = [text for text in dict.fromkeys(instructions) if text not in self._token_cache]
        if missing:
            tokenizer = self._clip_tokenizer or _bpe_tokenizer()
            length = (self.clip_text.context_length if self.config.text_encoder == "clip"
                      else self.config.context_length)
            for text, row in zip(missing, tokenizer(missing, context_length=length)):
                self._token_cache[text] = row
        return torch.stack([self._token_cache[text] for text in instructions]).to(self.device)

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) frames -> the image encoder's float input on the device."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        images = images.to(self.device, non_blocking=True)
        if images.dim() != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (B, H, W, 3), got {images.dtype} "
                             f"{tuple(images.shape)}")
        images = images.permute(0, 3, 1, 2).float()
        if self.config.image_encoder == "clip":
            from rewards.clip import resize_keep_aspect

            images = resize_keep_aspect(images, self._clip_input, "shortest", "bilinear")
            return (images / 255.0 - self.clip_mean) / self.clip_std
        size = self.config.image_size
        if self.config.image_encoder == "registry":  # the encoder normalises [0, 255] itself
            if images.shape[-2:] != (size, size):
                images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                       align_corners=False).clamp_(0, 255)
            return images
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return images / 127.5 - 1.0

    # -- the network -----------------------------------------------------------------

    def _text_tokens(self, tokens: torch.Tensor, instructions: Sequence[str] | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.text_encoder == "small":
            return self.text(tokens)
        frozen = self.config.freeze_clip_text
        if frozen and instructions is not None and all(t in self._text_cache for t in instructions):
            pooled = torch.stack([self._text_cache[t] for t in instructions])
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                pooled = self.clip_text.encode_text(tokens).float()
            if frozen and instructions is not None:
                for text, row in zip(instructions, pooled.detach()):
                    self._text_cache[text] = row
        hidden = self.text_proj(pooled).unsqueeze(1)
        return hidden, torch.zeros(hidden.shape[:2], dtype=torch.bool, device=hidden.device)

    @property
    def image_encoder_frozen(self) -> bool:
        """Whether the image encoder has no trainable parameter (a frozen registry
        encoder): its tokens for a frame never change, so trainers may compute them once
        (:meth:`encoder_tokens`) and pass them to :meth:`features`."""
        return self.config.image_encoder == "registry" and self.config.vision_finetune == "frozen"

    def encoder_tokens_gib(self, frames: int) -> float:
        """Memory that :meth:`encoder_tokens` for ``frames`` frames take (float32), what
        trainers weigh against their cache limit before keeping them."""
        tokens, channels = self.image_position.shape[1], self.image_proj.in_features
        return frames * tokens * channels * 4 / 2**30

    def encoder_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images -> the registry encoder's tokens (B, N, C), before the
        projection to the model width."""
        if self.config.image_encoder != "registry":
            raise ValueError(f"encoder tokens come from image_encoder 'registry', this "
                             f"policy's is {self.config.image_encoder!r}")
        if self.image_encoder_frozen:
            with torch.no_grad():  # no activations kept for a backward pass
                return self.vision.tokens(images)
        return self.vision.tokens(images)

    def features(self, images: torch.Tensor | None, tokens: torch.Tensor,
                 instructions: Sequence[str] | None = None,
                 encoder_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Preprocessed images (B, 3, h, w) and token ids (B, L) -> [CLS] features (B, W).

        ``encoder_tokens`` replaces ``images`` with what :meth:`encoder_tokens` gave for
        them (a frozen encoder's tokens, computed once by the trainer)."""
        if encoder_tokens is not None:
            if not self.image_encoder_frozen:
                raise ValueError("precomputed encoder tokens need a frozen registry encoder "
                                 "(vla.image_encoder=registry, vla.vision_finetune=frozen)")
            image = self.image_proj(encoder_tokens.float())
        elif self.config.image_encoder == "clip":
            _, patches = self.clip_visual(images)
            image = self.image_proj(patches.float())
        elif self.config.image_encoder == "registry":
            image = self.image_proj(self.encoder_tokens(images).float())
        else:
            image = self.patchify(images).flatten(2).transpose(1, 2)
        image = image + self.image_position + self.types[2]
        text, padding = self._text_tokens(tokens, instructions)
        text = text + self.types[1]
        cls = self.cls.expand(len(image), -1, -1) + self.types[0]
        sequence = torch.cat([cls, text, image], dim=1)
        mask = torch.cat([torch.zeros(len(image), 1, dtype=torch.bool, device=image.device),
                          padding,
                          torch.zeros(image.shape[:2], dtype=torch.bool, device=image.device)],
                         dim=1)
        return self.norm(self.fusion(sequence, src_key_padding_mask=mask)[:, 0])

    def distribution(self, features: torch.Tensor, spec: ActionSpec,
                     action_mask: torch.Tensor | np.ndarray | None = None) -> ActionDistribution:
        """The action distribution for ``spec`` from [CLS] features."""
        config = self.config
        if spec.kind == "continuous":
            if self.continuous_head is None or spec.size > config.continuous_dims:
                raise ValueError(f"this policy emits at most {config.continuous_dims} "
                                 f"continuous dimensions, the env needs {spec.size}")
            logits = self.continuous_head(features).view(-1, config.continuous_dims,
                                                         config.action_bins)[:, : spec.size]
            return ActionDistribution(logits, spec, config.action_bins)
        if self.discrete_head is None or spec.size > config.discrete_actions:
            raise ValueError(f"this policy emits at most {config.discrete_actions} discrete "
                             f"actions, the env has {spec.size}")
        logits = self.discrete_head(features)[:, : spec.size].float()
        if action_mask is not None:
            mask = torch.as_tensor(np.asarray(action_mask) if isinstance(action_mask, np.ndarray)
                                   else action_mask, device=logits.device).bool()
            mask = mask.view(len(logits), -1)[:, : spec.size]
            logits = logits.masked_fill(~mask, -1e9)
        return ActionDistribution(logits, spec, config.action_bins)

    def value(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) state values from [CLS] features."""
        return self.value_head(features).squeeze(-1).float()

    def action_indices(self, actions: np.ndarray | torch.Tensor, spec: ActionSpec) -> torch.Tensor:
        """Env actions -> indices: the nearest bin of each continuous dimension (values
        outside [-1, 1] are clipped), or the discrete action ids."""
        actions = torch.as_tensor(np.asarray(actions), device=self.device)
        if spec.kind == "continuous":
            scaled = (actions.float().clamp(-1.0, 1.0) + 1.0) / 2.0 * (self.config.action_bins - 1)
            return scaled.round().long().view(-1, spec.size)
        return actions.long().view(-1)

    # -- acting ----------------------------------------------------------------------

    @torch.no_grad()
    def select_action(self, observation: np.ndarray, instruction: str | Sequence[str],
                      spec: ActionSpec | Any = None, action_mask: np.ndarray | None = None,
                      deterministic: bool = True) -> np.ndarray:
        """The action for one observation ``(H, W, 3)`` and its instruction, or a batch
        ``(B, H, W, 3)`` with one instruction each.

        :param spec: an :class:`ActionSpec` or a Gymnasium action space; default: the
            policy's only kind of action when it has one.
        :param action_mask: the env's ``info["action_mask"]`` (discrete actions).
        :param deterministic: the most likely action (default) or a sample.
        """
        single = observation.ndim == 3
        images = observation[None] if single else observation
        instructions = [instruction] if isinstance(instruction, str) else list(instruction)
        if len(instructions) != len(images):
            raise ValueError(f"{len(images)} observation(s) but {len(instructions)} instruction(s)")
        spec = self._default_spec(spec)
        was_training = self.training
        self.eval()
        try:
            features = self.features(self.preprocess(images), self.tokenize(instructions),
                                     instructions)
            dist = self.distribution(features, spec, None if action_mask is None
                                     else np.asarray(action_mask).reshape(len(images), -1))
            actions = dist.to_env(dist.mode() if deterministic else dist.sample())
        finally:
            self.train(was_training)
        return actions[0] if single else actions

    def _default_spec(self, spec: ActionSpec | Any) -> ActionSpec:
        if isinstance(spec, ActionSpec):
            return spec
        if spec is not None:
            return ActionSpec.of(spec)
        config = self.config
        if config.continuous_dims and not config.discrete_actions:
            return ActionSpec("continuous", config.continuous_dims)
        if config.discrete_actions and not config.continuous_dims:
            return ActionSpec("discrete", config.discrete_actions)
        raise ValueError("this policy has both continuous and discrete heads: pass spec= "
                         "(an ActionSpec or the env's action_space)")

    # -- saving ----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes ``config.json`` and ``weights.safetensors`` to the folder ``path``."""
        from safetensors.torch import save as tensors_to_bytes

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {key: value.detach().cpu().contiguous()
                   for key, value in self.state_dict().items()}
        data = tensors_to_bytes(tensors)
        atomic_write(folder / WEIGHTS_FILE, lambda handle: handle.write(data))
        config = dataclasses.asdict(self.config)
        if "clip" in (config["image_encoder"], config["text_encoder"]):
            config["clip_initial_weights"] = False  # the weights file holds them
        header = {"format": FORMAT, "version": VERSION, "config": config}
        text = json.dumps(header, indent=2, sort_keys=True)
        atomic_write(folder / CONFIG_FILE, lambda handle: handle.write(text.encode()))
        fsync_folder(folder)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None) -> VLAPolicy:
        """The policy saved in the folder ``path``; clear errors for a missing, corrupt,
        truncated or other-architecture file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(path)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} not found: {folder} is not a saved VLA policy")
        header = read_json_header(config_path, FORMAT, VERSION, "a vmalign VLA policy config")
        try:
            config = VLAConfig(**header["config"])
        except TypeError as error:
            raise ValueError(f"{config_path} holds settings this vmalign does not know: {error}")
        policy = cls(config, device=device)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found")
        try:
            tensors = load_file(str(weights), device=str(policy.device))
        except (SafetensorError, OSError, ValueError) as error:
            raise ValueError(f"{weights} is corrupt or truncated: {error}") from error
        expected = policy.state_dict()
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        shapes = sorted(k for k in set(expected) & set(tensors)
                        if tuple(expected[k].shape) != tuple(tensors[k].shape))
        if missing or extra or shapes:
            raise ValueError(f"{weights} was made for another architecture than {config_path} "
                             f"describes: missing {missing[:5]}, unexpected {extra[:5]}, "
                             f"other shapes {shapes[:5]}")
        policy.load_state_dict(tensors)
        return policy

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@functools.lru_cache(maxsize=1)
def _bpe_tokenizer() -> Any:
    """open_clip's BPE tokenizer, built once (reading its vocabulary takes ~40 ms)."""
    from open_clip import get_tokenizer

    return get_tokenizer("ViT-B-32")


def total_log_prob(policy: VLAPolicy, images: torch.Tensor | None, tokens: torch.Tensor,
                   indices: torch.Tensor, spec: ActionSpec, masks: torch.Tensor | None = None,
                   batch: int = 256, encoder_tokens: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Sum of per-step action log-probabilities of a trajectory (the DPO quantity),
    computed in chunks of ``batch`` steps; differentiable. ``encoder_tokens`` (a frozen
    encoder's tokens for the frames, see :meth:`VLAPolicy.features`) replace ``images``."""
    total = torch.zeros((), device=policy.device)
    for start in range(0, len(indices), batch):
        stop = start + batch
        features = policy.features(
            None if images is None else images[start:stop], tokens[start:stop],
            encoder_tokens=None if encoder_tokens is None else encoder_tokens[start:stop])
        dist = policy.distribution(features, spec, None if masks is None else masks[start:stop])
        total = total + dist.log_prob(indices[start:stop]).sum()
    return total

