"""Zero-shot CLIP reward (VLM-RM) and the CLIP preference teacher, on tiny random models."""

from __future__ import annotations

import json
import logging
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
import rewards
from rewards.base import RewardModel
from rewards.clip import TINY_MODEL_CONFIG, ClipReward, resize_keep_aspect, vlm_rm_reward
from rewards.vlm_teacher import ClipTeacher

INSTRUCTION = "push the red cube onto the green target"
OTHER = "push the blue cube onto the purple target"


@pytest.fixture(autouse=True)
def _quiet_open_clip():
    # open_clip logs a warning for every randomly initialised model.
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def tiny(**kwargs) -> ClipReward:
    options = dict(model="tiny", model_config=TINY_MODEL_CONFIG, pretrained=None, device="cpu")
    return ClipReward(**{**options, **kwargs})


@pytest.fixture(scope="module")
def push_frames() -> tuple[np.ndarray, list[str]]:
    """Real Push frames along an expert episode, and their instructions."""
    env = gym.make("vmalign/Push-v0", render_mode="rgb_array", render_size=64)
    _, info = env.reset(seed=0)
    frames = [env.render()]
    for _ in range(7):
        _, _, _, _, info = env.step(env.unwrapped.expert_action())
        frames.append(env.render())
    env.close()
    return np.stack(frames), [info["instruction"]] * len(frames)


# --- the formula -----------------------------------------------------------------------

S = torch.tensor([[0.6, 0.8, 0.0]])
G = torch.tensor([0.0, 1.0, 0.0])
B = torch.tensor([1.0, 0.0, 0.0])


def test_formula_alpha_zero_is_distance_to_the_goal():
    # s - g = (0.6, -0.2, 0): ||.||^2 = 0.40, R = 1 - 0.20.
    assert vlm_rm_reward(S, G, B, alpha=0.0).item() == pytest.approx(0.8)


def test_formula_alpha_one_counts_only_the_baseline_to_goal_direction():
    # g - b = (-1, 1, 0); (s - g).(g - b) = -0.8; projection (0.4, -0.4, 0): ||.||^2 = 0.32.
    assert vlm_rm_reward(S, G, B, alpha=1.0).item() == pytest.approx(0.84)
    # A component orthogonal to g - b changes nothing at alpha 1 but lowers R at alpha 0.
    moved = S + torch.tensor([[0.0, 0.0, 0.5]])
    assert vlm_rm_reward(moved, G, B, alpha=1.0).item() == pytest.approx(0.84)
    assert vlm_rm_reward(moved, G, B, alpha=0.0).item() == pytest.approx(0.8 - 0.125)


def test_formula_mixes_both_at_intermediate_alpha_and_batches_per_row_goals():
    # alpha 0.5: 0.5 (0.4, -0.4, 0) + 0.5 (0.6, -0.2, 0) = (0.5, -0.3, 0): R = 1 - 0.17.
    assert vlm_rm_reward(S, G, B, alpha=0.5).item() == pytest.approx(0.83)
    images = torch.cat([S, S])
    goals = torch.stack([G, B])  # the second row's goal is (1, 0, 0), baseline (0, 1, 0)
    baselines = torch.stack([B, G])
    batched = vlm_rm_reward(images, goals, baselines, alpha=0.5)
    second = vlm_rm_reward(S, B, G, alpha=0.5)
    assert batched[0].item() == pytest.approx(0.83)
    assert batched[1].item() == pytest.approx(second.item())


def test_formula_rejects_a_goal_equal_to_its_baseline():
    with pytest.raises(ValueError, match="baseline"):
        vlm_rm_reward(S, G, G, alpha=0.5)
    assert vlm_rm_reward(S, G, G, alpha=0.0).item() == pytest.approx(0.8)


# --- prompts, embeddings, preprocessing ------------------------------------------------


