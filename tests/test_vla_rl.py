"""vla-ppo, vla-grpo and vla-dpo: their logs, labels and resume on short runs (default
suite), and that each improves a deliberately weak behaviour-cloned policy (``slow``:
minutes each on one core)."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import yaml

from agents import distributed
from agents.collect import collect_dataset
from agents.config import load_config
from agents.runs import build_reward, train
from agents.vla.dpo import dpo_loss
from agents.vla.config import VLAGRPOSettings
from agents.vla.grpo import (GroupRelativeLoss, all_log_probs, group_advantages, grpo_update,
                             kl_estimate, minibatches, play_groups, step_batch)
from agents.sb3.vector import make_training_env
from agents.vla import runs
from agents.vla.model import ActionSpec, VLAPolicy
from agents.vla.ppo import Rollout, collect_rollout, compute_gae, initial_state, ppo_update
from tests import easy_env

import torch

EVAL = 24


@pytest.fixture(scope="module")
def weak_policy(tmp_path_factory):
    """BC on 6 demonstrations for 40 steps: clearly better than chance, far from done."""
    easy_env.register()
    root = tmp_path_factory.mktemp("weak")
    collect_dataset(easy_env.ENV_ID, 6, str(root / "data"), log=lambda *a: None)
    config = {"algo": "vla-bc", "device": "cpu", "eval_episodes": EVAL, "checkpoint_every": 1000,
              "datasets": [str(root / "data")],
              "vla": {"preset": "tiny", "image_size": 32, "patch_size": 8},
              "bc": {"steps": 40, "batch_size": 32, "lr": 1e-3, "warmup": 5, "log_every": 10}}
    (root / "bc.yaml").write_text(yaml.safe_dump(config))
    summary = train(load_config(root / "bc.yaml"), root / "bc", log=lambda *a: None)
    return root / "bc" / "policy", summary["eval"][easy_env.ENV_ID]["success_rate"]


def write(tmp_path, name, config):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def ppo_config(init, steps):
    return {"algo": "vla-ppo", "device": "cpu", "env": easy_env.ENV_ID, "reward": "ground_truth",
            "eval_episodes": EVAL, "checkpoint_every": 1000, "vla": {"init": str(init)},
            "ppo": {"n_timesteps": steps, "n_envs": 4, "n_steps": 48, "batch_size": 64,
                    "n_epochs": 4, "lr": 3e-4, "critic_warmup": 2, "ent_coef": 0.01}}


@pytest.mark.slow
def test_vla_ppo_fine_tuning_raises_success(tmp_path, weak_policy):
    easy_env.register()
    init, bc_success = weak_policy
    path = write(tmp_path, "ppo", ppo_config(init, 3840))
    summary = train(load_config(path), tmp_path / "ppo", log=lambda *a: None)
    success = summary["eval"][easy_env.ENV_ID]["success_rate"]
    assert success >= bc_success + 0.1, (bc_success, success)


def test_vla_ppo_logs_warms_up_its_critic_and_resumes(tmp_path, monkeypatch, weak_policy):
    import agents.vla.ppo as ppo
    from stable_baselines3.common.utils import explained_variance

    easy_env.register()
    init, _ = weak_policy
    path = write(tmp_path, "ppo", {**ppo_config(init, 576), "eval_episodes": 2})
    gae = []  # each rollout's critic values and GAE returns, as training saw them
    original_gae = ppo.compute_gae
    monkeypatch.setattr(ppo, "compute_gae", lambda rollout, *args: gae.append(
        (rollout.values, original_gae(rollout, *args)[1])) or original_gae(rollout, *args))
    train(load_config(path), tmp_path / "ppo", log=lambda *a: None)
    monkeypatch.undo()
    rows = (tmp_path / "ppo" / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "rollout/gt_return" in header and "train/critic_only" in header
    # The critic's explained variance of each rollout's GAE returns is logged.
    explained = [float(line.split(",")[header.index("train/explained_variance")])
                 for line in rows[1:]]
    expected = [explained_variance(values.ravel(), returns.ravel()) for values, returns in gae]
    np.testing.assert_allclose(explained, expected, rtol=1e-5, atol=1e-6)
    # With the ground-truth reward the learned return is the env's return (the value
    # bootstrap added at truncation is not part of either).
    for line in rows[1:]:
        values = line.split(",")
        gt = float(values[header.index("rollout/gt_return")])
        learned = float(values[header.index("rollout/learned_return")])
        assert learned == pytest.approx(gt, abs=1e-4)
    # The critic warms up first: the first two updates train the value head only.
    critic = [line.split(",")[header.index("train/critic_only")] for line in rows[1:4]]
    assert critic == ["1", "1", "0"]
    # Resume: a longer run continues from the last checkpoint.
    longer = load_config(path, ["ppo.n_timesteps=768"])
    resumed = train(longer, tmp_path / "ppo", resume=True, log=lambda *a: None)
    assert resumed["resumed_from"] == 576 and resumed["steps"] == 768


def test_gae_matches_hand_computed_values():
    # One env, three steps, the episode ends after the second: GAE restarts there and the
    # last step bootstraps from last_values.
    gamma, lam = 0.9, 0.5
    rollout = Rollout(images=np.zeros((3, 1, 1, 1, 3), np.uint8), texts=[[""]] * 3,
                      masks=[None] * 3, indices=torch.zeros(3, 1), log_probs=torch.zeros(3, 1),
                      values=np.array([[1.0], [2.0], [3.0]], np.float32),
                      rewards=np.array([[1.0], [0.0], [2.0]], np.float32),
                      dones=np.array([[False], [True], [False]]))
    advantages, returns = compute_gae(rollout, np.array([4.0], np.float32), gamma, lam)
    delta2 = 2.0 + gamma * 4.0 - 3.0            # 2.6
    delta1 = 0.0 - 2.0                           # done: no bootstrap, no carry-over
    delta0 = 1.0 + gamma * 2.0 - 1.0             # 1.8
    expected = np.array([[delta0 + gamma * lam * delta1], [delta1], [delta2]])
    np.testing.assert_allclose(advantages, expected, rtol=1e-6)
    np.testing.assert_allclose(returns, expected + rollout.values, rtol=1e-6)


def test_dpo_loss_matches_its_formula():
    values = [torch.tensor(v) for v in (-3.0, -3.5, -5.0, -4.0)]
    beta = 0.5
    expected = -np.log(1 / (1 + np.exp(-beta * ((-3.0 + 3.5) - (-5.0 + 4.0)))))
    assert float(dpo_loss(*values, beta)) == pytest.approx(expected, rel=1e-6)


def dpo_config(init, **dpo):
    return {"algo": "vla-dpo", "device": "cpu", "env": easy_env.ENV_ID, "eval_episodes": EVAL,
            "checkpoint_every": 1, "vla": {"init": str(init)},
            "dpo": {"rollouts": 96, "rollouts_per_start": 4, "pairs": 192, "teacher": "oracle",
                    "beta": 0.5, "nll_coef": 0.5, "epochs": 8, "lr": 3e-4, "batch_pairs": 4,
                    **dpo}}


@pytest.mark.slow
def test_vla_dpo_from_oracle_preferences_beats_the_bc_policy(tmp_path, weak_policy):
    easy_env.register()
    init, _ = weak_policy
    path = write(tmp_path, "dpo", dpo_config(init))
    summary = train(load_config(path), tmp_path / "dpo", log=lambda *a: None)
    after = summary["eval"][easy_env.ENV_ID]
    before = summary["eval_starting_policy"][easy_env.ENV_ID]
    # Better than the BC policy it started from: more ground-truth return, no less success.
    assert after["mean_return"] > before["mean_return"] + 0.5, (before, after)
    assert after["success_rate"] >= before["success_rate"] - 0.05


def test_vla_dpo_labels_same_start_pairs_and_resumes_without_relabelling(tmp_path, weak_policy):
    easy_env.register()
    init, bc_success = weak_policy
    path = write(tmp_path, "dpo", dpo_config(init, rollouts=16, pairs=16, epochs=2))
    summary = train(load_config(path), tmp_path / "dpo", log=lambda *a: None)
    before = summary["eval_starting_policy"][easy_env.ENV_ID]
    assert before["success_rate"] == pytest.approx(bc_success)  # the reference is the BC policy
    lines = (tmp_path / "dpo" / "preferences.jsonl").read_text().splitlines()
    labels = [json.loads(line) for line in lines]
    assert len(labels) == 16  # the oracle never skips
    from agents.dataset import read_lines

    seeds = [r["seed"] for r in read_lines(tmp_path / "dpo" / "rollouts" / "meta" /
                                           "episodes.jsonl")]
    assert all(seeds[r["a"]] == seeds[r["b"]] and r["a"] != r["b"] for r in labels)
    assert {record["source"] for record in labels} == {"oracle"}
    # Resume after the run: rollouts and labels are reused, not recorded again.
    before = (tmp_path / "dpo" / "preferences.jsonl").read_bytes()
    longer = load_config(path, ["dpo.epochs=3"])
    resumed = train(longer, tmp_path / "dpo", resume=True, log=lambda *a: None)
    assert resumed["resumed_from"] == 2
    assert (tmp_path / "dpo" / "preferences.jsonl").read_bytes() == before
    assert VLAPolicy.load(tmp_path / "dpo" / "policy", device="cpu").config.image_size == 32


def test_dpo_keeps_a_frozen_encoders_rollout_tokens_and_trains_as_without(
        tmp_path, monkeypatch, frozen_encoder_policy):
    """With a frozen registry encoder DPO encodes each paired rollout once for the whole
    run; the run then ends with the same parameters as one that encodes every pass."""
    from agents.vla import dpo

    easy_env.register()
    encoded = []
    original = VLAPolicy.encoder_tokens
    monkeypatch.setattr(VLAPolicy, "encoder_tokens",
                        lambda self, images: encoded.append(len(images)) or original(self, images))
    # Count DPO's own passes: not the rollouts' or the final evaluations' encodings.
    monkeypatch.setattr(dpo, "rollout_episodes", uncounted(dpo.rollout_episodes, encoded))
    monkeypatch.setattr(runs, "evaluate", uncounted(runs.evaluate, encoded))
    config = {**dpo_config(frozen_encoder_policy, rollouts=8, pairs=6, epochs=3),
              "eval_episodes": 1}
    parameters, encodings = {}, {}
    for gib in (8.0, 0.0):
        run = tmp_path / f"cache-{gib:g}"
        path = write(tmp_path, f"dpo-{gib:g}", {**config, "dpo": {**config["dpo"],
                                                                  "encoder_cache_gib": gib}})
        train(load_config(path), run, log=lambda *a: None)
        parameters[gib] = VLAPolicy.load(run / "policy", device="cpu").state_dict()
        encodings[gib] = encoded.copy()
        encoded.clear()
    for name, value in parameters[8.0].items():
        assert torch.allclose(value, parameters[0.0][name], atol=1e-5), name
    pairs = [json.loads(line) for line in
             (tmp_path / "cache-8" / "preferences.jsonl").read_text().splitlines()]
    decided = {p[key] for p in pairs if p["label"] != 0.5 for key in ("a", "b")}
    assert decided, "the test needs decided pairs"
    assert len(encodings[8.0]) == len(decided)  # once per paired rollout, then kept
    # Without the cache: the reference pass, then both rollouts of each pair, each epoch.
    assert len(encodings[0.0]) > len(decided) * 3


def uncounted(function, encoded):
    """``function`` with the encoder calls it makes left out of ``encoded``."""
    def wrapper(*args, **kwargs):
        before = len(encoded)
        result = function(*args, **kwargs)
        result = list(result) if not isinstance(result, dict) else result
        del encoded[before:]
        return result
    return wrapper


def test_group_advantages_match_hand_computed_values():
    returns = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.0, 4.0, 0.0]])
    advantages = group_advantages(returns)
    spread = np.sqrt(2 / 3)  # population std of 1, 2, 3
    np.testing.assert_allclose(advantages[0], [-1 / spread, 0, 1 / spread], rtol=1e-5)
    np.testing.assert_array_equal(advantages[1], [0, 0, 0])  # nothing to compare
    spread = np.sqrt(32 / 9)  # mean 4/3; deviations -4/3, 8/3, -4/3
    np.testing.assert_allclose(advantages[2], [-4 / 3 / spread, 8 / 3 / spread,
                                               -4 / 3 / spread], rtol=1e-5)
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_advantages(np.ones((3, 1)))


def test_grpo_chunks_and_minibatches():
    # Groups are played parallel // group_size at a time, at least one.
    settings = VLAGRPOSettings(groups=5, group_size=4, parallel=8)
    assert settings.chunks() == [range(0, 2), range(2, 4), range(4, 5)]
    assert VLAGRPOSettings(groups=2, group_size=4, parallel=3).chunks() == [range(0, 1),
                                                                           range(1, 2)]
    generator = torch.Generator().manual_seed(0)
    one = minibatches(10, 4, 1, generator)
    assert [len(rows) for rows in one] == [4, 4, 2]
    assert sorted(torch.cat(one).tolist()) == list(range(10))
    # A last minibatch of one row cannot be shared by two processes: it joins the one before.
    two = minibatches(9, 4, 2, generator)
    assert [len(rows) for rows in two] == [4, 5]
    assert sorted(torch.cat(two).tolist()) == list(range(9))


def test_kl_estimate_is_k3():
    log_prob = torch.tensor([-1.0, -2.0, -0.5])
    reference = torch.tensor([-1.0, -1.0, -2.0])
    expected = [np.exp(r - p) - (r - p) - 1 for p, r in zip(log_prob.tolist(),
                                                                reference.tolist())]
    np.testing.assert_allclose(kl_estimate(log_prob, reference).numpy(), expected, rtol=1e-6)
    assert float(kl_estimate(log_prob, reference)[0]) == 0.0


def grpo_config(init, **grpo):
    return {"algo": "vla-grpo", "device": "cpu", "env": easy_env.ENV_ID, "eval_episodes": EVAL,
            "checkpoint_every": 4, "vla": {"init": str(init)},
            # Groups of 12: the BC policy is peaked, and smaller groups from the starts it
            # fails on rarely hold a rollout that differs (no signal). Measured with these
            # settings (one thread, as here): success after 12 iterations rises from the
            # BC policy's on seeds 1, 2, 3 (+0.33, +0.21, +0.21) and stays put on seeds 0
            # and 4 (the peaked policy's one wrong action is never sampled); seed 1 is
            # used. With the advantages' sign flipped, seed 1 ends at 0.0: the test
            # catches it.
            "seed": 1,
            "grpo": {"iterations": 12, "groups": 8, "group_size": 12, "n_epochs": 4,
                     "batch_size": 128, "lr": 3e-4, "kl_coef": 0.0, "parallel": 24, **grpo}}


@pytest.mark.slow
def test_vla_grpo_raises_success(tmp_path, weak_policy):
    easy_env.register()
    init, _ = weak_policy
    path = write(tmp_path, "grpo", grpo_config(init))
    summary = train(load_config(path), tmp_path / "grpo", log=lambda *a: None)
    after = summary["eval"][easy_env.ENV_ID]["success_rate"]
    before = summary["eval_starting_policy"][easy_env.ENV_ID]["success_rate"]
    assert after >= before + 0.1, (before, after)


def test_vla_grpo_scores_its_starting_policy_logs_and_resumes(tmp_path, weak_policy):
    easy_env.register()
    init, _ = weak_policy
    path = write(tmp_path, "grpo", {**grpo_config(init, iterations=2, groups=2, group_size=4,
                                                  parallel=8, batch_size=8),
                                    "eval_episodes": 4, "checkpoint_every": 1})
    summary = train(load_config(path), tmp_path / "grpo", log=lambda *a: None)
    # The starting policy is scored on the run's own held-out seeds (seed 1's).
    before = summary["eval_starting_policy"]
    assert before == runs.evaluate(VLAPolicy.load(init, device="cpu"), load_config(path))
    header = (tmp_path / "grpo" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"grpo/groups_with_signal", "rollout/gt_return"} <= set(header)
    longer = load_config(path, ["grpo.iterations=3"])
    resumed = train(longer, tmp_path / "grpo", resume=True, log=lambda *a: None)
    assert resumed["resumed_from"] == 2 and resumed["iterations"] == 3


def test_grpo_against_a_learned_reward_scores_each_rollouts_rendered_frames(tmp_path,
                                                                          monkeypatch,
                                                                          weak_policy):
    """With a pixel reward, a group's returns are the module's scores of its rollouts'
    rendered frames, summed; the advantages are computed from them; the ground truth
    is still what the log's gt_return and the evaluation report."""
    import agents.vla.grpo as grpo
    import rewards

    easy_env.register()
    init, _ = weak_policy
    module = rewards.make("preference", ensemble_size=1, image_size=8, channels=[4],
                          hidden_size=4, device="cpu")
    rewards.save(module, tmp_path / "reward")
    config = {**grpo_config(init, iterations=1, groups=2, group_size=4, parallel=8,
                            batch_size=16),
              "eval_episodes": 2, "reward": "preference",
              "reward_checkpoint": str(tmp_path / "reward")}
    scored, advantaged = [], []
    original_returns, original_advantages = grpo.rollout_returns, grpo.group_advantages
    monkeypatch.setattr(grpo, "rollout_returns", lambda reward, episodes: scored.append(
        (episodes, original_returns(reward, episodes))) or scored[-1][1])
    monkeypatch.setattr(grpo, "group_advantages", lambda returns: advantaged.append(returns)
                        or original_advantages(returns))
    summary = train(load_config(write(tmp_path, "grpo", config)), tmp_path / "grpo",
                    log=lambda *a: None)
    episodes = [e for chunk, _ in scored for e in chunk]
    assert len(episodes) == 8 and all(len(e.frames) == len(e) for e in episodes)
    expected = [module(e.frames, [e.instruction] * len(e)).sum() for e in episodes]
    np.testing.assert_allclose(np.concatenate([r for _, r in scored]), expected, rtol=1e-5)
    np.testing.assert_allclose(advantaged[0].reshape(-1), expected, rtol=1e-5)
    assert not np.allclose(expected, [e.ground_truth_return for e in episodes])
    rows = list(csv.DictReader((tmp_path / "grpo" / "progress.csv").open()))
    assert float(rows[0]["rollout/learned_return"]) == pytest.approx(np.mean(expected), rel=1e-5)
    assert float(rows[0]["rollout/gt_return"]) == pytest.approx(
        np.mean([e.ground_truth_return for e in episodes]), rel=1e-5)
    assert summary["reward"] == "preference"
    with pytest.raises(ValueError, match="reward_frames must be 'render'"):
        load_config(write(tmp_path, "bad", {**config, "reward_frames": "observation"}))


