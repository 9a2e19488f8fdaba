"""Training a learned reward module offline, from a teacher and recorded episodes.

What ``vmalign reward-train`` (:mod:`agents.cli.reward_train`) runs:

1. collect seeded rollouts (expert, noisy-expert mixtures, random);
2. in rounds, draw candidate segment pairs, choose ``--query-batch`` of them
   (``uniform`` first, then by ensemble ``disagreement`` or ``entropy`` if asked),
   have the teacher label them, append the labels durably to
   ``OUT/preferences`` (a :class:`rewards.preference_store.PreferenceStore`), and
   train the Bradley-Terry ensemble on everything labelled so far;
3. save the module to ``OUT/reward`` (``rewards.load`` reads it back);
4. judge it on held-out rollouts with other seeds (``OUT/report.json``, the same
   statistics as ``vmalign reward-eval``).

Teachers: the B-Pref simulated ones (``oracle``, ``stochastic``, ``myopic``,
``skip``, ``equal``, ``mistake``; ``--teacher-arg beta=10`` and so on) use the
ground-truth reward; ``clip`` labels by zero-shot CLIP scores (RL-VLM-F style),
with no ground truth (``--teacher-arg`` goes to the CLIP module then).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

import rewards
from agents.evaluation.reward import evaluate, format_statistic
from agents.labelling import label_round, labels_by_source, refit
from agents.rollouts import Episode
from rewards.preference import train_preference_reward
from rewards.preference_store import PreferencePairs, PreferenceStore
from rewards.rapl import train_rapl

HELD_OUT_SEED_OFFSET = 100_000
"""Held-out rollouts start at ``--seed`` plus this, far from the training seeds."""


def train_preference(
    episodes: list[Episode],
    teacher: Any,
    out: Path,
    pairs: int = 500,
    query_batch: int = 100,
    pool_factor: int = 4,
    query: str = "uniform",
    segment: int = 10,
    epochs: int = 20,
    seed: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    log: Any = print,
    pairing: str = "any",
    lr: float = 1e-3,
) -> tuple[Any, dict[str, Any]]:
    """Labels up to ``pairs`` segment pairs in rounds and trains a preference ensemble;
    ``pairing`` says how a pair's two segments are drawn (:mod:`rewards.query`).

    Returns the trained module and a summary (labels stored, skipped, training metrics).
    """
    model = rewards.make("preference", seed=seed, **(model_kwargs or {}))
    store = PreferenceStore(out / "preferences")
    rng = np.random.default_rng(seed)
    rounds = math.ceil(pairs / query_batch)
    asked = skipped = 0
    metrics = None
    for round_index in range(rounds):
        batch = min(query_batch, pairs - asked)
        method = "uniform" if round_index == 0 else query
        result = label_round(episodes, batch, method, model, teacher, store, rng, segment,
                             pool_factor, pairing, meta={"round": round_index})
        asked += result.asked
        skipped += result.skipped
        metrics = refit(model, store, epochs, lr, seed=seed + round_index)
        log(f"  round {round_index + 1}/{rounds}: {len(store)} labels, "
            f"training accuracy {metrics.accuracy:.3f}")
    if hasattr(teacher, "close"):
        teacher.close()  # a person's labelling page
    summary = {"pairs_asked": asked, "labels_stored": len(store),
               "labels_by_source": labels_by_source(store), "skipped": skipped,
               "rounds": rounds, "query": query, "pairing": pairing, "segment": segment,
               "epochs": epochs, "lr": lr,
               "final_training_accuracy": None if metrics is None else metrics.accuracy,
               "training_seconds": None if metrics is None else metrics.seconds}
    return model, summary


def rank_triplets(episodes: list[Episode], count: int, seed: int) -> list[tuple[int, int, int]]:
    """``count`` triplets of distinct episode indices ``(best, middle, worst)``, ranked
    by ground-truth return (the oracle teacher's ranking)."""
    if len(episodes) < 3:
        raise ValueError(f"need at least 3 episodes to rank triplets, got {len(episodes)}")
    rng = np.random.default_rng(seed)
    ranked = []
    for _ in range(count):
        chosen = rng.choice(len(episodes), size=3, replace=False)
        best, middle, worst = sorted(chosen, key=lambda i: -episodes[i].env_rewards.sum())
        ranked.append((int(best), int(middle), int(worst)))
    return ranked


def triplet_pairs(episodes: list[Episode], triplets: list[tuple[int, int, int]],
                  frame_stride: int = 5, seed: int = 0) -> Any:
    """The preference pairs a ranking of triplets implies, for Bradley-Terry.

    Each triplet ``(best, middle, worst)`` gives three labelled pairs of whole
    episodes: best > middle, middle > worst, best > worst, each shown in a random
    order. Episodes are cut to the shortest one's length (segments of a pair must be
    equally long) and keep every ``frame_stride``-th frame, which bounds training time;
    Bradley-Terry then compares sums over the same subsampled steps on both sides.
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    rng = np.random.default_rng(seed)
    length = min(len(episodes[i].frames) for triplet in triplets for i in triplet)
    frames_a, frames_b, labels = [], [], []
    for best, middle, worst in triplets:
        for better, other in ((best, middle), (middle, worst), (best, worst)):
            a, b = episodes[better].frames, episodes[other].frames
            label = 1.0
            if rng.random() < 0.5:
                a, b, label = b, a, 0.0
            frames_a.append(a[:length:frame_stride])
            frames_b.append(b[:length:frame_stride])
            labels.append(label)
    return PreferencePairs(np.stack(frames_a), np.stack(frames_b), np.asarray(labels, np.float32))


def train_rapl_from_returns(
    episodes: list[Episode],
    out: Path,
    triplets: int = 150,
    demos: int = 10,
    epochs: int = 20,
    seed: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    log: Any = print,
) -> tuple[Any, dict[str, Any]]:
    """Trains a RAPL module on ``triplets`` ranked triplets of whole episodes.

    Each triplet is three distinct episodes ranked best, middle, worst by their
    ground-truth return (the oracle teacher); the reward compares rollouts with
    ``demos`` expert episodes. The module is saved to ``OUT/reward`` after every
    epoch, so a killed run keeps its last finished epoch.
    """
    experts = [e for e in episodes if e.policy == "expert"]
    if not experts:
        raise ValueError("RAPL needs expert demonstrations: include 'expert' in --policies")
    ranked = [tuple(episodes[i].frames for i in triplet)
              for triplet in rank_triplets(episodes, triplets, seed)]
    model = rewards.make("rapl", **(model_kwargs or {}))
    model.set_demonstrations([e.frames for e in experts[:demos]])
    metrics = train_rapl(model, ranked, epochs=epochs, seed=seed, checkpoint=out / "reward",
                         log=lambda line: log(f"  {line}"))
    summary = {"triplets": triplets, "demos": min(demos, len(experts)), "epochs": epochs,
               "teacher_ranking": "ground-truth return",
               "final_training_accuracy": metrics["accuracy"][-1] if metrics["accuracy"] else None}
    return model, summary


SHARED_ENCODER_KEYS = ("encoder", "encoder_weights", "finetune", "encoder_lr_scale",
                       "pool_grid", "feature_stage", "image_size")
"""What the preference module takes over from a RAPL module's config to compare on
the same encoder."""


def same_encoder_arguments(rapl_config: dict[str, Any]) -> dict[str, Any]:
    """The preference module's arguments for the encoder a RAPL module was trained
    on: the same registry encoder, weights and fine-tuning; none (the preference
    module's own from-scratch CNNs) for RAPL's ``cnn`` and ``clip`` encoders, which
    the preference module does not build the same way."""
    if rapl_config.get("encoder") in ("cnn", "clip", None):
        return {}
    return {key: rapl_config[key] for key in SHARED_ENCODER_KEYS if key in rapl_config}


def compare_bradley_terry(episodes: list[Episode], held_out: list[Episode], out: Path,
                          triplets: int, frame_stride: int, segment: int, epochs: int,
                          lr: float, seed: int, encoder_arguments: dict[str, Any] | None = None,
                          log: Any = print) -> dict[str, Any]:
    """Trains the preference module on the pairs of the RAPL run's triplets (same
    seed, so the same triplets) and judges it on the same held-out rollouts; saved
    to ``OUT/bt-same-triplets``. ``encoder_arguments`` (see
    :func:`same_encoder_arguments`) put it on the RAPL module's encoder."""
    pairs = triplet_pairs(episodes, rank_triplets(episodes, triplets, seed),
                          frame_stride=frame_stride, seed=seed)
    encoder_arguments = dict(encoder_arguments or {})
    model = rewards.make("preference", seed=seed, **encoder_arguments)
    log(f"  Bradley-Terry on the same triplets: {len(pairs)} pairs of "
        f"{pairs.frames_a.shape[1]} frames, encoder {model.config()['encoder']}")
    metrics = train_preference_reward(model, pairs, epochs=epochs, lr=lr, seed=seed)
    rewards.save(model, out / "bt-same-triplets")
    report, _ = evaluate(model, held_out, segment, seed=seed)
    log(f"  Bradley-Terry on the same triplets: held-out step Spearman "
        f"{format_statistic(report['step_spearman_progress'])}")
    return {"pairs": len(pairs), "frame_stride": frame_stride,
            "encoder": model.config()["encoder"], "encoder_arguments": encoder_arguments,
            "final_training_accuracy": metrics.accuracy,
            **{key: report[key] for key in ("step_pearson_progress", "step_spearman_progress",
                                            "episode_spearman_return", "preference_accuracy")}}