def _fixed_embeddings(module: ClipReward, monkeypatch, texts: dict[str, list[float]], image):
    """Makes ``module`` embed prompts and frames as given, to check its wiring."""
    monkeypatch.setattr(module, "text_embeddings",
                        lambda prompts: torch.tensor([texts[p] for p in prompts]))
    monkeypatch.setattr(module, "image_embeddings",
                        lambda frames: torch.tensor([image] * len(frames)))


def test_goal_comes_from_the_instruction_or_the_given_prompts(monkeypatch):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    texts = {"instruction": [0.0, 1.0, 0.0], "neutral": [1.0, 0.0, 0.0],
             "goal one": [0.0, 1.0, 1.0], "goal two": [0.0, 1.0, -1.0],  # mean (0, 1, 0)
             "baseline two": [1.0, 0.0, 2.0]}
    from_instruction = tiny(alpha=1.0, baseline_prompts=["neutral"])
    _fixed_embeddings(from_instruction, monkeypatch, texts, [0.6, 0.8, 0.0])
    assert from_instruction(frames, ["instruction"] * 2) == pytest.approx([0.84, 0.84])

    # Given goals: the instruction is ignored and g is the mean of the goal prompts;
    # b is the mean of the baseline prompts ((1, 0, 1) here; its z part leaves s - g's
    # projection (-0.8 / 3) * (-1, 1, -1) of squared norm 0.64 / 3).
    given = tiny(alpha=1.0, goal_prompts=["goal one", "goal two"],
                 baseline_prompts=["neutral", "baseline two"])
    _fixed_embeddings(given, monkeypatch, texts, [0.6, 0.8, 0.0])
    expected = 1 - 0.5 * 0.64 / 3
    assert given(frames, ["unknown instruction", "another"]) == pytest.approx([expected] * 2)


def test_text_embeddings_are_encoded_once_per_prompt(monkeypatch):
    module = tiny()
    encoded: list[int] = []
    encode = module.model.encode_text
    monkeypatch.setattr(module.model, "encode_text",
                        lambda tokens, **kw: encoded.append(len(tokens)) or encode(tokens, **kw))
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    first = module(frames, [INSTRUCTION, OTHER, INSTRUCTION, OTHER])
    second = module(frames, [INSTRUCTION, OTHER, OTHER, INSTRUCTION])
    assert encoded == [3]  # two instructions and the baseline, in one batch, once
    assert second == pytest.approx(first[[0, 1, 3, 2]])
    module.text_embeddings(["a new prompt", INSTRUCTION])
    assert encoded == [3, 1]


def _bright_extent(image: torch.Tensor) -> tuple[int, int]:
    """Rows and columns of the bright square in a (3, h, w) [0, 255] image."""
    bright = image.mean(0) > 127.5
    return int(bright.any(1).sum()), int(bright.any(0).sum())


def test_resize_keeps_the_aspect_ratio_when_cropping_and_padding():
    frame = torch.zeros(1, 3, 64, 128)
    frame[..., 16:48, 48:80] = 255.0  # a 32x32 white square in the centre
    # Cropping: scale 0.5 (shortest side 64 -> 32), the square becomes 16x16, not 16x8.
    cropped = resize_keep_aspect(frame, (32, 32), mode="shortest")
    assert cropped.shape == (1, 3, 32, 32)
    assert _bright_extent(cropped[0]) == (16, 16)
    # Padding: scale 0.25 (longest side 128 -> 32); 8 black rows above and below.
    padded = resize_keep_aspect(frame, (32, 32), mode="longest")
    assert padded.shape == (1, 3, 32, 32)
    assert _bright_extent(padded[0]) == (8, 8)
    assert padded[..., :8, :].abs().max() == 0 and padded[..., 24:, :].abs().max() == 0


