"""The numbers of a report, from a loaded run (pure): distributions, accuracies, the summary
rows, the best iteration, the run's state, and the small formatters of tables.

The best iteration and the summary rows are :mod:`siked.rundir`'s definitions, computed here
from whatever files a run has (``summary.json`` fills what the iteration files lack).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from siked.io import iter_jsonl
from siked.report.load import IterationData, RunData
from siked.rundir import VALIDATION, RunPaths, iteration_summary
from siked.rundir import best_iteration as best_of_rows
from siked.strategies import NO_STRATEGY

#: samples.jsonl files larger than this are not scanned as a fallback (keeps the report fast).
MAX_SCAN_BYTES = 32 * 1024 * 1024


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A share as a percentage, ``—`` when unknown.

    >>> fmt_pct(0.25), fmt_pct(None), fmt_pct(float("nan"))
    ('25.0', '—', '—')
    """
    if x is None or not isinstance(x, int | float) or math.isnan(x):
        return "—"
    return f"{100 * x:.{digits}f}"


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A number for a table, ``—`` when unknown.

    >>> fmt_num(0.031234), fmt_num(None), fmt_num(2)
    ('0.031', '—', '2')
    """
    if x is None or not isinstance(x, int | float) or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}f}"


def format_mix(dist: Mapping[str, float] | None, order: Sequence[str] | None = None) -> str:
    """A strategy distribution in one short string (percent, rounded).

    >>> format_mix({"cot": 0.4, "l2m": 0.1, "pot": 0.5})
    'cot 40 / l2m 10 / pot 50'
    >>> format_mix({"pot": 1.0, "cot": 0.0}, order=["cot", "pot"])
    'cot 0 / pot 100'
    >>> format_mix(None)
    '—'
    """
    if not dist:
        return "—"
    keys = [k for k in (order or []) if k in dist] + [k for k in dist if k not in (order or [])]
    return " / ".join(f"{k} {100 * float(dist[k] or 0):.0f}" for k in keys)


def normalize_counts(counts: Mapping[str, float]) -> dict[str, float]:
    """Counts -> shares (all zeros stay zeros).

    >>> normalize_counts({"cot": 3, "pot": 1})
    {'cot': 0.75, 'pot': 0.25}
    """
    total = sum(float(v or 0) for v in counts.values())
    return {k: (float(v or 0) / total if total else 0.0) for k, v in counts.items()}


def _config_dataset_rank(config: Mapping[str, Any], dataset: str) -> int:
    """Position of ``dataset`` (``name[:split][:limit]``) in the config's ``data.eval`` list."""
    specs = (config.get("data") or {}).get("eval") if isinstance(config.get("data"), dict) else None
    if not isinstance(specs, list):
        return 10_000
    name = dataset.split(":")[0]
    for i, spec in enumerate(specs):
        spec_name = spec.get("name") if isinstance(spec, dict) else str(spec).split(":")[0]
        if spec_name == name:
            return i
    return 10_000


def eval_datasets(run: RunData) -> list[str]:
    """Dataset names seen in any ``eval.json``: validation first, then in the config's
    ``data.eval`` order, then by first appearance."""
    seen: dict[str, None] = {}
    for it in run.iterations:
        for name in (it.eval or {}).get("datasets", {}) or {}:
            seen.setdefault(str(name), None)
    names = [n for n in seen if n != VALIDATION]
    names.sort(key=lambda n: _config_dataset_rank(run.config, n))  # stable: appearance breaks ties
    return ([VALIDATION] if VALIDATION in seen else []) + names


def primary_dataset(datasets: Sequence[str]) -> str | None:
    """The dataset the figures focus on: the first GSM8K set, else the first test set.

    >>> primary_dataset(["validation", "svamp", "gsm8k:test:200"])
    'gsm8k:test:200'
    >>> primary_dataset(["validation"])
    'validation'
    >>> primary_dataset([]) is None
    True
    """
    tests = [d for d in datasets if d != VALIDATION]
    for d in tests:
        if d.split(":")[0].lower() == "gsm8k":
            return d
    if tests:
        return tests[0]
    return datasets[0] if datasets else None


def dataset_result(it: IterationData, dataset: str) -> dict[str, Any] | None:
    ds = ((it.eval or {}).get("datasets") or {}).get(dataset)
    return ds if isinstance(ds, dict) else None


