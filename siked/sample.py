"""Stage: student self-generation -> D_self.

The student samples ``k`` solutions per training question (paper: k=10, T=0.7, top_p=0.95,
512 new tokens) through any engine. Every sample is parsed, validated and verified, and written
as a :class:`~siked.records.Record` row (``source="student"``) to ``samples.jsonl``; the rows with
``correct: true`` are D_self (:mod:`siked.mix` keeps those with ``status == "ok"`` and a known
strategy).

Modes (``SampleConfig.mode``):

* ``free`` (SIKeD): the prompt names no strategy; the student writes the tag and so *chooses*.
  ``sample`` is the index ``0..k-1`` within the question.
* ``forced`` (combined baselines): the response is pre-filled with each strategy's tag in turn
  (``k`` samples per strategy); ``sample`` is the index within ``(qid, strategy)``. Over a chat
  API, where a response cannot be pre-filled, the instruction names the strategy instead.

Prompts and judging are :mod:`siked.student`'s (shared with :mod:`siked.evaluate`). A row is
``correct`` -- enters D_self -- only if the answer equals the gold answer, the rationale is
valid, and the answer did not come from the ``last_number`` fallback
(:attr:`~siked.student.Outcome.accepted`, the same acceptance rule as the teacher filter).

**Seeds.** Prompt ``(qid[, strategy])`` gets seed ``derive_seed(seed, iteration, qid)`` (forced:
``derive_seed(seed, iteration, qid, strategy)``) and, by the engine contract, sample ``j`` uses
``derive_seed(prompt_seed, j)``: a sample depends only on (seed, iteration, qid, j), never on
batching or chunking, so a resumed run gives the same rows, and raising ``k`` keeps the first
samples.

**Crash safety.** Questions are processed in chunks; the rows of a chunk are appended (and
flushed) with :class:`~siked.io.JsonlAppender` once the chunk is verified. ``samples.meta.json``
beside the output is the fingerprint of :mod:`siked.resume` (the resume rule of every stage:
other settings move the file aside to ``samples.jsonl.stale``; a file without it is an error).
On restart, questions whose rows are all present are skipped; rows of incomplete or foreign
questions are dropped first (the file is rewritten atomically).

Statistics go to ``sample_stats.json`` (beside ``samples.jsonl`` by default): per strategy
``samples``, ``valid``, ``correct``, ``yield`` (= correct / samples), questions with at least one
correct sample, the distribution of chosen strategies, status counts, ``identical_samples``
(see :func:`identical_share`), and tokens, seconds, tokens/s and engine counters of the
generation done by this call (a resumed call counts only its own work).

**Sampling through a server** (``engine: openai``): the server must honour ``temperature``
and, for the seeds contract, ``seed``. When every question's samples come back identical at
``temperature > 0`` the stage warns that the server decoded greedily (``transformers serve``
does unless the model's generation config sets ``do_sample``; send
``extra_body: {generation_config: '{"do_sample": true}'}``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.config import SampleConfig
from siked.console import progress_bar
from siked.data import check_unique_ids
from siked.engines import auto_dtype_of
from siked.io import JsonlAppender, atomic_write_json, read_jsonl, write_jsonl
from siked.lock import locks_outputs
from siked.records import Record
from siked.resume import chunked, resume_rows, with_dtype
from siked.strategies import NO_STRATEGY, get_strategy
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

log = logging.getLogger("siked.sample")

#: the fingerprint file beside ``samples.jsonl`` (:mod:`siked.resume`)
META_SUFFIX = ".meta.json"
#: logged when a sampling engine returned k identical samples for every question
GREEDY_WARNING = (
    "every question's %d samples are identical although temperature=%s: the engine seems to "
    "decode greedily, so D_self holds copies. transformers serve samples only when the model's "
    "generation config sets do_sample; send it with the request: "
    "sample.extra_body: {generation_config: '{\"do_sample\": true}'}"
)


# --------------------------------------------------------------------------------------------
# the sampling stage


def sample_seeds(seed: int, iteration: int, qid: str, forced: str | None = None) -> int:
    """The prompt seed of question ``qid`` (and forced strategy); the engine derives sample
    ``j``'s seed as ``derive_seed(prompt_seed, j)``.

    >>> sample_seeds(42, 1, "gsm8k-train-7") == sample_seeds(42, 1, "gsm8k-train-7")
    True
    >>> sample_seeds(42, 1, "q") != sample_seeds(42, 2, "q")
    True
    """
    from siked.engines.base import derive_seed

    if forced is None:
        return derive_seed(seed, iteration, qid)
    return derive_seed(seed, iteration, qid, forced)


def plan_requests(
    problems: Sequence[Problem],
    mode: str,
    strategies: Sequence[str],
    seed: int,
    iteration: int,
) -> list[Request]:
    """The prompts of a chunk: one per question (free) or per question and strategy (forced)."""
    forced_list: list[str | None] = [None] if mode == "free" else list(strategies)
    return [
        Request(p, f, sample_seeds(seed, iteration, p.id, f)) for p in problems for f in forced_list
    ]


def to_row(request: Request, outcome: Outcome, iteration: int, index: int) -> dict[str, Any]:
    """The :class:`Record` row of one judged sample (source ``student``).

    An invalid response (tag or format) gets status ``invalid``; ``correct`` is the D_self
    acceptance (:attr:`Outcome.accepted`), the same rule as the teacher filter. Like teacher
    rows, the row also holds ``finish_reason``, ``completion_tokens`` and ``error`` (why it is
    invalid, else the verifier's message).
    """
    row = Record(
        qid=request.problem.id,
        question=request.problem.question,
        gold=format_number(request.problem.answer),
        strategy=outcome.strategy,
        text=outcome.text,
        answer=outcome.answer,
        correct=outcome.accepted,
        rule=outcome.rule,
        status="invalid" if not outcome.valid else outcome.status,
        source="student",
        iteration=iteration,
        sample=index,
    ).to_dict()
    row.update(
        finish_reason=outcome.finish_reason,
        completion_tokens=outcome.tokens,
        error=outcome.message,
    )
    return row


def expected_rows(cfg: SampleConfig, strategies: Sequence[str]) -> int:
    return cfg.k * (len(strategies) if cfg.mode == "forced" else 1)


def fingerprint(
    model: str, cfg: SampleConfig, iteration: int, seed: int, strategies: Sequence[str]
) -> dict[str, Any]:
    """What determines the samples (a resume with different values starts afresh)."""
    fp = {
        "model": str(model),
        "iteration": iteration,
        "seed": seed,
        "strategies": list(strategies),
        "mode": cfg.mode,
        "k": cfg.k,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "engine": cfg.engine,
    }
    return with_dtype(fp, cfg.dtype, auto_dtype_of(cfg))


def meta_path(out_path: Path) -> Path:
    """The fingerprint file of ``out_path``: ``samples.meta.json`` beside ``samples.jsonl``."""
    return out_path.with_name(out_path.stem + META_SUFFIX)


def complete_rows(
    rows: Sequence[dict[str, Any]], qids: Sequence[str], per_question: int
) -> list[dict[str, Any]]:
    """The rows of questions in ``qids`` that have all ``per_question`` rows, in order: what a
    resumed run keeps (a chunk is appended whole, so a question with fewer rows was cut off).

    >>> rows = [{"qid": "a"}, {"qid": "a"}, {"qid": "b"}, {"qid": "x"}, {"qid": "x"}]
    >>> complete_rows(rows, ["a", "b"], 2)
    [{'qid': 'a'}, {'qid': 'a'}]
    """
    wanted = set(qids)
    counts = Counter(r.get("qid") for r in rows)
    return [r for r in rows if r.get("qid") in wanted and counts[r.get("qid")] == per_question]


def output_dirs(out_path: str | Path, stats_path: str | Path | None = None) -> list[Path]:
    """The directories :func:`sample` writes (and locks): those of ``out_path`` and ``stats_path``.

    >>> [str(d) for d in output_dirs("it/samples.jsonl", "elsewhere/stats.json")]
    ['it', 'elsewhere']
    """
    dirs = [Path(out_path).parent]
    if stats_path is not None:
        dirs.append(Path(stats_path).parent)
    return dirs


@locks_outputs("sample", lambda args: output_dirs(args["out_path"], args["stats_path"]))
def sample(
    problems: Sequence[Problem],
    model: str,
    cfg: SampleConfig,
    out_path: str | Path,
    iteration: int,
    seed: int,
    strategies: list[str],
    engine: Engine | None = None,
    progress: bool = True,
    *,
    sandbox: Sandbox | None = None,
    chunk_size: int | None = None,
    stats_path: str | Path | None = None,
) -> dict[str, Any]:
    """Sample ``cfg.k`` solutions per question from ``model`` into ``out_path`` (JSON lines).

    ``engine`` reuses an engine (it is not closed); otherwise one is built from ``cfg`` and
    closed at the end. ``chunk_size`` is in questions (default
    :func:`~siked.student.auto_chunk_size`).
    Writes ``stats_path`` (default ``sample_stats.json`` beside ``out_path``) and returns the
    stats (:func:`sample_stats`). Holds the lock of their directories (:func:`output_dirs`,
    :mod:`siked.lock`) while it runs.
    """
    out_path = Path(out_path)
    names = check_strategies(strategies)
    check_unique_ids(problems)
    sp = Path(stats_path) if stats_path is not None else out_path.with_name("sample_stats.json")
    rows = resume_rows(
        out_path,
        fingerprint(model, cfg, iteration, seed, names),
        fingerprint_path=meta_path(out_path),
        stage="siked sample",
        derived=[sp],
    )
    done_rows = complete_rows(rows, [p.id for p in problems], expected_rows(cfg, names))
    if len(done_rows) != len(rows):
        write_jsonl(out_path, done_rows)
    done = {r["qid"] for r in done_rows}
    todo_total = sum(1 for p in problems if p.id not in done)
    if done:
        log.info("resuming %s: %d of %d questions done", out_path, len(done), len(problems))

    tokens = 0
    seconds = 0.0
    generations = 0
    engine_stats: dict[str, Any] | None = None
    if todo_total:
        own_engine = engine is None
        eng = engine if engine is not None else open_student_engine(cfg, model)
        own_sandbox = None
        try:
            sb = sandbox
            if sb is None and any(get_strategy(s).program for s in names):
                from siked.sandbox import Sandbox

                sb = own_sandbox = Sandbox(workers=cfg.workers)
            student = Student.for_engine(eng, cfg, model, names, sandbox=sb)
            size = chunk_size or auto_chunk_size(eng, expected_rows(cfg, names))
            bar = progress_bar(todo_total, f"sample it{iteration}", progress, unit="q")
            with JsonlAppender(out_path) as app, bar:
                # chunks are cut from the full question list so that they do not move on resume
                for chunk in chunked(problems, size):
                    todo = [p for p in chunk if p.id not in done]
                    if not todo:
                        continue
                    requests = plan_requests(todo, cfg.mode, names, seed, iteration)
                    t0 = time.perf_counter()
                    counted = eng.stats.completion_tokens
                    outcomes = student.run(
                        requests,
                        n=cfg.k,
                        temperature=cfg.temperature,
                        top_p=cfg.top_p,
                        max_tokens=cfg.max_tokens,
                    )
                    seconds += time.perf_counter() - t0
                    rows = []
                    per_sample = 0
                    for req, outs in zip(requests, outcomes, strict=True):
                        for j, o in enumerate(outs):
                            rows.append(to_row(req, o, iteration, j))
                            per_sample += o.tokens
                            generations += 1
                    # a server answering n samples in one request reports their total only
                    # (per-sample counts unknown, 0): the engine's count has it
                    tokens += max(per_sample, eng.stats.completion_tokens - counted)
                    app.write_many(rows)
                    bar.update(len(todo))
            engine_stats = eng.stats.as_dict()
        finally:
            if own_sandbox is not None:
                own_sandbox.close()
            if own_engine:
                eng.close()

    wanted = {p.id for p in problems}
    all_rows = [r for r in read_jsonl(out_path) if r.get("qid") in wanted]
    stats = sample_stats(all_rows, names, mode=cfg.mode)
    stats.update(
        {
            "model": str(model),
            "iteration": iteration,
            "seed": seed,
            "k": cfg.k,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
            "resumed_questions": len(done),
            "generated": generations,
            "tokens": tokens,
            "seconds": round(seconds, 3),
            "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else None,
            "engine_stats": engine_stats,
        }
    )
    if generations and cfg.temperature > 0 and stats["identical_samples"] == 1.0:
        log.warning(GREEDY_WARNING, cfg.k, cfg.temperature)
    atomic_write_json(sp, stats)
    return stats


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def identical_share(rows: Sequence[dict[str, Any]]) -> float | None:
    """Share of (question, strategy) groups of two or more samples whose texts are all equal
    (``None`` without such groups). 1.0 at ``temperature > 0`` means greedy decoding.

    >>> r = lambda q, t: {"qid": q, "strategy": "pot", "text": t}
    >>> identical_share([r("a", "x"), r("a", "x"), r("b", "x"), r("b", "y"), r("c", "z")])
    0.5
    >>> identical_share([r("a", "x")]) is None
    True
    """
    groups: dict[tuple[str, str], set[str]] = {}
    sizes: Counter[tuple[str, str]] = Counter()
    for r in rows:
        key = (str(r.get("qid")), str(r.get("strategy")))
        groups.setdefault(key, set()).add(str(r.get("text")))
        sizes[key] += 1
    multi = [k for k, n in sizes.items() if n >= 2]
    if not multi:
        return None
    return sum(len(groups[k]) == 1 for k in multi) / len(multi)


def sample_stats(
    rows: Sequence[dict[str, Any]], strategies: Sequence[str], mode: str = "free"
) -> dict[str, Any]:
    """Yield of a set of sample rows, per strategy and overall (pure).

    >>> rows = [
    ...     {"qid": "a", "strategy": "pot", "status": "ok", "correct": True},
    ...     {"qid": "a", "strategy": "cot", "status": "ok", "correct": False},
    ...     {"qid": "b", "strategy": "none", "status": "invalid", "correct": False},
    ... ]
    >>> s = sample_stats(rows, ["cot", "pot"])
    >>> s["per_strategy"]["pot"], s["questions_solved"], s["distribution"]["none"]
    ({'samples': 1, 'valid': 1, 'correct': 1, 'yield': 1.0}, 1, 0.3333333333333333)
    """
    keys = [*strategies, NO_STRATEGY]
    per: dict[str, dict[str, Any]] = {
        s: {"samples": 0, "valid": 0, "correct": 0, "yield": None} for s in keys
    }
    solved: set[str] = set()
    solved_by: dict[str, set[str]] = {s: set() for s in strategies}
    statuses: Counter[str] = Counter()
    for r in rows:
        s = r.get("strategy") if r.get("strategy") in per else NO_STRATEGY
        assert isinstance(s, str)
        d = per[s]
        d["samples"] += 1
        d["valid"] += int(r.get("status") != "invalid")
        if r.get("correct"):
            d["correct"] += 1
            solved.add(str(r.get("qid")))
            if s in solved_by:
                solved_by[s].add(str(r.get("qid")))
        statuses[str(r.get("status"))] += 1
    for d in per.values():
        d["yield"] = _ratio(d["correct"], d["samples"])
    n = len(rows)
    correct = sum(d["correct"] for d in per.values())
    return {
        "mode": mode,
        "strategies": list(strategies),
        "samples": n,
        "valid": sum(d["valid"] for d in per.values()),
        "correct": correct,
        "yield": _ratio(correct, n),
        "questions": len({str(r.get("qid")) for r in rows}),
        "questions_solved": len(solved),
        "questions_solved_by_strategy": {s: len(q) for s, q in solved_by.items()},
        "per_strategy": per,
        "counts": {s: per[s]["samples"] for s in keys},
        "distribution": {s: (per[s]["samples"] / n if n else 0.0) for s in keys},
        "correct_distribution": {
            s: (per[s]["correct"] / correct if correct else 0.0) for s in strategies
        },
        "status_counts": dict(sorted(statuses.items())),
        "identical_samples": identical_share(rows),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A small table of the yield per strategy."""
    lines = [f"{'strategy':<9} {'samples':>8} {'valid':>7} {'correct':>8} {'yield':>7}"]
    for s, d in stats["per_strategy"].items():
        if s == NO_STRATEGY and not d["samples"]:
            continue
        y = "-" if d["yield"] is None else f"{100 * d['yield']:.1f}%"
        lines.append(f"{s:<9} {d['samples']:>8} {d['valid']:>7} {d['correct']:>8} {y:>7}")
    y = "-" if stats["yield"] is None else f"{100 * stats['yield']:.1f}%"
    lines.append(
        f"{'total':<9} {stats['samples']:>8} {stats['valid']:>7} {stats['correct']:>8} {y:>7}"
    )
    lines.append(
        f"questions solved: {stats['questions_solved']}/{stats['questions']}"
        + (
            f"; {stats['tokens']} tokens in {stats['seconds']:.1f}s"
            + (
                f" ({stats['tokens_per_second']:.1f} tok/s)"
                if stats.get("tokens_per_second")
                else ""
            )
            if stats.get("generated")
            else ""
        )
    )
    return "\n".join(lines)


__all__ = [
    "complete_rows",
    "format_stats",
    "identical_share",
    "plan_requests",
    "sample",
    "sample_seeds",
    "sample_stats",
    "to_row",
]
