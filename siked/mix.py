"""Stage: mix the student's own correct solutions (D_self) with teacher data (D_LLM).

Everything here is a pure function of the rows (plain dicts with the :class:`~siked.records.Record`
schema) except :func:`mix_files`, the stage on files that ``siked mix`` and the loop both call.

**Inputs.**

* *Teacher rows* are D_LLM (``teacher/kept.jsonl``). A row counts when ``correct`` is true and its
  strategy is one of the run's strategies (kept rows always are; the check makes hand-made files
  safe).
* *Student rows* are the candidates of D_self (``iter_NN/samples.jsonl`` of the previous model). A
  row counts when ``correct`` is true, ``status == "ok"`` and its strategy is one of the run's
  strategies (an untagged answer cannot teach a strategy choice).

**Steps** of :func:`mix` for a SIKeD iteration (``iteration >= 1``):

1. *One self row per question and strategy*: of the counted student rows (deduplicated), at
   most ``MixConfig.self_per_strategy`` are kept per ``(question, strategy)`` (default 1, the
   authors': ``create-data-from-individual-strategies.py`` keeps the first correct sample of
   each question in each strategy's file); the lowest ``sample`` index wins (:func:`row_rank`).
   ``None`` keeps them all.
2. *Variant* picks the teacher part: ``all`` = every D_LLM row; ``adaptive`` = with
   ``adaptive_scope: strategy`` (default, the authors' ``create-mixed-data.py``) the D_LLM rows
   of strategy *s* for questions the student did not solve *with s*; with ``adaptive_scope:
   question`` only the D_LLM rows of questions the student solved with no strategy at all;
   ``self`` = none.
3. *Deduplicate* identical ``(qid, strategy, normalised text)`` (whitespace collapsed); when a
   student row and a teacher row collide the student row is kept.
4. *Bias* keeps one rationale per question by strategy priority (:data:`BIAS_ORDERS`):
   ``pot``: pot > cot > l2m (the paper's default); ``cot``: cot > pot > l2m; ``l2m``:
   l2m > pot > cot; strategies outside the order come after it, alphabetically. ``none`` keeps
   all rows. Ties within a strategy are broken deterministically by :func:`row_rank`. A student
   row and a teacher row of the same question and strategy -- only ``all`` keeps both, since
   ``adaptive`` drops the teacher row of every (question, strategy) the student solved -- are
   decided by ``MixConfig.tie_break``: ``seeded`` (default) flips a coin seeded by ``(seed,
   iteration, question)`` (:func:`teacher_wins`), so about half of these questions keep the
   teacher's row, as in the authors' ``create-all-data.py``, where both rows are concatenated
   and ``drop_duplicates`` keeps whichever an unstable ``sort_values`` put first (lines 71,
   90-92); ``student`` always keeps the student's row, which makes ``all`` select the same rows
   as ``adaptive`` under a bias. Then the lowest ``sample`` index wins, then the lowest hash of
   the normalised text.
5. *Alpha*: ``auto`` keeps what the variant yields (the paper's alpha is then the resulting
   share of teacher rows). A number (or ``{start, end}`` schedule, :class:`AlphaSchedule`, giving
   a per-iteration number) subsamples teacher *or* student rows, seeded and deterministic, to hit
   that teacher share as closely as possible without inventing rows (:func:`solve_counts`). The
   achieved share is ``alpha``, the requested one ``alpha_target``.

**Iteration 0** (plain distillation, also ``method: distill``) trains on D_LLM whatever the
variant; it takes no student rows. ``bias`` applies there too (``MixConfig.bias_iteration_0``,
default true), as in the authors' code: their PoT-biased chain trains its first model on
``df_concat_pot_biased_kd.csv`` (one rationale per question, ``create_data.py``), their
unbiased chain on ``df_concat_kd.csv`` (``bias: none``). ``bias_iteration_0: false`` trains
iteration 0 on all of D_LLM whatever the bias (siked's former behaviour).

**Distributions** (strategy -> probability over the run's strategies, :func:`strategy_distribution`):
``p_llm`` over the counted D_LLM rows; ``p_student`` over the counted D_self rows (all valid,
correct samples of the student, before the per-strategy limit, variant, deduplication and
bias: what the student chooses when it is right); ``p_student_all`` over *all* student samples,
correct or not, with a ``none`` key for answers with no known strategy; ``p_train`` over the
final mix. ``p_student``, ``p_student_all``, ``kl`` and ``kl_all`` are ``None`` when there are
no student rows (iteration 0), and ``p_student``/``kl`` also when the student solved nothing.
``kl`` is ``KL(P_train || P_student)`` and ``kl_all`` is ``KL(P_train || P_student_all)``
(:func:`kl_divergence`). These are siked's reading of the paper's Figure 2: ``p_llm`` is the
share of each strategy in D_LLM, i.e. the *forced* teacher's yield per strategy, not the
teacher's own choice (measure that with ``teacher.free_choice_n``, :mod:`siked.teach`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siked.config import AlphaSchedule, MixConfig
from siked.errors import SikedError
from siked.io import atomic_write_json, read_jsonl, write_jsonl
from siked.lock import locks_outputs
from siked.strategies import NO_STRATEGY  # the key of p_student_all for untagged samples
from siked.text import collapse_whitespace

log = logging.getLogger(__name__)

Row = dict[str, Any]

#: Strategy priority of each ``bias`` (first = most preferred).
BIAS_ORDERS: dict[str, tuple[str, ...]] = {
    "pot": ("pot", "cot", "l2m"),
    "cot": ("cot", "pot", "l2m"),
    "l2m": ("l2m", "pot", "cot"),
}


_ROUND = 6


class MixError(SikedError):
    """The mix cannot be built from the given inputs (bad arguments, nothing to train on)."""


@dataclass
class MixResult:
    rows: list[Row]
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- row helpers


def text_hash(text: str) -> str:
    """Short, stable hash of the normalised text (a deterministic tie-breaker).

    >>> text_hash("a  b") == text_hash(" a b\\n")
    True
    """
    return hashlib.sha256(collapse_whitespace(str(text)).encode("utf-8")).hexdigest()[:16]


def is_teacher_row(row: Mapping[str, Any], strategies: Sequence[str]) -> bool:
    """Does a teacher row count for D_LLM (correct, known strategy)?

    >>> is_teacher_row({"correct": True, "strategy": "cot"}, ["cot", "pot"])
    True
    >>> is_teacher_row({"correct": True, "strategy": "l2m"}, ["cot", "pot"])
    False
    """
    return row.get("correct") is True and row.get("strategy") in strategies


def is_self_row(row: Mapping[str, Any], strategies: Sequence[str]) -> bool:
    """Does a student sample count for D_self (correct, status ``ok``, known strategy)?

    >>> is_self_row({"correct": True, "status": "ok", "strategy": "pot"}, ["cot", "pot"])
    True
    >>> is_self_row({"correct": True, "status": "timeout", "strategy": "pot"}, ["cot", "pot"])
    False
    >>> is_self_row({"correct": True, "status": "ok", "strategy": "none"}, ["cot", "pot"])
    False
    """
    return (
        row.get("correct") is True
        and row.get("status") == "ok"
        and row.get("strategy") in strategies
    )


def priority(bias: str, strategies: Sequence[str]) -> list[str]:
    """Full strategy order of a bias: the :data:`BIAS_ORDERS` entry (restricted to the run's
    strategies), then the run's other strategies alphabetically. ``none`` -> alphabetical.

    >>> priority("pot", ["cot", "l2m", "pot"])
    ['pot', 'cot', 'l2m']
    >>> priority("l2m", ["cot", "l2m", "pot"])
    ['l2m', 'pot', 'cot']
    >>> priority("cot", ["pot", "eqn", "cot"])
    ['cot', 'pot', 'eqn']
    """
    head = [s for s in BIAS_ORDERS.get(bias, ()) if s in strategies]
    return head + sorted(s for s in strategies if s not in head)


def teacher_wins(salt: str, qid: str) -> bool:
    """The seeded coin of ``tie_break: seeded``: does the teacher's row win question ``qid``'s
    student/teacher tie? (``salt`` = seed and iteration; about half of the questions.)

    >>> sum(teacher_wins("42|1", str(q)) for q in range(1000))
    482
    >>> teacher_wins("42|1", "q7") == teacher_wins("42|1", "q7")
    True
    """
    digest = hashlib.sha256(f"tie|{salt}|{qid}".encode()).digest()
    return bool(digest[0] & 1)


def row_rank(
    row: Mapping[str, Any], order: Sequence[str], tie_salt: str | None = None
) -> tuple[int, int, int, str]:
    """Sort key of a row under a strategy order: strategy position, then student before teacher
    (with ``tie_salt``: teacher before student where :func:`teacher_wins` says so), then lowest
    sample index, then text hash. The smallest key wins.

    >>> order = ["pot", "cot", "l2m"]
    >>> t = {"strategy": "pot", "source": "teacher", "sample": 0, "text": "a"}
    >>> s = {"strategy": "pot", "source": "student", "sample": 3, "text": "b"}
    >>> c = {"strategy": "cot", "source": "student", "sample": 0, "text": "c"}
    >>> min([t, s, c], key=lambda r: row_rank(r, order))["source"]
    'student'
    >>> row_rank(c, order) > row_rank(t, order)
    True
    """
    strategy = row.get("strategy")
    pos = order.index(strategy) if strategy in order else len(order)
    source = 0 if row.get("source") == "student" else 1
    if tie_salt is not None and teacher_wins(tie_salt, str(row.get("qid"))):
        source = 1 - source
    sample = row.get("sample")
    return (
        pos,
        source,
        int(sample) if isinstance(sample, int) else 0,
        text_hash(row.get("text", "")),
    )


def dedupe(rows: Iterable[Row]) -> list[Row]:
    """Drop rows with the same ``(qid, strategy, normalised text)``, keeping the best-ranked one
    (a student row over a teacher row, then lowest sample index).

    >>> a = {"qid": "q1", "strategy": "cot", "text": "x  y", "source": "teacher", "sample": 0}
    >>> b = {"qid": "q1", "strategy": "cot", "text": "x y", "source": "student", "sample": 2}
    >>> [r["source"] for r in dedupe([a, b])]
    ['student']
    """
    best: dict[tuple[str, str, str], tuple[tuple[int, int, int, str], Row]] = {}
    for r in rows:
        key = (
            str(r.get("qid")),
            str(r.get("strategy")),
            collapse_whitespace(str(r.get("text", ""))),
        )
        rank = row_rank(r, [])
        if key not in best or rank < best[key][0]:
            best[key] = (rank, r)
    return [r for _, r in best.values()]


def apply_bias(
    rows: Iterable[Row], bias: str, strategies: Sequence[str], tie_salt: str | None = None
) -> list[Row]:
    """Keep one row per question by the bias's strategy priority (``none``: keep all); a
    student/teacher tie goes to the student, or, with ``tie_salt``, to :func:`teacher_wins`.

    >>> rows = [
    ...     {"qid": "q", "strategy": "cot", "source": "student", "sample": 0, "text": "c"},
    ...     {"qid": "q", "strategy": "pot", "source": "teacher", "sample": 0, "text": "p"},
    ... ]
    >>> [r["strategy"] for r in apply_bias(rows, "pot", ["cot", "l2m", "pot"])]
    ['pot']
    >>> [r["strategy"] for r in apply_bias(rows, "cot", ["cot", "l2m", "pot"])]
    ['cot']
    >>> len(apply_bias(rows, "none", ["cot", "l2m", "pot"]))
    2
    """
    rows = list(rows)
    if bias == "none":
        return rows
    order = priority(bias, strategies)
    best: dict[str, tuple[tuple[int, int, int, str], Row]] = {}
    for r in rows:
        qid = str(r.get("qid"))
        rank = row_rank(r, order, tie_salt)
        if qid not in best or rank < best[qid][0]:
            best[qid] = (rank, r)
    return [r for _, r in best.values()]


def limit_per_strategy(rows: Iterable[Row], k: int | None) -> list[Row]:
    """Keep at most ``k`` rows per ``(qid, strategy)``, the best-ranked ones (student before
    teacher, then lowest ``sample``, then text hash); ``None`` keeps all.

    >>> rows = [{"qid": "q", "strategy": "cot", "sample": j, "text": str(j)} for j in (3, 1, 2)]
    >>> [r["sample"] for r in limit_per_strategy(rows, 1)]
    [1]
    >>> sorted(r["sample"] for r in limit_per_strategy(rows, 2)), len(limit_per_strategy(rows, None))
    ([1, 2], 3)
    """
    rows = list(rows)
    if k is None:
        return rows
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((str(r.get("qid")), str(r.get("strategy"))), []).append(r)
    out: list[Row] = []
    for group in groups.values():
        out += sorted(group, key=lambda r: row_rank(r, []))[:k]
    return out


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    """Deterministic output order: question, strategy, student before teacher, sample, text."""
    return sorted(rows, key=lambda r: (str(r.get("qid")), str(r.get("strategy")), *row_rank(r, [])))


# --------------------------------------------------------------------------- distributions


def strategy_distribution(
    rows: Iterable[Mapping[str, Any]], strategies: Sequence[str], other: str | None = None
) -> dict[str, float]:
    """Share of rows per strategy, over the run's ``strategies`` (every key present).

    Rows with another strategy are ignored, or counted under ``other`` when it is given. With no
    counted row every share is 0.

    >>> rows = [{"strategy": s} for s in ("cot", "pot", "pot", "pot", "none")]
    >>> strategy_distribution(rows, ["cot", "l2m", "pot"])
    {'cot': 0.25, 'l2m': 0.0, 'pot': 0.75}
    >>> strategy_distribution(rows, ["cot", "l2m", "pot"], other="none")
    {'cot': 0.2, 'l2m': 0.0, 'pot': 0.6, 'none': 0.2}
    >>> strategy_distribution([], ["cot", "pot"])
    {'cot': 0.0, 'pot': 0.0}
    """
    keys = list(strategies) + ([other] if other is not None and other not in strategies else [])
    counts: Counter[str] = Counter()
    for r in rows:
        s = r.get("strategy")
        if s in strategies:
            counts[str(s)] += 1
        elif other is not None:
            counts[other] += 1
    total = sum(counts.values())
    return {k: (round(counts[k] / total, _ROUND) if total else 0.0) for k in keys}


def smooth(
    p: Mapping[str, float], eps: float, keys: Sequence[str] | None = None
) -> dict[str, float]:
    """Add ``eps`` to every probability (missing keys count as 0) and renormalise.

    >>> smooth({"a": 1.0, "b": 0.0}, 0.5)
    {'a': 0.75, 'b': 0.25}
    """
    keys = list(keys) if keys is not None else list(p)
    raw = {k: max(float(p.get(k, 0.0)), 0.0) + eps for k in keys}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


#: Fewer correct student samples than this and P_student -- so KL(P_train || P_student) -- is
#: mostly the smoothing epsilon, not data: :func:`format_kl` shows "—" instead of a number.
KL_MIN_SUPPORT = 10


def format_kl(kl: float | None, support: int | None) -> str:
    """KL for people: the value with the student samples it rests on, or "—" below
    :data:`KL_MIN_SUPPORT` (``support`` None: stats written before it was recorded).

    >>> format_kl(0.2934, 57)
    '0.293 (57 samples)'
    >>> format_kl(13.676, 1)
    '— (1 sample)'
    >>> format_kl(None, None)
    '-'
    """
    if kl is None:
        return "-"
    if support is None:
        return f"{kl:.3f}"
    n = f"{support} sample{'s' if support != 1 else ''}"
    return f"{kl:.3f} ({n})" if support >= KL_MIN_SUPPORT else f"— ({n})"


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float], eps: float = 1e-6) -> float:
    """KL(P || Q) in nats over the union of keys, with additive smoothing.

    Both distributions get ``eps`` added to every entry (missing keys are 0) and are
    renormalised, so a strategy that P uses and Q never does gives a large but finite value.
    In :func:`mix`, ``p`` is P_train and ``q`` is P_student.

    >>> kl_divergence({"cot": 0.5, "pot": 0.5}, {"cot": 0.5, "pot": 0.5})
    0.0
    >>> round(kl_divergence({"cot": 0.5, "pot": 0.5}, {"cot": 0.25, "pot": 0.75}, eps=0), 6)
    0.143841
    >>> round(kl_divergence({"cot": 1.0, "pot": 0.0}, {"cot": 0.5, "pot": 0.5}, eps=0), 6)
    0.693147

    P uses pot, Q never does: about 0.5 ln(0.5 / 1) + 0.5 ln(0.5 / 1e-6) with the default smoothing,
    infinite without it:

    >>> round(kl_divergence({"cot": 0.5, "pot": 0.5}, {"cot": 1.0, "pot": 0.0}, eps=1e-6), 3)
    6.215
    >>> kl_divergence({"cot": 0.5, "pot": 0.5}, {"cot": 1.0, "pot": 0.0}, eps=0)
    inf
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    keys = sorted(set(p) | set(q))
    ps, qs = smooth(p, eps, keys), smooth(q, eps, keys)
    total = 0.0
    for k in keys:
        if ps[k] > 0:
            if qs[k] == 0:
                return math.inf
            total += ps[k] * math.log(ps[k] / qs[k])
    return max(total, 0.0)


