"""``siked compare``: runs side by side, like the paper's Table 1 (:func:`compare`), or each run
against the first question by question (:func:`compare_paired`). Every run is represented by
its best iteration (:func:`siked.rundir.best_iteration`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from siked.console import format_duration
from siked.io import iter_jsonl
from siked.machine import native_bf16
from siked.report.load import ReportError, RunData, load_run
from siked.report.markdown import alpha_label, md_table
from siked.report.metrics import (
    best_iteration,
    ci_of,
    dataset_result,
    eval_choice,
    eval_datasets,
    fmt_pct,
    format_mix,
    primary_dataset,
)
from siked.rundir import VALIDATION, accuracy_of
from siked.strategies import NO_STRATEGY


def _mixing_label(run: RunData) -> str:
    if run.method != "siked":  # distillation and the untrained student mix nothing
        return "—"
    m = run.mix_config
    if not m:
        return "?"
    return f"{m.get('variant', '?')}, bias {m.get('bias', '?')}, α {alpha_label(m)}"


def stage_seconds(run: RunData) -> float | None:
    """The compute time of a run: the seconds its manifest records for its finished stages (a
    stage resumed after a crash counts its last attempt only; one copied from another run by
    ``siked run --reuse`` the seconds it took there); None without a manifest."""
    if not run.manifest:
        return None
    stages = (run.manifest.get("stages") or {}).values()
    return sum(
        float((st.get("donor_seconds") if st.get("reused_from") else st.get("seconds")) or 0)
        for st in stages
    )


def compare_rows(
    run_dirs: Sequence[str | os.PathLike[str]],
) -> tuple[list[str], list[dict[str, Any]]]:
    """(test datasets, one dict per run) for :func:`compare`: the best-on-validation iteration's
    accuracy and interval per dataset, and its strategy mix on the primary (GSM8K) dataset."""
    runs = [load_run(p) for p in run_dirs]
    datasets: list[str] = []
    for run in runs:
        for d in eval_datasets(run):
            if d != VALIDATION and d not in datasets:
                datasets.append(d)
    primary = primary_dataset(datasets)
    out = []
    for run in runs:
        best = best_iteration(run)
        it = run.iteration(best) if best is not None else None
        results = {d: dataset_result(it, d) if it else None for d in datasets}
        run_primary = primary
        if it and (primary is None or results.get(primary) is None):
            run_primary = primary_dataset(eval_datasets(run))
        choice = (
            eval_choice(dataset_result(it, run_primary), run.strategies)
            if it and run_primary
            else {}
        )
        out.append(
            {
                "name": run.name,
                "path": str(run.path),
                "method": run.method,
                "mixing": _mixing_label(run),
                "best_iteration": best,
                "validation": accuracy_of(dataset_result(it, VALIDATION)) if it else None,
                "accuracy": {d: accuracy_of(r) for d, r in results.items()},
                "ci95": {d: ci_of(r) for d, r in results.items()},
                "mix_dataset": run_primary,
                "strategy_mix": {k: v for k, v in choice.items() if v or k != NO_STRATEGY},
                "missing": run.missing,
                "in_progress": run.in_progress,
                "seconds": stage_seconds(run),
                "manifest": run.manifest,  # the machines it ran on (:func:`precision_note`)
            }
        )
    return datasets, out


def bf16_kinds(manifest: dict[str, Any] | None) -> set[bool]:
    """Whether the CPU of each invocation of a run computed bf16 natively, as a set (empty:
    unknown). Invocations recorded before they kept their instruction sets count as the
    manifest's machine (the last one).

    >>> bf16_kinds({"machine": {"isa": ["avx2"]}, "invocations": [{"isa": ["avx512_bf16"]}, {}]})
    {False, True}
    """
    if not manifest:
        return set()
    last = (manifest.get("machine") or {}).get("isa")
    isas = [inv.get("isa", last) for inv in manifest.get("invocations") or [{}]]
    return {native_bf16(isa) for isa in isas if isa is not None}


def precision_note(runs: Sequence[tuple[str, dict[str, Any] | None]]) -> str:
    """A sentence naming which runs computed on CPUs with native bf16 and which without, when a
    table mixes them ("" when it does not): under ``dtype: auto`` and ``train.bf16: null``
    the former computed in bf16 and the latter in float32.

    >>> precision_note([("a", {"machine": {"isa": ["avx512_bf16"]}}), ("b", None)])
    ''
    >>> precision_note([("a", {"machine": {"isa": ["avx512_bf16"]}}),
    ...                 ("b", {"machine": {"isa": ["avx2"]}})])[:63]
    ' Computed on CPUs with native bf16 (AVX512-BF16 or AMX): a; wit'
    """
    groups: dict[str, list[str]] = {"with": [], "without": [], "both": []}
    for name, manifest in runs:
        kinds = bf16_kinds(manifest)
        if kinds:
            groups["both" if len(kinds) > 1 else "with" if True in kinds else "without"].append(
                name
            )
    if sum(1 for names in groups.values() if names) < 2 and not groups["both"]:
        return ""
    parts = [
        label + ", ".join(groups[key])
        for key, label in (
            ("with", "native bf16 (AVX512-BF16 or AMX): "),
            ("without", "without: "),
            ("both", "both (resumed): "),
        )
        if groups[key]
    ]
    return (
        " Computed on CPUs with " + "; ".join(parts) + ". Under `dtype: auto` and `train.bf16:"
        " null` a CPU with native bf16 computes in bf16 and one without in float32, which by"
        " itself changes answers question by question: differences between these runs are not"
        " only their methods'."
    )


def compare(run_dirs: Sequence[str | os.PathLike[str]], ci: bool = False) -> str:
    """A markdown table of runs (rows) by evaluation datasets (columns), like the paper's
    Table 1: accuracy (%) of each run's best-on-validation iteration (with its 95 % interval
    when ``ci``), the best value per column in bold, and the strategy mix on GSM8K."""
    if not run_dirs:
        raise ReportError("compare needs at least one run directory")
    datasets, rows = compare_rows(run_dirs)
    best_per_col = {
        d: max((r["accuracy"][d] for r in rows if r["accuracy"][d] is not None), default=None)
        for d in datasets
    }
    mix_label = primary_dataset(datasets) or "—"
    header = [
        "run",
        "method",
        "mixing",
        "best iter",
        "validation",
        *datasets,
        f"strategy mix ({mix_label})",
        "time",
    ]
    table = []
    for r in rows:
        cells = [
            r["name"],
            r["method"],
            r["mixing"],
            "—" if r["best_iteration"] is None else str(r["best_iteration"]),
            fmt_pct(r["validation"]),
        ]
        for d in datasets:
            acc = r["accuracy"][d]
            cell = fmt_pct(acc)
            if ci and acc is not None and r["ci95"][d]:
                lo, hi = r["ci95"][d]
                cell += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
            if acc is not None and len(rows) > 1 and acc == best_per_col[d]:
                cell = f"**{cell}**"
            cells.append(cell)
        mix_txt = format_mix(r["strategy_mix"])
        if r["strategy_mix"] and r["mix_dataset"] != mix_label:
            mix_txt += f" (on {r['mix_dataset']})"
        cells.append(mix_txt)
        cells.append(format_duration(r["seconds"]))
        table.append(cells)
    note = (
        "Accuracy (%) of each run's best iteration on validation"
        + (", with 95 % Wilson intervals" if ci else "")
        + "; bold = best in the column; strategy mix = the student's free choice, % of answers;"
        + " time = the stages' seconds in the run's manifest (a stage copied from another"
        " run by `--reuse`: the seconds it took there)."
    )
    incomplete = [r["name"] for r in rows if r["best_iteration"] is None]
    if incomplete:
        note += f" Not evaluated yet: {', '.join(incomplete)}."
    running = [r["name"] for r in rows if r["in_progress"]]
    if running:
        note += f" In progress (their numbers may still change): {', '.join(running)}."
    note += precision_note([(r["name"], r["manifest"]) for r in rows])
    return md_table(header, table) + "\n\n" + note + "\n"


def best_predictions(run: RunData) -> dict[str, dict[str, bool]]:
    """dataset -> {qid: solved} from the best-on-validation iteration's ``predictions.jsonl``.

    Needs one prediction per question (free mode, or one forced strategy); a log with several
    per question (mode ``all``) cannot be paired and is an error.
    """
    best = best_iteration(run)
    if best is None:
        raise ReportError(f"{run.path}: no evaluated iteration")
    path = run.paths.predictions(best)
    if not path.is_file():
        raise ReportError(f"{path} not found: a paired comparison needs the predictions")
    out: dict[str, dict[str, bool]] = {}
    for row in iter_jsonl(path):
        dataset, qid = str(row.get("dataset")), str(row.get("qid"))
        if dataset == VALIDATION:
            continue
        seen = out.setdefault(dataset, {})
        if qid in seen:
            raise ReportError(
                f"{path}: several predictions for {dataset} question {qid} (eval mode 'all'?); "
                "a paired comparison needs one per question"
            )
        seen[qid] = bool(row.get("correct"))
    return out


def compare_paired(
    run_dirs: Sequence[str | os.PathLike[str]], resamples: int = 10_000, seed: int = 0
) -> str:
    """Each run against the first, question by question, per dataset: the difference in
    accuracy (points) with a 95 % bootstrap interval over questions, the questions only one of
    them solved, and the exact McNemar p-value (:func:`siked.stats.paired_difference`).

    Only questions both runs answered are paired (their number is shown)."""
    from siked.stats import paired_difference

    if len(run_dirs) < 2:
        raise ReportError(
            "a paired comparison needs at least two runs (the first is the reference)"
        )
    runs = [load_run(p) for p in run_dirs]
    ref, ref_preds = runs[0], best_predictions(runs[0])
    # the others as far as they got: one not evaluated yet, or on validation only (the test
    # sets come once, at the end of a run), has no row and is named in the note
    others = [(r, best_predictions(r) if best_iteration(r) is not None else {}) for r in runs[1:]]
    header = [
        "run",
        "vs",
        "dataset",
        "n",
        "accuracy",
        "difference [95% CI]",
        "only A / only B",
        "McNemar p",
    ]
    table = []
    for run, p in others:
        for dataset in [d for d in ref_preds if d in p]:
            qids = sorted(set(ref_preds[dataset]) & set(p[dataset]))
            if not qids:
                continue
            a = [p[dataset][q] for q in qids]
            b = [ref_preds[dataset][q] for q in qids]
            r = paired_difference(a, b, resamples=resamples, seed=seed)
            lo, hi = r.ci95
            table.append(
                [
                    run.name,
                    ref.name,
                    dataset,
                    str(r.n),
                    f"{100 * r.a_correct / r.n:.1f} vs {100 * r.b_correct / r.n:.1f}",
                    f"{100 * r.diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]",
                    f"{r.a_only} / {r.b_only}",
                    f"{r.p_mcnemar:.3g}",
                ]
            )
    note = (
        "Each run (A) against the first (B) on the questions both answered, best-on-validation "
        "iterations: difference = accuracy(A) - accuracy(B) in points, 95 % percentile "
        f"bootstrap over questions ({resamples} resamples, seed {seed}); only A / only B = "
        "questions one of them solved; McNemar p = exact two-sided test on those."
    )
    waiting = [run.name for run, p in others if not p]
    if waiting:
        note += f" No test answers yet: {', '.join(waiting)}."
    note += precision_note([(run.name, run.manifest) for run in runs])
    return md_table(header, table) + "\n\n" + note + "\n"