def ci_of(result: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """The 95 % interval of a dataset result (``ci95``, else Wilson from ``correct`` and ``n``).

    >>> [round(x, 3) for x in ci_of({"n": 20, "correct": 5})]
    [0.112, 0.469]
    """
    if not result:
        return None
    ci = result.get("ci95")
    if (
        isinstance(ci, list | tuple)
        and len(ci) == 2
        and all(isinstance(x, int | float) for x in ci)
    ):
        return (float(ci[0]), float(ci[1]))
    n, c = result.get("n"), result.get("correct")
    if isinstance(n, int) and isinstance(c, int) and n > 0 and 0 <= c <= n:
        from siked.stats import wilson_interval

        return wilson_interval(c, n)
    return None


def eval_choice(result: Mapping[str, Any] | None, strategies: Sequence[str]) -> dict[str, float]:
    """Strategy shares of an evaluation, ``none`` (no strategy) included when counts are known.

    >>> eval_choice({"strategy_counts": {"cot": 3, "pot": 1, "none": 0}}, ["cot", "l2m", "pot"])
    {'cot': 0.75, 'l2m': 0.0, 'pot': 0.25, 'none': 0.0}
    >>> eval_choice({"strategy_distribution": {"cot": 1.0}}, ["cot", "pot"])
    {'cot': 1.0, 'pot': 0.0}
    """
    if not result:
        return {}
    counts = result.get("strategy_counts")
    if isinstance(counts, dict) and counts:
        keys = list(strategies) + [k for k in counts if k not in strategies]
        keys = [k for k in keys if k != NO_STRATEGY] + [NO_STRATEGY]
        return normalize_counts({k: counts.get(k, 0) for k in keys})
    dist = result.get("strategy_distribution")
    if isinstance(dist, dict) and dist:
        keys = list(strategies) + [k for k in dist if k not in strategies]
        return {k: float(dist.get(k) or 0.0) for k in keys}
    return {}


def _per_strategy_table(stats: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The per-strategy block of a stats file, whatever it is called."""
    if not stats:
        return {}
    for key in ("per_strategy", "by_strategy", "strategies"):
        block = stats.get(key)
        if isinstance(block, dict) and block and all(isinstance(v, dict) for v in block.values()):
            return block
    return {}


def _first_number(d: Mapping[str, Any], keys: Iterable[str]) -> float | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def _scan_samples(path: Path) -> tuple[Counter[str], Counter[str]] | None:
    """(samples per strategy, correct samples per strategy) of a samples.jsonl, if small enough."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_SCAN_BYTES:
            return None
        total: Counter[str] = Counter()
        correct: Counter[str] = Counter()
        for r in iter_jsonl(path):
            s = str(r.get("strategy") or NO_STRATEGY)
            total[s] += 1
            correct[s] += bool(r.get("correct"))
        return total, correct
    except (OSError, ValueError):
        return None


def self_generation_choice(run: RunData, it: IterationData) -> dict[str, float]:
    """Strategy shares of all samples the model of iteration ``it`` generated (for D_self)."""
    strategies = run.strategies
    table = _per_strategy_table(it.sample_stats)
    if table:
        counts = {
            k: _first_number(v, ("samples", "n", "total", "count")) or 0.0 for k, v in table.items()
        }
        if sum(counts.values()) > 0:
            keys = list(strategies) + [k for k in counts if k not in strategies]
            return normalize_counts({k: counts.get(k, 0.0) for k in keys})
    nxt = run.iteration(it.iteration + 1)
    if nxt and nxt.stats and isinstance(nxt.stats.get("p_student_all"), dict):
        return {k: float(v or 0) for k, v in nxt.stats["p_student_all"].items()}
    scanned = _scan_samples(run.paths.samples(it.iteration)) if it.has_samples else None
    if scanned:
        total, _ = scanned
        keys = list(strategies) + [k for k in total if k not in strategies]
        return normalize_counts({k: total.get(k, 0) for k in keys})
    return {}


def self_generation_yield(run: RunData, it: IterationData) -> dict[str, float | None]:
    """Per strategy: the share of the samples of that strategy that were correct (D_self yield)."""
    strategies = run.strategies
    table = _per_strategy_table(it.sample_stats)
    out: dict[str, float | None] = {}
    if table:
        for k in [*strategies, *[k for k in table if k not in strategies]]:
            v = table.get(k)
            if not isinstance(v, dict):
                out[k] = None
                continue
            y = _first_number(v, ("yield",))
            if y is None:
                n = _first_number(v, ("samples", "n", "total", "count"))
                c = _first_number(v, ("correct", "kept"))
                y = c / n if n and c is not None else None
            out[k] = y
        return out
    scanned = _scan_samples(run.paths.samples(it.iteration)) if it.has_samples else None
    if scanned:
        total, correct = scanned
        for k in [*strategies, *[k for k in total if k not in strategies]]:
            out[k] = correct[k] / total[k] if total[k] else None
    return out


def teacher_distribution(run: RunData) -> dict[str, float]:
    """The strategy distribution of D_LLM: ``p_llm`` of a mix, else teacher stats, else kept.jsonl."""
    for it in run.iterations:
        p = (it.stats or {}).get("p_llm")
        if isinstance(p, dict) and p:
            return {k: float(v or 0) for k, v in p.items()}
    table = _per_strategy_table(run.teacher_stats)
    if table:
        counts = {k: _first_number(v, ("kept", "correct")) or 0.0 for k, v in table.items()}
        if sum(counts.values()) > 0:
            return normalize_counts(counts)
    kept = run.paths.teacher_kept
    try:
        if kept.is_file() and kept.stat().st_size <= MAX_SCAN_BYTES:
            c = Counter(str(r.get("strategy")) for r in iter_jsonl(kept) if r.get("correct", True))
            keys = list(run.strategies) + [k for k in c if k not in run.strategies]
            return normalize_counts({k: c.get(k, 0) for k in keys})
    except (OSError, ValueError):
        pass
    return {}


def teacher_choice(run: RunData) -> dict[str, float]:
    """The teacher's own strategy choice (``teacher.free_choice_n``), ``{}`` when not measured."""
    fc = (run.teacher_stats or {}).get("free_choice")
    p = fc.get("p_choice") if isinstance(fc, dict) else None
    if not isinstance(p, dict) or not p:
        return {}
    return {k: float(v or 0) for k, v in p.items()}


def run_state(run: RunData) -> str:
    """One line: in progress (which stage, which process), finished (and why) or interrupted.

    Whether a process is writing the run comes from the run directory's lock; a run directory
    without a lock file (written by an older siked) is judged from its manifest alone.
    """
    stopped = (run.summary or {}).get("stopped") or (run.manifest or {}).get("stopped")
    stages = (run.manifest or {}).get("stages") or {}
    running = [k for k, v in stages.items() if isinstance(v, dict) and v.get("status") == "running"]
    if run.writer is not None and run.in_progress:
        where = f"running: {', '.join(running)}; " if running else ""
        return f"in progress ({where}{run.writer.describe()})"
    if not run.manifest:
        return "unknown (no manifest.json)"
    if not run.has_lock_file:  # an older siked: a stage marked running may still be running
        if running:
            return f"in progress (running: {', '.join(running)})"
        return f"finished ({stopped})" if stopped else "in progress"
    if running or not stopped:
        where = f" while running {', '.join(running)}" if running else ""
        return f"interrupted{where}: no process is writing it; rerun `siked run` to resume"
    return f"finished ({stopped})"


def best_iteration(run: RunData) -> int | None:
    """The run's final student (:func:`siked.rundir.best_iteration` over :func:`summary_table`)."""
    return best_of_rows(summary_table(run))


def iteration_seconds(run: RunData, n: int) -> float | None:
    """Seconds the stages of iteration ``n`` took (manifest), None when none is recorded."""
    stages = (run.manifest or {}).get("stages") or {}
    secs = [
        float(v.get("seconds") or 0)
        for k, v in stages.items()
        if RunPaths.is_stage_of(k, n) and isinstance(v, dict)
    ]
    return sum(secs) if secs else None


def summary_table(run: RunData) -> list[dict[str, Any]]:
    """One ``summary.json`` row per iteration (:func:`siked.rundir.iteration_summary`) from the
    iteration files; the run's ``summary.json`` fills the gaps. ``eval`` holds every test
    dataset seen in the run (None where this iteration has no result)."""
    by_iter = {
        int(r["iteration"]): r
        for r in (run.summary or {}).get("iterations", []) or []
        if isinstance(r, dict) and isinstance(r.get("iteration"), int)
    }
    datasets = [d for d in eval_datasets(run) if d != VALIDATION]
    for r in by_iter.values():
        for d in r.get("eval") or {}:
            if d not in datasets and d != VALIDATION:
                datasets.append(d)
    rows = []
    for n in sorted({it.iteration for it in run.iterations} | set(by_iter)):
        it = run.iteration(n)
        saved = by_iter.get(n, {})
        row = iteration_summary(
            n, it.stats if it else None, it.eval if it else None, iteration_seconds(run, n)
        )
        for key, value in row.items():
            if value is None or value == {}:
                row[key] = saved.get(key, value)
        found, recorded = row["eval"] if it else {}, saved.get("eval") or {}
        row["eval"] = {
            d: found.get(d) if found.get(d) is not None else recorded.get(d) for d in datasets
        }
        rows.append(row)
    return rows
