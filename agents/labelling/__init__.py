"""One labelling round, the same for every teacher and every caller.

A round draws candidate segment pairs from recorded episodes, picks ``count`` of
them (uniformly, or by the reward ensemble's disagreement), asks the teacher, keeps
what it answered (a skipped pair is NaN), appends the kept labels durably to a
:class:`~rewards.preference_store.PreferenceStore`, and the caller refits the reward
(:func:`refit`). ``vmalign reward-train`` (:mod:`agents.reward_training`) and the
online loop during PPO (:mod:`agents.sb3.preference_loop`) both run it.

Teachers: the B-Pref simulated ones (``oracle``, ``stochastic``, ``myopic``,
``skip``, ``equal``, ``mistake``), which read the ground-truth reward; ``clip``,
which labels by zero-shot CLIP scores (RL-VLM-F style); and ``human``, a person on
the labelling page (:mod:`agents.labelling.human`), whose labels reach the store one
click at a time while the round waits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

import rewards
from rewards.preference import TrainingMetrics, train_preference_reward
from rewards.preference_store import PreferenceStore
from rewards.query import draw_queries
from rewards.teachers import TEACHER_PRESETS, segment_margin
from rewards.teachers import make_teacher as make_simulated_teacher
from rewards.vlm_teacher import ClipTeacher

TEACHERS = (*TEACHER_PRESETS, "clip", "human")
"""Every teacher name a round accepts."""


def check_teacher_name(name: str) -> None:
    """Raises ``ValueError`` listing the teachers unless ``name`` is one."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; valid names are {sorted(TEACHERS)}")


def make_teacher(name: str, params: dict[str, Any], episodes: Sequence[Any], segment: int,
                 seed: int) -> Any:
    """The teacher called ``name``; B-Pref's skip and tie thresholds scale with these
    episodes' returns (anything with ``env_rewards``), as B-Pref scales them."""
    check_teacher_name(name)
    params = dict(params)
    if name == "human":
        from agents.labelling.human import HumanTeacher, check_settings

        return HumanTeacher(check_settings(params))
    if name == "clip":
        tie_threshold = params.pop("tie_threshold", 0.0)
        return ClipTeacher(rewards.make("clip", **params), tie_threshold=tie_threshold)
    preset = {**TEACHER_PRESETS[name], **params}
    if preset.get("eps_skip", 0) > 0 or preset.get("eps_equal", 0) > 0:
        mean_return = float(np.mean([np.sum(e.env_rewards) for e in episodes]))
        length = int(np.mean([len(e.env_rewards) for e in episodes]))
        params.setdefault("margin", abs(segment_margin(mean_return, segment, length)))
    return make_simulated_teacher(name, seed=seed, **params)


@dataclasses.dataclass
class RoundResult:
    """What one round asked and kept."""

    asked: int
    kept: int
    resumed: bool = False
    """A person's round posted before a restart and waited for again (not asked anew)."""

    @property
    def skipped(self) -> int:
        return self.asked - self.kept


def label_round(episodes: Sequence[Any], count: int, method: str, model: Any, teacher: Any,
                store: PreferenceStore, rng: np.random.Generator, segment: int,
                pool_factor: int, pairing: str, meta: dict[str, Any]) -> RoundResult:
    """Asks ``teacher`` about ``count`` segment pairs and appends its answers to ``store``.

    :param episodes: what segments are cut from (``frames``, ``env_rewards``,
        ``instruction``; :class:`agents.rollouts.Episode`).
    :param method: ``uniform``, ``disagreement`` or ``entropy`` (:mod:`rewards.query`),
        choosing ``count`` pairs from ``pool_factor * count`` candidates.
    :param model: the preference ensemble that scores candidates for ``disagreement``.
    :param meta: facts recorded with the batch (round, step, ...); ``asked``,
        ``query`` and ``pairing`` are added.
    """
    def draw() -> Any:
        return draw_queries(episodes, count, pool_factor * count, segment, method, model, rng,
                            pairing)

    if hasattr(teacher, "collect"):
        # A person: the page stores each label as it is given; the round waits for them.
        collected = teacher.collect(draw, store, {**meta, "query": method, "pairing": pairing})
        return RoundResult(asked=collected.asked, kept=collected.kept,
                           resumed=collected.resumed)
    queries = draw()
    labels = np.asarray(teacher.label_pairs(queries), np.float32)
    keep = ~np.isnan(labels)
    kept = queries.subset(np.flatnonzero(keep))
    # Durable before anything else: a kill after this line keeps the labels.
    store.append(kept.frames_a, kept.frames_b, labels[keep], source=teacher.name,
                 instructions=kept.instructions,
                 meta={**meta, "asked": int(count), "query": method, "pairing": pairing})
    return RoundResult(asked=int(count), kept=int(keep.sum()))


def labels_by_source(store: PreferenceStore) -> dict[str, int]:
    """How many of the store's labels each teacher gave (``{"human": 50}``)."""
    counts: dict[str, int] = {}
    for record in store.records():
        counts[record["source"]] = counts.get(record["source"], 0) + 1
    return counts


def round_training_pairs(total: int, new_from: int, limit: int | None,
                         rng: np.random.Generator) -> np.ndarray | None:
    """Which of a store's ``total`` labels a refit trains on (None: all of them).

    With a ``limit`` the cost of a round stays flat as labels pile up: the labels
    from ``new_from`` on (the policy's latest behaviour, the reason the round was
    asked) are all in, and a uniform sample of the older ones fills the rest, so
    earlier lessons keep being rehearsed. If the new labels alone exceed the limit
    (imported labels, or several rounds' worth after a resume) a uniform sample of
    them is taken instead.
    """
    if limit is None or total <= limit:
        return None
    new_from = min(max(new_from, 0), total)
    if total - new_from >= limit:
        return np.sort(rng.choice(np.arange(new_from, total), size=limit, replace=False))
    older = rng.choice(new_from, size=limit - (total - new_from), replace=False)
    return np.sort(np.concatenate([older, np.arange(new_from, total)]))


def refit(model: Any, store: PreferenceStore, epochs: int, lr: float, seed: int,
          limit: int | None = None, new_from: int = 0) -> TrainingMetrics:
    """Trains the preference ensemble ``model`` further on the store's labels (all of
    them, or :func:`round_training_pairs`' choice with a ``limit``)."""
    chosen = round_training_pairs(len(store), new_from, limit, np.random.default_rng(seed))
    data = store if chosen is None else store.load(chosen)
    return train_preference_reward(model, data, epochs=epochs, lr=lr, seed=seed)
