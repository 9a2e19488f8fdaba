"""Results over seeds: ``vmalign report DIR``.

Groups the run folders under ``DIR`` into grid points (runs whose configs differ only
in ``seed``), and writes ``report.md`` (a table: every seed's final success and
return, their IQM and mean with 95% stratified bootstrap intervals from rliable),
``report.json`` and plots (``learning_curves.png``, ``performance_profile.png``) to
``DIR`` or ``--out``. ``--results-md docs/results.md --section NAME`` also writes the
table into that file between ``<!-- vmalign report: NAME -->`` markers, replacing
the previous one, so a results table is regenerated from its runs. See
:mod:`agents.report`.
"""

from __future__ import annotations

import argparse

from agents.report import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="DIR", help="a folder of run folders (e.g. a sweep's)")
    parser.add_argument("--out", help="where the report goes (default: DIR)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (>= 100)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the bootstrap")
    parser.add_argument("--results-md", help="a Markdown file whose report section to rewrite")
    parser.add_argument("--section", help="the section's name (with --results-md)")


def run(args: argparse.Namespace) -> int:
    record = report(args.root, args.out, args.reps, args.seed, args.results_md, args.section)
    out = args.out or args.root
    runs = sum(len(point["runs"]) for point in record["points"])
    print(f"vmalign report: {len(record['points'])} grid point(s), {runs} run(s); "
          f"{out}/report.md")
    return 0



