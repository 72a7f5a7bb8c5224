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

How a sample is judged (:func:`judge`, shared with :mod:`siked.evaluate`):

1. the tag is parsed; a missing tag, or one that is not among the run's ``strategies`` (or, in
   forced mode, a tag other than the forced one), gives strategy ``"none"`` and status
   ``"invalid"`` (the answer is still extracted with the generic cascade, for the record);
2. the rationale is cleaned (:meth:`Strategy.clean`: cut at a stop string, code fences dropped);
3. it is validated (:meth:`Strategy.validate`); a failure gives status ``"invalid"``;
4. it is verified against the gold answer (:meth:`Strategy.extract_many`: all programs of a
   chunk run in parallel through ``sandbox.run_many``, then each check hits its cache).

A row is ``correct`` -- enters D_self -- only if the answer equals the gold answer, the rationale
is valid, and the answer did not come from the ``last_number`` fallback (the same acceptance rule
as the teacher filter: a rationale whose final line does not state its answer is a bad example).

**Seeds.** Prompt ``(qid[, strategy])`` gets seed ``derive_seed(seed, iteration, qid)`` (forced:
``derive_seed(seed, iteration, qid, strategy)``) and, by the engine contract, sample ``j`` uses
``derive_seed(prompt_seed, j)``: a sample depends only on (seed, iteration, qid, j), never on
batching or chunking, so a resumed run gives the same rows, and raising ``k`` keeps the first
samples.

**Crash safety.** Questions are processed in chunks; the rows of a chunk are appended (and
flushed) with :class:`~siked.io.JsonlAppender` once the chunk is verified. On restart, questions
whose rows are all present are skipped; rows of incomplete or foreign questions are dropped
first (the file is rewritten atomically). ``samples.meta.json`` beside the output holds the
settings that determine the samples; a rerun with different settings starts the file afresh
(with a warning) rather than mixing samples from two settings. A non-empty output file without
that meta file (not written by this stage) is an error, never overwritten.

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
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.config import SampleConfig
from siked.errors import DataError, SikedError
from siked.io import JsonlAppender, atomic_write_json, read_json, read_jsonl, write_jsonl
from siked.lock import locks_outputs
from siked.records import Record

if TYPE_CHECKING:
    from siked.config import EngineConfig
    from siked.data import Problem
    from siked.engines.base import Completion, Engine, Prompt
    from siked.sandbox import Sandbox

log = logging.getLogger("siked.sample")

#: Strategy of a response without a (known) tag.
NO_STRATEGY = "none"
#: Generations per engine call aimed at when the chunk size is automatic (servers batch well).
SERVER_CHUNK_GENERATIONS = 2048
#: hf: batches per chunk when the chunk size is automatic. A chunk ends with the continuous
#: loop draining (fewer rows than slots), so chunks are kept long relative to a batch.
HF_CHUNK_BATCHES = 8
#: logged when a sampling engine returned k identical samples for every question
GREEDY_WARNING = (
    "every question's %d samples are identical although temperature=%s: the engine seems to "
    "decode greedily, so D_self holds copies. transformers serve samples only when the model's "
    "generation config sets do_sample; send it with the request: "
    "sample.extra_body: {generation_config: '{\"do_sample\": true}'}"
)


# --------------------------------------------------------------------------------------------
# judging one response (shared with siked.evaluate)


@dataclass(frozen=True)
class Outcome:
    """One generated response, parsed and judged."""

    strategy: str  # registered strategy, or "none" (no tag / tag not allowed)
    text: str  # the stored rationale: cleaned, without the tag
    output: str  # the full response as generated (pre-filled tag included)
    answer: str | None
    correct: bool  # the answer equals the gold answer (validity not considered)
    rule: str
    status: str  # verifier status (ok, no_answer, timeout, error, rejected, memory)
    error: str | None  # why the response is invalid (tag or format), else None
    fallback: bool  # the answer came from a fallback rule (last number, program print)
    verify_error: str | None = None  # the verifier's message (no number, program error, ...)
    finish_reason: str | None = None
    tokens: int = 0

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str | None:
        """Why the response is invalid, else the verifier's message (None when all is well)."""
        return self.error if self.error is not None else self.verify_error

    @property
    def accepted(self) -> bool:
        """Good enough for training data (D_self): correct, valid, not a fallback answer."""
        return self.correct and self.valid and not self.fallback and self.status == "ok"