@pytest.mark.parametrize("mode", ["shortest", "longest"])
def test_uint8_and_float_frames_resize_alike(mode):
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 48, 80, 3),
                                                                dtype=np.uint8))
    images = frames.permute(0, 3, 1, 2)
    fast = resize_keep_aspect(images, (32, 32), mode=mode)
    exact = resize_keep_aspect(images.float(), (32, 32), mode=mode)
    assert fast.dtype == torch.uint8 and fast.shape == exact.shape == (2, 3, 32, 32)
    # The uint8 path rounds and clips between its horizontal and vertical passes, as
    # PIL (CLIP's own preprocessing) does: small differences, largest at sharp edges.
    difference = (fast.float() - exact).abs()
    assert difference.mean() < 0.5 and difference.max() < 10


def test_preprocess_crops_without_squashing_and_normalises_with_the_model_statistics():
    module = tiny()
    mean = np.array(module.model.visual.preprocess_cfg["mean"])
    std = np.array(module.model.visual.preprocess_cfg["std"])
    frame = np.zeros((1, 32, 64, 3), np.uint8)  # wide: 32 rows, 64 columns
    frame[0, :, 16:48] = 255  # the centre 32 columns white, the sides black
    images = module.preprocess(frame)
    assert images.shape == (1, 3, 32, 32)
    pixels = images[0].permute(1, 2, 0).numpy() * std + mean
    # No resize is needed (the short side is 32): the crop is the white centre,
    # whereas squashing would have kept the black sides.
    assert pixels == pytest.approx(np.ones((32, 32, 3)), abs=1e-5)


def _vlm_rm_preprocess(frames: np.ndarray, module: ClipReward) -> torch.Tensor:
    """VLM-RM's preprocessing, written as its code does it (``CLIPEmbed`` and
    ``image_transform``): uint8 -> float / 255, torchvision ``Resize`` of the whole
    frame to the model's size (bicubic; its pinned torchvision 0.15 did not antialias
    tensors), then ``Normalize`` with the model's mean and std."""
    from torchvision.transforms import InterpolationMode, Normalize, Resize

    cfg = module.model.visual.preprocess_cfg
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    resize = Resize(module.image_size, interpolation=InterpolationMode.BICUBIC, antialias=False)
    return Normalize(cfg["mean"], cfg["std"])(resize(images))


@pytest.mark.parametrize("shape", [(48, 80), (20, 36), (40, 24)])
def test_squash_preprocessing_is_vlm_rm_s_and_differs_from_cropping(shape):
    squash, crop = tiny(resize_mode="squash"), tiny()
    assert squash.interpolation == "bicubic" and squash.image_size == (32, 32)
    frames = np.random.default_rng(0).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    squashed = squash.preprocess(frames)
    assert squashed.shape == (2, 3, 32, 32)
    torch.testing.assert_close(squashed, _vlm_rm_preprocess(frames, squash), atol=1e-5, rtol=0)
    # Cropping drops the sides that squashing keeps: far apart on a non-square frame.
    assert (squashed - crop.preprocess(frames)).abs().mean() > 0.3


def test_squash_and_crop_agree_on_square_frames():
    squash, crop = tiny(resize_mode="squash"), tiny()
    frames = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    torch.testing.assert_close(squash.preprocess(frames), crop.preprocess(frames),
                               atol=1e-6, rtol=0)
    # Upsampled, they differ only by the crop path's uint8 rounding (a pixel level or two).
    ramp = np.linspace(0, 255, 16)
    smooth = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 255 - ramp[:, None]),
                      axis=-1).round().astype(np.uint8)[None]
    torch.testing.assert_close(squash.preprocess(smooth), crop.preprocess(smooth),
                               atol=3 / 255 / 0.26, rtol=0)


