"""The ``vmalign`` command line: one subcommand per module.

Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``;
adding one (train, eval, collect, ...) is one entry in :data:`_COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Subcommand modules keep their heavy imports
# (MuJoCo, torch) inside `run`, so building the parser for `--help` stays fast.
_COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("agents.collect", "record expert demonstrations into a dataset on disk"),
    "demo": ("agents.demo", "the whole loop: PPO against a preference-learned reward, eval, summary"),
    "eval": ("agents.evaluate", "success rate, best/worst episode videos and learning curve of a run"),
    "preview": ("agents.preview", "render every environment's scripted expert to videos"),
    "reward-eval": ("agents.reward_eval", "judge a reward module against task progress"),
    "reward-train": ("agents.reward_train", "train a learned reward from a teacher and an env"),
    "train": ("agents.train", "train PPO on an env and reward module from a config"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand's arguments."""
    parser = argparse.ArgumentParser(
        prog="vmalign",
        description="Pixel environments, reward modules and agents for visuomotor alignment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except (ValueError, TypeError, FileNotFoundError) as error:
        # Bad input (an unknown name, a malformed argument, a missing file): one
        # line saying what was wrong, not a traceback.
        print(f"vmalign {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
