"""``report.md``: the summary table, the figures with their captions, the teacher data, the
self-generation and the run's provenance; :func:`write_report` draws and writes it all.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from siked.console import format_duration
from siked.io import atomic_write_text
from siked.lock import output_lock
from siked.mix import KL_MIN_SUPPORT, format_kl
from siked.report.load import ReportError, RunData, load_run
from siked.report.metrics import (
    _first_number,
    _per_strategy_table,
    best_iteration,
    dataset_result,
    eval_choice,
    eval_datasets,
    fmt_num,
    fmt_pct,
    format_mix,
    primary_dataset,
    run_state,
    self_generation_yield,
    summary_table,
)
from siked.report.plots import (
    FIGURES,
    plot_accuracy,
    plot_mixing,
    plot_strategy_accuracy,
    plot_strategy_choice,
)
from siked.rundir import VALIDATION, RunPaths, untagged_total
from siked.strategies import NO_STRATEGY

log = logging.getLogger("siked.report")

#: seconds write_report waits for another process writing the same report/ (never refuses at once)
REPORT_LOCK_WAIT_S = 120.0
#: the report itself, in ``report/``
REPORT_MD = "report.md"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table.

    >>> print(md_table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    out = ["| " + " | ".join(str(h) for h in header) + " |"]
    out.append("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


#: What α and KL mean under a bias (one rationale per question), said wherever they are shown.
BIAS_NOTE = (
    "under a bias (`mix.bias`: one rationale per question) α does not fall gradually. At the "
    "first self-guided iteration every question the student solved with the preferred strategy "
    "takes its own row (`adaptive`, or `all` with `mix.tie_break: student`; about half of them "
    "with the seeded tie-break), so α drops at once to about the share of questions it did not "
    "solve that way, and changes little after. P_train is then mostly the preferred strategy "
    "(PoT under the paper's bias), so KL(P_train ‖ P_student) mostly measures how much of the "
    "mix is PoT against how often the student's correct samples are PoT, not how far the "
    "student's own strategy choice has moved."
)


def alpha_label(mix_cfg: Mapping[str, Any]) -> str:
    a = mix_cfg.get("alpha", "auto")
    if isinstance(a, dict):
        return f"{a.get('start')}→{a.get('end')}"
    return str(a)


def _summary_markdown(run: RunData) -> str:
    rows = summary_table(run)
    if not rows:
        return "_No iteration yet._"
    datasets = list(rows[0]["eval"]) if rows else []
    best = best_iteration(run)
    primary = primary_dataset(eval_datasets(run))
    header = ["iter", "rows", "α", "KL", "KL (all)", "train mix", "untagged", "validation"]
    header += datasets
    if primary and primary != VALIDATION:
        header.append(f"choice on {primary}")
    header.append("time")
    out = []
    for r in rows:
        n = r["iteration"]
        it = run.iteration(n)
        cells = [
            f"**{n}** (best)" if n == best else str(n),
            fmt_num(r["rows"]),
            fmt_num(r["alpha"], 2),
            format_kl(r["kl"], r.get("kl_support")),
            fmt_num(r.get("kl_all"), 3),
            format_mix(r["p_train"], run.strategies),
            fmt_num(untagged_total(r.get("untagged"))),
            fmt_pct(r["validation_accuracy"]),
            *[fmt_pct(r["eval"].get(d)) for d in datasets],
        ]
        if primary and primary != VALIDATION:
            choice = eval_choice(dataset_result(it, primary), run.strategies) if it else {}
            cells.append(format_mix({k: v for k, v in choice.items() if v or k != NO_STRATEGY}))
        cells.append(format_duration(r["seconds"]))
        out.append(cells)
    note = (
        "Accuracies in %, mixes in % of rows; untagged = answers without a strategy tag over "
        "the evaluated sets (they count as correct only under `eval.untagged: extract`); "
        "α = share of teacher rows, "
        "KL = KL(P_train ‖ P_student) with P_student over the student's correct samples, "
        f"shown with how many there are (— below {KL_MIN_SUPPORT}: then it reflects the "
        "smoothing, not the student); KL (all) = KL(P_train ‖ P_student_all) over all its "
        "samples (`none` = no strategy tag). These, and P_LLM as the share of each strategy in "
        "D_LLM (the forced teacher's yield, not the teacher's own choice), are siked's "
        "interpretation of the paper's Figure 2, not its curve: " + BIAS_NOTE
    )
    return md_table(header, out) + "\n\n" + note


def _teacher_markdown(run: RunData) -> str:
    st = run.teacher_stats
    if not st:
        return "_teacher/stats.json is missing._"
    table = _per_strategy_table(st)
    lines = []
    if table:
        rows = []
        for s, v in table.items():
            n = _first_number(v, ("samples", "n", "total", "count"))
            kept = _first_number(v, ("kept", "correct"))
            y = _first_number(v, ("yield",))
            if y is None and n and kept is not None:
                y = kept / n
            rows.append(
                [
                    s,
                    fmt_num(int(n) if n is not None else None),
                    fmt_num(int(kept) if kept is not None else None),
                    fmt_pct(y),
                ]
            )
        lines.append(md_table(["strategy", "samples", "kept (D_LLM)", "yield (%)"], rows))
    fc = st.get("free_choice")
    if isinstance(fc, dict) and isinstance(fc.get("per_strategy"), dict):
        p = fc.get("p_choice") or {}
        rows = [
            [s, fmt_pct(p.get(s)), fmt_num(v.get("chosen")), fmt_pct(v.get("accuracy"))]
            for s, v in fc["per_strategy"].items()
            if isinstance(v, dict)
        ]
        rows.append([f"{NO_STRATEGY} (no tag)", fmt_pct(p.get(NO_STRATEGY)), "—", "—"])
        lines.append(
            f"**Free choice** ({fmt_num(fc.get('samples'))} samples, {fmt_num(fc.get('n'))} per "
            "question): the teacher chose the strategy itself; this is its real strategy "
            "distribution, not used for training. Overall accuracy "
            f"{fmt_pct(fc.get('accuracy'))} %.\n\n"
            + md_table(["strategy", "chosen (%)", "n", "accuracy (%)"], rows)
        )
    scalars = {k: v for k, v in st.items() if isinstance(v, str | int | float | bool)}
    if scalars:
        lines.append(", ".join(f"{k}: {v}" for k, v in scalars.items()))
    if not lines:
        lines.append("```json\n" + json.dumps(st, indent=2, sort_keys=True)[:4000] + "\n```")
    return "\n\n".join(lines)


def _self_generation_markdown(run: RunData) -> str:
    rows = []
    strategies = run.strategies
    for it in run.iterations:
        y = self_generation_yield(run, it)
        if not any(v is not None for v in y.values()):
            continue
        ss = it.sample_stats or {}
        solved = _first_number(ss, ("questions_solved",))
        questions = _first_number(ss, ("questions",))
        rows.append(
            [
                str(it.iteration),
                fmt_num(int(ss["samples"]) if isinstance(ss.get("samples"), int) else None),
                fmt_pct(_first_number(ss, ("yield",))),
                *[fmt_pct(y.get(s)) for s in strategies],
                f"{int(solved)}/{int(questions)}" if solved is not None and questions else "—",
            ]
        )
    if not rows:
        return "_No self-generation yet._"
    header = ["model", "samples", "yield (%)", *[f"{s} yield (%)" for s in strategies], "solved"]
    return md_table(header, rows)


def _provenance_markdown(run: RunData) -> str:
    parts = []
    man = run.manifest or {}
    cfg = run.config
    seeds = {"run seed": cfg.get("seed")}
    if isinstance(cfg.get("train"), dict):
        seeds["train.seed"] = cfg["train"].get("seed")
    info = [
        f"- run directory: `{run.path}`",
        f"- created: {man.get('created', '—')}",
        f"- config hash: `{man.get('config_hash', '—')}`",
        "- seeds: " + ", ".join(f"{k} {v}" for k, v in seeds.items() if v is not None),
    ]
    parts.append("\n".join(info))
    versions = man.get("versions") or {}
    if versions:
        parts.append(
            "**Versions**\n\n"
            + md_table(["library", "version"], [[k, v or "—"] for k, v in versions.items()])
        )
    stages = man.get("stages") or {}
    if stages:
        rows = []
        total = 0.0
        ordered = sorted(
            ((k, v) for k, v in stages.items() if isinstance(v, dict)),
            key=lambda kv: (str(kv[1].get("started") or "~"), kv[0]),
        )
        reused = 0.0
        for k, v in ordered:
            secs = v.get("seconds")
            total += float(secs or 0)
            status = str(v.get("status", "—"))
            if v.get("reused_from"):  # `siked run --reuse`: the time is the copy's
                status += f" (copied from {v['reused_from']})"
                reused += float(v.get("donor_seconds") or 0)
            rows.append(
                [
                    k,
                    status,
                    v.get("started", "—"),
                    format_duration(secs) if secs is not None else "—",
                    v.get("seed", "—") if v.get("seed") is not None else "—",
                ]
            )
        made_there = (
            f"; the copied stages took {format_duration(reused)} where they were made"
            if reused
            else ""
        )
        parts.append(
            f"**Stages** (total {format_duration(total)}{made_there})\n\n"
            + md_table(["stage", "status", "started", "time", "seed"], rows)
        )
    cfg_path = run.paths.config
    if cfg_path.is_file():
        try:
            text = cfg_path.read_text(encoding="utf-8")
            parts.append(
                "<details><summary>config.yaml</summary>\n\n```yaml\n"
                + text.rstrip()
                + "\n```\n\n</details>"
            )
        except OSError:
            pass
    return "\n\n".join(parts)


_CAPTIONS = {
    "strategy_choice": (
        "Figure 1. Strategy distribution of the teacher data D_LLM (the share of each strategy "
        "among the teacher's correct forced-strategy rationales), of the teacher's own free "
        "choice when measured (`teacher.free_choice_n`), and of the student's choices per "
        "iteration: on the evaluation set (free choice; `none` = no strategy tag) and over all "
        "its self-generated samples."
    ),
    "mixing": (
        "Figure 2. Per SIKeD iteration: P_LLM, the share of each strategy in D_LLM (the "
        "forced teacher's yield, not its own choice), the student's distribution over its "
        "correct samples P_student and the training mix P_train, with the teacher share α, "
        "KL(P_train ‖ P_student) and KL(P_train ‖ P_student_all) over all the student's "
        "samples. siked's interpretation of the paper's Figure 2: the released code computes "
        "neither quantity. Do not read it as the paper's curve: " + BIAS_NOTE
    ),
    "accuracy": (
        "Figure 3. Accuracy per iteration on each dataset; validation (dashed) selects the best "
        "iteration. Error bars: 95 % Wilson intervals."
    ),
    "strategy_accuracy": (
        "Figure 4. Left: accuracy of the answers given with each strategy (n = how often the "
        "student chose it). Right: share of correct samples per strategy in the self-generation "
        "that feeds the next iteration."
    ),
}
_TITLES = {
    "strategy_choice": "Strategy choice: teacher vs student",
    "mixing": "Training mix per iteration",
    "accuracy": "Accuracy per iteration",
    "strategy_accuracy": "Per-strategy accuracy and self-generation yield",
}
_PLOTTERS = {
    "strategy_choice": plot_strategy_choice,
    "mixing": plot_mixing,
    "accuracy": plot_accuracy,
    "strategy_accuracy": plot_strategy_accuracy,
}
_EMPTY = {
    "strategy_choice": "no teacher data, evaluation or samples yet",
    "mixing": "no SIKeD iteration yet (iteration 0 trains on D_LLM only)",
    "accuracy": "no evaluation yet",
    "strategy_accuracy": "no per-strategy evaluation or self-generation yet",
}


def build_report(run: RunData, out_dir: Path) -> tuple[str, dict[str, Path | None]]:
    """Draw the figures into ``out_dir`` and return the markdown text and the figure paths.

    A figure that fails is logged and noted in the report; it never raises.
    """
    figures: dict[str, Path | None] = {}
    notes: dict[str, str] = {}
    for key, plotter in _PLOTTERS.items():
        target = out_dir / FIGURES[key]
        try:
            figures[key] = plotter(run, target)
            if figures[key] is None:
                notes[key] = _EMPTY[key]
        except Exception as e:  # a broken file must not stop the report
            log.warning("report: figure %s failed: %s: %s", key, e.__class__.__name__, e)
            figures[key] = None
            notes[key] = f"could not be drawn ({e.__class__.__name__}: {e})"
        if figures[key] is None and target.exists():
            target.unlink()  # a stale figure from an earlier report would mislead

    mixc = run.mix_config
    best = best_iteration(run)
    primary = primary_dataset(eval_datasets(run))
    lines = [f"# SIKeD run report: {run.name}", ""]
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    no_mixing = {"distill": "none (distillation baseline)", "base": "none (untrained student)"}
    mixing = no_mixing.get(run.method) or (
        f"variant `{mixc.get('variant', '—')}`, bias `{mixc.get('bias', '—')}`, "
        f"alpha `{alpha_label(mixc)}`"
    )
    student = (run.config.get("student") or {}).get("model", "—")
    teacher = run.config.get("teacher") or {}
    lines += [
        f"- method: **{run.method}**; mixing: {mixing}",
        f"- student: `{student}`; teacher: `{teacher.get('engine', '—')}`"
        + (f" (`{teacher['model']}`)" if teacher.get("model") else ""),
        f"- strategies: {', '.join(run.strategies)}",
        f"- iterations present: {', '.join(str(i.iteration) for i in run.iterations) or 'none'}",
        f"- state: {run_state(run)}",
        f"- best iteration on validation: {best if best is not None else '—'}",
        f"- generated: {generated} from the files in `{run.path}`",
        "",
    ]
    missing = list(run.missing) + list(run.problems)
    if missing:
        lines += ["## Missing pieces", ""]
        lines += [f"- `{m}`" for m in missing]
        lines += [
            "",
            "The report shows what the present files allow; rerun it when they exist.",
            "",
        ]
    lines += ["## Summary", "", _summary_markdown(run), ""]
    if primary:
        lines += [f"Strategy choice and per-strategy figures use **{primary}**.", ""]
    for i, key in enumerate(_PLOTTERS, start=1):
        lines += [f"## {i}. {_TITLES[key]}", ""]
        if figures.get(key) is not None:
            lines += [f"![{_TITLES[key]}]({FIGURES[key]})", "", _CAPTIONS[key], ""]
        else:
            lines += [f"_Not drawn: {notes.get(key, 'no data')}._", ""]
    lines += ["## Teacher data (D_LLM)", "", _teacher_markdown(run), ""]
    lines += ["## Self-generation (D_self candidates)", "", _self_generation_markdown(run), ""]
    lines += ["## Provenance", "", _provenance_markdown(run), ""]
    return "\n".join(lines), figures


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """(Re)write ``RUN/report/report.md`` and its figures from the run's files; return its path.

    Raises :class:`ReportError` only when ``run_dir`` does not exist; anything missing or broken
    inside the run is reported in the markdown and logged as a warning. Works on a run that
    another process is writing: it holds the lock of ``report/`` only (waiting up to
    :data:`REPORT_LOCK_WAIT_S` for another report writer), never the run's.
    """
    t0 = time.monotonic()
    if not Path(run_dir).is_dir():
        raise ReportError(f"run directory not found: {run_dir}")
    out_dir = RunPaths(Path(run_dir)).report
    with output_lock(out_dir, "report", wait=REPORT_LOCK_WAIT_S, nested=False):
        run = load_run(run_dir)
        try:
            text, _ = build_report(run, out_dir)
        except Exception as e:  # last resort: still leave a report that says what happened
            log.warning("report: failed for %s: %s: %s", run.path, e.__class__.__name__, e)
            text = (
                f"# SIKeD run report: {run.name}\n\nThe report could not be built: "
                f"`{e.__class__.__name__}: {e}`.\n"
            )
        path = out_dir / REPORT_MD
        atomic_write_text(path, text)
    log.info("report written to %s in %.1fs", path, time.monotonic() - t0)
    return path