def test_squash_is_a_saved_option_of_make_and_scores_non_square_frames_differently(tmp_path):
    options = dict(model="tiny", model_config=TINY_MODEL_CONFIG, pretrained=None, device="cpu")
    squash = rewards.make("clip", **options, resize_mode="squash")
    crop = rewards.make("clip", **options)
    crop.load_tensors(squash.tensors())  # the same random weights: only preprocessing differs
    assert crop.config()["resize_mode"] == "shortest"  # the default is unchanged
    frames = np.random.default_rng(2).integers(0, 256, (3, 40, 72, 3), dtype=np.uint8)
    scores = squash(frames, [INSTRUCTION] * 3)
    assert np.isfinite(scores).all()
    assert not np.allclose(scores, crop(frames, [INSTRUCTION] * 3), atol=1e-4)
    rewards.save(squash, tmp_path / "squash")
    loaded = rewards.load(tmp_path / "squash")
    assert loaded.config()["resize_mode"] == "squash"
    assert loaded(frames, [INSTRUCTION] * 3) == pytest.approx(scores, abs=1e-6)


def test_a_batch_of_two_instructions_equals_scoring_them_separately(push_frames):
    module = tiny(batch_size=3)  # several model calls per batch, too
    frames, _ = push_frames
    instructions = [INSTRUCTION if k % 2 else OTHER for k in range(len(frames))]
    together = module(frames, instructions)
    odd = module(frames[1::2], [INSTRUCTION] * len(frames[1::2]))
    even = module(frames[0::2], [OTHER] * len(frames[0::2]))
    assert together[1::2] == pytest.approx(odd, abs=1e-6)
    assert together[0::2] == pytest.approx(even, abs=1e-6)
    assert not np.allclose(module(frames, [INSTRUCTION] * len(frames)), together)


def test_make_clip_scores_real_env_frames_end_to_end(push_frames):
    frames, instructions = push_frames
    module = rewards.make("clip", model="tiny", model_config=TINY_MODEL_CONFIG,
                          pretrained=None, alpha=0.5, device="cpu")
    scores = module(frames, instructions)
    assert isinstance(module, ClipReward) and module.name == "clip"
    assert scores.shape == (len(frames),) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert module.score_trajectory(frames, instructions[0]) == pytest.approx(scores, abs=1e-6)


def test_model_config_can_be_a_json_file(tmp_path, push_frames):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"model_cfg": TINY_MODEL_CONFIG}))
    module = tiny(model_config=str(path))
    assert module.image_size == (32, 32)
    assert module.config()["model_config"] == {"model_cfg": TINY_MODEL_CONFIG}


# --- weights: checkpoints, missing downloads, save and load ----------------------------


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_checkpoint_file_written_here_loads_back_to_identical_rewards(tmp_path, suffix,
                                                                        push_frames):
    frames, instructions = push_frames
    original = tiny()
    path = tmp_path / f"tiny_clip{suffix}"
    state = {k: v.contiguous() for k, v in original.model.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    loaded = tiny(checkpoint=str(path))
    assert not loaded.random_weights and loaded.tensors() == {}
    assert loaded(frames, instructions) == pytest.approx(original(frames, instructions), abs=1e-6)


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a file"):
        tiny(checkpoint=str(tmp_path / "missing.pt"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="corrupt or not open_clip weights"):
        tiny(checkpoint=str(corrupt))
    other = dict(TINY_MODEL_CONFIG, embed_dim=16)
    wrong = tmp_path / "other_architecture.pt"
    torch.save(tiny(model_config=other).model.state_dict(), wrong)
    with pytest.raises(ValueError, match="another architecture"):
        tiny(checkpoint=str(wrong))


def test_unobtainable_pretrained_weights_say_how_to_use_a_local_file(monkeypatch, tmp_path):
    # Offline mode makes the Hub fail at once instead of retrying on a dead network.
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_home" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE",
                        str(tmp_path / "empty_hf_home" / "hub"))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="checkpoint=") as error:
        ClipReward(model="ViT-B-32", pretrained="openai", device="cpu")
    assert time.monotonic() - start < 30
    message = str(error.value)
    assert "could not obtain the pretrained weights 'openai'" in message
    assert "huggingface.co/timm/vit_base_patch32_clip_224.openai" in message


class _Stop(Exception):
    """Raised by the spy below once it has seen create_model's arguments."""