def parse_response(
    output: str, strategies: Sequence[str], forced: str | None = None
) -> tuple[str | None, str, str | None]:
    """Split a full response into ``(strategy, rest, error)``.

    The strategy is ``None`` (and ``error`` says why) when the tag is missing, unknown, not one
    of ``strategies``, or (``forced``) not the forced one; ``rest`` is then the whole response.
    A forced response without any tag (chat APIs cannot pre-fill) counts as the forced strategy.

    >>> parse_response("[pot]: answer = 1", ["cot", "pot"])
    ('pot', 'answer = 1', None)
    >>> parse_response("The answer is 3.", ["cot"])
    (None, 'The answer is 3.', 'no strategy tag')
    >>> parse_response("[l2m]: Q1: ...", ["cot", "pot"])
    (None, '[l2m]: Q1: ...', "strategy 'l2m' is not one of cot, pot")
    >>> parse_response("answer = 2", ["pot"], forced="pot")
    ('pot', 'answer = 2', None)
    """
    from siked.strategies import parse_tagged

    name, rest = parse_tagged(output)
    if name is None:
        tagged = output.lstrip().startswith("[")
        if forced is not None and not tagged:
            return forced, output, None
        return None, output, "unknown strategy tag" if tagged else "no strategy tag"
    if name not in strategies:
        return None, output, f"strategy {name!r} is not one of {', '.join(strategies)}"
    if forced is not None and name != forced:
        return None, output, f"forced {forced!r} but the response is tagged {name!r}"
    return name, rest, None


def judge(
    items: Sequence[tuple[str, str | None, Fraction]],
    strategies: Sequence[str],
    sandbox: Sandbox | None = None,
) -> list[Outcome]:
    """Judge full responses ``(output, forced, gold)``; see the module docstring.

    Responses are grouped by strategy so that all programs run together through the sandbox.
    Responses without a usable strategy are checked with the generic cascade (marker -> boxed ->
    last number) under strategy ``"none"``.
    """
    from siked import verify
    from siked.strategies import COMMON_STOP, get_strategy

    parsed: list[tuple[str | None, str, str | None]] = [
        parse_response(output, strategies, forced) for output, forced, _ in items
    ]
    groups: dict[str | None, list[int]] = {}
    for i, (name, _, _) in enumerate(parsed):
        groups.setdefault(name, []).append(i)
    texts: list[str] = [""] * len(items)
    verdicts: list[verify.Verdict | None] = [None] * len(items)
    errors: list[str | None] = [p[2] for p in parsed]
    for name, idx in groups.items():
        if name is None:
            for i in idx:
                texts[i] = _cut_common_stop(parsed[i][1], COMMON_STOP).strip()
            got = verify.check_many([(texts[i], items[i][2], "cot") for i in idx], sandbox=sandbox)
        else:
            strat = get_strategy(name)
            for i in idx:
                texts[i] = strat.clean(parsed[i][1])
                errors[i] = strat.validate(texts[i])
            got = strat.extract_many([(texts[i], items[i][2]) for i in idx], sandbox=sandbox)
        for i, verdict in zip(idx, got, strict=True):
            verdicts[i] = verdict
    out: list[Outcome] = []
    for i, (output, _, _) in enumerate(items):
        v = verdicts[i]
        assert v is not None
        out.append(
            Outcome(
                strategy=parsed[i][0] or NO_STRATEGY,
                text=texts[i],
                output=output,
                answer=v.answer,
                correct=bool(v.correct),
                rule=v.rule,
                status=v.status,
                error=errors[i],
                fallback=bool(v.fallback),
                verify_error=v.error,
            )
        )
    return out


