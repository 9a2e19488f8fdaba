"""reward-train: labels stored durably, a loadable module, a held-out report."""

from __future__ import annotations

import pytest

import json

import numpy as np

import rewards
from agents.cli import main
from rewards.preference_store import PreferenceStore


def test_reward_train_end_to_end(tmp_path):
    out = tmp_path / "run"
    code = main(["reward-train", "--env", "vmalign/Reach-v0", "--teacher", "oracle",
                 "--pairs", "40", "--query-batch", "20", "--query", "disagreement",
                 "--policies", "expert", "random", "--episodes", "1", "--eval-episodes", "1",
                 "--epochs", "2", "--lr", "0.002", "--render-size", "32",
                 "--reward-arg", "ensemble_size=2", "--env-arg", "randomize_colors=false",
                 "--out", str(out)])
    assert code == 0
    store = PreferenceStore(out / "preferences")
    assert len(store) == 40
    pairs = store.load_all()
    assert set(np.unique(pairs.labels)) <= {0.0, 0.5, 1.0}
    module = rewards.load(out / "reward")
    assert module.name == "preference" and module.config()["ensemble_size"] == 2
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["labels_stored"] == 40 and report["teacher"] == "oracle"
    assert report["training"]["lr"] == 0.002 and report["env_kwargs"] == {"randomize_colors": False}
    assert -1.0 <= report["within_episode_spearman_reward"] <= 1.0
    assert -1.0 <= report["step_spearman_progress"] <= 1.0
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    assert module(frames, ["x"] * 3).shape == (3,)


