"""The run report: figures and ``report.md`` regenerated from a run directory's files.

:func:`write_report` reads a run directory (the contract in ``docs/architecture.md``) and writes
``RUN/report/report.md`` with four PNG figures:

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

:func:`compare` turns several runs into one markdown table like the paper's Table 1.

Plots use matplotlib's object-oriented API on Agg canvases (no pyplot, no global backend), and
one colour per strategy everywhere (:data:`PALETTE`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from siked.errors import SikedError
from siked.io import atomic_write_text, iter_jsonl, read_json
from siked.lock import LOCK_NAME, Holder, holder_of, output_lock
from siked.mix import KL_MIN_SUPPORT, format_kl

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: One colour per strategy, used by every figure.
PALETTE: dict[str, str] = {
    "cot": "#1f77b4",  # blue
    "l2m": "#ff7f0e",  # orange
    "pot": "#2ca02c",  # green
    "none": "#9e9e9e",  # grey: no / unknown strategy
}
#: Colours for strategies outside :data:`PALETTE` (picked by a stable hash of the name).
_EXTRA_COLOURS = ("#17becf", "#bcbd22", "#e377c2", "#8c564b", "#7b4173", "#393b79")
#: Colours of the three distributions of the mixing figure (distinct from the strategy colours).
DIST_COLOURS: dict[str, str] = {"P_LLM": "#6a3d9a", "P_student": "#e6ab02", "P_train": "#d62728"}
#: Colours of the datasets in the accuracy figure (validation is black).
_DATASET_COLOURS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79")

FIGURES = {
    "strategy_choice": "strategy_choice.png",
    "mixing": "mixing.png",
    "accuracy": "accuracy.png",
    "strategy_accuracy": "strategy_accuracy.png",
}
VALIDATION = "validation"
_ITER_RE = re.compile(r"^iter_(\d+)$")
#: samples.jsonl files larger than this are not scanned as a fallback (keeps the report fast).
_MAX_SCAN_BYTES = 32 * 1024 * 1024
#: seconds write_report waits for another process writing the same report/ (never refuses at once)
REPORT_LOCK_WAIT_S = 120.0


class ReportError(SikedError):
    """The run directory cannot be reported on (it does not exist)."""


def strategy_colour(name: str) -> str:
    """The colour of a strategy: :data:`PALETTE`, else a stable colour from a spare list.

    >>> strategy_colour("pot")
    '#2ca02c'
    >>> strategy_colour("eqn") == strategy_colour("eqn")
    True
    """
    if name in PALETTE:
        return PALETTE[name]
    return _EXTRA_COLOURS[sum(map(ord, name)) % len(_EXTRA_COLOURS)]


# --------------------------------------------------------------------------- loading


@dataclass
class IterationData:
    iteration: int
    path: Path
    stats: dict[str, Any] | None = None  # iter_NN/stats.json (the mix)
    eval: dict[str, Any] | None = None  # iter_NN/eval/eval.json
    sample_stats: dict[str, Any] | None = None  # iter_NN/sample_stats.json
    has_samples: bool = False  # iter_NN/samples.jsonl exists


@dataclass
class RunData:
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    teacher_stats: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    iterations: list[IterationData] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # expected files that are absent
    problems: list[str] = field(default_factory=list)  # files present but unreadable, etc.
    writer: Holder | None = None  # the process holding the run directory's lock, if any
    has_lock_file: bool = False  # written by a siked that locks (else the state is guessed)

    @property
    def in_progress(self) -> bool:
        """A process is writing the run (the run's own process is done once it has stopped)."""
        if self.writer is None:
            return False
        return not (self.writer.is_this_process and (self.summary or {}).get("stopped"))

    @property
    def name(self) -> str:
        for src in (self.manifest, self.summary, self.config):
            if src and src.get("name"):
                return str(src["name"])
        return self.path.name

    @property
    def method(self) -> str:
        for src in (self.config, self.summary):
            if src and src.get("method"):
                return str(src["method"])
        return "siked" if any(it.iteration > 0 for it in self.iterations) else "unknown"

    @property
    def strategies(self) -> list[str]:
        s = self.config.get("strategies")
        if isinstance(s, list) and s:
            return [str(x) for x in s]
        for it in self.iterations:
            if it.stats and isinstance(it.stats.get("p_llm"), dict):
                return list(it.stats["p_llm"])
        return ["cot", "l2m", "pot"]

    @property
    def mix_config(self) -> dict[str, Any]:
        m = self.config.get("mix")
        return m if isinstance(m, dict) else {}

    def iteration(self, n: int) -> IterationData | None:
        for it in self.iterations:
            if it.iteration == n:
                return it
        return None


def _read_optional(
    run: RunData, path: Path, rel: str, expected: bool = True
) -> dict[str, Any] | None:
    if not path.is_file():
        if expected:
            run.missing.append(rel)
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        run.problems.append(f"{rel}: unreadable ({e.__class__.__name__}: {e})")
        return None
    if not isinstance(data, dict):
        run.problems.append(f"{rel}: not a JSON object")
        return None
    return data


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read everything the report needs from a run directory; never raises on missing pieces
    (they are listed in ``missing`` / ``problems``), only on a directory that does not exist."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ReportError(f"run directory not found: {path}")
    run = RunData(path=path, writer=holder_of(path), has_lock_file=(path / LOCK_NAME).exists())
    cfg_path = path / "config.yaml"
    if cfg_path.is_file():
        try:
            loaded = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
            run.config = loaded if isinstance(loaded, dict) else {}
        except (OSError, yaml.YAMLError) as e:
            run.problems.append(f"config.yaml: unreadable ({e.__class__.__name__})")
    else:
        run.missing.append("config.yaml")
    run.manifest = _read_optional(run, path / "manifest.json", "manifest.json")
    run.teacher_stats = _read_optional(run, path / "teacher" / "stats.json", "teacher/stats.json")
    if not (path / "teacher" / "kept.jsonl").is_file():
        run.missing.append("teacher/kept.jsonl")
    run.summary = _read_optional(run, path / "summary.json", "summary.json")

    numbers = sorted(
        int(m.group(1)) for p in path.iterdir() if p.is_dir() and (m := _ITER_RE.match(p.name))
    )
    if not numbers:
        run.missing.append("iter_00/ (no iteration yet)")
    for n in numbers:
        d = path / f"iter_{n:02d}"
        rel = f"iter_{n:02d}"
        later = any(m > n for m in numbers)
        it = IterationData(iteration=n, path=d)
        it.stats = _read_optional(run, d / "stats.json", f"{rel}/stats.json")
        it.eval = _read_optional(run, d / "eval" / "eval.json", f"{rel}/eval/eval.json")
        it.has_samples = (d / "samples.jsonl").is_file()
        # sampling only has to have happened when a later iteration exists
        it.sample_stats = _read_optional(
            run, d / "sample_stats.json", f"{rel}/sample_stats.json", expected=later
        )
        if later and not it.has_samples and it.sample_stats is None:
            run.missing.append(f"{rel}/samples.jsonl")
        run.iterations.append(it)
    return run


# --------------------------------------------------------------------------- pure helpers


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


def normalise_counts(counts: Mapping[str, float]) -> dict[str, float]:
    """Counts -> shares (all zeros stay zeros).

    >>> normalise_counts({"cot": 3, "pot": 1})
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


def accuracy_of(result: Mapping[str, Any] | None) -> float | None:
    """Accuracy of one dataset result (``accuracy``, else ``correct / n``).

    >>> accuracy_of({"n": 20, "correct": 5}), accuracy_of({"accuracy": 0.3}), accuracy_of(None)
    (0.25, 0.3, None)
    """
    if not result:
        return None
    acc = result.get("accuracy")
    if isinstance(acc, int | float):
        return float(acc)
    n, c = result.get("n"), result.get("correct")
    if isinstance(n, int) and isinstance(c, int) and n > 0:
        return c / n
    return None


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
        keys = [k for k in keys if k != "none"] + ["none"]
        return normalise_counts({k: counts.get(k, 0) for k in keys})
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
        if not path.is_file() or path.stat().st_size > _MAX_SCAN_BYTES:
            return None
        total: Counter[str] = Counter()
        correct: Counter[str] = Counter()
        for r in iter_jsonl(path):
            s = str(r.get("strategy") or "none")
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
            return normalise_counts({k: counts.get(k, 0.0) for k in keys})
    nxt = run.iteration(it.iteration + 1)
    if nxt and nxt.stats and isinstance(nxt.stats.get("p_student_all"), dict):
        return {k: float(v or 0) for k, v in nxt.stats["p_student_all"].items()}
    scanned = _scan_samples(it.path / "samples.jsonl") if it.has_samples else None
    if scanned:
        total, _ = scanned
        keys = list(strategies) + [k for k in total if k not in strategies]
        return normalise_counts({k: total.get(k, 0) for k in keys})
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
    scanned = _scan_samples(it.path / "samples.jsonl") if it.has_samples else None
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
            return normalise_counts(counts)
    kept = run.path / "teacher" / "kept.jsonl"
    try:
        if kept.is_file() and kept.stat().st_size <= _MAX_SCAN_BYTES:
            c = Counter(str(r.get("strategy")) for r in iter_jsonl(kept) if r.get("correct", True))
            keys = list(run.strategies) + [k for k in c if k not in run.strategies]
            return normalise_counts({k: c.get(k, 0) for k in keys})
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


def best_iteration(run: RunData) -> int | None:
    """The best-on-validation iteration: recorded by the loop, else recomputed (earliest max),
    else the last evaluated iteration."""
    for src in (run.summary, run.manifest):
        b = (src or {}).get("best_iteration")
        if isinstance(b, int) and run.iteration(b) is not None:
            return b
    scored = [
        (acc, it.iteration)
        for it in run.iterations
        if (acc := accuracy_of(dataset_result(it, VALIDATION))) is not None
    ]
    if scored:
        best = max(a for a, _ in scored)
        return min(i for a, i in scored if a == best)
    evaluated = [it.iteration for it in run.iterations if it.eval]
    return evaluated[-1] if evaluated else None


def iteration_seconds(run: RunData, n: int) -> float | None:
    stages = (run.manifest or {}).get("stages") or {}
    secs = [
        float(v.get("seconds") or 0)
        for k, v in stages.items()
        if k.startswith(f"iter_{n:02d}/") and isinstance(v, dict)
    ]
    return sum(secs) if secs else None


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


def summary_table(run: RunData) -> list[dict[str, Any]]:
    """One row per iteration from the iteration files (summary.json fills the gaps)."""
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
    numbers = sorted({it.iteration for it in run.iterations} | set(by_iter))
    for n in numbers:
        it = run.iteration(n)
        srow = by_iter.get(n, {})
        stats = (it.stats if it else None) or {}
        val = accuracy_of(dataset_result(it, VALIDATION)) if it else None
        if val is None:
            val = srow.get("validation_accuracy")
        evals: dict[str, float | None] = {}
        for d in datasets:
            acc = accuracy_of(dataset_result(it, d)) if it else None
            evals[d] = acc if acc is not None else (srow.get("eval") or {}).get(d)
        rows.append(
            {
                "iteration": n,
                "rows": stats.get("rows", srow.get("rows")),
                "alpha": stats.get("alpha", srow.get("alpha")),
                "kl": stats.get("kl", srow.get("kl")),
                "kl_support": stats.get("kl_support", srow.get("kl_support")),
                "kl_all": stats.get("kl_all", srow.get("kl_all")),
                "p_train": stats.get("p_train") or srow.get("p_train"),
                "validation_accuracy": val,
                "eval": evals,
                "seconds": iteration_seconds(run, n) or srow.get("seconds"),
            }
        )
    return rows


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table.

    >>> print(_md_table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    out = ["| " + " | ".join(str(h) for h in header) + " |"]
    out.append("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def _fmt_seconds(s: float | None) -> str:
    """Seconds, compactly.

    >>> _fmt_seconds(75), _fmt_seconds(3725), _fmt_seconds(None)
    ('1m15s', '1h02m', '—')
    """
    if s is None:
        return "—"
    s = float(s)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _alpha_label(mix_cfg: Mapping[str, Any]) -> str:
    a = mix_cfg.get("alpha", "auto")
    if isinstance(a, dict):
        return f"{a.get('start')}→{a.get('end')}"
    return str(a)


# --------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _stacked_shares(
    ax: Axes, labels: list[str], dists: list[dict[str, float]], keys: list[str], title: str
) -> None:
    import numpy as np

    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for k in keys:
        vals = np.array([100 * float(d.get(k, 0.0) or 0.0) for d in dists])
        if not vals.any():
            continue
        bars = ax.bar(x, vals, 0.65, bottom=bottom, color=strategy_colour(k), label=k)
        for rect, v, b in zip(bars, vals, bottom, strict=True):
            if v >= 7:
                ax.text(
                    rect.get_x() + rect.get_width() / 2,
                    b + v / 2,
                    f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white",
                    fontweight="bold",
                )
        bottom += vals
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of solutions (%)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)


def plot_strategy_choice(run: RunData, path: Path) -> Path | None:
    """Figure 1: D_LLM's strategy distribution vs the student's choices per iteration."""
    strategies = run.strategies
    teacher = teacher_distribution(run)
    primary = primary_dataset(eval_datasets(run))
    eval_labels, eval_dists = [], []
    gen_labels, gen_dists = [], []
    for it in run.iterations:
        if primary:
            d = eval_choice(dataset_result(it, primary), strategies)
            if d:
                eval_labels.append(f"iter {it.iteration}")
                eval_dists.append(d)
        g = self_generation_choice(run, it)
        if g:
            gen_labels.append(f"iter {it.iteration}")
            gen_dists.append(g)
    panels = []
    if eval_dists:
        panels.append((eval_labels, eval_dists, f"Student on {primary} (free choice)"))
    if gen_dists:
        panels.append((gen_labels, gen_dists, "Student self-generation (all samples)"))
    if not panels and not teacher and not teacher_choice(run):
        return None
    if not panels:
        panels.append(([], [], "Student: no evaluation or samples yet"))
    chosen = teacher_choice(run)
    keys: list[str] = []
    for d in [teacher, chosen, *eval_dists, *gen_dists]:
        for k in d:
            if k not in keys:
                keys.append(k)
    keys = [k for k in strategies if k in keys] + [k for k in keys if k not in strategies]
    keys = [k for k in keys if k != "none"] + (["none"] if "none" in keys else [])

    fig = _new_figure(max(5.0, 3.2 * len(panels) + 1.2 * max(len(p[0]) for p in panels)), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (labels, dists, title) in zip(axes, panels, strict=True):
        head_labels = (["Teacher D_LLM\n(forced yield)"] if teacher else []) + (
            ["Teacher\n(free choice)"] if chosen else []
        )
        labs = head_labels + labels
        ds = ([teacher] if teacher else []) + ([chosen] if chosen else []) + dists
        _stacked_shares(ax, labs, ds, keys, title)
        if head_labels and labels:
            ax.axvline(len(head_labels) - 0.5, color="black", lw=0.8, ls=":")
    handles, labels_ = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels_, handles, strict=True))
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        seen.update(dict(zip(lab, h, strict=True)))
    ordered = [k for k in keys if k in seen]
    fig.legend(
        [seen[k] for k in ordered],
        ordered,
        title="strategy",
        loc="outside right center",
        frameon=False,
    )
    fig.suptitle(f"{run.name}: strategy distribution, teacher vs student", fontsize=12)
    return _save(fig, path)


def plot_mixing(run: RunData, path: Path) -> Path | None:
    """Figure 2: per SIKeD iteration, P_LLM / P_student / P_train, alpha and KL in the title."""
    import numpy as np

    its = [
        it
        for it in run.iterations
        if it.iteration > 0 and it.stats and isinstance(it.stats.get("p_train"), dict)
    ]
    if not its:
        return None
    strategies = run.strategies
    n = len(its)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(3.3 * ncols + 1.6, 3.3 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    x = np.arange(len(strategies))
    width = 0.26
    names = [("P_LLM", "p_llm"), ("P_student", "p_student"), ("P_train", "p_train")]
    legend = {
        "P_LLM": "P_LLM: share in D_LLM\n(forced teacher's yield)",
        "P_student": "P_student: student's\ncorrect samples",
        "P_train": "P_train: training mix",
    }
    for idx, it in enumerate(its):
        ax = axes[idx // ncols][idx % ncols]
        st = it.stats or {}
        for j, (label, key) in enumerate(names):
            dist = st.get(key)
            if not isinstance(dist, dict):
                continue
            vals = [float(dist.get(s) or 0.0) for s in strategies]
            ax.bar(x + (j - 1) * width, vals, width, color=DIST_COLOURS[label], label=label)
        ax.set_xticks(x, strategies)
        for tick, s in zip(ax.get_xticklabels(), strategies, strict=True):
            tick.set_color(strategy_colour(s))
            tick.set_fontweight("bold")
        ax.set_ylim(0, 1.0)
        target = st.get("alpha_target")
        target_txt = f" (target {target:.2f})" if isinstance(target, int | float) else ""
        ax.set_title(
            f"iter {it.iteration}: α = {fmt_num(st.get('alpha'), 2)}{target_txt}\n"
            f"KL = {format_kl(st.get('kl'), st.get('kl_support'))}, "
            f"KL(all) = {fmt_num(st.get('kl_all'), 3)}",
            fontsize=10 if not target_txt else 9,
        )
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if idx % ncols == 0:
            ax.set_ylabel("probability")
        ax.set_xlabel("strategy")
    for idx in range(n, nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    from matplotlib.patches import Patch

    handles = [Patch(color=DIST_COLOURS[k], label=legend[k]) for k, _ in names]
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    fig.suptitle(
        f"{run.name}: training mix per iteration (siked's reading of the paper's Figure 2)\n"
        "KL = KL(P_train ‖ P_student), KL(all) = KL(P_train ‖ P_student over all samples)",
        fontsize=11,
    )
    return _save(fig, path)


def plot_accuracy(run: RunData, path: Path) -> Path | None:
    """Figure 3: accuracy per iteration and dataset (validation dashed), 95 % CI error bars."""
    datasets = eval_datasets(run)
    if not datasets:
        return None
    fig = _new_figure(7.5, 4.4)
    ax = fig.subplots()
    k = len(datasets)
    iters_all: list[int] = []
    colour_i = 0
    for j, d in enumerate(datasets):
        xs, ys, lo, hi = [], [], [], []
        for it in run.iterations:
            r = dataset_result(it, d)
            acc = accuracy_of(r)
            if acc is None:
                continue
            ci = ci_of(r)
            xs.append(it.iteration + (j - (k - 1) / 2) * 0.04)
            ys.append(100 * acc)
            lo.append(100 * (acc - ci[0]) if ci else 0.0)
            hi.append(100 * (ci[1] - acc) if ci else 0.0)
            iters_all.append(it.iteration)
        if not xs:
            continue
        if d == VALIDATION:
            colour, style = "black", "--"
        else:
            colour, style = _DATASET_COLOURS[colour_i % len(_DATASET_COLOURS)], "-"
            colour_i += 1
        ax.errorbar(
            xs,
            ys,
            yerr=[[max(v, 0.0) for v in lo], [max(v, 0.0) for v in hi]],
            color=colour,
            ls=style,
            marker="o",
            ms=5,
            capsize=3,
            lw=1.6,
            label=d,
        )
    if not iters_all:
        return None
    best = best_iteration(run)
    if best is not None:
        ax.axvline(best, color="grey", ls=":", lw=1.2, label=f"best on validation (iter {best})")
    ticks = sorted(set(iters_all))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlim(min(ticks) - 0.4, max(ticks) + 0.4)
    ax.set_xlabel("iteration (0 = distillation)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title(f"{run.name}: accuracy per iteration (error bars: 95 % CI)", fontsize=11)
    return _save(fig, path)


def _grouped_bars(
    ax: Axes,
    groups: list[str],
    series: dict[str, list[float | None]],
    notes: dict[str, list[str]] | None = None,
) -> None:
    """Bars per group (x) and strategy (colour), heights in %; a value label on each bar."""
    import numpy as np

    keys = list(series)
    width = 0.8 / max(len(keys), 1)
    x = np.arange(len(groups))
    small = len(groups) * len(keys) > 12
    for j, s in enumerate(keys):
        vals = series[s]
        xs = x + (j - (len(keys) - 1) / 2) * width
        heights = [100 * v if v is not None else 0.0 for v in vals]
        ax.bar(xs, heights, width, color=strategy_colour(s), label=s)
        for i, (xi, v) in enumerate(zip(xs, vals, strict=True)):
            if v is None:
                continue
            label = f"{100 * v:.0f}"
            if notes and notes.get(s) and notes[s][i]:
                label += "\n" + notes[s][i]
            ax.text(xi, 100 * v + 1, label, ha="center", va="bottom", fontsize=6 if small else 7)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def plot_strategy_accuracy(run: RunData, path: Path) -> Path | None:
    """Figure 4: per-strategy accuracy per iteration (primary dataset) and the self-generation
    yield per strategy."""
    strategies = run.strategies
    primary = primary_dataset(eval_datasets(run))
    acc_groups: list[str] = []
    acc: dict[str, list[float | None]] = {}
    counts_txt: dict[str, list[str]] = {}
    if primary:
        evaluated = [
            (it, r)
            for it in run.iterations
            if (r := dataset_result(it, primary))
            and isinstance(r.get("per_strategy_accuracy"), dict)
        ]
        found = {s for _, r in evaluated for s in r["per_strategy_accuracy"]}
        keys = [s for s in strategies if s in found] + sorted(found - set(strategies) - {"none"})
        for it, r in evaluated:
            acc_groups.append(f"iter {it.iteration}")
            psa, counts = r["per_strategy_accuracy"], r.get("strategy_counts") or {}
            for s in keys:
                v = psa.get(s)
                acc.setdefault(s, []).append(float(v) if isinstance(v, int | float) else None)
                c = counts.get(s)
                counts_txt.setdefault(s, []).append(f"n={c}" if isinstance(c, int) else "")
    yields = [(it.iteration, self_generation_yield(run, it)) for it in run.iterations]
    yields = [(n, y) for n, y in yields if any(v is not None for v in y.values())]
    has_acc = any(v is not None for vals in acc.values() for v in vals)
    if not has_acc and not yields:
        return None
    panels = int(has_acc) + int(bool(yields))
    n_groups = max(len(acc_groups), len(yields))
    panel_w = 2.4 + 1.1 * n_groups
    if panels == 2 and n_groups > 4:  # many iterations: stack the panels
        fig = _new_figure(panel_w + 1.3, 8.2)
        axes = [row[0] for row in fig.subplots(2, 1, squeeze=False)]
    else:
        fig = _new_figure(panels * panel_w + 1.3, 4.3)
        axes = list(fig.subplots(1, panels, squeeze=False)[0])
    shown: list[str] = []
    if has_acc:
        ax = axes.pop(0)
        _grouped_bars(ax, acc_groups, acc, counts_txt)
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy of answers with that strategy (%)")
        ax.set_title(f"Per-strategy accuracy on {primary}\n(n = times chosen)", fontsize=10)
        shown += list(acc)
    if yields:
        ax = axes.pop(0)
        keys = [s for s in strategies if any(y.get(s) is not None for _, y in yields)]
        _grouped_bars(
            ax, [f"iter {n}" for n, _ in yields], {s: [y.get(s) for _, y in yields] for s in keys}
        )
        ax.set_xlabel("model that generated the samples")
        ax.set_ylabel("correct samples (%)")
        ax.set_title(
            "Self-generation yield per strategy\n(correct / generated, → D_self)", fontsize=10
        )
        shown += [s for s in keys if s not in shown]
    from matplotlib.patches import Patch

    legend_keys = [s for s in strategies if s in shown] + [s for s in shown if s not in strategies]
    fig.legend(
        handles=[Patch(color=strategy_colour(s), label=s) for s in legend_keys],
        title="strategy",
        loc="outside right center",
        frameon=False,
    )
    fig.suptitle(f"{run.name}: strategies per iteration", fontsize=12)
    return _save(fig, path)


# --------------------------------------------------------------------------- report.md


def _summary_markdown(run: RunData) -> str:
    rows = summary_table(run)
    if not rows:
        return "_No iteration yet._"
    datasets = list(rows[0]["eval"]) if rows else []
    best = best_iteration(run)
    primary = primary_dataset(eval_datasets(run))
    header = ["iter", "rows", "α", "KL", "KL (all)", "train mix", "validation", *datasets]
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
            fmt_pct(r["validation_accuracy"]),
            *[fmt_pct(r["eval"].get(d)) for d in datasets],
        ]
        if primary and primary != VALIDATION:
            choice = eval_choice(dataset_result(it, primary), run.strategies) if it else {}
            cells.append(format_mix({k: v for k, v in choice.items() if v or k != "none"}))
        cells.append(_fmt_seconds(r["seconds"]))
        out.append(cells)
    note = (
        "Accuracies in %, mixes in % of rows; α = share of teacher rows, "
        "KL = KL(P_train ‖ P_student) with P_student over the student's correct samples, "
        f"shown with how many there are (— below {KL_MIN_SUPPORT}: then it reflects the "
        "smoothing, not the student); KL (all) = KL(P_train ‖ P_student_all) over all its "
        "samples (`none` = no strategy tag). These, and P_LLM as the share of each strategy in "
        "D_LLM (the forced teacher's yield, not the teacher's own choice), are siked's "
        "interpretation of the paper's Figure 2."
    )
    return _md_table(header, out) + "\n\n" + note


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
        lines.append(_md_table(["strategy", "samples", "kept (D_LLM)", "yield (%)"], rows))
    fc = st.get("free_choice")
    if isinstance(fc, dict) and isinstance(fc.get("per_strategy"), dict):
        p = fc.get("p_choice") or {}
        rows = [
            [s, fmt_pct(p.get(s)), fmt_num(v.get("chosen")), fmt_pct(v.get("accuracy"))]
            for s, v in fc["per_strategy"].items()
            if isinstance(v, dict)
        ]
        rows.append(["none (no tag)", fmt_pct(p.get("none")), "—", "—"])
        lines.append(
            f"**Free choice** ({fmt_num(fc.get('samples'))} samples, {fmt_num(fc.get('n'))} per "
            "question): the teacher chose the strategy itself; this is its real strategy "
            "distribution, not used for training. Overall accuracy "
            f"{fmt_pct(fc.get('accuracy'))} %.\n\n"
            + _md_table(["strategy", "chosen (%)", "n", "accuracy (%)"], rows)
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
    return _md_table(header, rows)


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
            + _md_table(["library", "version"], [[k, v or "—"] for k, v in versions.items()])
        )
    stages = man.get("stages") or {}
    if stages:
        rows = []
        total = 0.0
        ordered = sorted(
            ((k, v) for k, v in stages.items() if isinstance(v, dict)),
            key=lambda kv: (str(kv[1].get("started") or "~"), kv[0]),
        )
        for k, v in ordered:
            secs = v.get("seconds")
            total += float(secs or 0)
            rows.append(
                [
                    k,
                    v.get("status", "—"),
                    v.get("started", "—"),
                    _fmt_seconds(secs) if secs is not None else "—",
                    v.get("seed", "—") if v.get("seed") is not None else "—",
                ]
            )
        parts.append(
            f"**Stages** (total {_fmt_seconds(total)})\n\n"
            + _md_table(["stage", "status", "started", "time", "seed"], rows)
        )
    cfg_path = run.path / "config.yaml"
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
        "neither quantity."
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
    mixing = (
        f"variant `{mixc.get('variant', '—')}`, bias `{mixc.get('bias', '—')}`, "
        f"alpha `{_alpha_label(mixc)}`"
        if run.method != "distill"
        else "none (distillation baseline)"
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
    out_dir = Path(run_dir) / "report"
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
        path = out_dir / "report.md"
        atomic_write_text(path, text)
    log.info("report written to %s in %.1fs", path, time.monotonic() - t0)
    return path


# --------------------------------------------------------------------------- compare


def _mixing_label(run: RunData) -> str:
    if run.method == "distill":
        return "—"
    m = run.mix_config
    if not m:
        return "?"
    return f"{m.get('variant', '?')}, bias {m.get('bias', '?')}, α {_alpha_label(m)}"


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
                "strategy_mix": {k: v for k, v in choice.items() if v or k != "none"},
                "missing": run.missing,
                "in_progress": run.in_progress,
            }
        )
    return datasets, out


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
        table.append(cells)
    note = (
        "Accuracy (%) of each run's best iteration on validation"
        + (", with 95 % Wilson intervals" if ci else "")
        + "; bold = best in the column; strategy mix = the student's free choice, % of answers."
    )
    incomplete = [r["name"] for r in rows if r["best_iteration"] is None]
    if incomplete:
        note += f" Not evaluated yet: {', '.join(incomplete)}."
    running = [r["name"] for r in rows if r["in_progress"]]
    if running:
        note += f" In progress (their numbers may still change): {', '.join(running)}."
    return _md_table(header, table) + "\n\n" + note + "\n"


def best_predictions(run: RunData) -> dict[str, dict[str, bool]]:
    """dataset -> {qid: solved} from the best-on-validation iteration's ``predictions.jsonl``.

    Needs one prediction per question (free mode, or one forced strategy); a log with several
    per question (mode ``all``) cannot be paired and is an error.
    """
    best = best_iteration(run)
    if best is None:
        raise ReportError(f"{run.path}: no evaluated iteration")
    path = run.path / f"iter_{best:02d}" / "eval" / "predictions.jsonl"
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
    preds = [best_predictions(r) for r in runs]
    ref, ref_preds = runs[0], preds[0]
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
    for run, p in zip(runs[1:], preds[1:], strict=True):
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
    return _md_table(header, table) + "\n\n" + note + "\n"
