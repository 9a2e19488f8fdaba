"""The VLA policy: action heads, masks, encoders, save and load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.vla.model import ActionSpec, VLAPolicy, make_config, total_log_prob
from rewards.clip import TINY_MODEL_CONFIG

CONTINUOUS = ActionSpec("continuous", 4)


def tiny(**overrides) -> VLAPolicy:
    torch.manual_seed(0)
    return VLAPolicy(make_config("tiny", **overrides), device="cpu")


def frames(count: int, size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def features_of(policy: VLAPolicy, images: np.ndarray, texts: list[str]) -> torch.Tensor:
    return policy.features(policy.preprocess(images), policy.tokenize(texts), texts)


def test_continuous_head_is_a_factorised_categorical_over_256_bins():
    policy = tiny()
    features = features_of(policy, frames(3), ["push the cube"] * 3)
    dist = policy.distribution(features, CONTINUOUS)
    assert dist.logits.shape == (3, 4, 256)
    indices = dist.sample()
    by_hand = torch.log_softmax(dist.logits, -1).gather(-1, indices[..., None])[..., 0].sum(-1)
    torch.testing.assert_close(dist.log_prob(indices), by_hand)
    actions = dist.to_env(indices)
    assert actions.dtype == np.float32 and actions.min() >= -1 and actions.max() <= 1
    # Bin centres map back to their own bins; other values to the nearest bin.
    np.testing.assert_array_equal(policy.action_indices(actions, CONTINUOUS).numpy(),
                                  indices.numpy())
    edges = policy.action_indices(np.array([[-1.0, 1.0, 0.0, 5.0]]), CONTINUOUS)
    assert edges.tolist() == [[0, 255, 128, 255]]  # 0 rounds to the upper middle bin; 5 clips
    assert (dist.entropy() > 0).all() and dist.entropy().shape == (3,)


def test_discrete_head_respects_the_action_mask():
    policy = tiny()
    spec = ActionSpec("discrete", 5)
    mask = np.array([[0, 1, 0, 1, 0]] * 64, bool)
    features = features_of(policy, frames(64), ["pick a number"] * 64)
    dist = policy.distribution(features, spec, mask)
    sampled = dist.sample().numpy()
    assert set(sampled) <= {1, 3}
    assert set(dist.mode().numpy()) <= {1, 3}
    assert (dist.log_prob(torch.zeros(64, dtype=torch.long)) < -1e8).all()
    assert policy.select_action(frames(1)[0], "x", spec, action_mask=mask[0]) in (1, 3)


def test_select_action_single_and_batched_and_spec_from_a_gym_space():
    policy = tiny()
    one = policy.select_action(frames(1)[0], "reach the ball", spaces.Box(-1, 1, (4,)))
    assert one.shape == (4,)
    batch = policy.select_action(frames(3), ["a", "b", "c"], spaces.Discrete(3))
    assert batch.shape == (3,) and batch.dtype == np.int64
    with pytest.raises(ValueError, match="both continuous and discrete heads"):
        policy.select_action(frames(1)[0], "x")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ActionSpec.of(spaces.Box(0, 5, (2,)))
    with pytest.raises(ValueError, match="at most 4 continuous"):
        policy.select_action(frames(1)[0], "x", ActionSpec("continuous", 6))
    with pytest.raises(ValueError, match="2 observation"):
        policy.select_action(frames(2), ["only one"], CONTINUOUS)


def test_the_instruction_changes_the_action_distribution():
    policy = tiny()
    images = frames(1).repeat(2, axis=0)
    features = features_of(policy, images, ["push the red cube", "stack the blue cube"])
    logits = policy.distribution(features, CONTINUOUS).logits
    assert not torch.allclose(logits[0], logits[1])


def test_trajectory_log_prob_sums_steps_and_carries_gradients():
    policy = tiny()
    images = policy.preprocess(frames(5))
    tokens = policy.tokenize(["go"] * 5)
    indices = torch.randint(0, 256, (5, 4))
    total = total_log_prob(policy, images, tokens, indices, CONTINUOUS, batch=2)
    features = policy.features(images, tokens)
    expected = policy.distribution(features, CONTINUOUS).log_prob(indices).sum()
    torch.testing.assert_close(total, expected)
    total.backward()
    assert policy.continuous_head.weight.grad.abs().sum() > 0


def test_save_load_round_trip_and_clear_errors(tmp_path):
    policy = tiny(depth=1)
    policy.save(tmp_path / "policy")
    loaded = VLAPolicy.load(tmp_path / "policy", device="cpu")
    images = frames(2)
    np.testing.assert_array_equal(loaded.select_action(images, ["a", "b"], CONTINUOUS),
                                  policy.select_action(images, ["a", "b"], CONTINUOUS))
    assert loaded.config == policy.config
    # another architecture
    other = tiny(depth=2)
    other.save(tmp_path / "other")
    (tmp_path / "policy" / "weights.safetensors").write_bytes(
        (tmp_path / "other" / "weights.safetensors").read_bytes())
    with pytest.raises(ValueError, match="another architecture"):
        VLAPolicy.load(tmp_path / "policy")
    # truncated
    data = (tmp_path / "other" / "weights.safetensors").read_bytes()
    (tmp_path / "other" / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        VLAPolicy.load(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="not a saved VLA policy"):
        VLAPolicy.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown VLA setting"):
        make_config("tiny", widht=3)
    with pytest.raises(ValueError, match="unknown VLA preset"):
        make_config("huge")


def test_clip_towers_start_from_a_checkpoint_and_save_without_it(tmp_path):
    from rewards.clip import ClipReward

    source = ClipReward(model="tiny", model_config=TINY_MODEL_CONFIG, pretrained=None,
                        device="cpu")
    checkpoint = tmp_path / "clip.pt"
    torch.save(source.model.state_dict(), checkpoint)
    policy = tiny(image_encoder="clip", text_encoder="clip", clip_model="tiny",
                  clip_pretrained=None, clip_model_config=TINY_MODEL_CONFIG,
                  clip_checkpoint=str(checkpoint))
    torch.testing.assert_close(policy.clip_visual.conv1.weight, source.model.visual.conv1.weight)
    # The text tower is frozen (and cached); the visual tower trains.
    assert not any(p.requires_grad for p in policy.clip_text.transformer.parameters())
    assert policy.clip_visual.conv1.weight.requires_grad
    images = frames(2)
    before = policy.select_action(images, ["a", "b"], ActionSpec("discrete", 3))
    policy.save(tmp_path / "vla")
    checkpoint.unlink()
    loaded = VLAPolicy.load(tmp_path / "vla", device="cpu")
    np.testing.assert_array_equal(loaded.select_action(images, ["a", "b"], ActionSpec("discrete", 3)),
                                  before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_in_mixed_precision():
    policy = VLAPolicy(make_config("tiny"), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        features = features_of(policy, frames(4), ["x"] * 4)
        dist = policy.distribution(features, CONTINUOUS)
    assert dist.log_prob(dist.sample()).dtype == torch.float32


def test_a_registry_encoder_gives_the_patch_tokens_frozen_and_saved_with_the_policy(tmp_path):
    """image_encoder 'registry': ImageNet EfficientNet-Lite0's 4x4 feature map (128-px
    frames) as 16 image tokens; frozen, it gets no gradient while the rest learns."""
    policy = tiny(image_encoder="registry", vision_encoder="efficientnet_lite0",
                  image_size=128, vision_grid=4)
    images, texts = frames(4), ["reach the red ball"] * 4
    prepared = policy.preprocess(images)
    assert prepared.shape == (4, 3, 128, 128) and float(prepared.max()) > 1.0  # [0, 255]
    tokens = policy.vision.tokens(prepared)
    assert tokens.shape == (4, 16, 1280)  # tf_efficientnet_lite0's conv_head channels
    pooled = policy.vision(prepared)  # the reward modules' vector: the same cells, flattened
    assert torch.allclose(tokens.transpose(1, 2).flatten(1), pooled, atol=1e-5)
    assert not any(p.requires_grad for p in policy.vision.parameters())
    loss = features_of(policy, images, texts).square().mean()
    loss.backward()
    assert all(p.grad is None for p in policy.vision.parameters())
    assert policy.image_proj.weight.grad is not None
    policy.save(tmp_path / "policy")
    loaded = VLAPolicy.load(tmp_path / "policy", device="cpu")
    with torch.no_grad():
        assert torch.allclose(features_of(loaded, images, texts),
                              features_of(policy, images, texts), atol=1e-5)


def test_a_registry_encoders_earlier_stage_gives_finer_tokens_and_round_trips(tmp_path):
    """vision_stage -2 with vision_grid 8: 64 tokens of EfficientNet-Lite0's stride-16
    map (112 channels) at 128 px, the architecture recorded in the saved policy."""
    policy = tiny(image_encoder="registry", vision_encoder="efficientnet_lite0",
                  image_size=128, vision_grid=8, vision_stage=-2)
    images, texts = frames(2), ["reach the red ball"] * 2
    assert policy.image_position.shape[1] == 64 and policy.image_proj.in_features == 112
    assert policy.image_encoder_frozen
    policy.save(tmp_path / "policy")
    loaded = VLAPolicy.load(tmp_path / "policy", device="cpu")
    assert loaded.config.vision_stage == -2
    with torch.no_grad():
        assert torch.allclose(features_of(loaded, images, texts),
                              features_of(policy, images, texts), atol=1e-5)
    with pytest.raises(ValueError, match="feature_stage 7 does not exist"):
        make_config("tiny", image_encoder="registry", vision_encoder="efficientnet_lite0",
                    vision_stage=7)
    with pytest.raises(ValueError, match="apply to image_encoder 'registry'"):
        make_config("tiny", vision_stage=-2)


def test_registry_encoder_settings_are_checked():
    with pytest.raises(ValueError, match="needs vision_encoder"):
        make_config("tiny", image_encoder="registry")
    with pytest.raises(ValueError, match="unknown encoder 'resnet'"):
        make_config("tiny", image_encoder="registry", vision_encoder="resnet")
    with pytest.raises(ValueError, match="vision_finetune must be one of"):
        make_config("tiny", image_encoder="registry", vision_encoder="cnn",
                    vision_finetune="some")
    with pytest.raises(ValueError, match="apply to image_encoder 'registry'"):
        make_config("tiny", vision_encoder="efficientnet_lite0")
    policy = tiny(image_encoder="registry", vision_encoder="efficientnet_lite0",
                  vision_finetune="last_block", image_size=64, vision_grid=2)
    trainable = {name for name, p in policy.vision.named_parameters() if p.requires_grad}
    assert trainable and all(".blocks.6." in n or "conv_head" in n or "bn2" in n
                             for n in trainable)
