"""Answer verification: extraction, normalisation and exact comparison (the one filter).

Every rationale in siked, from the teacher or from the student, is judged here. The module is
pure and light (no torch, no sympy at import time) and is organised as small stages, each with
its own doctests and case-driven tests (``tests/test_verify.py``, ``tests/golden/``):

1. **truncation** -- :func:`truncate` cuts a run-on into the next few-shot example
   (a line starting with ``Question:``, ``Q:``, ``Problem:`` or a strategy tag like ``[cot]:``);
2. **extraction** -- :func:`extract` runs the cascade ``marker`` -> ``boxed`` -> ``last_number``
   (a fallback, flagged) -> ``none`` and says which rule fired (provenance);
3. **parsing** -- :func:`siked.text.parse_number` turns an answer string into an exact
   :class:`Fraction` (currency, thousands separators, unicode minus, ``a/b``, ``\\frac`` in
   every spelling, ``\\text{}`` units, LaTeX spacing; :func:`siked.text.normalize_math_notation`);
4. **grading** -- :func:`answers_match` compares exactly as fractions (PoT floats: 1e-6 relative).

:func:`check` composes them into a :class:`Verdict`; PoT programs are executed by the sandbox
(:mod:`siked.sandbox`, imported lazily). :func:`second_opinion` and :func:`disagreements` ask
Math-Verify (optional dependency) in a separate process, to audit this verifier.

The module knows no strategy by name: each strategy declares an :class:`AnswerFormat` (its
marker line, or a program; :attr:`siked.strategies.Strategy.answer_format`) and the functions
here take that format. Numbers, tags and whitespace rules live in :mod:`siked.text`.

Decisions:

* The canonical final-answer line is ``The answer is N.`` (:data:`FINAL_ANSWER_MARKER`,
  :func:`marker_line`); GSM8K's ``#### N`` is accepted as a marker too.
* Only the **last** marker counts; if its sentence holds no number, the marker rule does not
  fire and the cascade falls through (usually to the flagged ``last_number`` fallback).
* Percentages stay as written: ``25%`` is 25, never 0.25 (no x100 leniency). Units and
  currencies are dropped, never converted: ``50 cents`` is 50.
* ``1,2`` is not a number (a list, or a European decimal comma: ambiguous); in running text it
  reads as the two numbers 1 and 2. Thousands separators (commas, LaTeX ``{,}`` ``\\,`` ``\\!``,
  thin or no-break spaces, one plain space) are only accepted in groups of three.
* In a marker sentence or a box the answer follows the last ``=`` or ``\\approx``.
* Where this verifier deliberately differs from Math-Verify, and why: docs/verify.md (its table
  of choices; ``tests/golden/verify_table.jsonl`` tags each such case).
* Mixed numbers ``1 1/2`` (one space, a proper fraction) are read as 3/2; ``1\\frac{1}{2}`` too.
* :func:`siked.text.format_number` writes integers as ``72``, terminating decimals as
  ``1200.5``, and other rationals as ``7/3``.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import IO, Any, Protocol

from siked.errors import SikedError
from siked.text import (
    TAG_LINE,
    find_numbers,
    format_number,
    normalize_math_notation,
    number_tokens,
    parse_number,
    parse_tag,
)

# --------------------------------------------------------------------------------------------
# Answer formats: how a rationale states its answer (each strategy declares its own)
# --------------------------------------------------------------------------------------------

#: The canonical final-answer marker of CoT and L2M rationales: ``The answer is 72.``
FINAL_ANSWER_MARKER = "The answer is"
#: The final-answer marker of the SIKeD authors' prompts (``teacher.prompt_style: authors``):
#: ``Final Answer: 72``.
AUTHORS_ANSWER_MARKER = "Final Answer:"
#: Every marker a text rationale may end with (:func:`extract_marker` reads them all).
FINAL_ANSWER_MARKERS = (FINAL_ANSWER_MARKER, AUTHORS_ANSWER_MARKER)
#: GSM8K's own final-answer marker (``#### 72``), accepted by the extraction as a marker too.
GSM8K_MARKER = "####"
#: The variable a PoT program stores its result in.
PROGRAM_ANSWER_VARIABLE = "answer"
#: relative tolerance of program answers (they are floats).
PROGRAM_REL_TOL = 1e-6
#: absolute tolerance used together with a relative one (so that gold == 0 can match 1e-17).
PROGRAM_ABS_TOL = 1e-9

#: line starts that open a new few-shot example (the model kept writing): output is cut there
#: (``Input:`` opens one in the authors' prompt layout, ``teacher.prompt_style: authors``).
NEXT_EXAMPLE_PREFIXES = ("Question:", "Q:", "Problem:", "Input:")


@dataclass(frozen=True)
class AnswerFormat:
    """How a rationale states its final answer: a text ``marker`` line, or (``program``) the
    variable :data:`PROGRAM_ANSWER_VARIABLE` of a program run by the sandbox.

    A strategy declares its format (:attr:`siked.strategies.Strategy.answer_format`); this module
    knows no strategy by name. ``name`` only labels the :class:`Verdict`.
    """

    name: str = "text"
    marker: str = FINAL_ANSWER_MARKER
    program: bool = False

    @property
    def rel_tol(self) -> float:
        """Relative tolerance of grading: 1e-6 for programs (floats), else exact.

        >>> PROGRAM_ANSWER.rel_tol, TEXT_ANSWER.rel_tol
        (1e-06, 0.0)
        """
        return PROGRAM_REL_TOL if self.program else 0.0


#: A text rationale ending with the default marker line (the generic cascade).
TEXT_ANSWER = AnswerFormat()
#: A program whose ``answer`` variable holds the result.
PROGRAM_ANSWER = AnswerFormat("program", program=True)


def marker_line(value: str, marker: str = FINAL_ANSWER_MARKER) -> str:
    """The canonical final line of a text rationale: a sentence (``The answer is 72.``), or in
    the authors' style the bare value (``Final Answer: 72``, as their prompts write it).

    >>> marker_line("72"), marker_line("72", AUTHORS_ANSWER_MARKER)
    ('The answer is 72.', 'Final Answer: 72')
    """
    return f"{marker} {value}" if marker == AUTHORS_ANSWER_MARKER else f"{marker} {value}."


# --------------------------------------------------------------------------------------------
# Stage 0: truncation at the next few-shot example
# --------------------------------------------------------------------------------------------

_HEADS = "|".join(re.escape(p.rstrip(":")) for p in sorted(NEXT_EXAMPLE_PREFIXES, key=len)[::-1])
_NEXT_EXAMPLE = re.compile(
    rf"^(?:\*\*)?(?:{_HEADS})(?:\*\*)?[ \t]*:|{TAG_LINE.pattern}", re.MULTILINE
)


def stop_sequences() -> list[str]:
    """Stop strings for generation engines that end a response where :func:`truncate` cuts.

    >>> stop_sequences()
    ['\\nQuestion:', '\\nQ:', '\\nProblem:', '\\nInput:']
    """
    return [f"\n{p}" for p in NEXT_EXAMPLE_PREFIXES]


def truncate(text: str) -> str:
    """Cut ``text`` where the model starts a new example after some content.

    A line starting (at column 0) with ``Question:``, ``Q:``, ``Problem:`` or ``Input:``, or a
    line that starts with a strategy tag like ``[cot]:`` (:data:`siked.text.TAG_LINE`), ends the
    rationale -- unless nothing but whitespace precedes it.

    >>> truncate("So 3 + 4 = 7. The answer is 7.\\n\\nQuestion: Tom has 5 apples. The answer is 5.")
    'So 3 + 4 = 7. The answer is 7.'
    >>> truncate("The answer is 2.\\n[cot]: The answer is 9.")
    'The answer is 2.'
    >>> truncate("Question: what is 2+2?\\n2+2 = 4")
    'Question: what is 2+2?\\n2+2 = 4'
    """
    for m in _NEXT_EXAMPLE.finditer(text):
        if text[: m.start()].strip():
            return text[: m.start()].rstrip()
    return text


class GoldError(SikedError, ValueError):
    """A gold answer that is not a number."""


def parse_gold(gold: Fraction | int | str) -> Fraction:
    """A gold answer as an exact number; a non-number raises :class:`GoldError`.

    >>> parse_gold("1,200"), parse_gold(7), parse_gold(Fraction(7, 2))
    (Fraction(1200, 1), Fraction(7, 1), Fraction(7, 2))
    """
    if isinstance(gold, Fraction):
        return gold
    if isinstance(gold, int) and not isinstance(gold, bool):
        return Fraction(gold)
    value = parse_number(str(gold))
    if value is None:
        raise GoldError(f"gold answer {gold!r} is not a number (expected e.g. 72, -3, 7/2, 1.5)")
    return value


# --------------------------------------------------------------------------------------------
# Stage 1: extraction cascade
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """The answer found in a rationale and how: ``rule`` is ``marker``, ``boxed``,
    ``last_number`` (``fallback=True``) or ``none``; ``answer`` is ``format_number(value)``."""

    answer: str | None
    value: Fraction | None
    rule: str
    fallback: bool = False


_JOIN = r"[*_]*\s+[*_]*"  # words of a marker, tolerating markdown emphasis


def _words(phrase: str) -> str:
    return _JOIN.join(re.escape(w) for w in phrase.split())


@functools.lru_cache(maxsize=64)
def _marker_regex(marker: str) -> re.Pattern[str]:
    default = (
        rf"\b(?:the{_JOIN})?(?:final{_JOIN})?answer{_JOIN}is\b"
        rf"|\bfinal{_JOIN}answer[*_]*\s*[:=]"
        rf"|^[ \t#>]*[*_]*final{_JOIN}answer[*_]*[ \t]*$"  # a heading: ### Final Answer
        rf"|^[ \t]*{re.escape(GSM8K_MARKER)}"
    )
    parts = [default]
    if marker != FINAL_ANSWER_MARKER:
        parts.insert(0, rf"(?<!\w){_words(marker)}")
    return re.compile("|".join(parts), re.IGNORECASE | re.MULTILINE)


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def _answer_in(segment: str) -> Fraction | None:
    """The number a marker or ``\\boxed{}`` states: the first number, or the result after the
    last ``=`` or ``≈`` (``The answer is 48/2 = 24``, ``x \\approx 11``)."""
    tokens = number_tokens(segment)
    if not tokens:
        return None
    eq = max(segment.rfind("="), segment.rfind("\u2248"))
    if eq >= 0:
        after = [t for t in tokens if t.start > eq]
        if after:
            return after[0].value
    return tokens[0].value


def extract_marker(text: str, marker: str = FINAL_ANSWER_MARKER) -> Fraction | None:
    """The number stated in the sentence after the **last** final-answer marker, or None.

    >>> extract_marker("The answer is 5. Wait. **The final answer is** $1,200.50.")
    Fraction(2401, 2)
    >>> extract_marker("Natalia sold 72 clips.\\n#### 72")
    Fraction(72, 1)
    >>> extract_marker("The answer is 72. Then the answer is unclear. 48 + 24 = 73") is None
    True
    """
    text = normalize_math_notation(text)
    last = None
    for last in _marker_regex(marker).finditer(text):  # noqa: B007
        pass
    if last is None:
        return None
    rest = text[last.end() :].lstrip(" \t\n*_:=")
    end = _SENTENCE_END.search(rest)
    return _answer_in(rest[: end.start()] if end else rest)


#: longest ``\\boxed{}`` content read as an answer (a box holding a page is not a final answer,
#: and nested boxes of hostile text stay linear)
MAX_BOXED_CHARS = 1000


def _closing_braces(text: str) -> dict[int, int]:
    """``{position of a "{": position of its "}"}`` for every balanced pair (one pass)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def _boxed_contents(text: str) -> list[str]:
    r"""Contents of every ``\boxed{...}`` / ``\fbox{...}`` with balanced braces, in order, up to
    :data:`MAX_BOXED_CHARS` long (one pass over the braces: ``\boxed{`` repeated without closing
    braces is not quadratic).

    >>> _boxed_contents(r"\boxed{\fbox{5}} and \boxed{\frac{1}{2}} and \boxed{7")
    ['\\fbox{5}', '5', '\\frac{1}{2}']
    """
    opens = list(re.finditer(r"\\(?:boxed|fbox)\s*\{", text))
    if not opens:
        return []
    pairs = _closing_braces(text)
    spans = [(m.end(), pairs[m.end() - 1]) for m in opens if m.end() - 1 in pairs]
    return [text[a:b] for a, b in spans if b - a <= MAX_BOXED_CHARS]


