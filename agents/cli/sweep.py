"""Sweeps on Ray Tune: ``vmalign sweep --config NAME --seeds 0 1 2 --grid KEY=[a,b] ...``.

Runs every grid point x seed of a config as an ordinary run folder under
``--out``/trials/, scheduled by Ray Tune on a local Ray instance (``--cpus``,
``--gpus``; ``--cpus-per-trial`` sets how many trials run at once) or on a Ray
cluster (``--address HOST:PORT``), then writes ``vmalign report`` for the trials
into ``--out``. Running the same command again continues the sweep: finished trials
are not rerun, killed or failed ones resume from their checkpoints. See
:mod:`agents.sweep`.
"""

from __future__ import annotations

import argparse

from agents.sweep import parse_grid, sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="config file or shipped name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument("--grid", nargs="*", default=[], metavar="KEY=[V1,V2]",
                        help="override values to sweep, e.g. 'reward=[ground_truth,preference]'")
    parser.add_argument("--out", help="sweep folder (default outputs/sweep-<time>); an "
                                      "existing sweep there is continued")
    parser.add_argument("--cpus", type=int, help="CPUs for a local Ray instance (default: all)")
    parser.add_argument("--gpus", type=int, help="GPUs for a local Ray instance")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=float, default=0.0)
    parser.add_argument("--address", help="join the Ray cluster at HOST:PORT instead")
    parser.add_argument("--no-report", action="store_true", help="skip the final report")
    parser.add_argument("--setup", action="append", default=[], metavar="MODULE:FUNCTION",
                        help="called before the trials are checked and in every trial's "
                             "worker, e.g. a function that registers your own envs")


def run(args: argparse.Namespace) -> int:
    out, outcome = sweep(args.config, args.seeds, parse_grid(args.grid), args.out, args.cpus,
                         args.gpus, args.cpus_per_trial, args.gpus_per_trial, args.address,
                         report=not args.no_report, setup=args.setup)
    failed = {name: value["error"] for name, value in outcome.items() if "error" in value}
    for name, value in outcome.items():
        state = "failed" if name in failed else value.get("trial_status", "done")
        success = value.get("eval_success_rate", value.get("success_rate", "-"))
        print(f"  {name}: {state}, success {success}")
    print(f"vmalign sweep: {len(outcome)} trial(s), {len(failed)} failed; {out}")
    return 1 if failed else 0