def _cut_common_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


# --------------------------------------------------------------------------------------------
# prompting the student through any engine (shared with siked.evaluate)


@dataclass(frozen=True)
class Request:
    """One prompt to the student: a question, optionally with a forced strategy."""

    problem: Problem
    forced: str | None
    seed: int


def stop_strings(strategies: Sequence[str], forced: str | None) -> list[str]:
    """Stop strings of the forced strategy, or those every allowed strategy shares (free).

    >>> "\\nQuestion:" in stop_strings(["cot", "l2m", "pot"], None)
    True
    >>> "\\n\\n\\n" in stop_strings(["cot", "pot"], "cot")
    True
    """
    from siked.strategies import get_strategy

    if forced is not None:
        return list(get_strategy(forced).stop)
    sets = [get_strategy(s).stop for s in strategies]
    first = list(sets[0]) if sets else []
    return [s for s in first if all(s in other for other in sets[1:])]


class Student:
    """The student behind an engine: builds its prompts, generates and judges responses.

    Prompts are text with the chat template applied (and the tag pre-filled when a strategy is
    forced) whenever a tokenizer is available: the engine's own (hf), or the model's for
    engines on the completions API. Chat-API engines get chat messages; the server applies the
    template, and a forced strategy is named in the instruction (no pre-fill possible).
    """

    def __init__(
        self,
        engine: Engine,
        strategies: Sequence[str],
        tokenizer: Any = None,
        sandbox: Sandbox | None = None,
        system: bool = True,
    ) -> None:
        self.engine = engine
        self.strategies = list(strategies)
        self.tokenizer = tokenizer
        self.sandbox = sandbox
        # chat messages only (no tokenizer): whether the instruction is a system message or
        # opens the user turn; with a tokenizer student_prompt decides from its template
        self.system = system

    @classmethod
    def for_engine(
        cls,
        engine: Engine,
        cfg: EngineConfig,
        model: str,
        strategies: Sequence[str],
        sandbox: Sandbox | None = None,
    ) -> Student:
        """Pick the prompt format the engine needs (loading the tokenizer if it has none)."""
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is None and (cfg.engine == "hf" or cfg.api == "completions"):
            from siked.models import load_tokenizer

            tokenizer = load_tokenizer(model)
        system = True if tokenizer is not None else chat_api_system_role(model)
        return cls(engine, strategies, tokenizer=tokenizer, sandbox=sandbox, system=system)

    def prompt(self, question: str, forced: str | None) -> Prompt:
        from siked.chat import student_messages, student_prompt

        if self.tokenizer is None:
            return student_messages(question, forced, system=self.system)
        return student_prompt(self.tokenizer, question, forced, prefill_tag=forced is not None)

    def prefill(self, forced: str | None) -> str:
        """What the prompt already holds of the response (the completion continues it)."""
        from siked.chat import prefill_text

        if forced is None or self.tokenizer is None:
            return ""
        return prefill_text(forced)

    def run(
        self,
        requests: Sequence[Request],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
    ) -> list[list[Outcome]]:
        """``n`` judged responses per request, in request order."""
        completions: list[list[Completion]] = [[] for _ in requests]
        by_forced: dict[str | None, list[int]] = {}
        for i, r in enumerate(requests):
            by_forced.setdefault(r.forced, []).append(i)
        for forced, idx in by_forced.items():
            got = self.engine.generate(
                [self.prompt(requests[i].problem.question, forced) for i in idx],
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                stop=stop_strings(self.strategies, forced),
                seed=[requests[i].seed for i in idx],
            )
            if len(got) != len(idx) or any(len(c) != n for c in got):
                raise SikedError(
                    f"engine {self.engine!r} returned {[len(c) for c in got]} completions "
                    f"for {len(idx)} prompts x n={n}"
                )
            for i, comps in zip(idx, got, strict=True):
                completions[i] = list(comps)
        items: list[tuple[str, str | None, Fraction]] = []
        for r, comps in zip(requests, completions, strict=True):
            pre = self.prefill(r.forced)
            items.extend((pre + c.text, r.forced, r.problem.answer) for c in comps)
        judged = judge(items, self.strategies, sandbox=self.sandbox)
        out: list[list[Outcome]] = []
        pos = 0
        for comps in completions:
            row = []
            for c in comps:
                o = judged[pos]
                pos += 1
                row.append(_with_generation(o, c.finish_reason, int(c.completion_tokens or 0)))
            out.append(row)
        return out


