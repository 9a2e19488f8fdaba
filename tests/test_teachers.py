"""B-Pref simulated teachers: each irrationality's definition and statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewards.query import SegmentPairs
from rewards.teachers import (
    TEACHER_PRESETS,
    SimulatedTeacher,
    Teacher,
    make_teacher,
    segment_margin,
)


def one_step(returns_a, returns_b):
    """Per-step rewards (N, 1) of 1-step segments with the given returns."""
    return (np.asarray(returns_a, np.float64)[:, None], np.asarray(returns_b, np.float64)[:, None])


def ask(teacher, rewards_a, rewards_b):
    return teacher.label(None, None, [""] * len(rewards_a), rewards_a, rewards_b)


def test_oracle_prefers_the_higher_return_and_breaks_exact_ties_toward_a():
    rewards_a = np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5], [3.0, -3.0]])
    rewards_b = np.array([[0.0, 2.0], [0.0, 1.0], [-1.0, 0.4], [0.0, 0.0]])
    labels = ask(make_teacher("oracle"), rewards_a, rewards_b)
    assert labels.dtype == np.float32
    # returns 3 vs 2, 0 vs 1, -0.5 vs -0.6, 0 vs 0 (B-Pref: ties go to the first segment)
    assert labels.tolist() == [1.0, 0.0, 1.0, 1.0]


def test_mistake_rate_is_close_to_eps():
    rng = np.random.default_rng(0)
    count = 20000
    rewards_a, rewards_b = rng.normal(size=(count, 5)), rng.normal(size=(count, 5))
    truth = ask(make_teacher("oracle"), rewards_a, rewards_b)
    labels = ask(make_teacher("mistake", eps_mistake=0.2, seed=1), rewards_a, rewards_b)
    assert np.isin(labels, [0.0, 1.0]).all()
    # 4 standard deviations of a binomial proportion at n = 20000
    assert np.mean(labels != truth) == pytest.approx(0.2, abs=4 * math.sqrt(0.2 * 0.8 / count))
    assert make_teacher("mistake").eps_mistake == 0.1  # B-Pref's preset


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_stochastic_teacher_prefers_a_with_the_sigmoid_of_the_scaled_return_gap(beta):
    count = 20000
    teacher = make_teacher("stochastic", beta=beta, seed=2)
    for gap in (-2.0, -0.5, 0.0, 0.3, 1.5):
        rewards_a, rewards_b = one_step(np.full(count, gap), np.zeros(count))
        frequency = ask(teacher, rewards_a, rewards_b).mean()
        expected = 1.0 / (1.0 + math.exp(-beta * gap))
        assert frequency == pytest.approx(expected, abs=4 * math.sqrt(0.25 / count)), gap


def test_stochastic_teacher_survives_huge_gaps():
    rewards_a, rewards_b = one_step([1e6, -1e6], [0.0, 0.0])
    assert ask(make_teacher("stochastic", seed=0), rewards_a, rewards_b).tolist() == [1.0, 0.0]


def test_myopic_teacher_weights_recent_steps_more():
    teacher = make_teacher("myopic", gamma=0.5)
    rewards = np.array([[8.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    # sum_t gamma^(T-1-t) r_t: 8/8 + 1 = 2, and 1/8 + 2/4 + 3/2 + 4 = 6.125
    np.testing.assert_allclose(teacher.discounted_returns(rewards), [2.0, 6.125])
    # a earns more in total (10 > 4) but early; b's reward is recent
    rewards_a = np.array([[10.0, 0.0, 0.0]])
    rewards_b = np.array([[0.0, 0.0, 4.0]])
    assert ask(teacher, rewards_a, rewards_b).tolist() == [0.0]
    assert ask(make_teacher("oracle"), rewards_a, rewards_b).tolist() == [1.0]
    assert make_teacher("myopic").gamma == 0.9  # B-Pref's preset


def test_skip_teacher_skips_queries_where_neither_segment_clears_the_threshold():
    # delta_skip = eps_skip * margin = 0.5 * 10 = 5; skipped when max(R_a, R_b) <= 5
    teacher = make_teacher("skip", eps_skip=0.5, margin=10.0)
    assert teacher.threshold_skip == 5.0
    rewards_a, rewards_b = one_step([3.0, 3.0, 5.0, 7.0, -2.0], [4.0, 6.0, 5.0, 1.0, -9.0])
    labels = ask(teacher, rewards_a, rewards_b)
    np.testing.assert_array_equal(np.isnan(labels), [True, False, True, False, True])
    assert labels[1] == 0.0 and labels[3] == 1.0
    # eps_skip = 0 never skips, whatever the returns
    assert not np.isnan(ask(make_teacher("oracle"), rewards_a, rewards_b)).any()


def test_equal_teacher_labels_close_returns_one_half_even_when_mistaken():
    # delta_equal = eps_equal * margin = 0.2 * 10 = 2: |R_a - R_b| < 2 is "equal"
    rewards_a, rewards_b = one_step([1.0, 1.0, 5.0, 0.0], [2.5, 3.5, 2.0, 1.999])
    labels = ask(make_teacher("equal", eps_equal=0.2, margin=10.0), rewards_a, rewards_b)
    assert labels.tolist() == [0.5, 0.0, 1.0, 0.5]
    # equal overrides a mistake, as in B-Pref (labels[margin_index] = -1 comes last)
    always_wrong = SimulatedTeacher(eps_mistake=1.0, eps_equal=0.2, margin=10.0)
    assert ask(always_wrong, rewards_a, rewards_b).tolist() == [0.5, 1.0, 0.0, 0.5]


def test_segment_margin_is_b_prefs_average_segment_return():
    assert segment_margin(200.0, segment_length=25, episode_length=100) == 50.0
    with pytest.raises(ValueError, match="positive"):
        segment_margin(1.0, 0, 100)


def test_teachers_are_reproducible_from_their_seed():
    rng = np.random.default_rng(3)
    rewards_a, rewards_b = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))

    def labels(seed):
        return ask(SimulatedTeacher(beta=1.0, eps_mistake=0.1, seed=seed), rewards_a, rewards_b)

    np.testing.assert_array_equal(labels(7), labels(7))
    assert (labels(7) != labels(8)).any()


def test_presets_use_b_prefs_parameters_and_names():
    assert set(TEACHER_PRESETS) == {"oracle", "stochastic", "myopic", "skip", "equal", "mistake"}
    oracle = make_teacher("oracle")
    assert (oracle.beta, oracle.gamma, oracle.eps_mistake, oracle.eps_skip, oracle.eps_equal) == (
        math.inf, 1.0, 0.0, 0.0, 0.0)
    assert make_teacher("stochastic").beta == 1.0
    assert make_teacher("stochastic", beta=10.0).beta == 10.0
    assert make_teacher("skip", margin=1.0).eps_skip == 0.1
    assert make_teacher("equal", margin=1.0).name == "equal"
    assert make_teacher("equal", margin=1.0).config()["eps_equal"] == 0.1
    assert isinstance(oracle, Teacher)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.0}, "beta=inf"),
        ({"beta": -1.0}, "teacher_beta=-1"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"eps_mistake": 1.5}, "eps_mistake"),
        ({"eps_skip": 0.1}, "margin"),
        ({"eps_equal": 0.1, "margin": -3.0}, "margin"),
    ],
)
def test_bad_parameters_are_refused_with_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatedTeacher(**kwargs)


def test_bad_queries_are_refused():
    teacher = make_teacher("oracle")
    with pytest.raises(ValueError, match="rewards_a and rewards_b"):
        teacher.label(None, None, ["x"])
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        teacher.label(None, None, ["x"], np.zeros((1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="instructions"):
        teacher.label(None, None, ["x", "y"], np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="unknown teacher 'noisy'.*oracle"):
        make_teacher("noisy")


def test_label_pairs_passes_the_candidates_rewards():
    rewards_a, rewards_b = one_step([1.0, 0.0], [0.0, 1.0])
    frames = np.zeros((2, 1, 4, 4, 3), np.uint8)
    pairs = SegmentPairs(frames, frames, rewards_a.astype(np.float32),
                         rewards_b.astype(np.float32), ["a", "b"], np.zeros((2, 4), np.int64))
    assert make_teacher("oracle").label_pairs(pairs).tolist() == [1.0, 0.0]
