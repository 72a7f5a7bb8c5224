"""Stage: evaluation -- accuracy with a confidence interval, strategy mix, per-strategy accuracy.

Decoding is greedy (temperature 0) with ``EvalConfig.max_tokens`` new tokens. Modes:

* ``free``: the prompt names no strategy; a multi-strategy student chooses by writing the tag.
  A response without a tag (e.g. a model never trained by siked) counts under strategy
  ``"none"``; its answer is read with the generic cascade (marker -> ``\\boxed{}`` -> last
  number), and ``EvalConfig.untagged`` decides whether it can count as correct: ``extract``
  (default: any model can be evaluated as a baseline) or ``wrong`` (the authors' scorer,
  ``inference/results.py:209-225``, gives an answer without a strategy no number; the paper
  presets use it). ``predictions.jsonl`` keeps the extraction's verdict either way.
* ``forced``: every strategy in ``strategies`` is forced in turn (the response is pre-filled with
  its tag); for single-strategy baselines ``strategies`` holds one strategy.
* ``all``: every strategy forced, plus ``oracle_accuracy``: the share of questions solved by at
  least one strategy (an upper bound on what choosing the strategy could give).

Every prediction is logged to ``predictions.jsonl`` (``dataset, qid, question, gold, output,
strategy, answer, rule, status, correct``, plus ``forced``, ``error`` -- why the response breaks
its strategy's format (accuracy does not depend on it), else the verifier's message, else
null --, ``finish_reason`` and ``tokens``). ``eval.json`` is written atomically at the end (format in
``docs/architecture.md``). Per dataset:

* ``n`` = number of predictions, ``correct``, ``accuracy`` = correct / n (null when n = 0),
  ``ci95`` = Wilson interval of the accuracy (:func:`siked.stats.wilson_interval`),
  ``no_answer`` = predictions from which no answer could be extracted, ``untagged`` =
  predictions without a strategy tag (free mode only), ``untagged_correct`` = how many of those
  the extraction reads as right (counted in ``correct`` only under ``untagged: extract``),
  ``untagged_rule`` = that setting. In ``forced``/``all``
  mode with S strategies there are S predictions per question, so ``accuracy`` is the mean
  accuracy of the forced strategies (``questions`` holds the number of questions);
* ``strategy_counts`` over the run's strategies plus ``"none"`` (always present);
  ``strategy_distribution`` = counts / n (``"none"`` only when non-zero, so it sums to 1);
  ``per_strategy_accuracy`` = correct / count per strategy, null for an unused strategy;
* ``oracle_accuracy``: null unless mode ``all``.

**Subsets.** A dataset given with a limit (``gsm8k:test:200``) is a seeded random subset, not the
first N problems: the first problems of a file are not representative (ASDiv and MultiArith are
ordered by problem type). The subset is the first ``limit`` problems of a permutation seeded by
``(seed, name, split)`` and keeps file order, so it is the same on every run with the same seed,
and a smaller limit gives a subset of a larger one. Explicit problem lists (the loop's held-out
``validation`` set) are evaluated as given.

**Resume.** Predictions are appended chunk by chunk; a rerun skips predictions already logged
(finished datasets are skipped entirely) and recomputes ``eval.json`` from the log.
``predictions.meta.json`` is the fingerprint of :mod:`siked.resume` (model, mode, strategies,
max_tokens, seed, engine): a rerun with other settings moves the log aside to
``predictions.jsonl.stale``, removes ``eval.json`` and starts afresh; a ``predictions.jsonl``
without that file is an error, never overwritten.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.config import DatasetSpec, EvalConfig
from siked.console import progress_bar
from siked.data import check_unique_ids
from siked.engines import auto_dtype_of
from siked.errors import SikedError
from siked.io import JsonlAppender, atomic_write_json
from siked.lock import locks_outputs
from siked.resume import chunked, resume_rows, with_dtype
from siked.strategies import NO_STRATEGY
from siked.student import (
    Outcome,
    Request,
    Student,
    auto_chunk_size,
    check_strategies,
    open_student_engine,
)
from siked.text import format_number

if TYPE_CHECKING:
    from siked.data import Problem
    from siked.engines.base import Engine
    from siked.sandbox import Sandbox

log = logging.getLogger("siked.evaluate")

#: the files of an evaluation directory (``iter_NN/eval/``)
EVAL_JSON = "eval.json"
PREDICTIONS = "predictions.jsonl"
PREDICTIONS_META = "predictions.meta.json"

DatasetArg = DatasetSpec | str | tuple[str, Sequence["Problem"]]
Key = tuple[str, str, str | None]  # (dataset, qid, forced strategy)


# --------------------------------------------------------------------------------------------
# datasets


def subset(problems: Sequence[Problem], limit: int | None, seed: int, key: str) -> list[Problem]:
    """A seeded random subset of ``limit`` problems, in their original order.

    The first ``limit`` indices of a permutation seeded by ``(seed, key)``: deterministic, and
    nested (a smaller limit selects a subset of a larger one).
    """
    if limit is None or limit >= len(problems):
        return list(problems)
    from siked.engines.base import derive_seed

    order = list(range(len(problems)))
    random.Random(derive_seed(seed, "subset", key)).shuffle(order)
    return [problems[i] for i in sorted(order[:limit])]


def resolve_datasets(
    datasets: Sequence[DatasetArg], seed: int, data_dir: str | Path | None = None
) -> list[tuple[str, list[Problem]]]:
    """``(name, problems)`` per dataset: specs are loaded (and subset), lists kept as given."""
    from siked.data import load_problems

    out: list[tuple[str, list[Problem]]] = []
    for d in datasets:
        if isinstance(d, tuple):
            name, problems = d
            out.append((str(name), list(problems)))
            continue
        spec = DatasetSpec.parse(d)
        problems = load_problems(spec.name, spec.split, data_dir=data_dir)
        out.append((str(spec), subset(problems, spec.limit, seed, f"{spec.name}:{spec.split}")))
    names = [n for n, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SikedError(f"dataset given twice: {', '.join(dupes)}")
    for name, problems in out:
        try:
            check_unique_ids(problems)
        except SikedError as e:
            raise type(e)(f"dataset {name}: {e}") from None
    return out


# --------------------------------------------------------------------------------------------
# predictions


def prediction_row(dataset: str, request: Request, outcome: Outcome) -> dict[str, Any]:
    """One line of ``predictions.jsonl``."""
    return {
        "dataset": dataset,
        "qid": request.problem.id,
        "question": request.problem.question,
        "gold": format_number(request.problem.answer),
        "output": outcome.output,
        "strategy": outcome.strategy,
        "answer": outcome.answer,
        "rule": outcome.rule,
        "status": outcome.status,
        "correct": outcome.correct,
        "forced": request.forced,
        "error": outcome.message,
        "finish_reason": outcome.finish_reason,
        "tokens": outcome.tokens,
    }


def row_key(row: dict[str, Any]) -> Key:
    return (str(row["dataset"]), str(row["qid"]), row.get("forced"))


def eval_seed(seed: int, dataset: str, qid: str, forced: str | None) -> int:
    from siked.engines.base import derive_seed

    return derive_seed(seed, "eval", dataset, qid, forced)


def plan(
    dataset: str, problems: Sequence[Problem], mode: str, strategies: Sequence[str], seed: int
) -> list[Request]:
    """The prompts of a dataset: one per question (free) or per strategy and question
    (strategy-major, so that a chunk's prompts share their pre-fill and stop strings)."""
    forced_list: list[str | None] = [None] if mode == "free" else list(strategies)
    return [Request(p, f, eval_seed(seed, dataset, p.id, f)) for f in forced_list for p in problems]


def fingerprint(
    model: str, cfg: EvalConfig, strategies: Sequence[str], seed: int
) -> dict[str, Any]:
    fp = {
        "model": str(model),
        "mode": cfg.mode,
        "strategies": list(strategies),
        "max_tokens": cfg.max_tokens,
        "seed": seed,
        "engine": cfg.engine,
    }
    return with_dtype(fp, cfg.dtype, auto_dtype_of(cfg))


def load_predictions(out_dir: Path, fp: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """Predictions already logged in ``out_dir`` under the same settings, by key
    (:func:`siked.resume.resume_rows`)."""
    rows = resume_rows(
        out_dir / PREDICTIONS,
        fp,
        fingerprint_path=out_dir / PREDICTIONS_META,
        stage="siked eval",
        derived=[out_dir / EVAL_JSON],
    )
    return {row_key(r): r for r in rows}


# --------------------------------------------------------------------------------------------
# numbers


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def summarize(
    rows: Sequence[dict[str, Any]],
    mode: str,
    strategies: Sequence[str],
    untagged: str = "extract",
) -> dict[str, Any]:
    """The ``eval.json`` entry of one dataset from its prediction rows (pure); ``untagged``:
    ``extract`` (an untagged answer is right when its extracted number is) or ``wrong``.

    >>> rows = [
    ...     {"qid": "1", "strategy": "cot", "correct": True, "answer": "3"},
    ...     {"qid": "2", "strategy": "pot", "correct": False, "answer": None},
    ...     {"qid": "3", "strategy": "cot", "correct": False, "answer": "4"},
    ...     {"qid": "4", "strategy": "cot", "correct": True, "answer": "5"},
    ... ]
    >>> s = summarize(rows, "free", ["cot", "l2m", "pot"])
    >>> s["n"], s["correct"], s["accuracy"], s["no_answer"]
    (4, 2, 0.5, 1)
    >>> s["strategy_counts"], s["strategy_distribution"]
    ({'cot': 3, 'l2m': 0, 'pot': 1, 'none': 0}, {'cot': 0.75, 'l2m': 0.0, 'pot': 0.25})
    >>> s["per_strategy_accuracy"], s["oracle_accuracy"]
    ({'cot': 0.6666666666666666, 'l2m': None, 'pot': 0.0}, None)

    An untagged answer whose number is right counts only under ``untagged="extract"``:

    >>> rows.append({"qid": "5", "strategy": "none", "correct": True, "answer": "6"})
    >>> [summarize(rows, "free", ["cot", "pot"], u)["correct"] for u in ("extract", "wrong")]
    [3, 2]
    >>> s = summarize(rows, "free", ["cot", "pot"], "wrong")
    >>> s["untagged"], s["untagged_correct"], s["per_strategy_accuracy"]["none"]
    (1, 1, 0.0)
    """
    from siked.stats import wilson_interval

    if untagged not in ("extract", "wrong"):
        raise ValueError(f"untagged must be 'extract' or 'wrong', got {untagged!r}")
    n = len(rows)
    keys = [*strategies, NO_STRATEGY]
    counts = dict.fromkeys(keys, 0)
    hits = dict.fromkeys(keys, 0)
    untagged_correct = 0
    for r in rows:
        s = r.get("strategy") if r.get("strategy") in counts else NO_STRATEGY
        assert isinstance(s, str)
        counts[s] += 1
        right = bool(r.get("correct"))
        if s == NO_STRATEGY:
            untagged_correct += int(right)
            right = right and untagged == "extract"
        hits[s] += int(right)
    correct = sum(hits.values())
    shown = [s for s in keys if s != NO_STRATEGY or counts[s]]
    qids = {str(r.get("qid")) for r in rows}
    oracle = None
    if mode == "all":  # every answer is tagged (forced)
        solved = {str(r.get("qid")) for r in rows if r.get("correct")}
        oracle = _ratio(len(solved), len(qids))
    lo, hi = wilson_interval(correct, n)
    return {
        "n": n,
        "questions": len(qids),
        "correct": correct,
        "accuracy": _ratio(correct, n),
        "ci95": [lo, hi],
        "no_answer": sum(1 for r in rows if r.get("answer") is None),
        "untagged": counts[NO_STRATEGY],
        "untagged_correct": untagged_correct,
        "untagged_rule": untagged,
        "strategy_counts": counts,
        "strategy_distribution": {s: counts[s] / n if n else 0.0 for s in shown},
        "per_strategy_accuracy": {s: _ratio(hits[s], counts[s]) for s in shown},
        "oracle_accuracy": oracle,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_table(result: dict[str, Any]) -> str:
    """The end-of-eval table: dataset, n, accuracy with its 95% Wilson interval (asymmetric, so
    shown as bounds), strategy mix, per-strategy accuracy (and oracle)."""
    rows = []
    oracle = result.get("mode") == "all"
    for name, d in result["datasets"].items():
        lo, hi = d["ci95"]
        acc = "-" if d["accuracy"] is None else f"{_pct(d['accuracy'])}% [{_pct(lo)}, {_pct(hi)}]"
        mix = " ".join(f"{s} {100 * p:.0f}%" for s, p in d["strategy_distribution"].items() if p)
        per = " ".join(
            f"{s} {_pct(a)}%" for s, a in d["per_strategy_accuracy"].items() if a is not None
        )
        row = [name, str(d["n"]), acc, str(d.get("untagged", "-")), mix or "-", per or "-"]
        if oracle:
            row.append(f"{_pct(d['oracle_accuracy'])}%")
        rows.append(row)
    head = [
        "dataset",
        "n",
        "accuracy [95% CI]",
        "untagged",
        "strategy mix",
        "per-strategy accuracy",
    ]
    if oracle:
        head.append("oracle")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {1, 2, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(head), *(line(r) for r in rows)])


# --------------------------------------------------------------------------------------------
# the stage


@locks_outputs("eval", lambda args: [args["out_dir"]])
def evaluate(
    model: str,
    datasets: Sequence[DatasetArg],
    cfg: EvalConfig,
    out_dir: str | Path,
    strategies: list[str],
    seed: int = 42,
    engine: Engine | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    *,
    sandbox: Sandbox | None = None,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` greedily on ``datasets``; write ``out_dir/eval.json`` and
    ``out_dir/predictions.jsonl`` and return the ``eval.json`` content.

    ``datasets`` holds :class:`DatasetSpec` (or their strings, ``"gsm8k:test:200"``) and
    ``(name, problems)`` pairs. ``engine`` reuses an engine (not closed here). Holds
    ``out_dir``'s lock (:mod:`siked.lock`) while it runs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = check_strategies(strategies)
    resolved = resolve_datasets(datasets, seed, data_dir)
    done = load_predictions(out_dir, fingerprint(model, cfg, names, seed))
    plans = [(name, plan(name, problems, cfg.mode, names, seed)) for name, problems in resolved]
    # one queue over every dataset, so that small sets fill the engine's batch together
    todo = [(name, r) for name, reqs in plans for r in reqs if _key(name, r) not in done]

    if todo:
        own_engine = engine is None
        eng = engine if engine is not None else open_student_engine(cfg, model)
        try:
            student = Student.for_engine(eng, cfg, model, names, sandbox=sandbox)
            size = chunk_size or auto_chunk_size(eng, 1)
            bar = progress_bar(len(todo), "eval", progress)
            counts = {name: sum(1 for n, _ in todo if n == name) for name, _ in plans}
            for name, reqs in plans:
                if not counts[name]:
                    log.info("eval %s: all %d predictions logged, skipped", name, len(reqs))
            t0 = time.perf_counter()
            with JsonlAppender(out_dir / PREDICTIONS) as app, bar:
                for chunk in chunked(todo, size):
                    names_here = list(dict.fromkeys(n for n, _ in chunk))
                    bar.set_description("eval " + "+".join(names_here))
                    outs = student.run(
                        [r for _, r in chunk],
                        n=1,
                        temperature=0.0,
                        top_p=1.0,
                        max_tokens=cfg.max_tokens,
                    )
                    rows = [
                        prediction_row(name, r, o[0])
                        for (name, r), o in zip(chunk, outs, strict=True)
                    ]
                    app.write_many(rows)
                    done.update((row_key(row), row) for row in rows)
                    bar.update(len(chunk))
            log.info(
                "eval: %d predictions (%s) in %.1fs",
                len(todo),
                ", ".join(f"{name} {c}" for name, c in counts.items() if c),
                time.perf_counter() - t0,
            )
        finally:
            if own_engine:
                eng.close()

    result: dict[str, Any] = {
        "model": str(model),
        "mode": cfg.mode,
        "seed": seed,
        "strategies": names,
        "max_tokens": cfg.max_tokens,
        "datasets": {
            name: summarize([done[_key(name, r)] for r in reqs], cfg.mode, names, cfg.untagged)
            for name, reqs in plans
        },
    }
    atomic_write_json(out_dir / EVAL_JSON, result)
    return result


def _key(dataset: str, r: Request) -> Key:
    return (dataset, r.problem.id, r.forced)


__all__ = [
    "evaluate",
    "format_table",
    "plan",
    "prediction_row",
    "resolve_datasets",
    "subset",
    "summarize",
]