def extract_boxed(text: str) -> Fraction | None:
    r"""The number in the last balanced ``\boxed{...}`` that holds one, or None.

    >>> extract_boxed(r"so $\boxed{\frac{3}{4}}$ and then \boxed{unclosed")
    Fraction(3, 4)
    """
    for content in reversed(_boxed_contents(text)):
        value = parse_number(content)
        if value is None:
            value = _answer_in(normalize_math_notation(content))
        if value is not None:
            return value
    return None


def extract_last_number(text: str) -> Fraction | None:
    """The last number in the text (the fallback rule), or None.

    >>> extract_last_number("48 + 24 = 72 clips in total.")
    Fraction(72, 1)
    """
    numbers = find_numbers(text)
    return numbers[-1] if numbers else None


#: the cascade, in order: (rule, extractor, is_fallback)
CASCADE: tuple[tuple[str, Callable[[str, str], Fraction | None], bool], ...] = (
    ("marker", extract_marker, False),
    ("boxed", lambda text, marker: extract_boxed(text), False),
    ("last_number", lambda text, marker: extract_last_number(text), True),
)


def extract(text: str, fmt: AnswerFormat = TEXT_ANSWER) -> Extraction:
    r"""Extract the final answer of a text rationale: truncate, then marker -> boxed -> last number.

    >>> extract("48 / 2 = 24. 48 + 24 = 72. The answer is 72.")
    Extraction(answer='72', value=Fraction(72, 1), rule='marker', fallback=False)
    >>> extract(r"So the total is \boxed{18}.")
    Extraction(answer='18', value=Fraction(18, 1), rule='boxed', fallback=False)
    >>> extract("She has 72 clips in total.")
    Extraction(answer='72', value=Fraction(72, 1), rule='last_number', fallback=True)
    >>> extract("I don't know.")
    Extraction(answer=None, value=None, rule='none', fallback=False)

    ``fmt`` gives the marker; for a program format this reads the text only (no execution):
    use :func:`check`.
    """
    text = truncate(text)
    for rule, extractor, fallback in CASCADE:
        value = extractor(text, fmt.marker)
        if value is not None:
            return Extraction(format_number(value), value, rule, fallback)
    return Extraction(None, None, "none", False)