@pytest.fixture(scope="module")
def frozen_encoder_policy(tmp_path_factory):
    """A saved VLA policy on the frozen ImageNet EfficientNet-Lite0 (2 BC steps)."""
    easy_env.register()
    root = tmp_path_factory.mktemp("frozen")
    collect_dataset(easy_env.ENV_ID, 2, str(root / "data"), log=lambda *a: None)
    bc = write(root, "bc", {
        "algo": "vla-bc", "device": "cpu", "eval_episodes": 1, "checkpoint_every": 1000,
        "datasets": [str(root / "data")],
        "vla": {"preset": "tiny", "image_encoder": "registry",
                "vision_encoder": "efficientnet_lite0", "image_size": 32, "vision_grid": 1},
        "bc": {"steps": 2, "batch_size": 8, "warmup": 1, "log_every": 1}})
    train(load_config(bc), root / "bc", log=lambda *a: None)
    return root / "bc" / "policy"


def test_grpo_encodes_a_frozen_encoders_frames_once_per_iteration(tmp_path, monkeypatch,
                                                                  frozen_encoder_policy):
    """With a frozen registry encoder the step batch carries its tokens, computed once;
    the update's passes then never run the encoder, and score as encoding would."""
    easy_env.register()
    config = load_config(write(tmp_path, "grpo", grpo_config(
        frozen_encoder_policy, groups=2, group_size=2, parallel=4, batch_size=16)))
    policy = VLAPolicy.load(frozen_encoder_policy, device="cpu")
    assert policy.image_encoder_frozen
    env = gym.make(easy_env.ENV_ID)
    spec = ActionSpec.of(env.action_space)
    env.close()
    groups, _ = play_groups(policy, config, build_reward(config, "cpu"), 0, distributed.world())
    batch = step_batch(policy, groups, np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32), spec)
    live = {**batch, "encoder_tokens": None}
    with torch.no_grad():
        expected = policy.encoder_tokens(policy.preprocess(batch["images"]))
    assert torch.allclose(batch["encoder_tokens"], expected, atol=1e-5)
    assert torch.allclose(all_log_probs(policy, batch, spec), all_log_probs(policy, live, spec),
                          atol=1e-5)
    encoded = []
    original = VLAPolicy.encoder_tokens
    monkeypatch.setattr(VLAPolicy, "encoder_tokens",
                        lambda self, images: encoded.append(len(images)) or original(self, images))
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    stats = grpo_update(policy, None, optimizer, batch, spec, config.grpo,
                        torch.Generator().manual_seed(0),
                        GroupRelativeLoss(policy, spec, config.grpo))
    assert encoded == [] and np.isfinite(stats["policy_loss"])
    all_log_probs(policy, live, spec)
    assert sum(encoded) == len(batch["texts"])  # without the tokens it encodes again


