"""The preference-learned reward: Bradley-Terry loss, ensemble, training, save/load,
query selection, and an end-to-end run on Push-v0 with the oracle teacher."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

import rewards
from rewards.preference import (
    PreferenceReward,
    bradley_terry_loss,
    normalise,
    shift_images,
    train_preference_reward,
)
from rewards.preference_store import PreferencePairs, PreferenceStore
from rewards.query import (
    SegmentPairs,
    draw_queries,
    query_scores,
    sample_segment_pairs,
    select_queries,
)
from rewards.teachers import make_teacher
from tests.preference_data import brightness_pairs

TINY = {"ensemble_size": 2, "image_size": 8, "channels": (4, 8), "hidden_size": 8}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These networks are tiny: with several threads, OpenMP synchronisation costs more
    than the arithmetic, up to 30x more on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# -- Bradley-Terry ---------------------------------------------------------------------


def test_bradley_terry_loss_and_gradient_match_hand_computed_values():
    # Two 1-step segments with rewards 1 and 0: P[a > b] = e / (e + 1) = sigmoid(1).
    p = math.e / (math.e + 1)
    for label, loss, grad_a in [
        (1.0, -math.log(p), -(1 - p)),  # dL/dR_a = P - y
        (0.0, -math.log(1 - p), p),
        (0.5, -0.5 * math.log(p) - 0.5 * math.log(1 - p), p - 0.5),
    ]:
        r_a = torch.tensor([1.0], requires_grad=True)
        r_b = torch.tensor([0.0], requires_grad=True)
        value = bradley_terry_loss(r_a, r_b, torch.tensor([label]))
        value.backward()
        assert value.item() == pytest.approx(loss, rel=1e-6)
        assert r_a.grad.item() == pytest.approx(grad_a, rel=1e-6)
        assert r_b.grad.item() == pytest.approx(-grad_a, rel=1e-6)
    # The batch loss is the mean, so each pair's gradient is divided by the batch size.
    r_a = torch.tensor([1.0, 2.0], requires_grad=True)
    value = bradley_terry_loss(r_a, torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.5]))
    value.backward()
    assert value.item() == pytest.approx((-math.log(p) + math.log(2)) / 2, rel=1e-6)
    np.testing.assert_allclose(r_a.grad.numpy(), [-(1 - p) / 2, 0.0], atol=1e-7)


def test_preference_probability_is_the_softmax_of_summed_frame_rewards():
    model = PreferenceReward(**TINY)
    rng = np.random.default_rng(0)
    frames_a = rng.integers(0, 256, (3, 4, 8, 8, 3), dtype=np.uint8)
    frames_b = rng.integers(0, 256, (3, 4, 8, 8, 3), dtype=np.uint8)
    per_frame = [model.member_rewards(f.reshape(-1, 8, 8, 3)).reshape(2, 3, 4).astype(np.float64)
                 for f in (frames_a, frames_b)]
    sum_a, sum_b = per_frame[0].sum(axis=2), per_frame[1].sum(axis=2)
    expected = np.exp(sum_a) / (np.exp(sum_a) + np.exp(sum_b))
    np.testing.assert_allclose(model.preference_probabilities(frames_a, frames_b), expected,
                               rtol=1e-5)


def test_training_learns_a_preference_and_reports_accuracy():
    model = PreferenceReward(**TINY)
    data = brightness_pairs(64, seed=1)
    metrics = train_preference_reward(model, data, epochs=30, batch_size=16, lr=3e-3)
    assert len(metrics.losses) == len(metrics.accuracies) == 30
    assert metrics.losses[-1] < metrics.losses[0]
    assert metrics.accuracy > 0.9 and len(metrics.member_accuracies) == 2
    assert metrics.pairs == 64 and metrics.seconds > 0
    greys = np.repeat(np.linspace(0, 255, 6).astype(np.uint8), 8 * 8 * 3).reshape(6, 8, 8, 3)
    assert np.all(np.diff(model(greys, [""] * 6)) > 0)  # brighter scores higher


def test_ties_train_toward_one_half():
    model = PreferenceReward(**TINY)
    data = brightness_pairs(32, seed=2)
    train_preference_reward(model, data, epochs=40, batch_size=16, lr=3e-3)
    before = model.preference_probabilities(data.frames_a, data.frames_b)
    assert np.abs(before - 0.5).mean() > 0.2
    ties = PreferencePairs(data.frames_a, data.frames_b, np.full(32, 0.5, np.float32))
    metrics = train_preference_reward(model, ties, epochs=40, batch_size=16, lr=3e-3)
    after = model.preference_probabilities(data.frames_a, data.frames_b)
    assert np.abs(after - 0.5).mean() < 0.05
    assert math.isnan(metrics.accuracy)  # no decided pair to be right about


def test_two_view_frames_are_scored_from_both_views(tmp_path):
    # The preference depends on the right-hand view only: a module that squashed or
    # dropped a view could not learn it.
    rng = np.random.default_rng(7)
    model = PreferenceReward(**TINY, views=2)
    data = brightness_pairs(64, seed=5)
    noise = rng.integers(0, 256, data.frames_a.shape, dtype=np.uint8)
    wide = PreferencePairs(np.concatenate([noise, data.frames_a], axis=3),
                           np.concatenate([noise[::-1], data.frames_b], axis=3), data.labels)
    metrics = train_preference_reward(model, wide, epochs=30, batch_size=16, lr=3e-3)
    assert metrics.accuracy > 0.9
    greys = np.repeat(np.linspace(0, 255, 6).astype(np.uint8), 8 * 8 * 3).reshape(6, 8, 8, 3)
    left = np.broadcast_to(noise[0, 0], greys.shape)
    assert np.all(np.diff(model(np.concatenate([left, greys], axis=2), [""] * 6)) > 0)
    # Frames of any size with the right aspect are resized; others are refused.
    assert model(rng.integers(0, 256, (2, 20, 40, 3), dtype=np.uint8), ["", ""]).shape == (2,)
    with pytest.raises(ValueError, match="do not hold 2 square views"):
        model(np.zeros((1, 8, 8, 3), np.uint8), [""])
    with pytest.raises(ValueError, match="made for one view: make it with views=2"):
        PreferenceReward(**TINY)(np.zeros((1, 8, 16, 3), np.uint8), [""])
    rewards.save(model, tmp_path / "model")
    loaded = rewards.load(tmp_path / "model")
    assert loaded.views == 2 and loaded.architecture() == model.architecture()
    with pytest.raises(ValueError, match=r"views=1 \(checkpoint: 2\)"):
        rewards.make("preference", checkpoint=tmp_path / "model", views=1)
    for bad in (0, 9, 1.5, True):
        with pytest.raises(ValueError, match="views must be an integer"):
            PreferenceReward(**TINY, views=bad)


def test_min_over_views_fits_each_view_alone_and_scores_the_lowest(tmp_path):
    data = brightness_pairs(64, seed=5)
    wide = PreferencePairs(np.concatenate([data.frames_a, data.frames_a], axis=3),
                           np.concatenate([data.frames_b, data.frames_b], axis=3), data.labels)
    model = PreferenceReward(**TINY, views=2, view_rewards="min")
    metrics = train_preference_reward(model, wide, epochs=30, batch_size=16, lr=3e-3)
    assert metrics.accuracy > 0.9
    greys = np.repeat(np.linspace(0, 255, 6).astype(np.uint8), 8 * 8 * 3).reshape(6, 8, 8, 3)
    with torch.no_grad():  # every view learned the preference itself
        images = normalise(model.prepare(np.concatenate([greys, greys], axis=2))).float()
        for member in model.network.members:
            assert torch.all(torch.diff(member.view_rewards(images), dim=1) > 0)
    bright, dark = greys[[5]], greys[[0]]
    scores = model(np.concatenate([np.concatenate([bright, bright], axis=2),
                                   np.concatenate([bright, dark], axis=2),
                                   np.concatenate([dark, bright], axis=2)]), [""] * 3)
    assert scores[1] < scores[0] and scores[2] < scores[0]  # one dark view pulls it down
    with torch.no_grad():
        images = normalise(model.prepare(np.concatenate([bright, dark], axis=2))).float()
        lowest = [member.view_rewards(images).min().item() for member in model.network.members]
    assert scores[1] == pytest.approx(np.mean(lowest), rel=1e-5)
    rewards.save(model, tmp_path / "model")
    loaded = rewards.load(tmp_path / "model")
    assert loaded.view_rewards == "min"
    np.testing.assert_allclose(loaded(np.concatenate([bright, dark], axis=2), [""]), scores[1:2],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="give views >= 2"):
        PreferenceReward(**TINY, view_rewards="min")
    with pytest.raises(ValueError, match="view_rewards must be one of"):
        PreferenceReward(**TINY, views=2, view_rewards="mean")


def test_random_shift_moves_each_view_within_itself():
    left = torch.zeros(6, 3, 8, 8, dtype=torch.uint8)
    right = torch.full((6, 3, 8, 8), 255, dtype=torch.uint8)
    right[:, :, :, 0] = 7  # a marked edge, to see that the right view did move
    shifted = shift_images(torch.cat([left, right], dim=3), 3, np.random.default_rng(0), views=2)
    assert shifted.shape == (6, 3, 8, 16)
    assert torch.all(shifted[..., :8] == 0)  # nothing of the right view slid in
    assert set(shifted[..., 8:].unique().tolist()) <= {7, 255}
    assert not torch.equal(shifted[..., 8:], right)


def test_a_checkpoint_saved_before_views_existed_loads_as_one_view(tmp_path):
    model = PreferenceReward(**TINY)
    rewards.save(model, tmp_path / "model")
    config_file = tmp_path / "model" / "config.json"
    header = json.loads(config_file.read_text())
    del header["config"]["views"]
    config_file.write_text(json.dumps(header))
    loaded = rewards.load(tmp_path / "model")
    assert loaded.views == 1
    frames = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded(frames, [""] * 3), model(frames, [""] * 3), rtol=1e-6)


def test_bootstrap_and_random_shift_train_from_a_store(tmp_path):
    store = PreferenceStore(tmp_path / "prefs")
    data = brightness_pairs(48, seed=3, size=12)
    store.append(data.frames_a, data.frames_b, data.labels, "oracle")
    model = PreferenceReward(**TINY)
    metrics = train_preference_reward(model, store, epochs=25, batch_size=16, lr=3e-3,
                                      bootstrap=True, random_shift=2, seed=1)
    assert metrics.accuracy > 0.85
    # Training is reproducible from its seed.
    again = PreferenceReward(**TINY)
    train_preference_reward(again, store, epochs=25, batch_size=16, lr=3e-3,
                            bootstrap=True, random_shift=2, seed=1)
    greys = data.frames_a[:, 0]
    np.testing.assert_allclose(model(greys, [""] * 48), again(greys, [""] * 48), atol=1e-5)
    # By default the shift is image_size // 16 pixels: 0 for this 8-pixel model...
    unshifted = PreferenceReward(**TINY)
    train_preference_reward(unshifted, store, epochs=2, seed=1)
    explicit = PreferenceReward(**TINY)
    train_preference_reward(explicit, store, epochs=2, seed=1, random_shift=0)
    np.testing.assert_array_equal(unshifted(greys, [""] * 48), explicit(greys, [""] * 48))
    # ...and 2 for a 32-pixel one.
    wide = {**TINY, "image_size": 32}
    models = [PreferenceReward(**wide) for _ in range(3)]
    for model_, shift in zip(models, (None, 2, 0)):
        train_preference_reward(model_, store, epochs=2, seed=1, random_shift=shift)
    scores = [model_(greys, [""] * 48) for model_ in models]
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.array_equal(scores[0], scores[2])
    with pytest.raises(ValueError, match="random_shift"):
        train_preference_reward(model, store, random_shift=4)
    with pytest.raises(ValueError, match="no labelled pairs"):
        train_preference_reward(model, PreferencePairs(data.frames_a[:0], data.frames_b[:0],
                                                       data.labels[:0]))


def test_random_shift_translates_whole_images_with_repeated_edges():
    # 60 images, 25 possible offsets: images share offsets, and every image must move
    # by its own (images are moved in groups of equal offset).
    images = torch.arange(60 * 2 * 16, dtype=torch.float32).view(60, 2, 4, 4)
    rng = np.random.default_rng(0)
    shifted = shift_images(images, 2, rng)
    offsets = np.random.default_rng(0).integers(0, 5, size=(60, 2))
    assert len({tuple(o) for o in offsets}) > 15
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="replicate")
    for index, (row, col) in enumerate(offsets):
        torch.testing.assert_close(shifted[index], padded[index, :, row:row + 4, col:col + 4])
    as_uint8 = shift_images((images % 256).to(torch.uint8), 2, np.random.default_rng(0))
    assert as_uint8.dtype == torch.uint8
    torch.testing.assert_close(as_uint8.float(), shifted % 256)


# -- the module ------------------------------------------------------------------------


def test_reward_is_the_ensemble_mean_of_per_member_rewards():
    model = rewards.make("preference", **TINY)
    assert model.name == "preference" and "preference" in rewards.names()
    frames = np.random.default_rng(0).integers(0, 256, (5, 20, 30, 3), dtype=np.uint8)
    members = model.member_rewards(frames)  # any frame size: resized to image_size
    assert members.shape == (2, 5) and members.dtype == np.float32
    assert np.all(np.abs(members) < 1)  # tanh outputs
    np.testing.assert_allclose(model(frames, ["push"] * 5), members.mean(axis=0), rtol=1e-6)
    assert members.std(axis=0).max() > 0  # members differ: their spread is the uncertainty
    keys = set(model.tensors())
    assert {key.split(".")[1] for key in keys} == {"0", "1"}
    assert all(key.startswith("members.") for key in keys)


def test_bad_arguments_and_frames_are_refused():
    with pytest.raises(TypeError, match="valid ones are"):
        rewards.make("preference", ensemble=3)
    with pytest.raises(ValueError, match="ensemble_size"):
        PreferenceReward(ensemble_size=0)
    with pytest.raises(ValueError, match="image_size"):
        PreferenceReward(image_size=4)
    with pytest.raises(ValueError, match="channels"):
        PreferenceReward(channels=())
    model = PreferenceReward(**TINY)
    with pytest.raises(ValueError, match="uint8"):
        model(np.zeros((1, 8, 8, 3), np.float32), [""])
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        model(np.zeros((8, 8, 3), np.uint8), [""])
    with pytest.raises(ValueError, match="one shape"):
        model.preference_probabilities(np.zeros((1, 2, 8, 8, 3), np.uint8),
                                       np.zeros((1, 3, 8, 8, 3), np.uint8))


def test_save_load_round_trip_gives_identical_rewards(tmp_path):
    model = PreferenceReward(ensemble_size=3, image_size=16, channels=(4, 8, 8), hidden_size=16,
                             seed=5)
    train_preference_reward(model, brightness_pairs(16, seed=4), epochs=2, lr=1e-2)
    rewards.save(model, tmp_path / "model")
    frames = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    expected = model(frames, [""] * 6)
    for loaded in (rewards.load(tmp_path / "model"),
                   rewards.make("preference", checkpoint=tmp_path / "model"),
                   rewards.make("preference", checkpoint=str(tmp_path / "model"), ensemble_size=3,
                                batch_size=2)):
        assert loaded.architecture() == model.architecture()
        # Equal up to float rounding: a different batch size may sum in another order.
        np.testing.assert_allclose(loaded(frames, [""] * 6), expected, rtol=1e-5, atol=1e-7)
    # A fresh module of the same architecture differs: the weights really were loaded.
    assert not np.allclose(PreferenceReward(**model.architecture(), seed=6)(frames, [""] * 6),
                           expected)
    with pytest.raises(ValueError, match=r"another architecture.*ensemble_size=5 \(checkpoint: 3\)"):
        rewards.make("preference", checkpoint=tmp_path / "model", ensemble_size=5)
    with pytest.raises(ValueError, match="channels"):
        rewards.make("preference", checkpoint=tmp_path / "model", channels=(4, 8))


def test_corrupt_truncated_and_foreign_weights_give_clear_errors(tmp_path):
    rewards.save(PreferenceReward(**TINY), tmp_path / "good")
    weights = (tmp_path / "good" / "weights.safetensors").read_bytes()

    def folder_with(name, weights_bytes, config_changes=None):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "good", folder)
        (folder / "weights.safetensors").write_bytes(weights_bytes)
        if config_changes:
            header = json.loads((folder / "config.json").read_text())
            header["config"].update(config_changes)
            (folder / "config.json").write_text(json.dumps(header))
        return folder

    truncated = folder_with("truncated", weights[: len(weights) // 2])
    corrupt = folder_with("corrupt", b"\x00" * 8 + weights[8:])
    for folder in (truncated, corrupt):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            rewards.load(folder)
        with pytest.raises(ValueError, match="corrupt or truncated"):
            rewards.make("preference", checkpoint=folder)
    # Weights of a 2-member ensemble under a config that says 3 members, or other channels.
    for changes in ({"ensemble_size": 3}, {"channels": [4, 16]}):
        foreign = folder_with(f"foreign-{len(changes['channels']) if 'channels' in changes else 3}",
                              weights, changes)
        with pytest.raises(ValueError, match="another architecture"):
            rewards.load(foreign)
    config = tmp_path / "good" / "config.json"
    config.write_text(config.read_text()[:20])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        rewards.make("preference", checkpoint=tmp_path / "good")
    rewards.save(rewards.make("ground_truth"), tmp_path / "other")
    with pytest.raises(ValueError, match="'ground_truth' reward module, not 'preference'"):
        rewards.make("preference", checkpoint=tmp_path / "other")


# -- query selection -------------------------------------------------------------------


class Trajectory:
    def __init__(self, frames, env_rewards, instruction):
        self.frames, self.env_rewards, self.instruction = frames, env_rewards, instruction


def numbered_trajectories(count: int = 3, steps: int = 12):
    """Frame t of episode e has every pixel equal to 20 e + t; its reward is 100 e + t."""
    return [Trajectory(np.full((steps, 4, 4, 3), 20 * e, np.uint8)
                       + np.arange(steps, dtype=np.uint8)[:, None, None, None],
                       (100 * e + np.arange(steps)).astype(np.float32), f"task {e}")
            for e in range(count)]


def test_segment_pairs_are_slices_of_the_trajectories():
    trajectories = numbered_trajectories()
    pairs = sample_segment_pairs(trajectories, 50, segment_length=5, rng=0)
    assert pairs.frames_a.shape == (50, 5, 4, 4, 3) and pairs.rewards_b.shape == (50, 5)
    for row in range(50):
        episode_a, start_a, episode_b, start_b = pairs.origins[row]
        np.testing.assert_array_equal(pairs.frames_a[row],
                                      trajectories[episode_a].frames[start_a:start_a + 5])
        np.testing.assert_array_equal(pairs.rewards_b[row],
                                      trajectories[episode_b].env_rewards[start_b:start_b + 5])
        assert pairs.instructions[row] == f"task {episode_a}"
    assert set(pairs.origins[:, 1]) == set(range(8))  # every start that fits, the last too
    again = sample_segment_pairs(trajectories, 50, segment_length=5, rng=0)
    np.testing.assert_array_equal(again.origins, pairs.origins)
    with pytest.raises(ValueError, match="segment_length"):
        sample_segment_pairs(trajectories, 5, segment_length=13)


def test_same_episode_pairs_hold_the_scene_fixed():
    trajectories = numbered_trajectories(count=4, steps=6)
    pairs = sample_segment_pairs(trajectories, 400, segment_length=3, rng=0,
                                 pairing="same_episode")
    episode_a, start_a, episode_b, start_b = pairs.origins.T
    np.testing.assert_array_equal(episode_a, episode_b)
    assert (start_a != start_b).all()
    assert set(episode_a) == {0, 1, 2, 3}
    # Every ordered pair of different starts that fit (4 starts: 12 pairs) is drawn.
    assert set(zip(start_a, start_b)) == {(i, j) for i in range(4) for j in range(4) if i != j}
    for row in range(len(pairs)):
        np.testing.assert_array_equal(
            pairs.rewards_b[row],
            trajectories[episode_b[row]].env_rewards[start_b[row]:start_b[row] + 3])
    with pytest.raises(ValueError, match="two different starts"):
        sample_segment_pairs(trajectories, 5, segment_length=6, pairing="same_episode")
    with pytest.raises(ValueError, match="unknown pairing 'nearby'"):
        sample_segment_pairs(trajectories, 5, segment_length=3, pairing="nearby")
    queries = draw_queries(trajectories, 5, 20, 3, rng=1, pairing="same_episode")
    assert (queries.origins[:, 0] == queries.origins[:, 2]).all()


class FixedProbabilities:
    """A stand-in ensemble whose member preference probabilities are given."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities)

    def preference_probabilities(self, frames_a, frames_b):
        return self.probabilities


