"""Stage: teacher rationales -> D_LLM.

For every question and every strategy the teacher writes ``n`` rationales (the strategy's
few-shot prompt, stop strings, and the sampling settings of :class:`TeacherConfig`; seeds
``derive_seed(seed, qid, strategy)``). Each one goes through the one filter: it is cleaned
(:meth:`Strategy.clean`), validated (:meth:`Strategy.validate`) and verified against the gold
answer (:meth:`Strategy.extract_many`: PoT programs run in the sandbox, in parallel). Kept are
the correct, valid ones: at most ``keep_per_strategy`` per question and strategy, without
duplicates (same text up to whitespace).

Output directory::

    samples.jsonl   every sample: Record fields (source "teacher", iteration -1) plus
                    finish_reason, prompt_tokens, completion_tokens, cached, error
    kept.jsonl      D_LLM: Record rows, ordered by question, strategy, sample
    stats.json      yield per strategy, questions solved by 0..k strategies, tokens, time
    teach.json      the settings that determine the samples (a resume must match them)
    choice.jsonl    only with ``free_choice_n > 0``: the teacher's free-choice answers (it picks
                    the strategy itself, :func:`run_choice`); they measure its real strategy
                    choice (``free_choice`` in stats.json) and are never trained on

Resumable: samples are appended one chunk of questions at a time, so a run killed at any
moment (SIGKILL included) is finished by rerunning it; samples already in ``samples.jsonl`` are
never requested again. ``teach.json`` is the fingerprint of :mod:`siked.resume`: a rerun with
other settings moves ``samples.jsonl`` and ``choice.jsonl`` aside to ``*.stale`` and starts
afresh. ``kept.jsonl`` and ``stats.json`` are rebuilt from ``samples.jsonl`` at the end,
atomically.

The engine is built by :func:`siked.engines.make_engine` with this stage's context: requests
of engines that cache them go to ``teacher.cache_dir`` (default ``OUT/cache``), a server's log
to ``OUT``, and the gold teacher reads the data directory.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.config import TeacherConfig
from siked.console import progress_bar
from siked.data import check_unique_ids
from siked.io import JsonlAppender, atomic_write_json, read_json, read_jsonl, write_jsonl
from siked.lock import locks_outputs
from siked.records import Record
from siked.resume import chunked, resume_rows
from siked.strategies import COMMON_STOP, NO_STRATEGY, Strategy, get_strategies, parse_tagged
from siked.styles import DEFAULT_STYLE
from siked.text import collapse_whitespace, format_number

if TYPE_CHECKING:
    from siked.data import Problem
    from siked.engines.base import Completion, Engine
    from siked.verify import SandboxLike, Verdict

log = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
KEPT = "kept.jsonl"
STATS = "stats.json"
META = "teach.json"
#: the free-choice pass (``teacher.free_choice_n``): the teacher picks the strategy itself
CHOICE = "choice.jsonl"


# --------------------------------------------------------------------------------------------
# planning (pure)


@dataclass(frozen=True)
class Unit:
    """The samples still wanted for one question and strategy."""

    problem: Problem
    strategy: str
    missing: tuple[int, ...]  # sample indices not yet in samples.jsonl


def sample_key(row: dict[str, Any]) -> tuple[str, str, int]:
    """The identity of a sample row: ``(qid, strategy, sample)``."""
    return str(row["qid"]), str(row["strategy"]), int(row["sample"])


def plan_units(
    problems: Sequence[Problem],
    strategies: Sequence[str],
    n: int,
    done: set[tuple[str, str, int]],
) -> list[Unit]:
    """Units with missing samples, in question order then strategy order.

    >>> from fractions import Fraction
    >>> from siked.data import Problem
    >>> ps = [Problem("q1", "?", Fraction(1)), Problem("q2", "?", Fraction(2))]
    >>> [(u.problem.id, u.strategy, u.missing) for u in plan_units(ps, ["cot", "pot"], 2, {("q1", "cot", 0), ("q1", "cot", 1), ("q2", "pot", 1)})]
    [('q1', 'pot', (0, 1)), ('q2', 'cot', (0, 1)), ('q2', 'pot', (0,))]
    """
    units = []
    for p in problems:
        for s in strategies:
            missing = tuple(j for j in range(n) if (p.id, s, j) not in done)
            if missing:
                units.append(Unit(p, s, missing))
    return units


def unit_seed(seed: int, qid: str, strategy: str) -> int:
    """The prompt seed of one question and strategy (sample ``j`` uses
    ``derive_seed(unit_seed, j)`` inside the engine), independent of chunking and resume."""
    from siked.engines.base import derive_seed

    return derive_seed(seed, qid, strategy)


# --------------------------------------------------------------------------------------------
# judging (pure given the verdicts)


def to_row(
    problem: Problem,
    strategy: str,
    sample: int,
    text: str,
    reason: str | None,
    verdict: Verdict,
    completion: Completion,
) -> dict[str, Any]:
    """One samples.jsonl row. ``correct`` is the D_LLM filter: valid, and the answer (not a
    fallback extraction) equals the gold answer; an invalid rationale has status ``invalid``."""
    valid = reason is None
    row = Record(
        qid=problem.id,
        question=problem.question,
        gold=format_number(problem.answer),
        strategy=strategy,
        text=text,
        answer=verdict.answer,
        correct=bool(valid and verdict.correct and not verdict.fallback),
        rule=verdict.rule,
        status=verdict.status if valid else "invalid",
        source="teacher",
        iteration=-1,
        sample=sample,
    ).to_dict()
    row.update(
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cached=bool(completion.cached),
        error=reason if not valid else verdict.error,
    )
    return row


def judge(
    strategy: Strategy,
    items: Sequence[tuple[Problem, int, Completion]],
    sandbox: SandboxLike | None,
) -> list[dict[str, Any]]:
    """Rows for ``(problem, sample index, completion)`` items of one strategy (programs are
    verified together, in parallel)."""
    texts = [strategy.clean(c.text) for _, _, c in items]
    reasons = [strategy.validate(t) for t in texts]
    verdicts = strategy.extract_many(
        [(t, p.answer) for t, (p, _, _) in zip(texts, items, strict=True)], sandbox
    )
    return [
        to_row(p, strategy.name, j, t, r, v, c)
        for (p, j, c), t, r, v in zip(items, texts, reasons, verdicts, strict=True)
    ]


def select_kept(
    rows: Iterable[dict[str, Any]],
    keep_per_strategy: int,
    qid_order: Sequence[str],
    strategy_order: Sequence[str],
) -> list[dict[str, Any]]:
    """D_LLM: correct rows, deduplicated per question and strategy, at most
    ``keep_per_strategy`` each (lowest sample index first), as Record dicts in question,
    strategy, sample order.

    >>> r = lambda s, j, t, ok=True: {"qid": "q", "question": "?", "gold": "1", "strategy": s, "text": t, "answer": "1", "correct": ok, "rule": "marker", "status": "ok", "source": "teacher", "iteration": -1, "sample": j}
    >>> rows = [r("cot", 1, "B"), r("cot", 0, "A"), r("cot", 2, " A "), r("pot", 0, "x", False)]
    >>> [(k["strategy"], k["sample"]) for k in select_kept(rows, 5, ["q"], ["cot", "pot"])]
    [('cot', 0), ('cot', 1)]
    """
    q_rank = {q: i for i, q in enumerate(qid_order)}
    s_rank = {s: i for i, s in enumerate(strategy_order)}
    good = sorted(
        (r for r in rows if r.get("correct") and r["qid"] in q_rank and r["strategy"] in s_rank),
        key=lambda r: (q_rank[r["qid"]], s_rank[r["strategy"]], int(r["sample"])),
    )
    kept: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in good:
        texts = seen[(r["qid"], r["strategy"])]
        norm = collapse_whitespace(r["text"])
        if norm in texts or len(texts) >= keep_per_strategy:
            continue
        texts.add(norm)
        kept.append(Record.from_dict(r).to_dict())
    return kept


def teach_stats(
    rows: Sequence[dict[str, Any]],
    kept: Sequence[dict[str, Any]],
    qids: Sequence[str],
    strategies: Sequence[str],
) -> dict[str, Any]:
    """Yield per strategy (share of questions with a kept rationale), sample-level counts,
    how many questions 0..k strategies solved, and token counts (pure).

    >>> rows = [{"qid": "a", "strategy": "cot", "status": "ok", "correct": True, "text": "..", "prompt_tokens": 5, "completion_tokens": 7},
    ...         {"qid": "b", "strategy": "cot", "status": "invalid", "correct": False}]
    >>> s = teach_stats(rows, [rows[0]], ["a", "b"], ["cot"])
    >>> s["yield"], s["solved_by_count"], s["tokens"]["completion"]
    ({'cot': 0.5}, {'0': 1, '1': 1}, 7)
    """
    n_q = len(qids)
    per: dict[str, dict[str, Any]] = {}
    solved: dict[str, set[str]] = {s: set() for s in strategies}
    for r in kept:
        if r["strategy"] in solved:
            solved[r["strategy"]].add(r["qid"])
    for s in strategies:
        mine = [r for r in rows if r["strategy"] == s]
        per[s] = {
            "samples": len(mine),
            "valid": sum(r["status"] != "invalid" for r in mine),
            "correct": sum(bool(r["correct"]) for r in mine),
            "kept": sum(r["strategy"] == s for r in kept),
            "questions_solved": len(solved[s]),
            "yield": len(solved[s]) / n_q if n_q else None,
            "sample_yield": (sum(bool(r["correct"]) for r in mine) / len(mine)) if mine else None,
            "status_counts": dict(sorted(Counter(str(r["status"]) for r in mine).items())),
        }
    by_count = Counter(sum(q in solved[s] for s in strategies) for q in qids)
    any_solved = n_q - by_count.get(0, 0)
    return {
        "questions": n_q,
        "strategies": list(strategies),
        "samples": len(rows),
        "kept": len(kept),
        "yield": {s: per[s]["yield"] for s in strategies},
        "per_strategy": per,
        "solved_by_count": {str(k): by_count.get(k, 0) for k in range(len(strategies) + 1)},
        "questions_solved": any_solved,
        "coverage": any_solved / n_q if n_q else None,
        "tokens": {
            "prompt": sum(int(r.get("prompt_tokens") or 0) for r in rows),
            "completion": sum(int(r.get("completion_tokens") or 0) for r in rows),
            "reported": sum(r.get("completion_tokens") is not None for r in rows),
        },
        "kept_chars": {
            s: sum(len(r["text"]) for r in kept if r["strategy"] == s) for s in strategies
        },
    }


def format_stats(stats: dict[str, Any]) -> str:
    """The yield table printed by ``siked teach``."""
    lines = [f"{'strategy':<9} {'samples':>8} {'valid':>7} {'correct':>8} {'kept':>7} {'yield':>7}"]
    for s, d in stats["per_strategy"].items():
        y = "-" if d["yield"] is None else f"{100 * d['yield']:.1f}%"
        lines.append(
            f"{s:<9} {d['samples']:>8} {d['valid']:>7} {d['correct']:>8} {d['kept']:>7} {y:>7}"
        )
    cov = stats["coverage"]
    counts = ", ".join(f"{k}: {v}" for k, v in stats["solved_by_count"].items())
    lines.append(
        f"questions with a kept rationale: {stats['questions_solved']}/{stats['questions']}"
        + (f" ({100 * cov:.1f}%)" if cov is not None else "")
        + f"; by number of strategies solved: {counts}"
    )
    fc = stats.get("free_choice")
    if isinstance(fc, dict) and fc.get("samples"):
        chosen = ", ".join(f"{k} {100 * v:.1f}%" for k, v in fc["p_choice"].items())
        acc = fc.get("accuracy")
        lines.append(
            f"free choice ({fc['samples']} samples): {chosen}"
            + (f"; accuracy {100 * acc:.1f}%" if acc is not None else "")
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# resume


def fingerprint(cfg: TeacherConfig, seed: int, chat: bool) -> dict[str, Any]:
    """What determines a sample (a resume with other values starts afresh). ``n``,
    ``keep_per_strategy``, ``chunk_size`` and the server address may change between runs.
    ``prompt_style`` is recorded when it is not the default (earlier runs' fingerprints lack
    it, and stay valid)."""
    fp: dict[str, Any] = {
        "engine": cfg.engine,
        "model": cfg.model,
        "chat": chat,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "seed": seed,
    }
    if cfg.prompt_style != DEFAULT_STYLE:
        fp["prompt_style"] = cfg.prompt_style
    return fp


def first_per_key(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each :func:`sample_key`, in file order."""
    out, seen = [], set()
    for r in rows:
        key = sample_key(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def resume_samples(out_dir: Path, fp: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows already in ``samples.jsonl`` (first copy of each key), by the rule of
    :func:`siked.resume.resume_rows` (``choice.jsonl`` shares the fingerprint)."""
    rows = resume_rows(
        out_dir / SAMPLES,
        fp,
        fingerprint_path=out_dir / META,
        stage="siked teach",
        companions=[out_dir / CHOICE],
        derived=[out_dir / KEPT, out_dir / STATS],
    )
    return first_per_key(rows)


def model_name(engine: Engine | None) -> str | None:
    """The name of the model an engine generates with (``engine.model`` when it is a name: a
    served model, the gold teacher's ``gsm8k-human``; hf holds the module there), else None."""
    name = getattr(engine, "model", None)
    return name if isinstance(name, str) and name else None


def _recorded_model(stats_path: Path) -> str | None:
    try:
        name = read_json(stats_path).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _open_engine(cfg: TeacherConfig, out_dir: Path, data_dir: str | None) -> Engine:
    from siked.engines import EngineContext, make_engine

    cache = Path(cfg.cache_dir) if cfg.cache_dir else out_dir / "cache"
    return make_engine(
        cfg, context=EngineContext(cache_dir=cache, run_dir=out_dir, data_dir=data_dir)
    )


# --------------------------------------------------------------------------------------------
# the stage


@locks_outputs("teach", lambda args: [args["out_dir"]])
def teach(
    problems: list[Problem],
    cfg: TeacherConfig,
    out_dir: str | os.PathLike[str],
    strategies: Sequence[str] | None = None,
    seed: int = 42,
    progress: bool = True,
    *,
    engine: Engine | None = None,
    sandbox: SandboxLike | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Run the teacher on ``problems`` for ``strategies`` (default: all registered) into
    ``out_dir`` and return the stats (also written to ``stats.json``).

    ``engine`` reuses an engine (not closed here); otherwise ``cfg.engine`` is built (openai
    and vllm get a persistent request cache in ``cfg.cache_dir`` or ``out_dir/cache``) and
    closed at the end. ``sandbox`` runs PoT programs (default: the shared sandbox). Holds
    ``out_dir``'s lock (:mod:`siked.lock`) while it runs.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strats = get_strategies(list(strategies) if strategies is not None else None)
    names = [s.name for s in strats]
    by_name = {s.name: s for s in strats}
    check_unique_ids(problems)
    chat = cfg.api == "chat"
    fp = fingerprint(cfg, seed, chat)
    existing = resume_samples(out, fp)
    done = {sample_key(r) for r in existing}
    units = plan_units(problems, names, cfg.n, done)
    todo = sum(len(u.missing) for u in units)
    total = len(problems) * len(names) * cfg.n
    if units and existing:
        log.info("resuming %s: %d of %d samples done", out, total - todo, total)
    choice_todo = plan_choice(problems, cfg.free_choice_n, out / CHOICE)

    generated = 0
    gen_seconds = 0.0
    engine_stats: dict[str, Any] | None = None
    # the engine's name for its model; with nothing left to generate, the one recorded before
    model = cfg.model or model_name(engine) or _recorded_model(out / STATS)
    if units or choice_todo:
        own_engine = engine is None
        eng = engine if engine is not None else _open_engine(cfg, out, data_dir)
        model = model_name(eng) or model
        try:
            by_question: dict[str, list[Unit]] = defaultdict(list)
            for u in units:
                by_question[u.problem.id].append(u)
            todo_qids = list(by_question)
            bar = progress_bar(
                total,
                f"teach ({cfg.engine})",
                progress,
                unit="sample",
                initial=total - todo,
                smoothing=0.1,
            )
            with JsonlAppender(out / SAMPLES) as app, bar:
                for qchunk in chunked(todo_qids, cfg.chunk_size):
                    chunk = [u for q in qchunk for u in by_question[q]]
                    t0 = time.perf_counter()
                    results = _generate(eng, chunk, by_name, cfg, seed, chat)
                    gen_seconds += time.perf_counter() - t0
                    rows: list[dict[str, Any]] = []
                    for name in names:
                        items = results.get(name)
                        if items:
                            rows += judge(by_name[name], items, sandbox)
                    app.write_many(rows)
                    generated += len(rows)
                    bar.update(len(rows))
            if choice_todo:
                t0 = time.perf_counter()
                generated += run_choice(eng, choice_todo, strats, cfg, seed, chat, out, sandbox)
                gen_seconds += time.perf_counter() - t0
            engine_stats = eng.stats.as_dict()
        finally:
            if own_engine:
                eng.close()

    stats = finalize(out, problems, names, cfg.keep_per_strategy, cfg.n)
    if cfg.free_choice_n:
        stats["free_choice"] = choice_stats(
            read_jsonl(out / CHOICE), problems, names, cfg.free_choice_n
        )
    stats.update(
        {
            "engine": cfg.engine,
            "model": str(model) if model is not None else None,
            "seed": seed,
            "n": cfg.n,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
            "keep_per_strategy": cfg.keep_per_strategy,
            "chat": chat,
            "prompt_style": cfg.prompt_style,
            "resumed_samples": len(existing),
            "generated": generated,
            "generation_seconds": round(gen_seconds, 3),
            "seconds": round(time.perf_counter() - t_start, 3),
            "engine_stats": engine_stats,
        }
    )
    atomic_write_json(out / STATS, stats)
    return stats


def _generate(
    engine: Engine,
    chunk: Sequence[Unit],
    strategies: dict[str, Strategy],
    cfg: TeacherConfig,
    seed: int,
    chat: bool,
) -> dict[str, list[tuple[Problem, int, Completion]]]:
    """Ask the engine for the missing samples of ``chunk``: one call per strategy and sample
    count. A unit missing samples ``(2, 3)`` asks for ``n=4`` and keeps samples 2 and 3, so
    every sample keeps the seed it would have had in an uninterrupted run."""
    groups: dict[tuple[str, int], list[Unit]] = defaultdict(list)
    for u in chunk:
        groups[(u.strategy, max(u.missing) + 1)].append(u)
    out: dict[str, list[tuple[Problem, int, Completion]]] = defaultdict(list)
    for (name, n), group in groups.items():
        strategy = strategies[name]
        completions = engine.generate(
            [strategy.teacher_prompt(u.problem.question, chat, cfg.prompt_style) for u in group],
            n=n,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_tokens,
            stop=strategy.stop_strings(chat, cfg.prompt_style),
            seed=[unit_seed(seed, u.problem.id, name) for u in group],
            progress=False,
        )
        for u, comps in zip(group, completions, strict=True):
            out[name] += [(u.problem, j, comps[j]) for j in u.missing]
    return out


# --------------------------------------------------------------------------------------------
# the free-choice pass: the teacher picks the strategy (measures its real choice, P_LLM)


def plan_choice(
    problems: Sequence[Problem], n: int, path: Path
) -> list[tuple[Problem, tuple[int, ...]]]:
    """Questions whose free-choice samples ``0..n-1`` are not all in ``path`` yet."""
    if n <= 0:
        return []
    done = {(str(r["qid"]), int(r["sample"])) for r in read_jsonl(path)}
    todo = []
    for p in problems:
        missing = tuple(j for j in range(n) if (p.id, j) not in done)
        if missing:
            todo.append((p, missing))
    return todo


def judge_choice(
    items: Sequence[tuple[Problem, int, Completion]],
    strategies: dict[str, Strategy],
    sandbox: SandboxLike | None,
) -> list[dict[str, Any]]:
    """Rows for free-choice responses: the tag names the strategy the teacher chose; the rest is
    judged like a rationale of that strategy (:func:`judge`). A response without the tag of a
    run strategy gets strategy ``none``, status ``invalid`` (error ``no strategy tag``) and is
    not correct."""
    from dataclasses import replace

    from siked.verify import Verdict

    groups: dict[str, list[tuple[Problem, int, Completion]]] = defaultdict(list)
    rows: list[dict[str, Any]] = []
    untagged = Verdict(NO_STRATEGY, None, False, "none", "no_answer")
    for p, j, c in items:
        name, body = parse_tagged(c.text)
        if name in strategies:
            groups[name].append((p, j, replace(c, text=body)))
        else:
            rows.append(to_row(p, NO_STRATEGY, j, c.text.strip(), "no strategy tag", untagged, c))
    for name, group in groups.items():
        rows += judge(strategies[name], group, sandbox)
    return rows


def run_choice(
    engine: Engine,
    todo: Sequence[tuple[Problem, tuple[int, ...]]],
    strategies: Sequence[Strategy],
    cfg: TeacherConfig,
    seed: int,
    chat: bool,
    out_dir: Path,
    sandbox: SandboxLike | None,
) -> int:
    """Generate and judge the missing free-choice samples, appending them to ``choice.jsonl``
    one chunk of questions at a time; returns how many were written. Sample ``j`` of a
    question has the seed it would have in an uninterrupted run (as in :func:`_generate`)."""
    from siked.engines.base import derive_seed
    from siked.strategies import free_choice_prompt

    by_name = {s.name: s for s in strategies}
    written = 0
    with JsonlAppender(out_dir / CHOICE) as app:
        for chunk in chunked(list(todo), cfg.chunk_size):
            groups: dict[int, list[tuple[Problem, tuple[int, ...]]]] = defaultdict(list)
            for p, missing in chunk:
                groups[max(missing) + 1].append((p, missing))
            items: list[tuple[Problem, int, Completion]] = []
            for n, group in groups.items():
                completions = engine.generate(
                    [
                        free_choice_prompt(p.question, strategies, chat, cfg.prompt_style)
                        for p, _ in group
                    ],
                    n=n,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_tokens=cfg.max_tokens,
                    stop=list(COMMON_STOP),
                    seed=[derive_seed(seed, "choice", p.id) for p, _ in group],
                    progress=False,
                )
                for (p, missing), comps in zip(group, completions, strict=True):
                    items += [(p, j, comps[j]) for j in missing]
            rows = judge_choice(items, by_name, sandbox)
            app.write_many(rows)
            written += len(rows)
    return written


def choice_stats(
    rows: Iterable[dict[str, Any]], problems: Sequence[Problem], strategies: Sequence[str], n: int
) -> dict[str, Any]:
    """The teacher's free strategy choice: ``p_choice`` (share of responses per chosen strategy,
    ``none`` = no known tag), accuracy overall and per chosen strategy.

    >>> rows = [{"qid": "a", "sample": 0, "strategy": "pot", "correct": True},
    ...         {"qid": "b", "sample": 0, "strategy": "none", "correct": False}]
    >>> from fractions import Fraction
    >>> from siked.data import Problem
    >>> s = choice_stats(rows, [Problem("a", "?", Fraction(1)), Problem("b", "?", Fraction(2))], ["cot", "pot"], 1)
    >>> s["p_choice"], s["accuracy"]
    ({'cot': 0.0, 'pot': 0.5, 'none': 0.5}, 0.5)
    """
    wanted = {p.id for p in problems}
    seen: set[tuple[str, int]] = set()
    kept = []
    for r in rows:
        key = (str(r["qid"]), int(r["sample"]))
        if key[0] in wanted and key[1] < n and key not in seen:
            seen.add(key)
            kept.append(r)
    total = len(kept)
    chosen = Counter(r["strategy"] if r["strategy"] in strategies else NO_STRATEGY for r in kept)
    correct = Counter(str(r["strategy"]) for r in kept if r.get("correct"))
    keys = [*strategies, NO_STRATEGY]
    return {
        "n": n,
        "questions": len(wanted),
        "samples": total,
        "p_choice": {k: (round(chosen[k] / total, 6) if total else 0.0) for k in keys},
        "accuracy": round(sum(correct.values()) / total, 6) if total else None,
        "per_strategy": {
            s: {
                "chosen": chosen[s],
                "correct": correct[s],
                "accuracy": round(correct[s] / chosen[s], 6) if chosen[s] else None,
            }
            for s in strategies
        },
    }


def finalize(
    out_dir: str | os.PathLike[str],
    problems: Sequence[Problem],
    strategies: Sequence[str],
    keep_per_strategy: int,
    n: int,
) -> dict[str, Any]:
    """Rebuild ``kept.jsonl`` from ``samples.jsonl`` (atomically) and return the stats of the
    rows that belong to ``problems`` x ``strategies`` x samples ``< n``."""
    out = Path(out_dir)
    qids = [p.id for p in problems]
    wanted_q, wanted_s = set(qids), set(strategies)
    rows, seen = [], set()
    for r in read_jsonl(out / SAMPLES):
        key = sample_key(r)
        if key in seen or key[0] not in wanted_q or key[1] not in wanted_s or key[2] >= n:
            continue
        seen.add(key)
        rows.append(r)
    kept = select_kept(rows, keep_per_strategy, qids, strategies)
    write_jsonl(out / KEPT, kept)
    return teach_stats(rows, kept, qids, strategies)