# --------------------------------------------------------------------------------------------
# Programs (PoT)
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_program(text: str) -> str:
    """The program in a PoT response: the first fenced code block (preferring one labelled
    Python or unlabelled), else the whole text cut at the next example.

    >>> extract_program("Here it is:\\n```python\\nanswer = 6 * 7\\n```\\nThe answer is 42.")
    'answer = 6 * 7\\n'
    >>> extract_program("x = 3\\nanswer = x * 2\\n\\nQuestion: next one")
    'x = 3\\nanswer = x * 2'
    """
    blocks = _FENCE.findall(text)
    if blocks:
        for lang, code in blocks:
            if lang.lower() in ("", "python", "py", "python3"):
                return str(code)
        return str(blocks[0][1])
    return truncate(text).strip("\n")


# --------------------------------------------------------------------------------------------
# Stage 3: grading
# --------------------------------------------------------------------------------------------


def answers_match(pred: Fraction | None, gold: Fraction, rel_tol: float = 0.0) -> bool:
    """Compare exactly as fractions (``rel_tol`` 0), or within ``rel_tol`` (relative; with a tiny
    absolute tolerance :data:`PROGRAM_ABS_TOL` so that gold 0 can match a float residue).
    :attr:`AnswerFormat.rel_tol` is the tolerance of a format.

    >>> answers_match(Fraction("18.0"), Fraction(18)), answers_match(Fraction(1, 3), Fraction(1, 3))
    (True, True)
    >>> answers_match(Fraction("0.3333333333333333"), Fraction(1, 3))
    False
    >>> answers_match(Fraction("0.3333333333333333"), Fraction(1, 3), PROGRAM_ANSWER.rel_tol)
    True
    >>> answers_match(Fraction("5.551115123125783e-17"), Fraction(0), rel_tol=1e-6)
    True
    >>> answers_match(None, Fraction(1))
    False
    """
    if pred is None:
        return False
    if rel_tol <= 0:
        return pred == gold
    tol = max(Fraction(repr(rel_tol)) * abs(gold), Fraction(repr(PROGRAM_ABS_TOL)))
    return abs(pred - gold) <= tol


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


