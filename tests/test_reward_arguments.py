"""Wrong reward-module arguments fail at once, in ``rewards.make``, with an error that
names the argument, the value and what is allowed, before any network is built or
checkpoint read; unknown argument names are refused with the valid ones listed."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import rewards
import rewards.clip
import rewards.preference
import rewards.rapl
from rewards.clip import TINY_MODEL_CONFIG

NAN, INF = float("nan"), float("inf")
CLIP = {"model": "tiny", "model_config": TINY_MODEL_CONFIG, "pretrained": None, "device": "cpu"}
RAPL = {"encoder_channels": [4], "embedding_dim": 8, "image_size": 16, "device": "cpu"}
PREFERENCE = {"ensemble_size": 2, "image_size": 8, "channels": [4], "hidden_size": 8,
              "device": "cpu"}


@pytest.fixture(autouse=True)
def _quiet_open_clip():
    # open_clip logs a warning for every randomly initialised model.
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Makes every network builder and checkpoint reader fail the test if it is reached."""

    def built(*args, **kwargs):
        raise AssertionError("a network was built (or a checkpoint read) before the "
                             "arguments were checked")

    monkeypatch.setattr(rewards.preference, "RewardEnsemble", built)
    monkeypatch.setattr(rewards.preference, "_load_checkpoint", built)
    monkeypatch.setattr(rewards.clip, "load_open_clip", built)
    monkeypatch.setattr(rewards.rapl, "RaplEncoder", built)
    monkeypatch.setattr(rewards.rapl, "build_encoder", built)
    monkeypatch.setattr(rewards.preference, "build_encoder", built)
    monkeypatch.setattr(rewards.rapl.RaplReward, "_clip_encoder", built)