# --------------------------------------------------------------------------- alpha


def alpha_target(
    alpha: str | float | AlphaSchedule, iteration: int, iterations: int
) -> float | None:
    """The teacher share asked for at ``iteration`` (``None`` for ``auto``).

    >>> alpha_target("auto", 1, 3) is None
    True
    >>> alpha_target(0.5, 2, 3)
    0.5
    >>> alpha_target(AlphaSchedule(start=0.9, end=0.2), 3, 3)
    0.2
    """
    if isinstance(alpha, AlphaSchedule):
        return round(alpha.at(iteration, iterations), _ROUND)
    if isinstance(alpha, str):
        if alpha == "auto":
            return None
        alpha = float(alpha)
    if not 0.0 <= float(alpha) <= 1.0:
        raise MixError(f"alpha must be 'auto', a number in [0, 1], or {{start, end}}; got {alpha}")
    return float(alpha)


def solve_counts(n_teacher: int, n_student: int, target: float | None) -> tuple[int, int]:
    """Numbers of teacher and student rows to keep so that the teacher share is as close as
    possible to ``target``, only ever dropping rows of one side (ties: keep more rows).

    With no rows on one side the share cannot be changed (dropping the other side would empty
    the set), so everything is kept.

    >>> solve_counts(100, 300, 0.5)
    (100, 100)
    >>> solve_counts(300, 100, 0.5)
    (100, 100)
    >>> solve_counts(90, 10, 0.2)
    (3, 10)
    >>> solve_counts(10, 0, 0.3)
    (10, 0)
    >>> solve_counts(10, 5, None)
    (10, 5)
    >>> solve_counts(10, 5, 0.0), solve_counts(10, 5, 1.0)
    ((0, 5), (10, 0))
    """
    t, s = n_teacher, n_student
    if target is None or t == 0 or s == 0:
        return t, s
    current = t / (t + s)
    if math.isclose(current, target, abs_tol=1e-12):
        return t, s
    if target > current:  # too few teacher rows: drop student rows
        ideal = t * (1.0 - target) / target
        cands = {min(max(c, 0), s) for c in (math.floor(ideal), math.ceil(ideal))}
        best = min(cands, key=lambda c: (abs(t / (t + c) - target), -c))
        return t, best
    ideal = target * s / (1.0 - target)  # too many teacher rows: drop teacher rows
    cands = {min(max(c, 0), t) for c in (math.floor(ideal), math.ceil(ideal))}
    best = min(cands, key=lambda c: (abs(c / (c + s) - target), -c))
    return best, s


