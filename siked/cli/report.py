"""``siked report RUN``: (re)write RUN/report/report.md and its figures from the run's files."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write RUN/report/report.md with figures from a run directory (any time, even mid-run)"
DESCRIPTION = (
    "Regenerate RUN/report/report.md and its PNG figures from the files of a run directory: "
    "strategy choice of teacher vs student, the training mix per iteration (alpha, KL), "
    "accuracy per iteration with 95% intervals, per-strategy accuracy and self-generation "
    "yield, the summary table and the run's provenance. Missing pieces are listed, not fatal. "
    "Works on a run in progress (it locks only RUN/report/ and says the run is in progress)."
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN", help="run directory (runs/<name>)")


def run(args: argparse.Namespace) -> int:
    from siked.report import load_run, write_report

    path = write_report(args.run_dir)
    figures = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"report: {path}")
    print(f"figures: {', '.join(figures) if figures else 'none'}")
    missing = load_run(args.run_dir).missing
    if missing:
        print(f"missing: {', '.join(missing)}")
    return 0