@pytest.mark.parametrize("tag, quick_gelu", [("openai", True), ("laion2b_s34b_b79k", False)])
def test_tags_set_the_activation_their_weights_were_trained_with(monkeypatch, tmp_path,
                                                                 tag, quick_gelu):
    import open_clip

    seen: dict[str, object] = {}

    def spy(name, **kwargs):
        seen.update(kwargs, name=name)
        raise _Stop

    monkeypatch.setattr(open_clip, "create_model", spy)
    with pytest.raises(_Stop):
        ClipReward(model="ViT-B-32", pretrained=tag, device="cpu")
    assert seen["force_quick_gelu"] is quick_gelu and seen["pretrained"] == tag
    # With a local copy of the tag's weights, nothing is downloaded; the tag still counts.
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"")
    with pytest.raises(_Stop):
        ClipReward(model="ViT-B-32", pretrained=tag, checkpoint=str(weights), device="cpu")
    assert seen["force_quick_gelu"] is quick_gelu and seen["pretrained"] is None


def test_save_and_load_round_trip(tmp_path, push_frames):
    frames, instructions = push_frames
    random_weights = tiny(alpha=0.3, goal_prompts=["the cube is on the target"],
                          resize_mode="longest")
    rewards.save(random_weights, tmp_path / "random")
    # Random weights cannot be rebuilt from the configuration, so they are saved.
    assert (tmp_path / "random" / "weights.safetensors").is_file()
    loaded = rewards.load(tmp_path / "random", device="cpu")
    assert isinstance(loaded, ClipReward) and loaded.config() == random_weights.config()
    assert loaded(frames, instructions) == pytest.approx(random_weights(frames, instructions),
                                                         abs=1e-6)

    # Weights from a checkpoint file: the configuration names the file, nothing else is saved.
    checkpoint = tmp_path / "tiny_clip.pt"
    torch.save(random_weights.model.state_dict(), checkpoint)
    from_file = tiny(checkpoint=str(checkpoint))
    rewards.save(from_file, tmp_path / "from_file")
    assert not (tmp_path / "from_file" / "weights.safetensors").exists()
    assert json.loads((tmp_path / "from_file" / "config.json").read_text())["config"][
        "checkpoint"] == str(checkpoint.resolve())
    again = rewards.load(tmp_path / "from_file")
    assert again(frames, instructions) == pytest.approx(from_file(frames, instructions), abs=1e-6)


def test_loading_weights_refreshes_the_text_cache(tmp_path, push_frames):
    frames, instructions = push_frames
    first, second = tiny(), tiny()
    second(frames, instructions)  # fills its cache with its own text embeddings
    second.load_tensors(first.tensors())
    assert second(frames, instructions) == pytest.approx(first(frames, instructions), abs=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(alpha=1.5), ValueError, r"alpha must be a finite number in \[0, 1\], got 1.5"),
    (dict(resize_mode="stretch"), ValueError,
     r"resize_mode must be one of \['shortest', 'longest', 'squash'\], got 'stretch'"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(goal_prompts="the cube on the target"), ValueError, "list of strings"),
    (dict(baseline_prompts=[]), ValueError, "non-empty"),
    (dict(pretrained="openai"), ValueError, "pretrained=None"),
    (dict(model_config={"embed_dim": 8}), ValueError, "lacks"),
    (dict(model="local-dir:/nowhere"), ValueError, "drop model_config"),
])
def test_bad_arguments_give_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny(**kwargs)


