"""Train an agent against any env and reward module, from a config.

``vmalign train --config reach_preference [key=value ...]`` trains the config's
``algo`` (default ``ppo``: stable-baselines3 PPO, or ``sac``; ``vla-bc``, ``vla-ppo``,
``vla-grpo``, ``vla-dpo``: the VLA policy) and writes to the run folder:

- ``config.yaml``: the resolved config (what ``--resume`` and ``vmalign eval`` read);
- ``progress.csv`` and TensorBoard event files (``tensorboard --logdir RUN``);
- ``checkpoints/step-N/`` every ``checkpoint_every`` steps and at the end;
- ``preferences/``: the labels of the online preference loop (reward: preference);
- ``reward/`` (a learned reward module) or ``policy/`` (a VLA policy) at the end;
- ``train_summary.json``.

``vmalign train --resume RUN`` continues a run from its latest checkpoint: policy,
optimiser, reward model, preference labels (all of them, including any written after
the checkpoint), RNG states and step counters; the preference loop asks its labels
on the same schedule as a run that was never stopped. Episodes that were running
when the run stopped are started afresh (new seeds), which is all that differs from
an uninterrupted run.

Every key of the config is checked, the device looked up, and one env and the reward
module built, before the run folder is made: a bad config stops in seconds with a
message naming the key, and leaves nothing on disk.

``torchrun --standalone --nproc_per_node=N -m agents train --config vla_bc ...``
trains ``vla-bc`` and ``vla-grpo`` data-parallel on N processes (one per GPU, or CPU
processes): the same command, the same run folder, written by the main process
(:mod:`agents.distributed`); ``--resume`` works the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agents import distributed
from agents.algorithms import ALGORITHMS
from agents.config import RunConfig, load_config
from agents.output import make_output_dir
from agents.runs import Checked, load_run_config, preflight_run, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a YAML config file, or the name of a shipped one "
                                         "(agents/configs/NAME.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. hyperparams.n_timesteps=50000 seed=1")
    parser.add_argument("--algo", choices=list(ALGORITHMS),
                        help="ppo (default) or a VLA trainer; without --config a VLA algo "
                             "starts from its shipped config (agents/configs/vla_bc.yaml, ...)")
    lengths = ", ".join(row.length_key for row in ALGORITHMS.values())
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help=f"continue this run from its latest checkpoint (only its length "
                             f"may be overridden: {lengths})")
    parser.add_argument("--out", help="run folder (default: the config's 'out', else "
                                      "outputs/train-<algo>-<env>-<reward>-<time>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_config(args: argparse.Namespace) -> RunConfig:
    """The config ``args`` ask for: a resumed run's own, or a file plus overrides."""
    if args.resume:
        if args.config or args.algo:
            raise ValueError("--resume continues a run with its own config; leave out "
                             "--config and --algo")
        length = ALGORITHMS[load_run_config(Path(args.resume)).algo].length_key
        if any(o.split("=", 1)[0] != length for o in args.overrides):
            raise ValueError(f"with --resume only {length}=N may be overridden "
                             "(the rest of a run's config is fixed)")
        return load_run_config(Path(args.resume), args.overrides)
    overrides = list(args.overrides) + ([f"algo={args.algo}"] if args.algo else [])
    name = args.config
    if name is None and args.algo and args.algo != "ppo":
        name = args.algo.replace("-", "_")
    if not name:
        raise ValueError(f"give --config FILE_OR_NAME (e.g. --config reach_ground_truth), "
                         f"--algo {'|'.join(ALGORITHMS)}, or --resume RUN_DIR")
    return load_config(name, overrides)


def run(args: argparse.Namespace) -> int:
    config = read_config(args)
    resume_dir = Path(args.resume) if args.resume else None
    checked = preflight_run(config, resume_dir)  # before any folder exists
    try:
        # Under torchrun the main process names the folder, for all.
        run_dir = resume_dir or distributed.from_main(
            lambda: make_output_dir(args.out or config.out, prefix=config.run_name()))
        return _train(config, run_dir, resume_dir is not None, checked, args)
    finally:
        distributed.leave()


def _train(config: RunConfig, run_dir: Path, resume: bool, checked: Checked,
           args: argparse.Namespace) -> int:
    main = distributed.world().is_main
    unit = ALGORITHMS[config.algo].unit
    if main:
        print(f"vmalign train: {config.algo}, {config.total_steps} {unit}; writing to {run_dir}")
    summary = train(config, run_dir, resume=resume, checked=checked,
                    progress_bar=not args.no_progress and main)
    if not main:
        return 0
    if "eval" in summary:
        print(f"vmalign train: done in {summary['seconds']} s; evaluation "
              f"{json.dumps(summary['eval'])}; run folder {run_dir}")
    else:
        print(f"vmalign train: done, {summary['steps']} steps in {summary['seconds']} s "
              f"({summary['fps']} steps/s); ground-truth return {summary['gt_return']}, "
              f"success rate {summary['success_rate']}; run folder {run_dir}")
    return 0