def test_disagreement_and_entropy_pick_the_most_uncertain_candidates():
    candidates = sample_segment_pairs(numbered_trajectories(), 5, segment_length=2, rng=0)
    model = FixedProbabilities([  # members x candidates
        [0.5, 0.9, 0.1, 0.99, 0.6],
        [0.5, 0.1, 0.9, 0.98, 0.6],
        [0.5, 0.5, 0.1, 0.97, 0.4],
    ])
    disagreement = query_scores(candidates, "disagreement", model)
    np.testing.assert_allclose(disagreement, model.probabilities.std(axis=0))
    assert select_queries(candidates, 2, "disagreement", model).tolist() == [2, 1]
    mean = model.probabilities.mean(axis=0)
    entropy = -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean))
    np.testing.assert_allclose(query_scores(candidates, "entropy", model), entropy)
    # mean probabilities 0.5, 0.5, 0.367, 0.98, 0.533: ties keep pool order
    assert select_queries(candidates, 3, "entropy", model).tolist() == [0, 1, 4]


def test_uniform_queries_are_a_seeded_subset_and_need_no_model():
    candidates = sample_segment_pairs(numbered_trajectories(), 20, segment_length=3, rng=0)
    chosen = select_queries(candidates, 8, "uniform", rng=1)
    assert len(set(chosen.tolist())) == 8 and chosen.max() < 20
    np.testing.assert_array_equal(chosen, select_queries(candidates, 8, "uniform", rng=1))