def subsample(rows: Sequence[Row], k: int, seed: int, salt: str = "") -> list[Row]:
    """Keep ``k`` rows chosen by a seeded hash of each row's identity (independent of the input
    order), in their input order.

    >>> rows = [{"qid": str(i), "strategy": "cot", "text": str(i)} for i in range(10)]
    >>> a = subsample(rows, 4, seed=1)
    >>> len(a), a == subsample(list(reversed(rows)), 4, seed=1)[::-1]
    (4, True)
    """
    if k >= len(rows):
        return list(rows)

    def key(r: Row) -> str:
        ident = f"{seed}|{salt}|{r.get('qid')}|{r.get('strategy')}|{r.get('source')}|"
        ident += f"{r.get('sample')}|{text_hash(r.get('text', ''))}"
        return hashlib.sha256(ident.encode("utf-8")).hexdigest()

    chosen = {id(r) for r in sorted(rows, key=key)[: max(k, 0)]}
    return [r for r in rows if id(r) in chosen]


# --------------------------------------------------------------------------- the mix


def _counts(rows: Iterable[Row], strategies: Sequence[str]) -> dict[str, int]:
    c = Counter(str(r.get("strategy")) for r in rows)
    return {s: c[s] for s in strategies}


def mix(
    teacher_rows: Iterable[Row],
    student_rows: Iterable[Row],
    cfg: MixConfig,
    iteration: int,
    iterations: int,
    strategies: Sequence[str],
    seed: int = 0,
) -> MixResult:
    """Build the training set of ``iteration`` and its stats (``iter_NN/stats.json``).

    ``iterations`` is the number of SIKeD iterations (for alpha schedules). See the module
    docstring for every rule. The result rows are copies of the inputs, sorted by
    :func:`sort_rows`; an empty result (e.g. ``self`` with nothing solved) has ``alpha`` and
    ``p_train`` set to ``None``.
    """
    strategies = list(strategies)
    if not strategies:
        raise MixError("at least one strategy is needed")
    if iteration < 0:
        raise MixError(f"iteration must be >= 0, got {iteration}")
    teacher_in = [dict(r) for r in teacher_rows]
    student_in = [dict(r) for r in student_rows]
    if iteration == 0 and student_in:
        raise MixError("iteration 0 is plain distillation on D_LLM: it takes no student rows")

    d_llm = [r for r in teacher_in if is_teacher_row(r, strategies)]
    d_self = [r for r in student_in if is_self_row(r, strategies)]
    for r in d_llm:
        r["source"] = "teacher"
    for r in d_self:
        r["source"] = "student"
    solved = {str(r["qid"]) for r in d_self}
    solved_with = {(str(r["qid"]), str(r["strategy"])) for r in d_self}

    if iteration == 0:
        pool = dedupe(d_llm)
        if cfg.bias_iteration_0:
            pool = apply_bias(pool, cfg.bias, strategies)
    else:
        if cfg.variant == "all":
            teacher_part = d_llm
        elif cfg.variant == "adaptive" and cfg.adaptive_scope == "strategy":
            teacher_part = [
                r for r in d_llm if (str(r["qid"]), str(r["strategy"])) not in solved_with
            ]
        elif cfg.variant == "adaptive":  # scope "question"
            teacher_part = [r for r in d_llm if str(r["qid"]) not in solved]
        else:  # self
            teacher_part = []
        self_part = limit_per_strategy(dedupe(d_self), cfg.self_per_strategy)
        tie_salt = f"{seed}|{iteration}" if cfg.tie_break == "seeded" else None
        pool = apply_bias(dedupe(self_part + teacher_part), cfg.bias, strategies, tie_salt)

    target = alpha_target(cfg.alpha, iteration, iterations)
    teacher_pool = sort_rows(r for r in pool if r["source"] == "teacher")
    student_pool = sort_rows(r for r in pool if r["source"] == "student")
    n_t, n_s = solve_counts(len(teacher_pool), len(student_pool), target)
    teacher_keep = subsample(teacher_pool, n_t, seed, f"teacher:{iteration}")
    student_keep = subsample(student_pool, n_s, seed, f"student:{iteration}")
    rows = sort_rows(teacher_keep + student_keep)

    n = len(rows)
    alpha = round(len(teacher_keep) / n, _ROUND) if n else None
    if iteration > 0 and target is not None and alpha is not None and abs(alpha - target) > 0.05:
        log.warning(
            "iteration %d: alpha target %.3f not reachable with %d teacher / %d student rows; "
            "achieved %.3f",
            iteration,
            target,
            len(teacher_pool),
            len(student_pool),
            alpha,
        )
    if not rows:
        log.warning("iteration %d: the mix is empty (variant %s)", iteration, cfg.variant)

    p_llm = strategy_distribution(d_llm, strategies)
    p_student = strategy_distribution(d_self, strategies) if d_self else None
    p_student_all = (
        strategy_distribution(student_in, strategies, other=NO_STRATEGY) if student_in else None
    )
    p_train = strategy_distribution(rows, strategies) if rows else None
    kl = kl_all = None
    if p_train is not None and p_student is not None:
        kl = round(kl_divergence(p_train, p_student, cfg.kl_epsilon), _ROUND)
    if p_train is not None and p_student_all is not None:
        kl_all = round(kl_divergence(p_train, p_student_all, cfg.kl_epsilon), _ROUND)

    questions = {str(r.get("qid")) for r in teacher_in} | {str(r.get("qid")) for r in student_in}
    stats: dict[str, Any] = {
        "iteration": iteration,
        "variant": cfg.variant,
        "adaptive_scope": cfg.adaptive_scope if cfg.variant == "adaptive" else None,
        "bias": cfg.bias if (iteration > 0 or cfg.bias_iteration_0) else "none",
        "self_per_strategy": cfg.self_per_strategy,
        "tie_break": cfg.tie_break,
        "alpha": alpha,
        "alpha_target": "auto" if target is None else target,
        "kl": kl,
        "kl_support": len(d_self) if student_in else None,  # samples P_student rests on
        "kl_all": kl_all,
        "kl_epsilon": cfg.kl_epsilon,
        "p_llm": p_llm,
        "p_student": p_student,
        "p_student_all": p_student_all,
        "p_train": p_train,
        "rows": n,
        "counts": {
            "teacher": _counts(teacher_keep, strategies),
            "student": _counts(student_keep, strategies),
        },
        "questions": len(questions),
        "questions_covered": len({str(r["qid"]) for r in rows}),
        "questions_solved_by_student": len(solved),
    }
    return MixResult(rows=rows, stats=stats)