class ExecResultLike(Protocol):
    """What :mod:`siked.sandbox` returns for one program (``ExecResult``)."""

    @property
    def status(self) -> str: ...  # ok | timeout | error | rejected | no_answer | memory
    @property
    def answer(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...
    @property
    def rule(self) -> str | None: ...  # "answer", "print" or None


class SandboxLike(Protocol):
    """Anything that runs a program: :class:`siked.sandbox.Sandbox` or a test fake."""

    def run(self, code: str) -> ExecResultLike: ...


@dataclass(frozen=True)
class Verdict:
    """The judgement of one rationale. ``status`` is ``ok`` (an answer was obtained, maybe
    wrong), ``no_answer``, or a sandbox status (``timeout``, ``error``, ``rejected``,
    ``memory``); ``rule`` says where the answer came from (``marker``, ``boxed``,
    ``last_number``, ``program``, ``program_print``, ``none``)."""

    strategy: str
    answer: str | None
    correct: bool
    rule: str
    status: str
    error: str | None = None
    fallback: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_from_text(
    text: str, gold: Fraction | int | str, fmt: AnswerFormat = TEXT_ANSWER
) -> Verdict:
    """Judge a text rationale (no execution).

    >>> verdict_from_text("The answer is 72.", "72", AnswerFormat("cot"))
    Verdict(strategy='cot', answer='72', correct=True, rule='marker', status='ok', error=None, fallback=False)
    """
    g = parse_gold(gold)
    ex = extract(text, fmt)
    if ex.value is None:
        return Verdict(fmt.name, None, False, "none", "no_answer", "no number found", False)
    correct = answers_match(ex.value, g, fmt.rel_tol)
    return Verdict(fmt.name, ex.answer, correct, ex.rule, "ok", None, ex.fallback)


def verdict_from_exec(
    result: ExecResultLike, gold: Fraction | int | str, fmt: AnswerFormat = PROGRAM_ANSWER
) -> Verdict:
    """Judge the execution result of a program rationale.

    >>> from types import SimpleNamespace as NS
    >>> verdict_from_exec(NS(status="ok", answer="18.0", error=None, seconds=0.0, rule="answer"), 18)
    Verdict(strategy='program', answer='18', correct=True, rule='program', status='ok', error=None, fallback=False)
    """
    g = parse_gold(gold)
    fallback = result.rule == "print"
    rule = "program_print" if fallback else "program"
    if result.status != "ok":
        status = result.status or "error"
        return Verdict(fmt.name, None, False, "none", status, result.error, False)
    if result.answer is None:
        return Verdict(fmt.name, None, False, "none", "no_answer", result.error, False)
    value = parse_number(result.answer)
    if value is None:
        err = f"{PROGRAM_ANSWER_VARIABLE} is not a number: {result.answer[:200]!r}"
        return Verdict(fmt.name, None, False, rule, "no_answer", err, fallback)
    correct = answers_match(value, g, fmt.rel_tol)
    return Verdict(fmt.name, format_number(value), correct, rule, "ok", None, fallback)


def _default_sandbox() -> SandboxLike:
    try:
        from siked.sandbox import get_sandbox
    except ImportError as e:  # pragma: no cover - only while the sandbox is missing
        raise SikedError(
            f"PoT verification needs siked.sandbox, which failed to import: {e}"
        ) from e
    sandbox: SandboxLike = get_sandbox()
    return sandbox


def strip_own_tag(text: str, fmt: AnswerFormat) -> str:
    """``text`` without a leading tag naming ``fmt`` (``[cot]: ...``), whitespace after it too.

    >>> strip_own_tag("[cot]:  The answer is 2.", AnswerFormat("cot"))
    'The answer is 2.'
    >>> strip_own_tag("[pot]: x = 1", AnswerFormat("cot"))
    '[pot]: x = 1'
    """
    name, rest = parse_tag(text)
    return rest.lstrip() if name == fmt.name else text


def check(
    text: str,
    gold: Fraction | int | str,
    fmt: AnswerFormat = TEXT_ANSWER,
    sandbox: SandboxLike | None = None,
) -> Verdict:
    """Judge one rationale in answer format ``fmt`` against ``gold``; programs run in the
    sandbox (default: the shared :func:`siked.sandbox.get_sandbox`).

    A leading tag naming the format (``[cot]: ``) is ignored.

    >>> check("[cot]: 48 + 24 = 72. The answer is 72.", "72", AnswerFormat("cot")).correct
    True
    """
    return check_many([(text, gold, fmt)], sandbox)[0]


def check_many(
    items: Iterable[tuple[str, Fraction | int | str, AnswerFormat]],
    sandbox: SandboxLike | None = None,
) -> list[Verdict]:
    """:func:`check` for many ``(text, gold, fmt)``; programs go to the sandbox together
    (``run_many`` when the sandbox has it, so a pool of workers can run them in parallel)."""
    rows = list(items)
    out: list[Verdict | None] = [None] * len(rows)
    programs: list[tuple[int, str]] = []
    for i, (text, gold, fmt) in enumerate(rows):
        parse_gold(gold)  # fail early on a bad gold
        text = strip_own_tag(text, fmt)
        if not fmt.program:
            out[i] = verdict_from_text(text, gold, fmt)
            continue
        program = extract_program(text)
        if not program.strip():
            out[i] = Verdict(fmt.name, None, False, "none", "no_answer", "empty program", False)
        else:
            programs.append((i, program))
    if programs:
        sb = sandbox if sandbox is not None else _default_sandbox()
        codes = [code for _, code in programs]
        run_many = getattr(sb, "run_many", None)
        results: Sequence[ExecResultLike] = (
            run_many(codes) if callable(run_many) else [sb.run(c) for c in codes]
        )
        for (i, _), result in zip(programs, results, strict=True):
            out[i] = verdict_from_exec(result, rows[i][1], rows[i][2])
    return [v for v in out if v is not None]


# --------------------------------------------------------------------------------------------
# Math-Verify as a second opinion (optional dependency, in a separate process)
# --------------------------------------------------------------------------------------------


class MathVerifyMissing(SikedError):
    """math-verify is not installed."""


def _require_math_verify() -> None:
    import importlib.util

    if importlib.util.find_spec("math_verify") is None:
        raise MathVerifyMissing(
            "the second opinion needs Math-Verify: pip install math-verify "
            "(or pip install 'siked[verify]')"
        )


def _mv_main() -> None:  # pragma: no cover - runs in the child process
    """Child process: read ``[pred, gold]`` JSON lines on stdin, answer ``["ok", bool]`` or
    ``["error", message]`` lines on stdout (after one ``["ready", null]``).

    Math-Verify's own timeouts use ``signal.alarm`` (broken outside the main thread), so they are
    disabled where the installed version allows it; the parent enforces the timeout by killing
    this process.
    """
    import inspect
    import json
    import logging
    import os
    import sys

    # the protocol owns the real stdout; anything the library prints goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr

    def send(kind: str, value: Any) -> None:
        out.write(json.dumps([kind, value]) + "\n")
        out.flush()

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    try:
        from math_verify import parse, verify
    except Exception as e:
        send("import_error", repr(e))
        return
    p_kw: dict[str, Any] = {}
    v_kw: dict[str, Any] = {}
    if "parsing_timeout" in inspect.signature(parse).parameters:
        p_kw["parsing_timeout"] = None
    if "timeout_seconds" in inspect.signature(verify).parameters:
        v_kw["timeout_seconds"] = None
    send("ready", None)
    for line in sys.stdin:
        if not line.strip():
            continue
        pred, gold = json.loads(line)
        try:
            g = parse(f"${gold}$", **p_kw)
            p = parse(pred, **p_kw)
            send("ok", bool(verify(g, p, **v_kw)))
        except Exception as e:
            send("error", repr(e))


class MathVerifyWorker:
    """One Math-Verify child process (a plain subprocess: safe from threads, and it never
    re-imports the caller's ``__main__``), reused for many questions and replaced when a
    question times out (the stuck child is killed)."""

    #: the child's command line after the interpreter (tests replace it)
    child_args: tuple[str, ...] = ("-c", "from siked.verify import _mv_main; _mv_main()")

    def __init__(self, startup_timeout: float = 120.0) -> None:
        _require_math_verify()
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _start(self) -> None:
        import os
        import sys
        import threading
        from pathlib import Path

        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)  # so the child imports this siked
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._lines = queue.Queue()
        proc = subprocess.Popen(
            [sys.executable, *self.child_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self._proc = proc

        def pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)  # EOF: the child is gone

        assert proc.stdout is not None
        threading.Thread(target=pump, args=(proc.stdout, self._lines), daemon=True).start()
        reply = self._read(self.startup_timeout)
        if reply is None:
            self.close()
            raise SikedError(f"Math-Verify worker did not start within {self.startup_timeout}s")
        if reply[0] != "ready":
            self.close()
            raise MathVerifyMissing(
                f"Math-Verify failed to import: {reply[1]}; pip install math-verify"
            )

    def _read(self, timeout: float) -> tuple[str, Any] | None:
        import json

        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            return None
        kind, value = json.loads(line)
        return str(kind), value

    def ask(self, pred: str, gold: str, timeout: float = 5.0) -> bool | None:
        """Math-Verify's judgement of ``pred`` against ``gold``; None on timeout or error."""
        import json

        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps([pred, gold]) + "\n")
            proc.stdin.flush()
        except OSError:
            self.close()
            return None
        reply = self._read(timeout)
        if reply is None:
            self.close()  # stuck (or dead): kill it, a fresh one serves the next question
            return None
        return bool(reply[1]) if reply[0] == "ok" else None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> MathVerifyWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def second_opinion(text: str, gold: Fraction | int | str, timeout: float = 5.0) -> bool | None:
    """Does Math-Verify think ``text`` answers ``gold``? None on timeout or error.

    The text is first cut at the next example (:func:`truncate`), as our own verifier does.
    Starts a child process (about a second); use :class:`MathVerifyWorker` or
    :func:`disagreements` for many questions.
    """
    g = format_number(parse_gold(gold))
    with MathVerifyWorker() as worker:
        return worker.ask(truncate(text), g, timeout)


