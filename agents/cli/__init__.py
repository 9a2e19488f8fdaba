"""The ``vmalign`` command line: one thin module per subcommand.

Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``:
it parses, calls the library (``agents.*``), and prints. Adding a command is one
entry in :data:`COMMANDS` plus its module. Only the module of the command being run
is imported (the others would load MuJoCo and torch for nothing), so ``vmalign
--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("agents.cli.collect", "record expert demonstrations into a dataset on disk"),
    "demo": ("agents.cli.demo", "the whole loop: a state policy against a reward learned "
                                "from preferences over pixels, eval, summary"),
    "eval": ("agents.cli.eval", "success rate, best/worst episode videos and learning curve "
                                "of a run"),
    "label": ("agents.cli.label", "serve the labelling page for a run's pending preference "
                                  "queries"),
    "preview": ("agents.cli.preview", "render every environment's scripted expert to videos"),
    "report": ("agents.cli.report", "IQM and mean over seeds with bootstrap confidence "
                                    "intervals, from a folder of runs"),
    "reward-eval": ("agents.cli.reward_eval", "judge a reward module against task progress"),
    "reward-train": ("agents.cli.reward_train", "train a learned reward from a teacher and an "
                                                "env"),
    "sweep": ("agents.cli.sweep", "run every grid point x seed of a config on Ray Tune, "
                                  "then report"),
    "train": ("agents.cli.train", "train an agent (PPO, VLA) on an env and reward module from "
                                  "a config"),
}
"""name -> (module, one-line help)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command``, that subcommand's arguments are added
    (its module imported), the others are listed by name only."""
    parser = argparse.ArgumentParser(
        prog="vmalign",
        description="Pixel environments, reward modules and agents for visuomotor alignment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != command:
            subparsers.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=module.__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
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
