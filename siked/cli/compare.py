"""``siked compare RUN [RUN ...]``: one table of runs by evaluation datasets (paper's Table 1)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "compare runs: accuracy of each run's best-on-validation iteration per dataset"
DESCRIPTION = (
    "Print a markdown table like the paper's Table 1: one row per run (name, method, mixing "
    "variant, best iteration on validation), one column per evaluation dataset (accuracy in % "
    "of that iteration, optionally with its 95% Wilson interval), and the run's strategy mix "
    "on GSM8K, and its compute time (the seconds of its stages in the manifest). Runs that a "
    "process is still writing are named in the note below the table. "
    "--paired compares every run with the first question by question instead: per dataset the "
    "difference in accuracy with a 95% bootstrap interval over questions and the exact McNemar "
    "test (the runs must have answered the same questions). --out also writes the table to a "
    "file."
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    p.add_argument("--ci", action="store_true", help="show 95%% confidence intervals")
    p.add_argument(
        "--paired",
        action="store_true",
        help="each run vs the first, question by question (difference, 95%% CI, McNemar)",
    )


def run(args: argparse.Namespace) -> int:
    from siked.io import atomic_write_text
    from siked.report import compare, compare_paired

    table = compare_paired(args.run_dirs) if args.paired else compare(args.run_dirs, ci=args.ci)
    print(table, end="")
    if args.out is not None:
        atomic_write_text(args.out, table)
        print(f"written to {args.out}")
    return 0