def test_unknown_model_names_and_tags_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'.*ViT-B-32"):
        ClipReward(model="ViT-Q-99", pretrained=None, device="cpu")
    with pytest.raises(ValueError, match="unknown pretrained tag 'nope'.*openai"):
        ClipReward(model="ViT-B-32", pretrained="nope", device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_scores_in_fp16_autocast_match_the_cpu(push_frames):
    frames, instructions = push_frames
    cpu = tiny()
    cuda = tiny(device="cuda")
    cuda.load_tensors(cpu.tensors())
    assert cuda(frames, instructions) == pytest.approx(cpu(frames, instructions), abs=2e-2)


# --- the CLIP preference teacher -------------------------------------------------------


class Brightness(RewardModel):
    """Test judge: the mean pixel value of each frame."""

    def _score(self, frames, instructions, env_rewards):
        return frames.reshape(len(frames), -1).mean(axis=1) / 255.0


def test_teacher_prefers_the_segment_whose_frames_score_higher():
    dark = np.full((3, 4, 8, 8, 3), 40, np.uint8)
    light = np.full((3, 4, 8, 8, 3), 200, np.uint8)
    frames_a = np.stack([light[0], dark[1], light[2]])
    frames_b = np.stack([dark[0], light[1], light[2]])
    teacher = ClipTeacher(Brightness())
    labels = teacher.label(frames_a, frames_b, ["task"] * 3,
                           rewards_a=np.full((3, 4), 9.0), rewards_b=np.zeros((3, 4)))
    assert labels.dtype == np.float32
    assert labels.tolist() == [1.0, 0.0, 0.5]  # the ground-truth rewards are ignored
    # Within the threshold, a difference is a tie.
    nearly = frames_a.copy()
    nearly[2, 0, 0, 0, 0] += 1
    assert ClipTeacher(Brightness(), tie_threshold=0.01).label(
        nearly, frames_b, ["task"] * 3).tolist() == [1.0, 0.0, 0.5]
    assert ClipTeacher(Brightness()).label(nearly, frames_b, ["task"] * 3)[2] == 1.0


def test_clip_teacher_labels_agree_with_summed_clip_scores(push_frames):
    frames, instructions = push_frames
    module = tiny()
    segments = frames[:8].reshape(4, 2, *frames.shape[1:])
    frames_a, frames_b = segments[[0, 1, 2, 3]], segments[[3, 2, 1, 3]]
    teacher = ClipTeacher(module)
    labels = teacher.label(frames_a, frames_b, instructions[:4])
    sums = module(frames[:8], instructions[:8]).reshape(4, 2).sum(1)
    expected = np.where(sums[[0, 1, 2]] > sums[[3, 2, 1]], 1.0, 0.0)
    assert labels[:3].tolist() == expected.tolist()
    assert labels[3] == 0.5  # the same segment on both sides is a tie


def test_clip_teacher_answers_the_preference_pipeline_queries(push_frames):
    from rewards.query import SegmentPairs
    from rewards.teachers import Teacher

    frames, instructions = push_frames
    segments = frames[:8].reshape(4, 2, *frames.shape[1:])
    pairs = SegmentPairs(frames_a=segments[:2], frames_b=segments[2:],
                         rewards_a=np.zeros((2, 2), np.float32),
                         rewards_b=np.zeros((2, 2), np.float32),
                         instructions=instructions[:2], origins=np.zeros((2, 4), np.int64))
    teacher = ClipTeacher(tiny())
    assert isinstance(teacher, Teacher) and teacher.name == "clip"
    assert teacher.label_pairs(pairs).tolist() == teacher.label(
        segments[:2], segments[2:], instructions[:2]).tolist()


def test_teacher_rejects_mismatched_input():
    teacher = ClipTeacher(Brightness())
    frames = np.zeros((2, 3, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        teacher.label(frames, frames[:1], ["a", "b"])
    with pytest.raises(ValueError, match="2 instruction strings"):
        teacher.label(frames, frames, ["a"])
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        teacher.label(frames[0], frames[0], ["a", "b", "c"])
    with pytest.raises(ValueError, match="tie_threshold"):
        ClipTeacher(Brightness(), tie_threshold=-1.0)
    with pytest.raises(ValueError, match="judges pixels"):
        teacher.label(None, None, ["a", "b"], np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="scores single frames"):
        ClipTeacher(rewards.make("ground_truth"))