def test_ppo_keeps_a_frozen_encoders_rollout_tokens_for_its_update(tmp_path, monkeypatch,
                                                                  frozen_encoder_policy,
                                                                  weak_policy):
    """With a frozen registry encoder the rollout keeps the tokens it computed for each
    frame; the update then never runs the encoder. An encoder that trains keeps none."""
    easy_env.register()
    config = load_config(write(tmp_path, "ppo", {
        **ppo_config(frozen_encoder_policy, 64),
        "ppo": {"n_timesteps": 64, "n_envs": 2, "n_steps": 16, "batch_size": 8, "n_epochs": 2,
                "critic_warmup": 0}}))
    s = config.ppo
    policy = VLAPolicy.load(frozen_encoder_policy, device="cpu")
    assert policy.image_encoder_frozen
    reward = build_reward(config, "cpu")

    def rollout_of(policy):
        venv, layer = make_training_env(config.env, config.env_kwargs, reward, s.n_envs, seed=0)
        spec = ActionSpec.of(venv.action_space)
        try:
            return collect_rollout(policy, venv, layer, reward, spec, initial_state(venv), s), spec
        finally:
            venv.close()

    rollout, spec = rollout_of(policy)
    flat_images = rollout.images.reshape(-1, *rollout.images.shape[2:])
    with torch.no_grad():
        expected = policy.encoder_tokens(policy.preprocess(flat_images))
    assert rollout.encoder_tokens.shape[:2] == (s.n_steps, s.n_envs)
    assert torch.allclose(rollout.encoder_tokens.flatten(0, 1), expected, atol=1e-5)
    encoded = []
    original = VLAPolicy.encoder_tokens
    monkeypatch.setattr(VLAPolicy, "encoder_tokens",
                        lambda self, images: encoded.append(len(images)) or original(self, images))
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    advantages = np.random.default_rng(0).normal(size=rollout.rewards.shape).astype(np.float32)
    stats = ppo_update(policy, optimizer, rollout, advantages, advantages, spec, s, False)
    assert encoded == [] and np.isfinite(stats["policy_loss"]).all()
    # A conv-stem policy trains its image encoder: nothing to keep.
    conv_rollout, _ = rollout_of(VLAPolicy.load(weak_policy[0], device="cpu"))
    assert conv_rollout.encoder_tokens is None