def chat_api_system_role(model: str) -> bool:
    """Whether the chat template a server applies for ``model`` takes a system message.

    Over a chat API the server renders the messages with the model's own template, so the
    instruction must be folded into the user turn where that template has no system role, as
    training did. This needs the model's tokenizer (a local directory, the bundled student or a
    cached hub id); when it cannot be loaded (e.g. a remote server's model name) a system
    message is sent. A model without any chat template is an error: the server cannot render it.
    """
    from siked.chat import supports_system_role
    from siked.models import load_tokenizer

    try:
        tokenizer = load_tokenizer(model)
    except SikedError as e:
        log.info("no local tokenizer for %s (%s); sending a system message", model, e)
        return True
    if not getattr(tokenizer, "chat_template", None):
        raise SikedError(
            f"{model} has no chat template, so a chat API server cannot prompt it: set "
            "api: completions (siked then renders its default student template) or give the "
            "server a template (vllm: extra_args: [--chat-template, FILE])"
        )
    return supports_system_role(tokenizer)


def _with_generation(o: Outcome, finish_reason: str | None, tokens: int) -> Outcome:
    from dataclasses import replace

    return replace(o, finish_reason=finish_reason, tokens=tokens)


def open_engine(cfg: EngineConfig, model: str) -> Engine:
    """The engine ``cfg.engine`` for the student ``model``.

    openai: ``cfg.model`` if set is the served name; otherwise a local student directory is
    named by its absolute path, which a server started in another directory can load
    (``transformers serve`` loads the model a request names).
    """
    from siked.engines import make_engine

    if cfg.engine == "openai":
        name = cfg.model or (str(Path(model).resolve()) if Path(model).is_dir() else model)
        return make_engine(cfg, model=name)
    return make_engine(cfg, model=model)