def disagreements(
    items: Iterable[tuple[str, Fraction | int | str, AnswerFormat]],
    *,
    sandbox: SandboxLike | None = None,
    timeout: float = 5.0,
    include_undecided: bool = False,
) -> list[dict[str, Any]]:
    """Where Math-Verify and this verifier disagree, over ``(text, gold, fmt)`` items.

    All questions go to one Math-Verify process. For program strategies Math-Verify judges the
    executed answer (it cannot run code). Each row: ``index``, ``strategy``, ``gold``, ``ours``,
    ``answer``, ``rule``, ``math_verify`` and the first 300 characters of ``text``. With
    ``include_undecided`` rows where Math-Verify timed out or failed (None) are reported too.
    """
    rows = list(items)
    verdicts = check_many(rows, sandbox=sandbox)
    out: list[dict[str, Any]] = []
    with MathVerifyWorker() as worker:
        for i, ((text, gold, fmt), v) in enumerate(zip(rows, verdicts, strict=True)):
            g = format_number(parse_gold(gold))
            if fmt.program:
                pred = v.answer if v.answer is not None else ""
            else:
                pred = truncate(strip_own_tag(text, fmt))
            mv = worker.ask(pred, g, timeout) if pred.strip() else False
            if mv == v.correct or (mv is None and not include_undecided):
                continue
            out.append(
                {
                    "index": i,
                    "strategy": fmt.name,
                    "gold": g,
                    "ours": v.correct,
                    "answer": v.answer,
                    "rule": v.rule,
                    "math_verify": mv,
                    "text": text[:300],
                }
            )
    return out
