"""The run report: figures and ``report.md`` regenerated from a run directory's files, and
``siked compare`` over several runs.

:func:`write_report` reads a run directory (the contract in ``docs/architecture.md``, spelled
out by :class:`siked.rundir.RunPaths`) and writes ``RUN/report/report.md`` with four PNG figures:

1. ``strategy_choice.png``: strategy distribution of the teacher data D_LLM next to the
   student's choices per iteration, on evaluation and in self-generation (the paper's Figure 1);
2. ``mixing.png``: per SIKeD iteration, P_LLM, P_student and P_train with alpha and KL in each
   panel title (the paper's Figure 2);
3. ``accuracy.png``: accuracy per iteration and dataset, validation included, with 95 % Wilson
   intervals as error bars (the paper's Figure 4);
4. ``strategy_accuracy.png``: per-strategy accuracy per iteration and the yield of the
   self-generation per strategy;

then the summary table and the run's provenance (config, versions, seeds, stage times). It is
called by the loop after every iteration, so it is fast and tolerant: whatever is missing (a run
in progress, a distillation run with only ``iter_00``) is listed in the report, never raised.
A run that another process is writing (it holds the run directory's lock, :mod:`siked.lock`) is
reported as in progress; the report takes only the lock of ``report/`` itself.

:func:`compare` turns several runs into one markdown table like the paper's Table 1;
:func:`compare_paired` compares each run with the first question by question.

The package is split by job: :mod:`~siked.report.load` (reading a run),
:mod:`~siked.report.metrics` (the numbers), :mod:`~siked.report.plots` (the figures),
:mod:`~siked.report.markdown` (``report.md``) and :mod:`~siked.report.compare`.
"""

from __future__ import annotations

from siked.report.compare import best_predictions, compare, compare_paired, compare_rows
from siked.report.load import IterationData, ReportError, RunData, load_run
from siked.report.markdown import REPORT_LOCK_WAIT_S, build_report, write_report
from siked.report.metrics import best_iteration, format_mix, summary_table
from siked.report.plots import FIGURES, PALETTE, strategy_colour

__all__ = [
    "FIGURES",
    "PALETTE",
    "REPORT_LOCK_WAIT_S",
    "IterationData",
    "ReportError",
    "RunData",
    "best_iteration",
    "best_predictions",
    "build_report",
    "compare",
    "compare_paired",
    "compare_rows",
    "format_mix",
    "load_run",
    "strategy_colour",
    "summary_table",
    "write_report",
]
