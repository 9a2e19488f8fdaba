"""Choosing which segment pairs to ask a teacher about (B-Pref's query selection).

Each round draws a pool of ``pool_size`` candidate pairs uniformly from recorded
trajectories, scores them with the reward ensemble and keeps the ``query_batch`` best.

How the two segments of a candidate are drawn (``pairing``):

- ``any`` (B-Pref's): two episodes with replacement, each segment at a uniform start;
- ``same_episode``: both segments from one episode, at two different starts. The
  scene (where the balls, cubes and pads were put) is the same on both sides, so the
  label is about what the agent did, not about the luck of the start state. With
  ``any``, most labels between random-policy segments only say which episode began
  nearer its goal, and a reward fitted to them scores the scene, which the policy
  cannot change. PPO needs the ordering within an episode (a constant per episode
  changes nothing it learns), and that is what these labels teach.

How the ``query_batch`` are chosen from the pool (``method``):

- ``uniform``: a uniform random subset (no model needed);
- ``disagreement``: the largest std over ensemble members of the member preference
  probabilities p_k = P_k[a > b] (B-Pref's ``disagreement_sampling``);
- ``entropy``: the largest entropy of the ensemble-mean probability p = mean_k p_k,
  H = -p log p - (1-p) log(1-p): pairs the ensemble as a whole finds closest to a
  coin flip. (B-Pref's ``entropy_sampling`` averages each member's entropy instead;
  the two agree when members agree, and this one also counts disagreement.)

Trajectories are duck-typed (``frames``, ``env_rewards``, ``instruction``), as
``agents.rollouts.Episode`` provides; this package never imports ``agents``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

QUERY_METHODS = ("uniform", "disagreement", "entropy")
PAIRINGS = ("any", "same_episode")


class Trajectory(Protocol):
    """What queries are cut from: one episode's frames, rewards and instruction."""

    frames: np.ndarray  # uint8 (T, H, W, 3)
    env_rewards: np.ndarray  # (T,) the environment's per-step reward
    instruction: str


class PreferenceModel(Protocol):
    """A reward ensemble that can judge segment pairs (:class:`~rewards.preference.PreferenceReward`)."""

    def preference_probabilities(self, frames_a: np.ndarray, frames_b: np.ndarray) -> np.ndarray:
        """(K, N): each member's P[a > b] for segments uint8 (N, T, H, W, 3)."""


