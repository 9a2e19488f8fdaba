"""Teachers that label segment pairs, and B-Pref's simulated teachers.

A teacher answers queries "which of these two segments is better?"::

    labels = teacher.label(frames_a, frames_b, instructions, rewards_a, rewards_b)

with ``frames_*`` uint8 (N, T, H, W, 3), one instruction per pair, and ``rewards_*``
float (N, T), the environment's per-step (ground-truth) rewards of each segment.
Teachers that judge pixels (the CLIP teacher) ignore the rewards; simulated
teachers judge the rewards and ignore the frames (which may be None). The answer is
float32 (N,): 1 = segment a preferred, 0 = b preferred, 0.5 = equally preferable,
and **NaN = skipped** (the teacher declined the query; it is not a label and must be
dropped before storing: ``keep = ~np.isnan(labels)``).

Simulated teachers follow B-Pref (Lee et al., 2021, "B-Pref: Benchmarking
Preference-Based Reinforcement Learning", and its code ``reward_model.get_label``),
with its parameter names (``teacher_beta`` -> ``beta`` ...). With R the undiscounted
segment return and D_x = sum_t gamma^(T-1-t) r_t (x) the myopically discounted one:

1. skip: if ``eps_skip > 0`` the query is skipped when max(R_a, R_b) <= delta_skip,
   i.e. neither segment does anything worth judging;
2. equal: pairs with |R_a - R_b| < delta_equal are labelled 0.5;
3. otherwise a is preferred with probability sigmoid(beta * (D_a - D_b)); with
   ``beta = inf`` (B-Pref's ``teacher_beta=-1``) deterministically when D_a >= D_b
   (B-Pref breaks exact ties toward the first segment);
4. mistake: that label is flipped with probability ``eps_mistake``.

The thresholds are fractions of the average return of a segment, as in B-Pref:
delta_skip = eps_skip * margin and delta_equal = eps_equal * margin, where ``margin``
is B-Pref's ``mean episode return * segment length / episode length``
(:func:`segment_margin`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rewards.query import SegmentPairs


class Teacher(abc.ABC):
    """Labels segment pairs; subclasses implement :meth:`label` (see the module doc).

    ``name`` is recorded as the labels' source in a
    :class:`~rewards.preference_store.PreferenceStore`.
    """

    name: str = "teacher"

    @abc.abstractmethod
    def label(
        self,
        frames_a: np.ndarray | None,
        frames_b: np.ndarray | None,
        instructions: Sequence[str],
        rewards_a: np.ndarray | None = None,
        rewards_b: np.ndarray | None = None,
    ) -> np.ndarray:
        """float32 (N,): 1 = a preferred, 0 = b preferred, 0.5 = equal, NaN = skipped."""

    def label_pairs(self, pairs: SegmentPairs) -> np.ndarray:
        """Labels the candidate pairs drawn by :mod:`rewards.query`."""
        return self.label(pairs.frames_a, pairs.frames_b, pairs.instructions,
                          pairs.rewards_a, pairs.rewards_b)


def segment_margin(mean_episode_return: float, segment_length: int, episode_length: int) -> float:
    """B-Pref's ``new_margin``: the return an average segment earns,
    ``mean_episode_return * segment_length / episode_length``."""
    if segment_length <= 0 or episode_length <= 0:
        raise ValueError(f"segment and episode lengths must be positive, got "
                         f"{segment_length} and {episode_length}")
    return float(mean_episode_return) * segment_length / episode_length


class SimulatedTeacher(Teacher):
    """A B-Pref simulated teacher that judges segments by their ground-truth rewards.

    :param beta: rationality; a is preferred with probability
        sigmoid(beta * (D_a - D_b)). ``inf`` (default): perfectly rational (B-Pref's
        ``teacher_beta=-1``). Must be > 0.
    :param gamma: myopia in (0, 1]; step t of T weighs gamma^(T-1-t), so recent steps
        count most. 1 (default): no discount.
    :param eps_mistake: probability in [0, 1] of flipping a label (default 0).
    :param eps_skip: skip threshold as a fraction of ``margin`` (default 0: never skip).
    :param eps_equal: equal threshold as a fraction of ``margin`` (default 0: never equal).
    :param margin: the average segment return (:func:`segment_margin`) the thresholds
        scale with; required, and positive, when ``eps_skip`` or ``eps_equal`` is set.
    :param seed: seeds the numpy Generator that draws every random choice.
    :param name: the labels' source name (default ``"simulated"``).
    """

    def __init__(
        self,
        beta: float = math.inf,
        gamma: float = 1.0,
        eps_mistake: float = 0.0,
        eps_skip: float = 0.0,
        eps_equal: float = 0.0,
        margin: float | None = None,
        seed: int | None = None,
        name: str = "simulated",
    ) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0 (got {beta}); use beta=inf for the perfectly "
                             f"rational teacher (B-Pref writes it teacher_beta=-1)")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        for key, value in (("eps_mistake", eps_mistake), ("eps_skip", eps_skip),
                           ("eps_equal", eps_equal)):
            if not 0 <= value <= 1:
                raise ValueError(f"{key} must lie in [0, 1], got {value}")
        if (eps_skip > 0 or eps_equal > 0) and (margin is None or not margin > 0):
            raise ValueError(
                f"eps_skip and eps_equal are fractions of the average segment return: pass "
                f"margin > 0 (got {margin}), e.g. margin=segment_margin(mean_episode_return, "
                f"segment_length, episode_length)"
            )
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.eps_mistake = float(eps_mistake)
        self.eps_skip = float(eps_skip)
        self.eps_equal = float(eps_equal)
        self.margin = None if margin is None else float(margin)
        self.seed = seed
        self.name = name
        self.rng = np.random.default_rng(seed)

    def config(self) -> dict[str, Any]:
        """The parameters, to record with the labels (``PreferenceStore.append(meta=...)``)."""
        return {"beta": self.beta, "gamma": self.gamma, "eps_mistake": self.eps_mistake,
                "eps_skip": self.eps_skip, "eps_equal": self.eps_equal, "margin": self.margin,
                "seed": self.seed, "name": self.name}

    @property
    def threshold_skip(self) -> float:
        """delta_skip = eps_skip * margin (0 when skipping is off)."""
        return self.eps_skip * (self.margin or 0.0)

    @property
    def threshold_equal(self) -> float:
        """delta_equal = eps_equal * margin (0 when equal labels are off)."""
        return self.eps_equal * (self.margin or 0.0)

    def discounted_returns(self, rewards: np.ndarray) -> np.ndarray:
        """D = sum_t gamma^(T-1-t) r_t for rewards (N, T): the myopic teacher's return."""
        steps = rewards.shape[1]
        weights = self.gamma ** np.arange(steps - 1, -1, -1, dtype=np.float64)
        return rewards @ weights

    def label(self, frames_a, frames_b, instructions, rewards_a=None, rewards_b=None):
        """See :class:`Teacher`; the frames are not looked at."""
        if rewards_a is None or rewards_b is None:
            raise ValueError("simulated teachers judge the environment's per-step rewards: "
                             "pass rewards_a and rewards_b, float arrays (N, T)")
        rewards_a = np.asarray(rewards_a, dtype=np.float64)
        rewards_b = np.asarray(rewards_b, dtype=np.float64)
        if rewards_a.ndim != 2 or rewards_a.shape != rewards_b.shape:
            raise ValueError(f"rewards_a and rewards_b must both be (N, T); got "
                             f"{rewards_a.shape} and {rewards_b.shape}")
        if len(instructions) != len(rewards_a):
            raise ValueError(f"expected {len(rewards_a)} instructions, got {len(instructions)}")
        count = len(rewards_a)

        return_a, return_b = rewards_a.sum(axis=1), rewards_b.sum(axis=1)
        skipped = np.zeros(count, dtype=bool)
        if self.threshold_skip > 0:
            skipped = np.maximum(return_a, return_b) <= self.threshold_skip
        equal = np.abs(return_a - return_b) < self.threshold_equal

        gap = self.discounted_returns(rewards_a) - self.discounted_returns(rewards_b)
        if math.isinf(self.beta):
            labels = (gap >= 0).astype(np.float32)
        else:
            # sigmoid(beta * gap), written with tanh so large gaps do not overflow exp
            probability = 0.5 * (1.0 + np.tanh(0.5 * self.beta * gap))
            labels = (self.rng.random(count) < probability).astype(np.float32)
        mistaken = self.rng.random(count) < self.eps_mistake
        labels[mistaken] = 1.0 - labels[mistaken]
        labels[equal] = 0.5
        labels[skipped] = np.nan
        return labels


TEACHER_PRESETS: dict[str, dict[str, float]] = {
    # B-Pref's teachers, with the parameters of its benchmark scripts.
    "oracle": {},
    "stochastic": {"beta": 1.0},
    "myopic": {"gamma": 0.9},
    "skip": {"eps_skip": 0.1},
    "equal": {"eps_equal": 0.1},
    "mistake": {"eps_mistake": 0.1},
}


def make_teacher(name: str, **params: Any) -> SimulatedTeacher:
    """A B-Pref teacher by name: ``oracle``, ``stochastic`` (beta=1), ``myopic``
    (gamma=0.9), ``skip`` (eps_skip=0.1), ``equal`` (eps_equal=0.1) or ``mistake``
    (eps_mistake=0.1); ``params`` override the preset (e.g. ``beta=10``) and pass on to
    :class:`SimulatedTeacher` (``skip`` and ``equal`` need ``margin=``)."""
    if name not in TEACHER_PRESETS:
        raise ValueError(f"unknown teacher {name!r}; valid names are {sorted(TEACHER_PRESETS)}")
    return SimulatedTeacher(**{**TEACHER_PRESETS[name], "name": name, **params})
