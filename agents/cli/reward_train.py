"""Train a learned reward module from a teacher and an environment.

``vmalign reward-train --env vmalign/Push-v0 --reward preference --teacher oracle``
collects seeded rollouts (expert, noisy-expert mixtures, random), labels segment
pairs in rounds (``uniform`` first, then ``--query``), appends every label durably
to ``OUT/preferences`` and trains the Bradley-Terry ensemble after each round; it
saves the module to ``OUT/reward`` (``rewards.load`` reads it back) and judges it on
held-out rollouts with other seeds (``OUT/report.json``, as ``vmalign reward-eval``).
``--reward rapl`` ranks triplets of whole episodes instead.

Teachers: ``oracle``, ``stochastic``, ``myopic``, ``skip``, ``equal`` and
``mistake`` (B-Pref's simulated ones, on the ground-truth reward; ``--teacher-arg
beta=10`` and so on), ``clip`` (zero-shot CLIP scores, RL-VLM-F style;
``--teacher-arg`` then goes to the CLIP module), or ``human``: each round's pairs wait
in ``OUT/pending`` for a person on the labelling page, whose URL is printed
(``--teacher-arg wait_seconds=600``, ``port=8765``; see docs/labelling.md).
"""

from __future__ import annotations

import argparse

import rewards
from agents.cli.arguments import parse_key_values
from agents.evaluation.reward import (DEFAULT_POLICIES, check_episode_count, evaluate,
                                      format_statistic, plot_report)
from agents.labelling import check_teacher_name, make_teacher
from agents.output import make_output_dir, write_json
from agents.reward_training import (HELD_OUT_SEED_OFFSET, compare_bradley_terry,
                                    same_encoder_arguments,
                                    train_preference, train_rapl_from_returns)
from agents.rollouts import POLICY_HELP, check_policies, collect_episodes
from agents.runs import check_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment id, e.g. vmalign/Push-v0")
    parser.add_argument("--reward", default="preference", choices=["preference", "rapl"],
                        help="the learned module to train")
    parser.add_argument("--triplets", type=int, default=150,
                        help="rapl: ranked triplets of episodes (ranked by ground-truth return)")
    parser.add_argument("--demos", type=int, default=10, help="rapl: expert demonstrations kept")
    parser.add_argument("--compare-bt", action="store_true",
                        help="rapl: also train the Bradley-Terry preference module, on RAPL's "
                             "encoder, on the same triplets' pairs and report both on the "
                             "held-out rollouts")
    parser.add_argument("--bt-frame-stride", type=int, default=5,
                        help="--compare-bt: keep every k-th frame of the paired episodes")
    parser.add_argument("--teacher", default="oracle",
                        help="oracle, stochastic, myopic, skip, equal, mistake, clip, or human "
                             "(a person labels in the browser)")
    parser.add_argument("--teacher-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="teacher parameter (repeatable), e.g. beta=10, eps_mistake=0.1, "
                             "or for human wait_seconds=600, port=8765")
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
    if args.pairs < 1 or args.query_batch < 1 or args.pool_factor < 1:
        raise ValueError("--pairs, --query-batch and --pool-factor must be >= 1")
    check_teacher_name(args.teacher)  # before minutes of rollouts
    if args.reward == "rapl" and args.teacher != "oracle":
        raise ValueError("--reward rapl ranks triplets by ground-truth return: only "
                         "--teacher oracle is supported for it")
    env_kwargs = parse_key_values(args.env_arg, what="--env-arg")
    check_policies(args.env, args.policies, env_kwargs)
    check_episode_count("--eval-episodes", args.eval_episodes, args.policies)
    teacher_params = parse_key_values(args.teacher_arg)
    if args.teacher == "human":
        from agents.labelling.human import check_settings

        check_settings(teacher_params)  # a bad --teacher-arg fails before rollouts
    model_kwargs = parse_key_values(args.reward_arg)
    rewards.make(args.reward, **model_kwargs)  # a bad --reward-arg fails before any rollout
    check_env(args.env, {**env_kwargs, "render_size": args.render_size}, None, render=True,
              seed=args.seed)  # a bad --env-arg fails before the output folder exists
    out = make_output_dir(args.out, prefix="reward-train")
    print(f"vmalign reward-train: writing to {out}")
    episodes = collect_episodes(args.env, args.policies, args.episodes, seed=args.seed,
                                render_size=args.render_size, env_kwargs=env_kwargs)
    if args.reward == "rapl":
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
    report, scored = evaluate(model, held_out, args.segment, seed=args.seed)
    report = {"env": args.env, "env_kwargs": env_kwargs, "reward": model.name,
              "teacher": args.teacher,
              "teacher_args": teacher_params, "reward_config": model.config(),
              "training": summary, "held_out_seed": args.seed + HELD_OUT_SEED_OFFSET, **report}
    # Written before the comparison below (often the longer part): a run killed in it
    # keeps the trained module's figures.
    write_json(out / "report.json", report)
    plot_report(held_out, scored, f"{model.name} ({args.teacher}) on {args.env}, held out",
                out / "report.png")
    if args.reward == "rapl" and args.compare_bt:
        summary["bradley_terry_same_triplets"] = compare_bradley_terry(
            episodes, held_out, out, triplets=args.triplets, frame_stride=args.bt_frame_stride,
            segment=args.segment, epochs=args.epochs, lr=args.lr, seed=args.seed,
            encoder_arguments=same_encoder_arguments(model.config()))
        write_json(out / "report.json", report)  # ``summary`` is the report's "training"
    within = format_statistic(report["within_episode_spearman_reward"])
    print(f"vmalign reward-train: {model.name}; held-out step Spearman with progress "
          f"{report['step_spearman_progress']:.3f}, within episodes with the env's reward "
          f"{within}, preference accuracy {report['preference_accuracy']:.3f}; module saved "
          f"to {out / 'reward'}")
    return 0