@dataclasses.dataclass
class SegmentPairs:
    """Unlabelled candidate queries: ``N`` pairs of equal-length segments."""

    frames_a: np.ndarray
    """uint8 (N, T, H, W, 3)."""
    frames_b: np.ndarray
    """uint8 (N, T, H, W, 3)."""
    rewards_a: np.ndarray
    """float32 (N, T): the environment's reward at each step of segment a."""
    rewards_b: np.ndarray
    """float32 (N, T)."""
    instructions: list[str]
    """The instruction of each pair (segment a's episode)."""
    origins: np.ndarray
    """int64 (N, 4): episode and start step of segment a, then of segment b."""

    def __len__(self) -> int:
        return len(self.frames_a)

    def subset(self, indices: np.ndarray | Sequence[int]) -> SegmentPairs:
        """The pairs at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return SegmentPairs(
            frames_a=self.frames_a[indices],
            frames_b=self.frames_b[indices],
            rewards_a=self.rewards_a[indices],
            rewards_b=self.rewards_b[indices],
            instructions=[self.instructions[i] for i in indices],
            origins=self.origins[indices],
        )


def sample_segment_pairs(
    trajectories: Sequence[Trajectory],
    count: int,
    segment_length: int,
    rng: np.random.Generator | int | None = None,
    pairing: str = "any",
) -> SegmentPairs:
    """``count`` uniformly drawn pairs of ``segment_length``-step segments.

    With ``pairing="any"`` both episodes of a pair are drawn with replacement (a pair
    may compare two parts of one episode) and each start is uniform over the starts
    that fit. With ``"same_episode"`` one episode is drawn per pair and the two starts
    are a uniform pair of different starts that fit (the segments may overlap; the
    steps they share count the same on both sides).
    """
    rng = np.random.default_rng(rng)
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; valid ones are {list(PAIRINGS)}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not trajectories:
        raise ValueError("no trajectories to cut segments from")
    lengths = np.array([len(trajectory.frames) for trajectory in trajectories])
    if segment_length < 1 or segment_length > lengths.min():
        raise ValueError(f"segment_length must be between 1 and the shortest trajectory "
                         f"({lengths.min()} steps), got {segment_length}")
    if pairing == "same_episode" and segment_length == lengths.min():
        raise ValueError(f"same_episode pairs need two different starts: segment_length must "
                         f"be shorter than the shortest trajectory ({lengths.min()} steps), "
                         f"got {segment_length}")
    if pairing == "same_episode":
        episode = rng.integers(0, len(trajectories), size=count)
        episodes = np.stack([episode, episode], axis=1)
        fits = lengths[episode] - segment_length + 1  # starts that fit, >= 2
        first = rng.integers(0, fits)
        second = rng.integers(0, fits - 1)
        second += second >= first  # uniform over the starts other than the first
        starts = np.stack([first, second], axis=1)
    else:
        episodes = rng.integers(0, len(trajectories), size=(count, 2))
        starts = rng.integers(0, lengths[episodes] - segment_length + 1)
    frames, rewards = [[], []], [[], []]
    for row in range(count):
        for side in (0, 1):
            trajectory = trajectories[episodes[row, side]]
            steps = slice(starts[row, side], starts[row, side] + segment_length)
            frames[side].append(trajectory.frames[steps])
            rewards[side].append(np.asarray(trajectory.env_rewards, np.float32)[steps])
    shape = (0, segment_length, *trajectories[0].frames.shape[1:])
    return SegmentPairs(
        frames_a=np.stack(frames[0]) if count else np.zeros(shape, np.uint8),
        frames_b=np.stack(frames[1]) if count else np.zeros(shape, np.uint8),
        rewards_a=np.stack(rewards[0]) if count else np.zeros((0, segment_length), np.float32),
        rewards_b=np.stack(rewards[1]) if count else np.zeros((0, segment_length), np.float32),
        instructions=[trajectories[episodes[row, 0]].instruction for row in range(count)],
        origins=np.stack([episodes[:, 0], starts[:, 0], episodes[:, 1], starts[:, 1]], axis=1),
    )


def query_scores(candidates: SegmentPairs, method: str, model: PreferenceModel) -> np.ndarray:
    """How informative each candidate is under ``method`` (higher = ask first)."""
    probabilities = np.asarray(
        model.preference_probabilities(candidates.frames_a, candidates.frames_b), np.float64
    )
    if probabilities.ndim != 2 or probabilities.shape[1] != len(candidates):
        raise ValueError(f"the model returned probabilities of shape {probabilities.shape}, "
                         f"expected (members, {len(candidates)})")
    if method == "disagreement":
        return probabilities.std(axis=0)
    if method == "entropy":
        p = np.clip(probabilities.mean(axis=0), 1e-12, 1 - 1e-12)
        return -(p * np.log(p) + (1 - p) * np.log(1 - p))
    raise ValueError(f"query method {method!r} has no score; scored methods are "
                     f"{[name for name in QUERY_METHODS if name != 'uniform']}")


def select_queries(
    candidates: SegmentPairs,
    query_batch: int,
    method: str = "uniform",
    model: PreferenceModel | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Indices (query_batch,) of the candidates to ask about, best first (ties keep
    pool order); ``uniform`` takes a random subset."""
    if method not in QUERY_METHODS:
        raise ValueError(f"unknown query method {method!r}; valid ones are {list(QUERY_METHODS)}")
    if not 0 < query_batch <= len(candidates):
        raise ValueError(f"query_batch must be between 1 and the {len(candidates)} "
                         f"candidates, got {query_batch}")
    if method == "uniform":
        return np.random.default_rng(rng).permutation(len(candidates))[:query_batch]
    if model is None:
        raise ValueError(f"query method {method!r} needs the reward ensemble (model=...)")
    scores = query_scores(candidates, method, model)
    return np.argsort(-scores, kind="stable")[:query_batch]


def draw_queries(
    trajectories: Sequence[Trajectory],
    query_batch: int,
    pool_size: int,
    segment_length: int,
    method: str = "uniform",
    model: PreferenceModel | None = None,
    rng: np.random.Generator | int | None = None,
    pairing: str = "any",
) -> SegmentPairs:
    """One round of queries: ``query_batch`` pairs chosen by ``method`` from a uniform
    pool of ``pool_size`` candidates (which must be at least ``query_batch``), each
    drawn as ``pairing`` says (:func:`sample_segment_pairs`).

    Pass one ``np.random.Generator`` for every round of a run so rounds differ but the
    run is reproducible.
    """
    if method not in QUERY_METHODS:
        raise ValueError(f"unknown query method {method!r}; valid ones are {list(QUERY_METHODS)}")
    if pool_size < query_batch:
        raise ValueError(f"pool_size ({pool_size}) must be at least query_batch ({query_batch}): "
                         f"the queries are chosen from the pool")
    rng = np.random.default_rng(rng)
    pool = sample_segment_pairs(trajectories, pool_size, segment_length, rng, pairing)
    return pool.subset(select_queries(pool, query_batch, method, model, rng))
