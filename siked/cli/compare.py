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
    "file. --plot also draws the runs' mechanism per iteration into one PNG: validation "
    "accuracy, the share of their own samples each model solved, the mix's alpha and "
    "KL(P_train || P_student), and for the first run with samples the per-strategy share of "
    "correct samples and of the student's choices."
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
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="also draw the runs' validation accuracy, own-sample yield, alpha and KL per "
        "iteration into this PNG",
    )


def run(args: argparse.Namespace) -> int:
    from siked.io import atomic_write_text
    from siked.report import compare, compare_paired

    table = compare_paired(args.run_dirs) if args.paired else compare(args.run_dirs, ci=args.ci)
    print(table, end="")
    if args.out is not None:
        atomic_write_text(args.out, table)
        print(f"written to {args.out}")
    if args.plot is not None:
        from siked.report import load_run
        from siked.report.plots import plot_dynamics

        drawn = plot_dynamics([load_run(d) for d in args.run_dirs], args.plot)
        print(f"figure written to {drawn}" if drawn else "no iteration to draw: no figure")
    return 0
