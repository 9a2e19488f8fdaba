"""Zero-shot CLIP reward (VLM-RM, Rocamonde et al. 2023) for any open_clip model.

With ``s`` the normalised image embedding of a frame, ``g`` the mean of the
normalised text embeddings of the goal prompts and ``b`` the mean of those of the
baseline prompts, the reward is::

    P   = (g - b)(g - b)^T / ||g - b||^2        projection on the baseline -> goal line
    P_a = alpha P + (1 - alpha) I
    R   = 1 - 0.5 ||(s - g) P_a||^2

``alpha = 0`` gives ``1 - 0.5 ||s - g||^2`` (for unit ``g`` that is the cosine
similarity of image and goal); ``alpha = 1`` keeps only the component of ``s - g``
along ``g - b``, so what the goal and the neutral baseline share (the scene, the
robot) no longer counts.

Frames are resized keeping their aspect ratio by default, or squashed to the
model's input exactly as VLM-RM did (``resize_mode="squash"``, for parity with its
rewards), normalised with the model's mean and standard deviation, and embedded in
batches on the device, in fp16 autocast on CUDA. Text embeddings are cached per prompt.

Weights: an open_clip model name with a pretrained tag (downloaded through
open_clip; needs network or the Hugging Face cache), a local weights file
(``checkpoint=``), ``"hf-hub:org/repo"`` or ``"local-dir:/path"`` model names, or a
custom architecture (``model_config=``, e.g. :data:`TINY_MODEL_CONFIG`) with random
weights (``pretrained=None``), which only tests and speed measurements should use:
random CLIP rewards mean nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rewards import arguments
from rewards.base import RewardModel, check_frames
from rewards.device import get_device
from rewards.registry import register

DEFAULT_BASELINE_PROMPTS: tuple[str, ...] = ("a robot arm and objects on a table",)
"""A neutral description of the manipulation scenes: what every goal shares."""

RESIZE_MODES = ("shortest", "longest", "squash")
"""``"shortest"``: scale the shortest side to the model's input and centre-crop
(CLIP's own preprocessing); ``"longest"``: fit the whole frame and pad with black;
``"squash"``: resize the whole frame to the model's input, ignoring its aspect ratio,
as VLM-RM did (see :func:`resize_squash`)."""

TINY_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
"""A tiny open_clip architecture (3.4 M parameters, 32x32 input) for tests and
benchmarks: ``ClipReward(model="tiny", model_config=TINY_MODEL_CONFIG, pretrained=None)``."""

_SCHEMAS = ("hf-hub:", "local-dir:")


def vlm_rm_reward(
    image_embeddings: torch.Tensor,
    goal: torch.Tensor,
    baseline: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """VLM-RM reward ``R = 1 - 0.5 ||(s - g) P_a||^2`` of each row ``s`` of ``image_embeddings``.

    :param image_embeddings: ``(B, D)`` normalised image embeddings ``s``.
    :param goal: ``(D,)`` or ``(B, D)`` goal embeddings ``g`` (one per frame when 2-D).
    :param baseline: ``(D,)`` or ``(B, D)`` baseline embeddings ``b``.
    :param alpha: weight of the projection on ``g - b`` in ``P_a = alpha P + (1 - alpha) I``.
    :returns: ``(B,)`` rewards.
    :raises ValueError: ``alpha > 0`` but a goal equals its baseline, where ``P`` is undefined.
    """
    direction = goal - baseline
    squared_norm = (direction * direction).sum(-1, keepdim=True)
    if alpha > 0 and bool((squared_norm <= 1e-12).any()):
        raise ValueError(
            "a goal embedding equals the baseline embedding, so the projection on g - b is "
            "undefined; use goal prompts that differ from the baseline prompts, or alpha=0"
        )
    offset = image_embeddings - goal
    # (s - g) P is the component of s - g along g - b; P_a mixes it with s - g itself.
    along = (offset * direction).sum(-1, keepdim=True) / squared_norm.clamp_min(1e-12) * direction
    projected = alpha * along + (1.0 - alpha) * offset
    return 1.0 - 0.5 * (projected * projected).sum(-1)


def resize_squash(
    images: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic"
) -> torch.Tensor:
    """Resizes ``(B, C, H, W)`` uint8 images to float ``size`` images in [0, 1], whole
    and distorted, as VLM-RM's preprocessing did (``CLIPEmbed`` in its
    ``reward_model.py``, with ``image_transform`` of its ``contrib/open_clip/transform.py``).

    Its steps: uint8 -> float / 255, then torchvision ``Resize((S, S), BICUBIC)`` on
    the tensor (its ``CenterCrop(S)`` after that cuts nothing). VLM-RM pins torch 2.0.1,
    so torchvision 0.15, whose tensor ``Resize`` does not antialias (its default
    ``antialias=None`` meant False for tensors; 0.17 changed the default to True):
    frames larger than the model's input are subsampled, not averaged. Nor is the
    bicubic overshoot clamped to [0, 1]. Both are reproduced here. VLM-RM always used
    bicubic and OpenAI's mean and std; :class:`ClipReward` uses the model's own
    interpolation and statistics, which are those for OpenAI's weights.
    """
    images = images.float() / 255.0
    if images.shape[-2:] == size:
        return images
    return F.interpolate(images, size=size, mode=interpolation, align_corners=False,
                         antialias=False)


def resize_keep_aspect(
    images: torch.Tensor,
    size: tuple[int, int],
    mode: str = "shortest",
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """Resizes ``(B, C, H, W)`` images in [0, 255] to ``size`` without distortion.

    Both sides are scaled by the same factor: in ``"shortest"`` mode the frame covers
    ``size`` and its centre is cropped; in ``"longest"`` mode it fits inside ``size``
    and the rest is padded with black (0). uint8 images stay uint8 on the CPU, where
    resampling them is an order of magnitude faster than floats (it rounds between
    its horizontal and vertical passes, like PIL); float images come back clamped to
    [0, 255].
    """
    if mode not in ("shortest", "longest"):
        raise ValueError(f"resize mode must be one of ['shortest', 'longest'], got {mode!r} "
                         f"(resize_squash squashes)")
    height, width = images.shape[-2:]
    target_h, target_w = size
    scales = (target_h / height, target_w / width)
    scale = max(scales) if mode == "shortest" else min(scales)
    new_h, new_w = round(height * scale), round(width * scale)
    if mode == "shortest":
        new_h, new_w = max(new_h, target_h), max(new_w, target_w)
    else:
        new_h, new_w = min(new_h, target_h), min(new_w, target_w)
    if (new_h, new_w) != (height, width):
        if images.dtype == torch.uint8 and images.device.type != "cpu":
            images = images.float()  # uint8 resampling is a CPU-only path
        images = F.interpolate(images, size=(new_h, new_w), mode=interpolation,
                               align_corners=False, antialias=True)
        if images.is_floating_point():
            images = images.clamp_(0.0, 255.0)
    if mode == "shortest":
        top, left = (new_h - target_h) // 2, (new_w - target_w) // 2
        return images[..., top:top + target_h, left:left + target_w]
    top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
    return F.pad(images, (left, target_w - new_w - left, top, target_h - new_h - top), value=0.0)


@register("clip")
class ClipReward(RewardModel):
    """Zero-shot CLIP reward of VLM-RM (see the module docstring for the formula).

    :param model: an open_clip model name (``open_clip.list_models()``, e.g.
        ``"ViT-B-32"``), ``"hf-hub:org/repo"`` or ``"local-dir:/path"`` (weights and
        config from there; ``pretrained`` must be None), or a label for the
        architecture given by ``model_config``. Default ``"ViT-B-32"``.
    :param pretrained: open_clip pretrained tag (``open_clip.list_pretrained_tags_by_model
        (model)``, e.g. ``"openai"``), downloaded into the Hugging Face cache unless
        ``checkpoint`` is given; ``None`` means random weights, meaningless as a
        reward (tests and speed measurements only). With ``checkpoint`` the tag only
        sets the activation (QuickGELU) and normalisation the weights were trained with.
        Default ``"openai"``.
    :param checkpoint: a local open_clip weights file (``open_clip_pytorch_model.bin``,
        ``.safetensors`` or a state-dict ``.pt``) for ``model``; read with
        ``weights_only=True``. Use it where there is no network. Default None.
    :param model_config: a custom open_clip architecture: a dict with ``embed_dim``,
        ``vision_cfg`` and ``text_cfg`` (as in open_clip's ``model_configs/*.json``,
        optionally wrapped as ``{"model_cfg": ..., "preprocess_cfg": ...}``) or the
        path of such a JSON file. Weights from ``checkpoint``, else random
        (``pretrained`` must be None). Default None (``model`` is a built-in name).
    :param alpha: ``a`` in ``P_a = aP + (1 - a)I``, in [0, 1]; 0 is plain similarity to
        the goal, 1 keeps only the baseline -> goal direction. Default 0.5.
    :param goal_prompts: the goal descriptions; ``None`` (default) uses each frame's
        episode instruction as its one goal prompt.
    :param baseline_prompts: neutral descriptions of the scene (default
        :data:`DEFAULT_BASELINE_PROMPTS`).
    :param resize_mode: how frames become the model's square input (see
        :data:`RESIZE_MODES`): ``"shortest"`` (default; scaled keeping the aspect ratio
        and centre-cropped, CLIP's own preprocessing), ``"longest"`` (whole frame,
        padded with black) or ``"squash"`` (whole frame resized to the input size,
        distorting it, exactly as VLM-RM did: for parity with its rewards; see
        :func:`resize_squash`). On non-square frames "squash" keeps the sides that
        "shortest" crops away and narrows (or flattens) everything, so the rewards
        differ. On square frames they nearly agree, and exactly at the model's input
        size: "shortest" resizes uint8 pixels on the CPU (rounding between passes, like
        PIL) and antialiases when shrinking; VLM-RM's resize did neither.
    :param batch_size: frames per model call (default 64).
    :param device: torch device (see :func:`rewards.device.get_device`); default CUDA
        when available. Not saved: a loaded module picks its device anew.

    Saving (:func:`rewards.save`) stores the configuration only when the weights come
    from a tag, a checkpoint file (its absolute path; it must still be there to load,
    or pass ``rewards.load(folder, checkpoint=NEW_PATH)``) or an ``hf-hub:`` /
    ``local-dir:`` source; random weights (``pretrained=None``, no checkpoint) are
    saved too, since no configuration can rebuild them.
    """

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = "openai",
        checkpoint: str | os.PathLike[str] | None = None,
        model_config: dict[str, Any] | str | os.PathLike[str] | None = None,
        alpha: float = 0.5,
        goal_prompts: Sequence[str] | None = None,
        baseline_prompts: Sequence[str] = DEFAULT_BASELINE_PROMPTS,
        resize_mode: str = "shortest",
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        # Every argument is checked before any model is built (see rewards.arguments).
        self.alpha = arguments.number("alpha", alpha, 0.0, 1.0)
        self.resize_mode = arguments.choice("resize_mode", resize_mode, RESIZE_MODES)
        self.batch_size = arguments.integer("batch_size", batch_size, 1)
        self.goal_prompts = (None if goal_prompts is None
                             else _prompt_list(goal_prompts, "goal_prompts"))
        self.baseline_prompts = _prompt_list(baseline_prompts, "baseline_prompts")
        self.model_name = arguments.text("model", model)
        self.pretrained = arguments.optional_text("pretrained", pretrained)
        arguments.optional_path("checkpoint", checkpoint)
        self.checkpoint = None if checkpoint is None else str(Path(checkpoint).resolve())
        self.model_config = None if model_config is None else _read_model_config(model_config)
        self.device = get_device(device)

        self.model, self.tokenizer, preprocess_cfg = load_open_clip(
            model, pretrained, self.checkpoint, self.model_config
        )
        self.model.to(self.device).eval().requires_grad_(False)
        size = preprocess_cfg["size"]
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        # Training-time modes (e.g. "random") have no single eval meaning: use bicubic.
        interpolation = preprocess_cfg.get("interpolation", "bicubic")
        self.interpolation = interpolation if interpolation in ("bilinear", "bicubic") else "bicubic"
        self._mean = torch.tensor(preprocess_cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess_cfg["std"], device=self.device).view(1, 3, 1, 1)
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def random_weights(self) -> bool:
        """True when no weights were loaded (random initialisation)."""
        return (self.pretrained is None and self.checkpoint is None
                and not self.model_name.startswith(_SCHEMAS))

    # --- embeddings -----------------------------------------------------------------

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, H, W, 3)`` frames -> the model's normalised input ``(B, 3, h, w)``
        on the device, resized as ``resize_mode`` says."""
        frames = check_frames(frames)
        images = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
        # (B, 3, H, W) view of channels-last memory: the layout uint8 resampling is fast in.
        images = images.permute(0, 3, 1, 2)
        if self.resize_mode == "squash":
            # VLM-RM's exact float path (no fast uint8 resampling: parity is the point).
            images = resize_squash(images, self.image_size, self.interpolation)
            return (images - self._mean) / self._std
        images = resize_keep_aspect(images, self.image_size, self.resize_mode, self.interpolation)
        return (images.float() / 255.0 - self._mean) / self._std

    def image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """Normalised image embeddings ``(B, D)`` (float32, on the device) of uint8
        ``(B, H, W, 3)`` frames, computed ``batch_size`` frames at a time."""
        frames = check_frames(frames)
        chunks = []
        for start in range(0, len(frames), self.batch_size):
            images = self.preprocess(frames[start:start + self.batch_size])
            with torch.no_grad(), self._autocast():
                chunks.append(F.normalize(self.model.encode_image(images).float(), dim=-1))
        if not chunks:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.cat(chunks)

    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Normalised text embeddings ``(P, D)`` of ``prompts``; each prompt is encoded
        once and then served from a cache."""
        prompts = _prompt_list(prompts, "prompts")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._text_cache))
        if missing:
            tokens = self.tokenizer(missing).to(self.device)
            # no_grad, not inference_mode: cached embeddings may later meet tensors that
            # need gradients (e.g. fine-tuning the visual tower against text targets).
            with torch.no_grad(), self._autocast():
                encoded = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            self._text_cache.update(zip(missing, encoded))
        return torch.stack([self._text_cache[p] for p in prompts])

    @property
    def embed_dim(self) -> int:
        """Dimension ``D`` of the joint embedding space."""
        return int(self.text_embeddings(self.baseline_prompts[:1]).shape[-1])

    # --- reward ---------------------------------------------------------------------

    def _score(self, frames, instructions, env_rewards):  # noqa: D102 - see base
        # Frames are grouped by goal: each distinct instruction (or the one given goal)
        # has one goal embedding, gathered per frame so the batch is scored at once.
        if self.goal_prompts is None:
            goal_sets = [[text] for text in dict.fromkeys(instructions)]
            position = {texts[0]: k for k, texts in enumerate(goal_sets)}
            index = [position[text] for text in instructions]
        else:
            goal_sets, index = [self.goal_prompts], [0] * len(instructions)
        # One text batch for every prompt not cached yet.
        self.text_embeddings([p for texts in goal_sets for p in texts] + self.baseline_prompts)
        goals = torch.stack([self.text_embeddings(texts).mean(0) for texts in goal_sets])
        baseline = self.text_embeddings(self.baseline_prompts).mean(0)
        per_frame_goal = goals[torch.tensor(index, device=self.device)]
        rewards = vlm_rm_reward(self.image_embeddings(frames), per_frame_goal, baseline, self.alpha)
        return rewards.cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """fp16 autocast on CUDA; full precision elsewhere."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    # --- saving ---------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "pretrained": self.pretrained,
            "checkpoint": self.checkpoint,
            "model_config": self.model_config,
            "alpha": self.alpha,
            "goal_prompts": self.goal_prompts,
            "baseline_prompts": list(self.baseline_prompts),
            "resize_mode": self.resize_mode,
            "batch_size": self.batch_size,
        }

    def tensors(self) -> dict[str, Any]:
        """The CLIP weights when they are random (nothing else could rebuild them);
        otherwise none: the configuration names where the weights come from."""
        return dict(self.model.state_dict()) if self.random_weights else {}

    def load_tensors(self, tensors: dict[str, Any]) -> None:
        super().load_tensors(tensors)
        self._text_cache.clear()  # the cached text embeddings came from the old weights


