"""RAPL: Sinkhorn optimal transport, the triplet loss and its training, the OT reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rewards
from rewards.optimal_transport import cosine_cost, ot_distance, sinkhorn
from rewards.rapl import (
    RaplReward,
    evaluate_triplets,
    train_rapl,
    triplet_distances,
    triplet_loss,
)

TINY = {"encoder": "cnn", "encoder_channels": [4, 8], "embedding_dim": 8, "image_size": 16,
        "sinkhorn_iterations": 50, "device": "cpu"}


def tiny(**kwargs) -> RaplReward:
    torch.manual_seed(0)
    return rewards.make("rapl", **{**TINY, **kwargs})


def square_video(steps: int, start: float, end: float, size: int = 24,
                 color=(255, 40, 40)) -> np.ndarray:
    """A bright square sliding along the diagonal from ``start`` to ``end`` (fractions
    of the frame) on a dark background: uint8 (steps, size, size, 3)."""
    frames = np.full((steps, size, size, 3), 20, np.uint8)
    side = size // 4
    for t, where in enumerate(np.linspace(start, end, steps)):
        corner = int(round(where * (size - side)))
        frames[t, corner:corner + side, corner:corner + side] = color
    return frames


# -- Sinkhorn ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 6), (5, 11), (12, 3)])
def test_sinkhorn_plan_has_uniform_marginals(shape):
    generator = torch.Generator().manual_seed(1)
    cost = cosine_cost(torch.randn(shape[0], 8, generator=generator),
                       torch.randn(shape[1], 8, generator=generator))
    plan, distance = sinkhorn(cost, epsilon=0.05, iterations=200)
    n, m = shape
    torch.testing.assert_close(plan.sum(dim=1), torch.full((n,), 1 / n), atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(dim=0), torch.full((m,), 1 / m), atol=1e-5, rtol=0)
    assert (plan >= 0).all()
    torch.testing.assert_close(distance, (plan * cost).sum())


def test_sinkhorn_is_batched_and_zero_weights_are_padding():
    generator = torch.Generator().manual_seed(2)
    source, target = torch.randn(4, 8, generator=generator), torch.randn(6, 8, generator=generator)
    alone_plan, alone = sinkhorn(cosine_cost(source, target))
    # The same problem padded with two extra target points of zero mass, in a batch.
    padded_target = torch.cat([target, torch.randn(2, 8, generator=generator)])
    weights = torch.tensor([1 / 6] * 6 + [0.0, 0.0])
    costs = torch.stack([cosine_cost(source, padded_target)] * 3)
    plans, distances = sinkhorn(costs, target_weights=weights)
    assert plans.shape == (3, 4, 8) and distances.shape == (3,)
    torch.testing.assert_close(distances, alone.expand(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(plans[1, :, :6], alone_plan, atol=1e-6, rtol=0)
    assert plans[:, :, 6:].abs().max() == 0


def test_sinkhorn_approaches_the_exact_assignment_for_small_epsilon():
    # Costs with an obvious optimal permutation: the plan concentrates on it.
    cost = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    plan, distance = sinkhorn(cost, epsilon=0.01, iterations=200)
    assert distance < 1e-3
    assert torch.equal(plan.argmax(dim=1), torch.tensor([0, 2, 1]))


def test_sinkhorn_rejects_bad_arguments():
    cost = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(cost, epsilon=0.0)
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn(cost, iterations=0)
    with pytest.raises(ValueError, match="target_weights has 3 entries for 4"):
        sinkhorn(cost, target_weights=torch.ones(3) / 3)
    with pytest.raises(ValueError, match="shape"):
        sinkhorn(torch.zeros(3))


def test_ot_distance_to_itself_is_lower_than_to_another_trajectory():
    generator = torch.Generator().manual_seed(3)
    trajectory = torch.randn(10, 16, generator=generator)
    other = torch.randn(14, 16, generator=generator)
    assert ot_distance(trajectory, trajectory) < ot_distance(trajectory, other)
    assert ot_distance(trajectory, trajectory) < 0.05  # near 0, up to the entropy blur


def test_gradient_flows_through_sinkhorn_into_the_embeddings():
    generator = torch.Generator().manual_seed(4)
    source = torch.randn(5, 8, generator=generator, requires_grad=True)
    target = torch.randn(7, 8, generator=generator)
    ot_distance(source, target).backward()
    assert source.grad is not None and torch.isfinite(source.grad).all()
    assert source.grad.abs().sum() > 0


# -- triplet loss and training --------------------------------------------------------


def test_triplet_loss_matches_the_preference_probability_by_hand():
    to_middle = torch.tensor([0.2, 1.5, 0.7])
    to_worst = torch.tensor([0.9, 0.3, 0.7])
    expected = [
        -math.log(math.exp(-a) / (math.exp(-a) + math.exp(-b)))
        for a, b in zip(to_middle.tolist(), to_worst.tolist())
    ]
    torch.testing.assert_close(triplet_loss(to_middle, to_worst), torch.tensor(expected))
    assert triplet_loss(torch.tensor(0.5), torch.tensor(0.5)).item() == pytest.approx(math.log(2))


def synthetic_triplets(count: int, seed: int = 0):
    """Ranked by how far a square slides toward the bottom-right corner.

    The best and middle episodes slide from the top-left toward the bottom-right
    (the best goes further); the worst slides back from the centre to the corner
    it started at, in a random colour (colour is not what matters)."""
    rng = np.random.default_rng(seed)
    triplets = []
    for _ in range(count):
        color = tuple(int(c) for c in rng.integers(60, 256, 3))
        best = square_video(8, 0.0, 1.0, color=color)
        middle = square_video(8, 0.0, rng.uniform(0.6, 0.9), color=color)
        worst = square_video(8, 0.5, 0.0, color=tuple(int(c) for c in rng.integers(60, 256, 3)))
        triplets.append((best, middle, worst))
    return triplets


def test_gradient_flows_from_the_triplet_loss_into_the_encoder():
    module = tiny()
    to_middle, to_worst = triplet_distances(module, synthetic_triplets(2))
    triplet_loss(to_middle, to_worst).mean().backward()
    grads = [p.grad for p in module.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_short_training_lowers_the_loss_and_keeps_demo_embeddings_current(tmp_path):
    module = tiny(demos=[square_video(8, 0.0, 1.0)])
    triplets = synthetic_triplets(16)
    before, _ = evaluate_triplets(module, triplets)
    metrics = train_rapl(module, triplets, epochs=15, lr=3e-3, batch_size=8,
                         checkpoint=tmp_path / "ckpt", validation=triplets[:4])
    after, accuracy = evaluate_triplets(module, triplets)
    assert after < before - 0.05
    assert metrics["loss"][-1] < metrics["loss"][0]
    assert len(metrics["validation_loss"]) == 15 and accuracy >= 0.9
    # The stored demonstration embeddings come from the trained encoder ...
    torch.testing.assert_close(module._demo_embeddings[0],
                               module.embed(module.demonstrations[0]))
    # ... and the checkpoint written after the last epoch scores like the module.
    probe = square_video(8, 0.2, 0.6)
    np.testing.assert_array_equal(rewards.load(tmp_path / "ckpt").score_trajectory(probe, ""),
                                  module.score_trajectory(probe, ""))


def test_frame_stride_trains_on_every_kth_frame():
    module = tiny()
    triplets = synthetic_triplets(3)
    strided = [tuple(episode[::2] for episode in triplet) for triplet in triplets]
    with torch.no_grad():
        torch.testing.assert_close(triplet_distances(module, triplets, frame_stride=2),
                                   triplet_distances(module, strided))
        assert not torch.allclose(triplet_distances(module, triplets)[0],
                                  triplet_distances(module, strided)[0])


def test_training_logs_one_line_per_epoch():
    lines = []
    train_rapl(tiny(), synthetic_triplets(2), epochs=2, log=lines.append)
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2: loss ")


def test_embedding_in_chunks_changes_nothing():
    frames = square_video(10, 0.0, 1.0)
    torch.testing.assert_close(tiny(encode_batch_size=3).embed(frames),
                               tiny(encode_batch_size=256).embed(frames))


def test_training_rejects_malformed_triplets():
    module = tiny()
    good = square_video(4, 0, 1)
    with pytest.raises(ValueError, match=r"triplets\[0\] must be \(t\+, t0, t-\)"):
        train_rapl(module, [(good, good)], epochs=1)
    with pytest.raises(ValueError, match=r"triplets\[1\].*uint8"):
        train_rapl(module, [(good, good, good), (good, good, good.astype(np.float32))], epochs=1)
    with pytest.raises(ValueError, match="empty"):
        train_rapl(module, [], epochs=1)


# -- the reward ----------------------------------------------------------------------


def test_reward_shape_dtype_and_a_demo_scores_higher_than_random_frames():
    demo = square_video(10, 0.0, 1.0)
    module = tiny(demos=[demo])
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(12, 24, 24, 3), dtype=np.uint8)
    own, other = module.score_trajectory(demo, "push"), module.score_trajectory(noise, "push")
    assert own.shape == (10,) and own.dtype == np.float32 and other.shape == (12,)
    assert own.sum() > other.sum()
    assert (own <= 1e-6).all() and (own >= -2).all()  # scale 1: r_t in [-2, 0]
    assert np.allclose(module.score_trajectory(demo, "") * 3, tiny(demos=[demo], scale=3.0)
                       .score_trajectory(demo, ""), atol=1e-6)


def test_reward_keeps_the_best_of_several_demonstrations():
    target = square_video(10, 0.0, 1.0)
    far = square_video(7, 1.0, 0.0, color=(40, 40, 255))
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(9, 24, 24, 3), dtype=np.uint8)
    module = tiny(demos=[far, noise, target])
    rewards_best, totals = module.score_against_demonstrations(target)
    assert totals.shape == (3,) and int(np.argmax(totals)) == 2
    alone = tiny(demos=[target]).score_trajectory(target, "")
    np.testing.assert_allclose(rewards_best, alone, atol=1e-6)
    np.testing.assert_allclose(rewards_best.sum(), totals.max(), rtol=1e-5)


def test_save_load_round_trip_reproduces_rewards_exactly(tmp_path):
    module = tiny(demos=[square_video(10, 0.0, 1.0), square_video(6, 0.3, 0.8, size=32)],
                  scale=2.5, epsilon=0.1)
    train_rapl(module, synthetic_triplets(4), epochs=1)
    rollout = square_video(9, 0.1, 0.7)
    rewards.save(module, tmp_path / "rapl")
    loaded = rewards.load(tmp_path / "rapl")
    assert isinstance(loaded, RaplReward) and loaded.config() == module.config()
    np.testing.assert_array_equal(loaded.score_trajectory(rollout, ""),
                                  module.score_trajectory(rollout, ""))
    assert [d.shape for d in loaded.demonstrations] == [(10, 24, 24, 3), (6, 32, 32, 3)]


def test_loading_weights_of_another_architecture_fails_clearly(tmp_path):
    rewards.save(tiny(demos=[square_video(5, 0, 1)]), tmp_path / "small")
    other = tiny(embedding_dim=12)
    from safetensors.torch import load_file

    with pytest.raises(ValueError, match="another architecture"):
        other.load_tensors(load_file(str(tmp_path / "small" / "weights.safetensors")))
    # Same encoder shapes, but demonstration embeddings of another width.
    tensors = load_file(str(tmp_path / "small" / "weights.safetensors"))
    tensors["demo.0.embeddings"] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="another architecture"):
        tiny().load_tensors(tensors)


def test_batch_call_path_says_it_scores_whole_trajectories():
    module = tiny(demos=[square_video(5, 0, 1)])
    with pytest.raises(RuntimeError, match="scores whole trajectories.*score_trajectory"):
        module(square_video(3, 0, 1), ["push"] * 3)
    assert module.needs_trajectory


def test_scoring_without_demonstrations_or_with_bad_input_fails_clearly():
    with pytest.raises(RuntimeError, match="no expert demonstrations"):
        tiny().score_trajectory(square_video(3, 0, 1), "")
    module = tiny()
    with pytest.raises(ValueError, match="list of episodes"):
        module.set_demonstrations(square_video(3, 0, 1))
    with pytest.raises(ValueError, match="demonstration 1: frames must be uint8"):
        module.set_demonstrations([square_video(3, 0, 1), np.zeros((3, 8, 8, 3))])
    with pytest.raises(ValueError, match="image_size"):
        rewards.make("rapl", encoder="cnn", image_size=4, encoder_channels=[4, 4, 4],
                     device="cpu")
    with pytest.raises(TypeError, match="valid ones"):
        rewards.make("rapl", sinkhorn_iters=10)


# -- realistic frames ----------------------------------------------------------------


def test_push_expert_scores_above_random_after_training():
    """Push-v0 at 32x32: a short training on triplets ranked by return lowers their
    loss, and held-out expert episodes then score far above random ones."""
    from agents.rollouts import collect_episodes

    pool = collect_episodes("vmalign/Push-v0", ["expert", "noisy(0.5)", "random"], 4,
                            seed=0, render_size=32)
    rng = np.random.default_rng(0)
    triplets = []
    for _ in range(12):
        chosen = sorted(rng.choice(len(pool), 3, replace=False),
                        key=lambda i: -pool[i].env_rewards.sum())
        triplets.append(tuple(pool[i].frames for i in chosen))
    module = tiny(image_size=32, encoder_channels=[8, 16, 16], embedding_dim=16,
                  demos=[e.frames for e in pool if e.policy == "expert"])
    metrics = train_rapl(module, triplets, epochs=6, lr=1e-3, frame_stride=5)
    assert metrics["loss"][-1] < metrics["loss"][0]
    held_out = collect_episodes("vmalign/Push-v0", ["expert", "random"], 2, seed=100,
                                render_size=32)
    totals = {e.policy: [] for e in held_out}
    for episode in held_out:
        totals[episode.policy].append(module.score_trajectory(episode.frames, "").sum())
    # Untrained, random episodes total about 1.2x the expert's (both near 0); the
    # aligned encoder pushes them several times further from the demonstrations.
    assert np.mean(totals["random"]) < 3 * np.mean(totals["expert"]) < 0


# -- the CLIP visual tower as phi ----------------------------------------------------


def clip_rapl(**kwargs) -> RaplReward:
    from rewards.clip import TINY_MODEL_CONFIG

    torch.manual_seed(0)
    options = {"encoder": "clip", "clip_model": "tiny", "clip_pretrained": None,
               "clip_model_config": TINY_MODEL_CONFIG, "embedding_dim": 8,
               "sinkhorn_iterations": 30, "device": "cpu"}
    return rewards.make("rapl", **{**options, **kwargs})


def test_clip_tower_encoder_starts_from_a_checkpoint_and_trains(tmp_path):
    import open_clip

    from rewards.clip import TINY_MODEL_CONFIG, ClipReward

    # A checkpoint written here stands for downloaded weights.
    source = ClipReward(model="tiny", model_config=TINY_MODEL_CONFIG, pretrained=None,
                        device="cpu")
    path = tmp_path / "clip.pt"
    torch.save(source.model.state_dict(), path)
    module = clip_rapl(clip_checkpoint=str(path))
    for name, value in source.model.visual.state_dict().items():
        torch.testing.assert_close(module.encoder.visual.state_dict()[name], value)
    assert module.encoder.input_size == (32, 32)  # the tower's own input size
    assert isinstance(module.encoder.visual, open_clip.model.VisionTransformer)

    triplets = synthetic_triplets(8)
    before, _ = evaluate_triplets(module, triplets)
    first = module.encoder.visual.conv1.weight.detach().clone()
    train_rapl(module, triplets, epochs=4, lr=1e-3, batch_size=4)
    after, _ = evaluate_triplets(module, triplets)
    assert after < before
    # Fine-tuned whole: the tower moved, not only the head.
    assert not torch.equal(first, module.encoder.visual.conv1.weight)


def test_clip_tower_encoder_saves_and_loads_without_its_starting_weights(tmp_path):
    path = tmp_path / "clip.pt"
    from rewards.clip import TINY_MODEL_CONFIG, ClipReward

    torch.save(ClipReward(model="tiny", model_config=TINY_MODEL_CONFIG, pretrained=None,
                          device="cpu").model.state_dict(), path)
    module = clip_rapl(clip_checkpoint=str(path), demos=[square_video(6, 0.0, 1.0, size=40)])
    train_rapl(module, synthetic_triplets(4), epochs=1, batch_size=4)
    rewards.save(module, tmp_path / "rapl")
    path.unlink()  # the starting weights are gone: the save holds the fine-tuned tower
    loaded = rewards.load(tmp_path / "rapl")
    assert loaded.config() == module.config() and loaded.config()["encoder"] == "clip"
    rollout = square_video(7, 0.1, 0.9, size=40)
    np.testing.assert_array_equal(loaded.score_trajectory(rollout, ""),
                                  module.score_trajectory(rollout, ""))


def test_unknown_encoder_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet'; valid: cnn, clip, "
                                         r"efficientnet_lite0, timm:<model>, open_clip:<model>"):
        rewards.make("rapl", encoder="resnet", device="cpu")
    with pytest.raises(ValueError, match="takes no encoder_weights, finetune"):
        rewards.make("rapl", encoder="cnn", finetune="frozen", device="cpu")
    with pytest.raises(ValueError, match="apply to a named encoder"):
        rewards.make("rapl", encoder="cnn", feature_stage=-2, device="cpu")
    with pytest.raises(ValueError, match="pool_grid must be an integer >= 1"):
        rewards.make("rapl", pool_grid=0, device="cpu")


def test_the_default_encoder_is_pretrained_and_fine_tunes_its_last_stage(tmp_path):
    module = rewards.make("rapl", image_size=32, embedding_dim=8, sinkhorn_iterations=20,
                          device="cpu")
    assert module.config()["encoder"] == "efficientnet_lite0"
    tower = module.encoder.encoder
    assert tower.pretrained and module.finetune == "last_block"
    groups = module.parameter_groups(1e-3)
    assert [group["lr"] for group in groups] == [1e-3, 1e-4]
    # Aligning moves the last stage and the head; the frozen stem keeps ImageNet's weights.
    stem = tower.model.conv_stem.weight.clone()
    last = tower.model.conv_head.weight.clone()
    triplets = [(square_video(4, 0.1, 0.9, size=32), square_video(4, 0.1, 0.5, size=32),
                 square_video(4, 0.9, 0.1, size=32)) for _ in range(2)]
    train_rapl(module, triplets, epochs=1, batch_size=2)
    assert torch.equal(stem, tower.model.conv_stem.weight)
    assert not torch.equal(last, tower.model.conv_head.weight)
    # Saved: the head, the statistics and the tuned stage, not the frozen ImageNet weights.
    module.set_demonstrations([square_video(4, 0.1, 0.9, size=32)])
    rewards.save(module, tmp_path / "rapl")
    saved = set(module.tensors())
    assert "encoder.head.weight" in saved and "encoder.encoder.model.conv_head.weight" in saved
    assert "encoder.encoder.model.conv_stem.weight" not in saved
    loaded = rewards.load(tmp_path / "rapl")
    rollout = square_video(5, 0.2, 0.8, size=32)
    np.testing.assert_allclose(loaded.score_trajectory(rollout, ""),
                               module.score_trajectory(rollout, ""), rtol=1e-5, atol=1e-6)


def test_an_earlier_stage_on_a_grid_tunes_that_stage_and_round_trips(tmp_path):
    """feature_stage=-2, pool_grid=2: the head reads EfficientNet-Lite0's stride-16 map
    (112 channels) in 4 cells; "last_block" tunes blocks.4, which the map ends with."""
    module = rewards.make("rapl", image_size=64, embedding_dim=8, sinkhorn_iterations=20,
                          feature_stage=-2, pool_grid=2, device="cpu")
    tower = module.encoder.encoder
    assert module.encoder.head.in_features == 112 * 4
    stage = tower.model.blocks[4][0].conv_pwl.weight.clone()
    earlier = tower.model.blocks[3][0].conv_pwl.weight.clone()
    triplets = [(square_video(4, 0.1, 0.9, size=64), square_video(4, 0.1, 0.5, size=64),
                 square_video(4, 0.9, 0.1, size=64)) for _ in range(2)]
    train_rapl(module, triplets, epochs=1, batch_size=2)
    assert not torch.equal(stage, tower.model.blocks[4][0].conv_pwl.weight)
    assert torch.equal(earlier, tower.model.blocks[3][0].conv_pwl.weight)
    module.set_demonstrations([square_video(4, 0.1, 0.9, size=64)])
    rewards.save(module, tmp_path / "rapl")
    loaded = rewards.load(tmp_path / "rapl")
    assert (loaded.feature_stage, loaded.pool_grid) == (-2, 2)
    rollout = square_video(5, 0.2, 0.8, size=64)
    np.testing.assert_allclose(loaded.score_trajectory(rollout, ""),
                               module.score_trajectory(rollout, ""), rtol=1e-5, atol=1e-6)
