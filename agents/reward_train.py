"""Train a learned reward module from a teacher and an environment.

``vmalign reward-train --env vmalign/Push-v0 --reward preference --teacher oracle``:

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

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.output import make_output_dir
from agents.reward_eval import (DEFAULT_POLICIES, check_episode_count, evaluate,
                                format_statistic, parse_reward_args, plot_report)
from agents.rollouts import POLICY_HELP, Episode, collect_episodes

HELD_OUT_SEED_OFFSET = 100_000
"""Held-out rollouts start at ``--seed`` plus this, far from the training seeds."""


def check_teacher_name(name: str) -> None:
    """Raises ``ValueError`` listing the teachers unless ``name`` is one."""
    from rewards.teachers import TEACHER_PRESETS

    if name not in TEACHER_PRESETS and name != "clip":
        raise ValueError(f"unknown teacher {name!r}; valid names are "
                         f"{sorted([*TEACHER_PRESETS, 'clip'])}")


def make_teacher(name: str, params: dict[str, Any], episodes: list[Episode], segment: int,
                 seed: int) -> Any:
    """The teacher called ``name``; B-Pref thresholds scale with these episodes' returns."""
    if name == "clip":
        import rewards
        from rewards.vlm_teacher import ClipTeacher

        tie_threshold = params.pop("tie_threshold", 0.0)
        return ClipTeacher(rewards.make("clip", **params), tie_threshold=tie_threshold)
    from rewards.teachers import TEACHER_PRESETS, make_teacher as make_simulated
    from rewards.teachers import segment_margin

    check_teacher_name(name)
    preset = {**TEACHER_PRESETS[name], **params}
    if preset.get("eps_skip", 0) > 0 or preset.get("eps_equal", 0) > 0:
        mean_return = float(np.mean([e.env_rewards.sum() for e in episodes]))
        length = int(np.mean([len(e.env_rewards) for e in episodes]))
        params.setdefault("margin", abs(segment_margin(mean_return, segment, length)))
    return make_simulated(name, seed=seed, **params)


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
    import rewards
    from rewards.preference import train_preference_reward
    from rewards.preference_store import PreferenceStore
    from rewards.query import draw_queries

    model = rewards.make("preference", seed=seed, **(model_kwargs or {}))
    store = PreferenceStore(out / "preferences")
    rng = np.random.default_rng(seed)
    rounds = math.ceil(pairs / query_batch)
    asked = skipped = 0
    metrics = None
    for round_index in range(rounds):
        batch = min(query_batch, pairs - asked)
        method = "uniform" if round_index == 0 else query
        queries = draw_queries(episodes, batch, pool_factor * batch, segment, method, model, rng,
                               pairing)
        labels = np.asarray(teacher.label_pairs(queries), np.float32)
        keep = ~np.isnan(labels)
        asked += batch
        skipped += int((~keep).sum())
        if keep.any():
            kept = queries.subset(np.flatnonzero(keep))
            store.append(kept.frames_a, kept.frames_b, labels[keep], source=teacher.name,
                         instructions=kept.instructions,
                         meta={"round": round_index, "query": method, "pairing": pairing})
        metrics = train_preference_reward(model, store, epochs=epochs, lr=lr,
                                          seed=seed + round_index)
        log(f"  round {round_index + 1}/{rounds}: {len(store)} labels, "
            f"training accuracy {metrics.accuracy:.3f}")
    summary = {"pairs_asked": asked, "labels_stored": len(store), "skipped": skipped,
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
    from rewards.preference_store import PreferencePairs

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
    import rewards
    from rewards.rapl import train_rapl

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


def compare_bradley_terry(episodes: list[Episode], held_out: list[Episode], out: Path,
                          args: argparse.Namespace) -> dict[str, Any]:
    """Trains the preference module on the pairs of the RAPL run's triplets (same
    seed, so the same triplets) and judges it on the same held-out rollouts; saved
    to ``OUT/bt-same-triplets``."""
    import rewards
    from rewards.preference import train_preference_reward

    pairs = triplet_pairs(episodes, rank_triplets(episodes, args.triplets, args.seed),
                          frame_stride=args.bt_frame_stride, seed=args.seed)
    model = rewards.make("preference", seed=args.seed)
    print(f"  Bradley-Terry on the same triplets: {len(pairs)} pairs of "
          f"{pairs.frames_a.shape[1]} frames")
    metrics = train_preference_reward(model, pairs, epochs=args.epochs, lr=args.lr, seed=args.seed)
    rewards.save(model, out / "bt-same-triplets")
    report, _ = evaluate(model, held_out, args.segment, seed=args.seed)
    print(f"  Bradley-Terry on the same triplets: held-out step Spearman "
          f"{report['step_spearman_progress']:.3f}")
    return {"pairs": len(pairs), "frame_stride": args.bt_frame_stride,
            "final_training_accuracy": metrics.accuracy,
            **{key: report[key] for key in ("step_pearson_progress", "step_spearman_progress",
                                            "episode_spearman_return", "preference_accuracy")}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment id, e.g. vmalign/Push-v0")
    parser.add_argument("--reward", default="preference", choices=["preference", "rapl"],
                        help="the learned module to train")
    parser.add_argument("--triplets", type=int, default=150,
                        help="rapl: ranked triplets of episodes (ranked by ground-truth return)")
    parser.add_argument("--demos", type=int, default=10, help="rapl: expert demonstrations kept")
    parser.add_argument("--compare-bt", action="store_true",
                        help="rapl: also train the Bradley-Terry preference module on the same "
                             "triplets' pairs and report both on the held-out rollouts")
    parser.add_argument("--bt-frame-stride", type=int, default=5,
                        help="--compare-bt: keep every k-th frame of the paired episodes")
    parser.add_argument("--teacher", default="oracle",
                        help="oracle, stochastic, myopic, skip, equal, mistake, or clip")
    parser.add_argument("--teacher-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="teacher parameter (repeatable), e.g. beta=10 or eps_mistake=0.1")
    parser.add_argument("--reward-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="reward module architecture argument, e.g. ensemble_size=5")
    parser.add_argument("--pairs", type=int, default=500, help="label budget (pairs asked)")
    parser.add_argument("--query-batch", type=int, default=100, help="pairs asked per round")
    parser.add_argument("--pool-factor", type=int, default=4,
                        help="candidates drawn per query (pool = factor x batch)")
    parser.add_argument("--query", default="uniform", choices=["uniform", "disagreement", "entropy"],
                        help="how later rounds pick queries from the pool")
    parser.add_argument("--pairing", default="any", choices=["any", "same_episode"],
                        help="draw a pair's segments from any two episodes (B-Pref) or both "
                             "from one episode (the scene held fixed; what PPO's online loop "
                             "uses)")
    parser.add_argument("--segment", type=int, default=10, help="segment length in steps")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per round")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the "
                        "preference module's training")
    parser.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES),
                        help=f"rollout policies: {POLICY_HELP}")
    parser.add_argument("--episodes", type=int, default=8, help="training episodes per policy")
    parser.add_argument("--eval-episodes", type=int, default=4,
                        help="held-out episodes per policy for the report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render-size", type=int, default=64, help="frame size the reward sees")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="environment argument (repeatable), e.g. render_camera=workspace "
                             "or randomize_colors=false: train on the view PPO's config uses")
    parser.add_argument("--out", help="output folder (default outputs/reward-train-<time>)")