def test_reward_train_rejects_unknown_teacher(tmp_path, capsys):
    code = main(["reward-train", "--env", "vmalign/Reach-v0", "--teacher", "genius",
                 "--pairs", "4", "--query-batch", "2", "--policies", "expert", "--episodes", "1",
                 "--render-size", "32", "--out", str(tmp_path / "bad")])
    assert code == 2
    assert "unknown teacher 'genius'" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--env-arg", "obs_sise=64"], "obs_sise"),
    (["--reward-arg", "ensemble_size=abc"], "ensemble_size"),
    (["--policies", "expert", "clever"], "unknown policy 'clever'"),
    (["--policies", "expert", "decoy"], "ReachEnv has no scripted decoy"),
    (["--teacher", "human", "--teacher-arg", "wait=5"], "wait: Extra inputs"),
    (["--teacher", "human", "--teacher-arg", "host=0.0.0.0"], "--allow-remote"),
])
def test_reward_train_bad_input_leaves_nothing_on_disk(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    code = main(["reward-train", "--env", "vmalign/Reach-v0", "--pairs", "4", "--query-batch",
                 "2", "--episodes", "1", "--render-size", "32", "--out", str(out), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_reward_train_rapl_end_to_end(tmp_path):
    out = tmp_path / "rapl"
    code = main(["reward-train", "--env", "vmalign/Reach-v0", "--reward", "rapl",
                 "--triplets", "4", "--demos", "1", "--policies", "expert", "random",
                 "--episodes", "2", "--eval-episodes", "1", "--epochs", "1",
                 "--render-size", "32", "--reward-arg", "image_size=32", "--compare-bt",
                 "--out", str(out)])
    assert code == 0
    module = rewards.load(out / "reward")
    assert module.name == "rapl" and len(module.demonstrations) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["triplets"] == 4 and report["episodes"] == 2
    # The Bradley-Terry comparison: 3 pairs per triplet, judged on the same rollouts.
    bt = report["training"]["bradley_terry_same_triplets"]
    assert bt["pairs"] == 12 and -1.0 <= bt["step_spearman_progress"] <= 1.0
    bt_module = rewards.load(out / "bt-same-triplets")
    assert bt_module.name == "preference"
    # ... on RAPL's encoder (the pretrained default), fine-tuned the same way.
    assert bt["encoder"] == bt_module.config()["encoder"] == module.config()["encoder"] \
        == "efficientnet_lite0"
    assert bt_module.config()["finetune"] == module.config()["finetune"] == "last_block"
    rewards_ = module.score_trajectory(np.zeros((5, 32, 32, 3), np.uint8), "x")
    assert rewards_.shape == (5,)


def test_reward_train_rapl_killed_in_the_comparison_keeps_its_report(tmp_path, monkeypatch):
    """The Bradley-Terry comparison comes last and can take hours: RAPL's module and its
    held-out report are on disk before it starts."""
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("agents.cli.reward_train.compare_bradley_terry", killed)
    out = tmp_path / "rapl"
    with pytest.raises(KeyboardInterrupt):
        main(["reward-train", "--env", "vmalign/Reach-v0", "--reward", "rapl",
              "--triplets", "4", "--demos", "1", "--policies", "expert", "random",
              "--episodes", "2", "--eval-episodes", "1", "--epochs", "1",
              "--render-size", "32", "--reward-arg", "image_size=32", "--compare-bt",
              "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["reward"] == "rapl" and -1.0 <= report["step_spearman_progress"] <= 1.0
    assert "bradley_terry_same_triplets" not in report["training"]
    assert (out / "report.png").exists() and rewards.load(out / "reward").name == "rapl"


def test_reward_train_rapl_needs_experts(tmp_path, capsys):
    code = main(["reward-train", "--env", "vmalign/Reach-v0", "--reward", "rapl",
                 "--policies", "random", "--episodes", "3", "--render-size", "32",
                 "--out", str(tmp_path / "no-experts")])
    assert code == 2
    assert "expert demonstrations" in capsys.readouterr().err


def test_triplet_pairs_follow_the_ranking_in_random_order():
    from agents.reward_training import rank_triplets, triplet_pairs
    from agents.rollouts import Episode

    def episode(value: int, steps: int) -> Episode:
        frames = np.full((steps, 4, 4, 3), value, np.uint8)
        return Episode(frames=frames, env_rewards=np.full(steps, value, np.float32),
                       progress=np.zeros(steps, np.float32), success=False, instruction="",
                       policy="expert", seed=value)

    episodes = [episode(v, 12 + v) for v in range(6)]  # return grows with the value
    triplets = rank_triplets(episodes, 20, seed=0)
    for best, middle, worst in triplets:
        assert best > middle > worst  # ranked by return
    pairs = triplet_pairs(episodes, triplets, frame_stride=3, seed=0)
    assert len(pairs) == 60 and pairs.frames_a.shape[1:] == (4, 4, 4, 3)  # 12 steps, every 3rd
    value_a, value_b = pairs.frames_a[:, 0, 0, 0, 0], pairs.frames_b[:, 0, 0, 0, 0]
    np.testing.assert_array_equal(pairs.labels, (value_a > value_b).astype(np.float32))
    assert 0.2 < pairs.labels.mean() < 0.8  # both orders occur


def test_bradley_terry_comparison_takes_only_registry_encoders():
    from agents.reward_training import same_encoder_arguments

    pretrained = {"encoder": "timm:resnet18", "encoder_weights": "w.pt", "finetune": "frozen",
                  "encoder_lr_scale": 0.1, "embedding_dim": 64, "image_size": 96,
                  "pool_grid": 2, "feature_stage": -2, "epsilon": 0.05}
    assert same_encoder_arguments(pretrained) == {
        "encoder": "timm:resnet18", "encoder_weights": "w.pt", "finetune": "frozen",
        "encoder_lr_scale": 0.1, "image_size": 96, "pool_grid": 2, "feature_stage": -2}
    # Every shared key is one the preference module takes.
    rewards.make("preference", device="cpu", **same_encoder_arguments(
        {**pretrained, "encoder": "efficientnet_lite0", "encoder_weights": None}))
    # RAPL's own CNN and CLIP towers are not the preference module's: its default.
    assert same_encoder_arguments({"encoder": "cnn", "encoder_channels": [16]}) == {}
    assert same_encoder_arguments({"encoder": "clip", "model": "ViT-B-32"}) == {}


def test_reward_train_with_a_person_labelling_on_the_page(tmp_path):
    from tests.test_labelling_human import Person

    out = tmp_path / "run"
    with Person(out):
        code = main(["reward-train", "--env", "vmalign/Reach-v0", "--teacher", "human",
                     "--teacher-arg", "serve=false", "--pairs", "12", "--query-batch", "6",
                     "--policies", "expert", "random", "--episodes", "1",
                     "--eval-episodes", "1", "--epochs", "1", "--render-size", "32",
                     "--reward-arg", "ensemble_size=1", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["labels_by_source"] == {"human": 12}
    assert report["training"]["pairs_asked"] == 12