@locks_outputs("mix", lambda args: [args["out_dir"]])
def mix_files(
    teacher_path: str | os.PathLike[str],
    student_path: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    cfg: MixConfig,
    iteration: int,
    iterations: int,
    strategies: Sequence[str],
    seed: int = 0,
) -> MixResult:
    """The mix stage on files (``siked mix`` and the loop): read D_LLM and the student's samples,
    :func:`mix`, write ``out_dir/train.jsonl`` and ``out_dir/stats.json``. An empty mix is a
    :class:`MixError` (nothing to train on) and writes nothing."""
    from siked.rundir import MIX_STATS, TRAIN_DATA

    teacher_path = Path(teacher_path)
    if not teacher_path.is_file():
        raise MixError(f"teacher file not found: {teacher_path}")
    student: list[Row] = []
    if student_path is not None:
        sp = Path(student_path)
        if not sp.is_file():
            raise MixError(f"student samples file not found: {sp}")
        student = read_jsonl(sp)
    teacher = read_jsonl(teacher_path)
    result = mix(teacher, student, cfg, iteration, iterations, strategies, seed)
    if not result.rows:
        raise MixError(
            f"iteration {iteration}: the mix is empty (variant {cfg.variant}, {len(teacher)} "
            f"teacher rows, {len(student)} student rows): nothing to train on"
        )
    out = Path(out_dir)
    write_jsonl(out / TRAIN_DATA, result.rows)
    atomic_write_json(out / MIX_STATS, result.stats)
    return result