def auto_chunk_size(cfg: EngineConfig, generations_per_question: int) -> int:
    """Questions per crash-safe chunk: about 8 batches of rows for hf, ~2048 generations for
    servers (which batch well and whose requests are cached anyway).

    >>> from siked.config import SampleConfig
    >>> auto_chunk_size(SampleConfig(engine="hf", batch_size=8), 10)
    6
    >>> auto_chunk_size(SampleConfig(engine="openai"), 10)
    204
    """
    g = max(1, generations_per_question)
    if cfg.engine == "hf":
        return max(1, HF_CHUNK_BATCHES * cfg.batch_size // g)
    return max(1, SERVER_CHUNK_GENERATIONS // g)


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
    from siked.data import format_fraction

    row = Record(
        qid=request.problem.id,
        question=request.problem.question,
        gold=format_fraction(request.problem.answer),
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
    return {
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


def meta_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".meta.json")


def resume_rows(
    out_path: Path, fp: dict[str, Any], qids: Sequence[str], per_question: int
) -> list[dict[str, Any]]:
    """Rows of the questions already complete in ``out_path`` (in file order).

    Rows of incomplete questions and of questions not in ``qids`` are dropped and the file
    rewritten; a file made with other settings (``fp``) is discarded; a non-empty file without
    the meta file (not written by this stage) is an error rather than overwritten.
    """
    meta = meta_path(out_path)
    if out_path.exists() and meta.exists() and read_json(meta) != fp:
        log.warning("%s was made with other settings: starting it afresh", out_path)
        out_path.unlink()
    elif out_path.exists() and not meta.exists() and out_path.stat().st_size:
        raise SikedError(
            f"{out_path} exists but was not written by siked sample (no {meta.name}): "
            "remove it or choose another output file"
        )
    atomic_write_json(meta, fp)
    rows = read_jsonl(out_path)
    wanted = set(qids)
    counts = Counter(r.get("qid") for r in rows)
    keep = [r for r in rows if r.get("qid") in wanted and counts[r.get("qid")] == per_question]
    if len(keep) != len(rows) or (out_path.exists() and not _ends_clean(out_path)):
        write_jsonl(out_path, keep)
    return keep


def _ends_clean(path: Path) -> bool:
    data = path.read_bytes()
    return not data or data.endswith(b"\n")


def check_strategies(strategies: Sequence[str]) -> list[str]:
    from siked.strategies import get_strategy

    names = list(dict.fromkeys(strategies))
    if not names:
        raise SikedError("at least one strategy is needed")
    for s in names:
        get_strategy(s)  # raises UnknownStrategyError naming the choices
    return names


def _is_program(strategy: str) -> bool:
    from siked.strategies import get_strategy

    return get_strategy(strategy).program


def _check_ids(problems: Sequence[Problem]) -> None:
    dupes = [q for q, c in Counter(p.id for p in problems).items() if c > 1]
    if dupes:
        raise DataError(f"duplicate question ids: {', '.join(dupes[:5])}")


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` in consecutive slices of ``size``.

    >>> chunked([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    return [items[i : i + size] for i in range(0, len(items), size)]


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="q", disable=not enabled, dynamic_ncols=True)


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
    closed at the end. ``chunk_size`` is in questions (default :func:`auto_chunk_size`).
    Writes ``stats_path`` (default ``sample_stats.json`` beside ``out_path``) and returns the
    stats (:func:`sample_stats`). Holds the lock of their directories (:func:`output_dirs`,
    :mod:`siked.lock`) while it runs.
    """
    out_path = Path(out_path)
    names = check_strategies(strategies)
    _check_ids(problems)
    per_q = expected_rows(cfg, names)
    fp = fingerprint(model, cfg, iteration, seed, names)
    done_rows = resume_rows(out_path, fp, [p.id for p in problems], per_q)
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
        eng = engine if engine is not None else open_engine(cfg, model)
        own_sandbox = None
        try:
            sb = sandbox
            if sb is None and any(_is_program(s) for s in names):
                from siked.sandbox import Sandbox

                sb = own_sandbox = Sandbox(workers=cfg.workers)
            student = Student.for_engine(eng, cfg, model, names, sandbox=sb)
            size = chunk_size or auto_chunk_size(
                cfg, cfg.k * (len(names) if cfg.mode == "forced" else 1)
            )
            bar = progress_bar(todo_total, f"sample it{iteration}", progress)
            with JsonlAppender(out_path) as app, bar:
                # chunks are cut from the full question list so that they do not move on resume
                for chunk in chunked(problems, size):
                    todo = [p for p in chunk if p.id not in done]
                    if not todo:
                        continue
                    requests = plan_requests(todo, cfg.mode, names, seed, iteration)
                    t0 = time.perf_counter()
                    outcomes = student.run(
                        requests,
                        n=cfg.k,
                        temperature=cfg.temperature,
                        top_p=cfg.top_p,
                        max_tokens=cfg.max_tokens,
                    )
                    seconds += time.perf_counter() - t0
                    rows = []
                    for req, outs in zip(requests, outcomes, strict=True):
                        for j, o in enumerate(outs):
                            rows.append(to_row(req, o, iteration, j))
                            tokens += o.tokens
                            generations += 1
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
    sp = Path(stats_path) if stats_path is not None else out_path.with_name("sample_stats.json")
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
    "NO_STRATEGY",
    "Outcome",
    "Request",
    "Student",
    "auto_chunk_size",
    "chunked",
    "format_stats",
    "identical_share",
    "judge",
    "open_engine",
    "parse_response",
    "plan_requests",
    "sample",
    "sample_seeds",
    "sample_stats",
    "stop_strings",
    "to_row",
]