def run(args: argparse.Namespace) -> int:
    import rewards

    if args.pairs < 1 or args.query_batch < 1 or args.pool_factor < 1:
        raise ValueError("--pairs, --query-batch and --pool-factor must be >= 1")
    check_teacher_name(args.teacher)  # before minutes of rollouts
    check_episode_count("--eval-episodes", args.eval_episodes, args.policies)
    teacher_params = parse_reward_args(args.teacher_arg)
    model_kwargs = parse_reward_args(args.reward_arg)
    env_kwargs = parse_reward_args(args.env_arg, what="--env-arg")
    out = make_output_dir(args.out, prefix="reward-train")
    print(f"vmalign reward-train: writing to {out}")
    episodes = collect_episodes(args.env, args.policies, args.episodes, seed=args.seed,
                                render_size=args.render_size, env_kwargs=env_kwargs)
    if args.reward == "rapl":
        if args.teacher != "oracle":
            raise ValueError("--reward rapl ranks triplets by ground-truth return: only "
                             "--teacher oracle is supported for it")
        model, summary = train_rapl_from_returns(
            episodes, out, triplets=args.triplets, demos=args.demos, epochs=args.epochs,
            seed=args.seed, model_kwargs=model_kwargs,
        )
    else:
        teacher = make_teacher(args.teacher, teacher_params, episodes, args.segment, args.seed)
        model, summary = train_preference(
            episodes, teacher, out, pairs=args.pairs, query_batch=args.query_batch,
            pool_factor=args.pool_factor, query=args.query, segment=args.segment,
            epochs=args.epochs, seed=args.seed, model_kwargs=model_kwargs, pairing=args.pairing,
            lr=args.lr,
        )
    rewards.save(model, out / "reward")
    held_out = collect_episodes(args.env, args.policies, args.eval_episodes,
                                seed=args.seed + HELD_OUT_SEED_OFFSET,
                                render_size=args.render_size, env_kwargs=env_kwargs)
    if args.reward == "rapl" and args.compare_bt:
        summary["bradley_terry_same_triplets"] = compare_bradley_terry(
            episodes, held_out, out, args)
    report, scored = evaluate(model, held_out, args.segment, seed=args.seed)
    report = {"env": args.env, "env_kwargs": env_kwargs, "reward": model.name,
              "teacher": args.teacher,
              "teacher_args": teacher_params, "reward_config": model.config(),
              "training": summary, "held_out_seed": args.seed + HELD_OUT_SEED_OFFSET, **report}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    plot_report(held_out, scored, f"{model.name} ({args.teacher}) on {args.env}, held out",
                out / "report.png")
    within = format_statistic(report["within_episode_spearman_reward"])
    print(f"vmalign reward-train: {model.name}; held-out step Spearman with progress "
          f"{report['step_spearman_progress']:.3f}, within episodes with the env's reward "
          f"{within}, preference accuracy {report['preference_accuracy']:.3f}; module saved "
          f"to {out / 'reward'}")
    return 0