def test_draw_queries_keeps_the_best_of_a_larger_pool():
    trajectories = numbered_trajectories(steps=8)
    model = PreferenceReward(**TINY)
    queries = draw_queries(trajectories, query_batch=4, pool_size=30, segment_length=3,
                           method="disagreement", model=model, rng=7)
    pool = sample_segment_pairs(trajectories, 30, 3, np.random.default_rng(7))
    scores = query_scores(pool, "disagreement", model)
    assert isinstance(queries, SegmentPairs) and len(queries) == 4
    best = np.argsort(-scores, kind="stable")[:4]
    np.testing.assert_array_equal(queries.origins, pool.origins[best])
    labels = make_teacher("oracle").label_pairs(queries)
    assert labels.shape == (4,)
    with pytest.raises(ValueError, match="pool_size"):
        draw_queries(trajectories, 10, 5, 3)
    with pytest.raises(ValueError, match="unknown query method 'random'"):
        draw_queries(trajectories, 2, 5, 3, method="random")
    with pytest.raises(ValueError, match="needs the reward ensemble"):
        draw_queries(trajectories, 2, 5, 3, method="entropy")


# -- end to end ------------------------------------------------------------------------


def test_oracle_preferences_on_push_teach_a_reward_that_tracks_progress():
    """Expert, random and noisy Push-v0 episodes at 32x32, 200 oracle-labelled pairs of
    10-step segments, a short training run; on held-out episodes the learned reward
    must rank frames like ``info["progress"]`` does."""
    from agents.metrics import spearman
    from agents.rollouts import collect_episodes

    policies = ["expert", "random", "noisy(0.5)"]
    train = collect_episodes("vmalign/Push-v0", policies, 3, seed=0, render_size=32)
    held_out = collect_episodes("vmalign/Push-v0", policies, 2, seed=100, render_size=32)
    pairs = sample_segment_pairs(train, 200, segment_length=10, rng=0)
    teacher = make_teacher("oracle")
    data = PreferencePairs(pairs.frames_a, pairs.frames_b, teacher.label_pairs(pairs))
    model = PreferenceReward(ensemble_size=1, image_size=32, seed=0)
    metrics = train_preference_reward(model, data, epochs=10, batch_size=16, lr=1e-3)
    assert metrics.accuracy > 0.8
    frames = np.concatenate([episode.frames for episode in held_out])
    progress = np.concatenate([episode.progress for episode in held_out])
    correlation = spearman(model(frames, [""] * len(frames)), progress)
    assert correlation > 0.5, correlation  # chance: 0 +- 0.04 over these 600 frames