BAD = [
    # (module, base arguments, wrong ones, the error: argument, value and what is allowed)
    ("ground_truth", {}, {"scale": "abc"}, r"scale must be a finite number, got 'abc'"),
    ("ground_truth", {}, {"scale": NAN}, r"scale must be a finite number, got nan"),
    ("ground_truth", {}, {"scale": True}, r"scale must be a finite number, got True"),
    ("preference", PREFERENCE, {"ensemble_size": "abc"},
     r"ensemble_size must be an integer >= 1, got 'abc'"),
    ("preference", PREFERENCE, {"ensemble_size": True},
     r"ensemble_size must be an integer >= 1, got True"),
    ("preference", PREFERENCE, {"channels": "48"},
     r"channels must be a non-empty list of integers >= 1, got '48'"),
    ("preference", PREFERENCE, {"channels": [4.5, 8]},
     r"channels must be a non-empty list of integers >= 1, got \[4.5, 8\]"),
    ("preference", PREFERENCE, {"views": 9}, r"views must be an integer in \[1, 8\], got 9"),
    ("preference", PREFERENCE, {"view_rewards": "max"},
     r"view_rewards must be one of \['joint', 'min'\], got 'max'"),
    ("preference", PREFERENCE, {"batch_size": "abc"},
     r"batch_size must be an integer >= 1, got 'abc'"),
    ("preference", PREFERENCE, {"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
    ("preference", PREFERENCE, {"disagreement_penalty": INF},
     r"disagreement_penalty must be a finite number >= 0, got inf"),
    ("preference", PREFERENCE, {"seed": 1.5}, r"seed must be None or an integer >= 0, got 1.5"),
    ("preference", PREFERENCE, {"checkpoint": 3},
     r"checkpoint must be a path \(a string\) or None, got 3"),
    # Checked before the checkpoint is read, too.
    ("preference", {}, {"checkpoint": "saved/reward", "batch_size": 0},
     r"batch_size must be an integer >= 1, got 0"),
    ("preference", {}, {"checkpoint": "saved/reward", "ensemble_size": "3"},
     r"ensemble_size must be an integer >= 1, got '3'"),
    ("clip", CLIP, {"alpha": "0.5"}, r"alpha must be a finite number in \[0, 1\], got '0.5'"),
    ("clip", CLIP, {"alpha": True}, r"alpha must be a finite number in \[0, 1\], got True"),
    ("clip", CLIP, {"alpha": NAN}, r"alpha must be a finite number in \[0, 1\], got nan"),
    ("clip", CLIP, {"batch_size": "8"}, r"batch_size must be an integer >= 1, got '8'"),
    ("clip", CLIP, {"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
    ("clip", CLIP, {"resize_mode": "crop"},
     r"resize_mode must be one of \['shortest', 'longest', 'squash'\], got 'crop'"),
    ("clip", CLIP, {"goal_prompts": 3}, r"goal_prompts must be a non-empty list of strings, got 3"),
    ("clip", CLIP, {"model": 3}, r"model must be a non-empty string, got 3"),
    ("clip", {**CLIP, "model_config": None}, {"pretrained": 3},
     r"pretrained must be a string or None, got 3"),
    ("rapl", RAPL, {"encoder": "vit"}, r"unknown encoder 'vit'; valid: cnn, clip, "
     r"efficientnet_lite0, timm:<model>, open_clip:<model>"),
    ("rapl", RAPL, {"finetune": "half"}, r"finetune must be one of"),
    ("rapl", RAPL, {"encoder_lr_scale": -1}, r"encoder_lr_scale must be a finite number >= 0"),
    ("preference", PREFERENCE, {"encoder": "resnet"}, r"unknown encoder 'resnet'"),
    ("preference", PREFERENCE, {"finetune": "half"}, r"finetune must be one of"),
    ("preference", PREFERENCE, {"pool_grid": 0}, r"pool_grid must be an integer >= 1"),
    ("rapl", RAPL, {"encoder_channels": 4},
     r"encoder_channels must be a non-empty list of integers >= 1, got 4"),
    ("rapl", RAPL, {"image_size": 16.0}, r"image_size must be an integer >= 1, got 16.0"),
    ("rapl", RAPL, {"embedding_dim": True}, r"embedding_dim must be an integer >= 1, got True"),
    ("rapl", RAPL, {"encode_batch_size": "abc"},
     r"encode_batch_size must be an integer >= 1, got 'abc'"),
    ("rapl", RAPL, {"epsilon": INF}, r"epsilon must be a finite number > 0, got inf"),
    ("rapl", RAPL, {"scale": NAN}, r"scale must be a finite number, got nan"),
    ("rapl", RAPL, {"clip_initial_weights": "no"},
     r"clip_initial_weights must be true or false, got 'no'"),
    ("rapl", RAPL, {"demos": 3},
     r"demos must be a list of episodes, each uint8 \(T, H, W, 3\), got 3"),
    ("rapl", RAPL, {"demos": [np.zeros((2, 8, 8, 3), np.float32)]},
     r"demonstration 0: frames must be uint8"),
]


@pytest.mark.parametrize("name, base, wrong, match", BAD,
                         ids=[f"{name}-{'-'.join(wrong)}-{index}"
                              for index, (name, _, wrong, _) in enumerate(BAD)])
def test_wrong_argument_values_are_refused_before_anything_is_built(nothing_is_built, name,
                                                                    base, wrong, match):
    with pytest.raises(ValueError, match=match):
        rewards.make(name, **{**base, **wrong})


@pytest.mark.parametrize("name, valid", [("ground_truth", "scale"), ("preference", "seed"),
                                         ("clip", "resize_mode"), ("rapl", "epsilon")])
def test_unknown_arguments_are_refused_with_the_valid_names(nothing_is_built, name, valid):
    assert name in rewards.names()
    with pytest.raises(TypeError, match=rf"reward module '{name}' got unknown argument\(s\) "
                                        rf"\['bogus'\]; valid ones are \[.*'{valid}'"):
        rewards.make(name, bogus=1)


def test_loading_with_an_unknown_override_lists_the_valid_names(tmp_path):
    rewards.save(rewards.make("preference", **PREFERENCE), tmp_path / "model")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['batch'\]; valid ones are "
                                        r"\[.*'batch_size'"):
        rewards.load(tmp_path / "model", batch=8)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        rewards.load(tmp_path / "model", batch_size=0)


def test_numpy_scalars_are_accepted_and_saved_as_plain_numbers():
    model = rewards.make("preference", **{**PREFERENCE, "ensemble_size": np.int64(2)},
                         disagreement_penalty=np.float32(0.5), seed=np.int32(3))
    assert model.ensemble_size == 2 and model.disagreement_penalty == 0.5
    json.dumps(model.config())  # numpy scalars would not serialise
    assert rewards.make("ground_truth", scale=np.float64(2.0))(
        None, [""], env_rewards=np.ones(1)) == pytest.approx([2.0])
