"""Non-finite rewards are caught where they start: ``rewards.load`` refuses weights
holding NaN or inf, and a module that scores NaN or inf at run time says which it is
(instead of PPO failing later with torch's "Expected parameter loc of distribution
Normal" error, which never names the reward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import rewards
from rewards.base import RewardModel
from rewards.preference import PreferenceReward

TINY = {"ensemble_size": 2, "image_size": 8, "channels": (4, 8), "hidden_size": 8,
        "device": "cpu"}
FRAMES = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: several OpenMP threads cost more than the arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _poison(folder, values: dict[str, float]) -> None:
    """Writes ``value`` into element 0 of each named tensor of a saved module's weights."""
    path = folder / "weights.safetensors"
    tensors = load_file(str(path))
    for key, value in values.items():
        tensors[key].view(-1)[0] = value
    save_file(tensors, str(path))


def test_loading_a_preference_module_with_nan_weights_names_the_folder_and_tensor(tmp_path):
    rewards.save(PreferenceReward(**TINY), tmp_path / "diverged")
    _poison(tmp_path / "diverged", {"members.1.head.0.weight": float("nan")})
    with pytest.raises(ValueError) as error:
        rewards.load(tmp_path / "diverged")
    message = str(error.value)
    assert str(tmp_path / "diverged") in message
    assert "members.1.head.0.weight (1 of" in message
    assert "unusable" in message and "saved after training diverged" in message
    # The other route to a saved module, a checkpoint argument, refuses it too.
    with pytest.raises(ValueError, match=r"members\.1\.head\.0\.weight"):
        rewards.make("preference", checkpoint=tmp_path / "diverged")


def test_inf_weights_are_refused_and_every_bad_tensor_is_named(tmp_path):
    rewards.save(PreferenceReward(**TINY), tmp_path / "diverged")
    _poison(tmp_path / "diverged", {"members.0.features.0.bias": float("inf"),
                                    "members.1.head.2.weight": float("-inf")})
    with pytest.raises(ValueError, match=r"2 tensor\(s\): members\.0\.features\.0\.bias .*"
                                         r"members\.1\.head\.2\.weight"):
        rewards.load(tmp_path / "diverged")


def test_finite_weights_still_load(tmp_path):
    model = PreferenceReward(**TINY)
    rewards.save(model, tmp_path / "fine")
    np.testing.assert_allclose(rewards.load(tmp_path / "fine")(FRAMES, [""] * 4),
                               model(FRAMES, [""] * 4), rtol=1e-6)


class NanReward(RewardModel):
    """A module whose scores are NaN for one frame (the forward pass of a diverged net)."""

    name = "nan_test"

    def _score(self, frames, instructions, env_rewards):
        scores = np.zeros(len(frames), np.float32)
        scores[1] = np.nan
        return scores


def test_a_module_scoring_nan_raises_an_error_naming_it():
    with pytest.raises(FloatingPointError,
                       match=r"reward module 'nan_test' \(NanReward\) returned 1 non-finite "
                             r"reward\(s\) of 4 \(nan at index 1\)"):
        NanReward()(FRAMES, [""] * 4)
    # score_trajectory goes through the same check.
    with pytest.raises(FloatingPointError, match="'nan_test'"):
        NanReward().score_trajectory(FRAMES, "")


def test_a_preference_module_whose_weights_turned_nan_in_memory_raises_on_call():
    model = PreferenceReward(**TINY)
    with torch.no_grad():
        model.network.members[0].head[2].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"'preference' \(PreferenceReward\).*4 non-"
                                                 r"finite reward\(s\) of 4"):
        model(FRAMES, [""] * 4)


def test_ground_truth_with_infinite_env_rewards_raises_naming_it():
    module = rewards.make("ground_truth")
    with pytest.raises(FloatingPointError, match=r"'ground_truth'.*inf at index 0"):
        module(None, ["", ""], env_rewards=np.array([np.inf, 0.0]))


def test_rapl_trajectory_scores_are_checked_too():
    # RAPL scores through score_trajectory, which bypasses RewardModel.__call__.
    demo = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    module = rewards.make("rapl", encoder_channels=[4], embedding_dim=8, image_size=16,
                          sinkhorn_iterations=10, demos=[demo], device="cpu")
    module._demo_embeddings[0][2, 0] = float("nan")  # as if embedded by a diverged encoder
    with pytest.raises(FloatingPointError, match=r"'rapl' \(RaplReward\)"):
        module.score_trajectory(demo, "")