def test_disagreement_penalty_subtracts_the_members_spread(tmp_path):
    model = PreferenceReward(**TINY)
    train_preference_reward(model, brightness_pairs(32, seed=2), epochs=3, batch_size=16)
    frames = np.random.default_rng(3).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    members = model.member_rewards(frames)
    assert members.std(axis=0).min() > 0  # the members do differ
    np.testing.assert_allclose(model(frames, [""] * 5), members.mean(axis=0), rtol=1e-6)
    rewards.save(model, tmp_path / "model")
    pessimistic = rewards.load(tmp_path / "model", disagreement_penalty=1.5)
    np.testing.assert_allclose(pessimistic(frames, [""] * 5),
                               members.mean(axis=0) - 1.5 * members.std(axis=0), rtol=1e-5,
                               atol=1e-7)
    # The setting is part of the module's config: saved and loaded with it.
    rewards.save(pessimistic, tmp_path / "pessimistic")
    assert rewards.load(tmp_path / "pessimistic").config()["disagreement_penalty"] == 1.5
    with pytest.raises(ValueError, match="needs ensemble_size >= 2"):
        PreferenceReward(**{**TINY, "ensemble_size": 1}, disagreement_penalty=1.0)
    with pytest.raises(ValueError, match="disagreement_penalty must be a finite number >= 0"):
        PreferenceReward(**TINY, disagreement_penalty=-1.0)
