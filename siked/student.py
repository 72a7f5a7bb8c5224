"""The student behind any engine: its prompts, its responses, and how a response is judged.

Shared by the sampling stage (:mod:`siked.sample`, k samples per training question -> D_self)
and the evaluation stage (:mod:`siked.evaluate`, greedy answers -> accuracy).

**Prompts** (:class:`Student`). Text with the chat template applied (and, when a strategy is
forced, the tag pre-filled) whenever a tokenizer is available: the engine's own (hf), or the
model's for a server's completions API. A chat API gets chat messages: the server applies the
template, and a forced strategy is named in the instruction instead (no pre-fill possible).

**Judging a response** (:func:`judge`):

1. the tag is parsed; a missing tag, or one that is not among the run's ``strategies`` (or, in
   forced mode, a tag other than the forced one), gives strategy ``"none"`` and status
   ``"invalid"`` (the answer is still extracted with the generic cascade, for the record);
2. the rationale is cleaned (:meth:`Strategy.clean`: cut at a stop string, code fences dropped);
3. it is validated (:meth:`Strategy.validate`); a failure gives status ``"invalid"``;
4. it is verified against the gold answer (:meth:`Strategy.extract_many`: all programs of a
   chunk run in parallel through ``sandbox.run_many``, then each check hits its cache).

:attr:`Outcome.accepted` is the training-data rule (D_self): correct, valid, and not from the
``last_number`` fallback -- the same rule as the teacher filter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from siked import verify
from siked.chat import prefill_text, student_messages, student_prompt, supports_system_role
from siked.engines.base import truncate_at_stop
from siked.errors import SikedError
from siked.strategies import COMMON_STOP, NO_STRATEGY, get_strategy, parse_tagged

if TYPE_CHECKING:
    from siked.config import EngineConfig
    from siked.data import Problem
    from siked.engines.base import Completion, Engine, Prompt
    from siked.sandbox import Sandbox

log = logging.getLogger(__name__)


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
                texts[i] = truncate_at_stop(parsed[i][1], COMMON_STOP)[0].strip()
            got = verify.check_many(
                [(texts[i], items[i][2], verify.TEXT_ANSWER) for i in idx], sandbox=sandbox
            )
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


# --------------------------------------------------------------------------------------------
# prompting the student through any engine


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
        """Pick the prompt format the engine needs: text through the engine's tokenizer (hf), or
        the model's for a server's completions API; chat messages otherwise."""
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is None and cfg.api == "completions":
            from siked.models import load_tokenizer

            tokenizer = load_tokenizer(model)
        system = True if tokenizer is not None else chat_api_system_role(model)
        return cls(engine, strategies, tokenizer=tokenizer, sandbox=sandbox, system=system)

    def prompt(self, question: str, forced: str | None) -> Prompt:
        if self.tokenizer is None:
            return student_messages(question, forced, system=self.system)
        return student_prompt(self.tokenizer, question, forced, prefill_tag=forced is not None)

    def prefill(self, forced: str | None) -> str:
        """What the prompt already holds of the response (the completion continues it)."""
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


def open_student_engine(cfg: EngineConfig, model: str) -> Engine:
    """The engine ``cfg.engine`` for the student ``model`` (how a server names a local
    student is the engine's business: :meth:`~siked.engines.base.Engine.from_config`)."""
    from siked.engines import make_engine

    return make_engine(cfg, model=model)


def auto_chunk_size(engine: Engine, generations_per_question: int) -> int:
    """Questions per crash-safe chunk: the engine's
    :attr:`~siked.engines.base.Engine.chunk_generations` (about 8 batches of rows for hf,
    ~2048 generations for servers, which batch well and whose requests are cached anyway).

    >>> from types import SimpleNamespace
    >>> auto_chunk_size(SimpleNamespace(chunk_generations=64), 10)
    6
    >>> auto_chunk_size(SimpleNamespace(chunk_generations=2048), 10)
    204
    """
    return max(1, engine.chunk_generations // max(1, generations_per_question))


def check_strategies(strategies: Sequence[str]) -> list[str]:
    """The run's strategies without duplicates, each registered (else an error naming the
    choices); at least one."""
    names = list(dict.fromkeys(strategies))
    if not names:
        raise SikedError("at least one strategy is needed")
    for s in names:
        get_strategy(s)  # raises UnknownStrategyError naming the choices
    return names


__all__ = [
    "NO_STRATEGY",
    "Outcome",
    "Request",
    "Student",
    "auto_chunk_size",
    "chat_api_system_role",
    "check_strategies",
    "judge",
    "open_student_engine",
    "parse_response",
    "stop_strings",
]