def load_open_clip(
    model: str,
    pretrained: str | None,
    checkpoint: str | None,
    model_config: dict[str, Any] | None,
    load_weights: bool = True,
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Builds an open_clip model on the CPU: ``(model, tokenizer, preprocess config)``.

    See :class:`ClipReward` for what the arguments accept. With ``load_weights=False``
    only the architecture is built (with the tag's activation and normalisation), for
    callers that load their own saved weights into it next: nothing is downloaded and
    ``checkpoint`` is not read. Raises ``ValueError`` for
    unknown names or tags, ``FileNotFoundError`` for a missing checkpoint, and
    ``RuntimeError`` saying how to use a local file when weights cannot be downloaded.
    """
    import open_clip
    from open_clip.model import get_model_preprocess_cfg

    if not load_weights:
        checkpoint = None
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"CLIP checkpoint {checkpoint} is not a file")
    if model_config is not None and model.startswith(_SCHEMAS):
        raise ValueError(f"model={model!r} brings its own architecture; drop model_config")
    if model_config is not None or model.startswith(_SCHEMAS):
        if pretrained is not None:
            source = "model_config" if model_config is not None else f"model={model!r}"
            raise ValueError(
                f"pretrained={pretrained!r} names weights of open_clip's built-in models; with "
                f"{source} pass pretrained=None (weights from checkpoint=, or random)"
            )
        with _model_source(model, model_config) as name:
            try:
                net = open_clip.create_model(name, pretrained=None, device="cpu")
                tokenizer = open_clip.get_tokenizer(name)
            except (RuntimeError, OSError) as error:
                if not model.startswith("hf-hub:"):
                    raise
                raise RuntimeError(
                    f"could not obtain the open_clip model {model!r}: {error}. With no network, "
                    f"download its folder (open_clip_config.json and the weights) elsewhere and "
                    f"pass model='local-dir:/path/to/folder'"
                ) from error
    else:
        if model not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model {model!r}; valid names are {open_clip.list_models()} "
                f"(or 'hf-hub:org/repo', 'local-dir:/path', or model_config=)"
            )
        tag_cfg: dict[str, Any] = {}
        if pretrained is not None:
            tags = open_clip.list_pretrained_tags_by_model(model)
            if pretrained not in tags:
                raise ValueError(
                    f"unknown pretrained tag {pretrained!r} for open_clip model {model!r}; valid "
                    f"tags are {tags}; for a local weights file pass checkpoint=PATH (and "
                    f"pretrained=None, or the tag the file holds)"
                )
            tag_cfg = open_clip.get_pretrained_cfg(model, pretrained)
        download = load_weights and pretrained is not None and checkpoint is None
        try:
            # The tag's activation and normalisation also hold for a local copy of its weights.
            net = open_clip.create_model(
                model,
                pretrained=pretrained if download else None,
                device="cpu",
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                force_preprocess_cfg={k: tag_cfg[k] for k in ("mean", "std", "interpolation")
                                      if k in tag_cfg},
            )
        except (RuntimeError, OSError) as error:
            if not download:
                raise
            source = (f"https://huggingface.co/{tag_cfg['hf_hub'].rstrip('/')}"
                      if tag_cfg.get("hf_hub") else tag_cfg.get("url", "the tag's weights"))
            raise RuntimeError(
                f"could not obtain the pretrained weights {pretrained!r} of open_clip model "
                f"{model!r} (no network?): {error}\nPoint at a local file instead: on a machine "
                f"with network download the weights from {source} (open_clip_pytorch_model.bin "
                f"or open_clip_model.safetensors) and pass "
                f"checkpoint='/path/to/open_clip_pytorch_model.bin' (keeping model={model!r}, "
                f"pretrained={pretrained!r}), or use a pretrained tag whose weights are already "
                f"in the Hugging Face cache (HF_HOME; set HF_HUB_OFFLINE=1 to skip download "
                f"retries)"
            ) from error
        tokenizer = open_clip.get_tokenizer(model)
    if checkpoint is not None:
        _load_checkpoint(net, checkpoint, model)
    return net, tokenizer, get_model_preprocess_cfg(net)


def _load_checkpoint(net: torch.nn.Module, checkpoint: str, model: str) -> None:
    """Loads a weights file into ``net`` (never unpickling objects: ``weights_only``)."""
    import open_clip

    try:
        open_clip.load_checkpoint(net, checkpoint, strict=True, weights_only=True)
    except RuntimeError as error:
        if "state_dict" in str(error) or "size mismatch" in str(error):
            raise ValueError(
                f"CLIP checkpoint {checkpoint} was made for another architecture than "
                f"{model!r}: {str(error)[:600]}"
            ) from error
        raise ValueError(f"CLIP checkpoint {checkpoint} is corrupt or not open_clip weights: "
                         f"{str(error)[:600]}") from error
    except Exception as error:  # noqa: BLE001 - torch/safetensors raise many kinds for bad files
        raise ValueError(f"CLIP checkpoint {checkpoint} is corrupt or not open_clip weights: "
                         f"{type(error).__name__}: {str(error)[:600]}") from error


@contextlib.contextmanager
def _model_source(model: str, model_config: dict[str, Any] | None) -> Iterator[str]:
    """The open_clip model name to build: ``model`` itself, or for a custom config a
    temporary ``local-dir:`` folder holding it (open_clip's own route for custom
    architectures, which leaves its global registry of names untouched)."""
    if model_config is None:
        yield model
        return
    with tempfile.TemporaryDirectory(prefix="vmalign-clip-config-") as folder:
        (Path(folder) / "open_clip_config.json").write_text(json.dumps(model_config))
        yield f"local-dir:{folder}"


def _read_model_config(model_config: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """``model_config`` (a dict or JSON path) in open_clip's ``open_clip_config.json`` form."""
    if isinstance(model_config, (str, os.PathLike)):
        path = Path(model_config)
        if not path.is_file():
            raise FileNotFoundError(f"model_config {path} is not a file")
        try:
            model_config = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"model_config {path} is not valid JSON: {error}") from error
    if not isinstance(model_config, dict):
        raise ValueError(
            f"model_config must be a dict or a JSON file path, got {model_config!r:.100}"
        )
    wrapped = model_config if "model_cfg" in model_config else {"model_cfg": model_config}
    model_cfg = wrapped["model_cfg"]
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ValueError(f"model_config lacks {missing}; it needs embed_dim, vision_cfg and "
                         f"text_cfg as in open_clip's model_configs/*.json")
    text_cfg = model_cfg["text_cfg"]
    if "hf_tokenizer_name" in text_cfg or "hf_model_name" in text_cfg:
        raise ValueError("model_config supports open_clip's own text transformer; for a Hugging "
                         "Face text tower use model='local-dir:/path' or 'hf-hub:org/repo'")
    return json.loads(json.dumps(wrapped))  # a JSON-clean copy the caller cannot mutate


def _prompt_list(prompts: Sequence[str], name: str) -> list[str]:
    """``prompts`` as a non-empty list of strings, or a ``ValueError`` naming ``name``."""
    if isinstance(prompts, str):
        raise ValueError(f"{name} must be a list of strings, not one string: [{prompts!r}]")
    if not isinstance(prompts, Sequence):
        raise ValueError(f"{name} must be a non-empty list of strings, got {prompts!r:.200} "
                         f"({type(prompts).__name__})")
    result = list(prompts)
    if not result or not all(isinstance(p, str) for p in result):
        raise ValueError(f"{name} must be a non-empty list of strings, got {result!r:.200}")
    return result
