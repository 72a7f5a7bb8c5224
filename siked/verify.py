"""Answer verification: extraction, normalisation and exact comparison (the one filter).

Every rationale in siked, from the teacher or from the student, is judged here. The module is
pure and light (no torch, no sympy at import time) and is organised as small stages, each with
its own doctests and case-driven tests (``tests/test_verify.py``, ``tests/golden/``):

1. **truncation** -- :func:`truncate` cuts a run-on into the next few-shot example
   (a line starting with ``Question:``, ``Q:``, ``Problem:`` or a strategy tag like ``[cot]:``);
2. **extraction** -- :func:`extract` runs the cascade ``marker`` -> ``boxed`` -> ``last_number``
   (a fallback, flagged) -> ``none`` and says which rule fired (provenance);
3. **parsing** -- :func:`parse_number` turns an answer string into an exact :class:`Fraction`
   (currency, thousands separators, unicode minus, ``a/b``, ``\\frac``, units, ...);
4. **grading** -- :func:`answers_match` compares exactly as fractions (PoT floats: 1e-6 relative).

:func:`check` composes them into a :class:`Verdict`; PoT programs are executed by the sandbox
(:mod:`siked.sandbox`, imported lazily). :func:`second_opinion` and :func:`disagreements` ask
Math-Verify (optional dependency) in a separate process, to audit this verifier.

Decisions:

* The canonical final-answer line is ``The answer is N.`` (:data:`FINAL_ANSWER_MARKER`,
  :func:`marker_line`); GSM8K's ``#### N`` is accepted as a marker too.
* Only the **last** marker counts; if its sentence holds no number, the marker rule does not
  fire and the cascade falls through (usually to the flagged ``last_number`` fallback).
* Percentages stay as written: ``25%`` is 25, never 0.25 (no x100 leniency). Units and
  currencies are dropped, never converted: ``50 cents`` is 50.
* ``1,2`` is not a number (a list, or a European decimal comma: ambiguous); in running text it
  reads as the two numbers 1 and 2. Thousands separators are only accepted in groups of three.
* Mixed numbers ``1 1/2`` (one space, a proper fraction) are read as 3/2; ``1\\frac{1}{2}`` too.
* :func:`format_number` writes integers as ``72``, terminating decimals as ``1200.5``, and
  other rationals as ``7/3``.
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

# --------------------------------------------------------------------------------------------
# Markers: owned here, referenced by the strategies (prompts, gold teacher, stop strings)
# --------------------------------------------------------------------------------------------

#: The canonical final-answer marker of CoT and L2M rationales: ``The answer is 72.``
FINAL_ANSWER_MARKER = "The answer is"
#: GSM8K's own final-answer marker (``#### 72``), accepted by the extraction as a marker too.
GSM8K_MARKER = "####"
#: The variable a PoT program stores its result in.
PROGRAM_ANSWER_VARIABLE = "answer"

#: strategy -> its final-answer marker (text strategies). Unknown strategies use the default.
STRATEGY_MARKERS: dict[str, str] = {"cot": FINAL_ANSWER_MARKER, "l2m": FINAL_ANSWER_MARKER}
#: strategies whose rationale is a program executed by the sandbox.
PROGRAM_STRATEGIES: set[str] = {"pot"}
#: relative tolerance of program strategies (their answers are floats).
PROGRAM_REL_TOL = 1e-6
#: absolute tolerance used together with a relative one (so that gold == 0 can match 1e-17).
PROGRAM_ABS_TOL = 1e-9

#: line starts that open a new few-shot example (the model kept writing): output is cut there.
NEXT_EXAMPLE_PREFIXES = ("Question:", "Q:", "Problem:")


def marker_line(value: str, strategy: str = "cot") -> str:
    """The canonical final line of a text rationale.

    >>> marker_line("72")
    'The answer is 72.'
    """
    return f"{marker_for(strategy)} {value}."


def marker_for(strategy: str) -> str:
    """The final-answer marker a text strategy declares (the default one if it declares none).

    >>> marker_for("cot"), marker_for("unknown")
    ('The answer is', 'The answer is')
    """
    return STRATEGY_MARKERS.get(strategy, FINAL_ANSWER_MARKER)


def is_program_strategy(strategy: str) -> bool:
    """True when the strategy's rationale is a program run by the sandbox.

    >>> is_program_strategy("pot"), is_program_strategy("cot")
    (True, False)
    """
    return strategy in PROGRAM_STRATEGIES


def register_answer_format(
    strategy: str, *, marker: str | None = None, program: bool = False
) -> None:
    """Declare how a strategy states its answer: a text ``marker`` or ``program=True``.

    Called by :mod:`siked.strategies` when a strategy is registered.
    """
    if not re.fullmatch(r"[a-z0-9_]+", strategy):
        raise ValueError(f"strategy name {strategy!r} must match [a-z0-9_]+")
    if program:
        PROGRAM_STRATEGIES.add(strategy)
        STRATEGY_MARKERS.pop(strategy, None)
    else:
        PROGRAM_STRATEGIES.discard(strategy)
        STRATEGY_MARKERS[strategy] = marker or FINAL_ANSWER_MARKER
    _marker_regex.cache_clear()


def known_strategies() -> list[str]:
    """Strategies with a declared answer format, sorted.

    >>> known_strategies()[:3]
    ['cot', 'l2m', 'pot']
    """
    return sorted(set(STRATEGY_MARKERS) | PROGRAM_STRATEGIES)


def strategy_tolerance(strategy: str) -> float:
    """Relative tolerance used to grade a strategy: 1e-6 for programs (floats), else exact.

    >>> strategy_tolerance("pot"), strategy_tolerance("cot")
    (1e-06, 0.0)
    """
    return PROGRAM_REL_TOL if is_program_strategy(strategy) else 0.0


# --------------------------------------------------------------------------------------------
# Strategy tags
# --------------------------------------------------------------------------------------------

_TAG = re.compile(r"^\s*\[([a-z0-9_]+)\]:\s*")


def parse_tag(text: str) -> tuple[str | None, str]:
    """Split a leading strategy tag off a response: ``"[pot]: x = 1"`` -> ``("pot", "x = 1")``.

    >>> parse_tag("[cot]: Natalia sold 48 clips.")
    ('cot', 'Natalia sold 48 clips.')
    >>> parse_tag("  [pot]:\\nanswer = 1")
    ('pot', 'answer = 1')
    >>> parse_tag("no tag here")
    (None, 'no tag here')
    """
    m = _TAG.match(text)
    if not m:
        return None, text
    return m.group(1), text[m.end() :]


# --------------------------------------------------------------------------------------------
# Stage 0: truncation at the next few-shot example
# --------------------------------------------------------------------------------------------

_HEADS = "|".join(re.escape(p.rstrip(":")) for p in sorted(NEXT_EXAMPLE_PREFIXES, key=len)[::-1])
_NEXT_EXAMPLE = re.compile(
    rf"^(?:\*\*)?(?:{_HEADS})(?:\*\*)?[ \t]*:|^[ \t]*\[[a-z0-9_]+\]:", re.MULTILINE
)


def stop_sequences() -> list[str]:
    """Stop strings for generation engines that end a response where :func:`truncate` cuts.

    >>> stop_sequences()
    ['\\nQuestion:', '\\nQ:', '\\nProblem:']
    """
    return [f"\n{p}" for p in NEXT_EXAMPLE_PREFIXES]


def truncate(text: str) -> str:
    """Cut ``text`` where the model starts a new example after some content.

    A line starting (at column 0) with ``Question:``, ``Q:`` or ``Problem:``, or a line holding a
    strategy tag like ``[cot]:``, ends the rationale -- unless nothing but whitespace precedes it.

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


# --------------------------------------------------------------------------------------------
# Stage 2: parsing numbers (used by extraction, so it comes first)
# --------------------------------------------------------------------------------------------

# dash variants used as a minus sign (not the em dash, which is punctuation)
_MINUS = str.maketrans(
    {
        "\u2212": "-",  # minus sign
        "\u2013": "-",  # en dash
        "\u2012": "-",  # figure dash
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\ufe63": "-",  # small hyphen-minus
        "\uff0d": "-",  # fullwidth hyphen-minus
        "\u00a0": " ",  # no-break space
    }
)
_CORE = r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
_TOKEN = re.compile(
    rf"""
    (?<![\w.)\]}}^])                # not glued to a word, a number or an exponent
    (?P<sign>[-+])?
    (?:[$€£¥₹]\ ?)?                 # currency
    (?P<sign2>-)?                   # "$-5"
    (?P<num>{_CORE})
    (?:
        /(?P<den>{_CORE})           # a/b
      | (?P<exp>[eE][-+]?\d+)       # scientific notation
    )?
    (?![\d])
    """,
    re.VERBOSE,
)
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|textbf|mathbf|textit|mbox|operatorname)\s*\{([^{}]*)\}")


def normalize_text(s: str) -> str:
    r"""Light, answer-preserving normalisation shared by extraction and parsing.

    Unicode minus and dash variants become ``-``; ``\frac{a}{b}`` becomes ``a/b`` (``1\frac12`` a
    mixed number ``1 1/2``); ``\text{...}`` keeps its content; ``\$``, ``\%``, ``{,}`` and the
    LaTeX thin space between digit groups are undone; thin spaces between digit groups vanish.

    >>> normalize_text(r"\dfrac{3}{4} and −5 and \$1{,}200 and 1\,000\,000")
    '3/4 and -5 and $1,200 and 1,000,000'
    >>> normalize_text(r"-\frac{1}{2}, 2\frac{1}{2}, \frac12, \text{12 apples}")
    '-1/2, 2 1/2, 1/2, 12 apples'
    """
    s = s.translate(_MINUS)
    s = s.replace("\\$", "$").replace("\\%", "%").replace("{,}", ",")
    s = re.sub(r"(?<=\d)(?:\\,|\\!|\u2009|\u202f)(?=\d{3})", ",", s)
    s = _TEXT_CMD.sub(r"\1", s)
    s = re.sub(r"(\d)\s*(?=\\[dt]?frac)", r"\1 ", s)
    s = _FRAC_SHORT.sub(r"\1/\2", s)
    s = _FRAC.sub(r"\1/\2", s)
    s = s.replace("\\left", "").replace("\\right", "")
    return s


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    value: Fraction
    integer: bool  # a plain unsigned-or-signed integer (candidate whole part of a mixed number)
    proper: bool  # an unsigned proper fraction a/b with 0 < a < b


#: longest digit string and largest exponent read as a number (hostile text cannot make the
#: parser build astronomically large integers; Python also refuses int() over 4300 digits)
MAX_NUMBER_CHARS = 200
MAX_EXPONENT = 400


def _token_value(m: re.Match[str]) -> Fraction | None:
    if m.end() - m.start() > MAX_NUMBER_CHARS:
        return None
    if m["exp"] is not None and abs(int(m["exp"][1:])) > MAX_EXPONENT:
        return None
    num = Fraction(m["num"].replace(",", ""))
    if m["den"] is not None:
        den = Fraction(m["den"].replace(",", ""))
        if den == 0:
            return None
        num = num / den
    elif m["exp"] is not None:
        num = num * Fraction(10) ** int(m["exp"][1:])
    negative = (m["sign"] == "-") != (m["sign2"] == "-")
    return -num if negative else num


def _tokens(text: str) -> list[_Token]:
    """All numbers in already-normalised ``text``, mixed numbers merged, in order."""
    out: list[_Token] = []
    for m in _TOKEN.finditer(text):
        value = _token_value(m)
        if value is None:
            continue
        plain = m["den"] is None and m["exp"] is None
        integer = plain and "." not in m["num"] and m["sign2"] is None
        proper = m["den"] is not None and m["sign"] is None and 0 < value < 1
        tok = _Token(m.start(), m.end(), value, integer, proper)
        if proper and out and out[-1].integer and text[out[-1].end : m.start()] == " ":
            whole = out.pop()
            mixed = whole.value - value if whole.value < 0 else whole.value + value
            tok = _Token(whole.start, m.end(), mixed, False, False)
        out.append(tok)
    return out


def find_numbers(text: str) -> list[Fraction]:
    """Every number in running text, in order (the scanner behind ``last_number``).

    >>> [str(x) for x in find_numbers("She paid $1,200.50 for 3/4 of 2 1/2 boxes, or 1,2 (5-3).")]
    ['2401/2', '3/4', '5/2', '1', '2', '5', '3']
    >>> [str(x) for x in find_numbers("Temperatures fell to −4 and then 1e3 people. x2 CO2 3rd")]
    ['-4', '1000', '3']
    """
    return [t.value for t in _tokens(normalize_text(text))]


_UNIT_TAIL = re.compile(
    r"""\s*(?:[A-Za-z°µ²³][A-Za-z°µ²³/.'’\ -]*?(?:\^\d+)?)?   # units or words after the number
    [\s.,;:!?)*]*$""",
    re.VERBOSE,
)
_WRAPPERS = (
    (re.compile(r"^\\boxed\s*\{(.*)\}$", re.S), r"\1"),
    (re.compile(r"^\\\((.*)\\\)$", re.S), r"\1"),
    (re.compile(r"^\\\[(.*)\\\]$", re.S), r"\1"),
    (re.compile(r"^\$(.*)\$$", re.S), r"\1"),
    (re.compile(r"^\*\*(.*)\*\*$", re.S), r"\1"),
    (re.compile(r"^\((.*)\)$", re.S), r"\1"),
)


def _unwrap(s: str) -> str:
    changed = True
    while changed:
        changed = False
        s = s.strip().rstrip(".,;:!?").strip()
        for pattern, repl in _WRAPPERS:
            new = pattern.sub(repl, s)
            if new != s:
                s, changed = new, True
    return s


def parse_number(s: str) -> Fraction | None:
    r"""Parse one answer string into an exact number, or None if it is not exactly one number.

    Accepted: currency (``$ € £``), thousands separators in groups of three, unicode minus and
    dash variants, a leading ``+``, decimals (``.5``), scientific notation, ``a/b``, mixed
    numbers (``1 1/2``), ``\frac``/``\dfrac``, ``\boxed{}``, ``$..$``, ``**..**``, parentheses,
    trailing punctuation, ``%`` (kept as written), and words or units after the number.

    >>> parse_number("1,200.50"), parse_number("$1,200.50"), parse_number("−3")
    (Fraction(2401, 2), Fraction(2401, 2), Fraction(-3, 1))
    >>> parse_number("25%"), parse_number("0.50"), parse_number("18.0"), parse_number("1e3")
    (Fraction(25, 1), Fraction(1, 2), Fraction(18, 1), Fraction(1000, 1))
    >>> parse_number(r"\frac{3}{4}"), parse_number("1 1/2"), parse_number("-(1/3)")
    (Fraction(3, 4), Fraction(3, 2), Fraction(-1, 3))
    >>> parse_number("72 clips."), parse_number("5 m^2"), parse_number("50 cents"), parse_number(".5")
    (Fraction(72, 1), Fraction(5, 1), Fraction(50, 1), Fraction(1, 2))
    >>> [parse_number(x) for x in ("1,2", "3 and 4", "", "abc", "3/0", "1 200", "nan", "inf")]
    [None, None, None, None, None, None, None, None]
    """
    if len(s) > 20 * MAX_NUMBER_CHARS:
        return None  # e.g. the repr of a huge list from a program: not one number
    s = _unwrap(normalize_text(s))
    if not s:
        return None
    # the sign of "-(1/3)" outside the parentheses
    m = re.fullmatch(r"([-+])\s*\((.*)\)(.*)", s, re.S)
    if m:
        inner = parse_number(m.group(2) + m.group(3))
        return None if inner is None else (-inner if m.group(1) == "-" else inner)
    s = s.lstrip("*").strip()
    s = (
        re.sub(r"\s*(?:%|percent\b)", "", s, count=1)
        if re.search(r"\d\s*(?:%|percent\b)", s)
        else s
    )
    tokens = _tokens(s)
    if len(tokens) != 1 or tokens[0].start != 0:
        return None
    tail = s[tokens[0].end :]
    if not _UNIT_TAIL.fullmatch(tail):
        return None
    return tokens[0].value


def format_number(value: Fraction) -> str:
    """Canonical string of an exact number: ``72``, ``-3``, ``1200.5``, ``7/3``.

    Integers have no decimal point; a value with a terminating decimal expansion (the
    denominator has no prime factor but 2 and 5) is written as a decimal without trailing
    zeros; any other rational as ``a/b``. ``parse_number(format_number(x)) == x`` always.

    >>> [format_number(Fraction(x)) for x in ("72", "-3", "1200.50", "-1/4", "7/3", "0", "1/3")]
    ['72', '-3', '1200.5', '-0.25', '7/3', '0', '1/3']
    """
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = max(twos, fives)
    scaled = abs(value.numerator) * 10**digits // value.denominator
    whole, frac = divmod(scaled, 10**digits)
    text = f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".")
    return f"-{text}" if value < 0 else text


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
def _marker_regex(strategy: str) -> re.Pattern[str]:
    default = (
        rf"\b(?:the{_JOIN})?(?:final{_JOIN})?answer{_JOIN}is\b"
        rf"|\bfinal{_JOIN}answer[*_]*\s*[:=]"
        rf"|^[ \t]*{re.escape(GSM8K_MARKER)}"
    )
    marker = marker_for(strategy)
    parts = [default]
    if marker != FINAL_ANSWER_MARKER:
        parts.insert(0, rf"(?<!\w){_words(marker)}")
    return re.compile("|".join(parts), re.IGNORECASE | re.MULTILINE)


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def _answer_in(segment: str) -> Fraction | None:
    """The number a marker or ``\\boxed{}`` states: the first number, or the result after the
    last ``=`` (``The answer is 48/2 = 24``)."""
    tokens = _tokens(segment)
    if not tokens:
        return None
    eq = segment.rfind("=")
    if eq >= 0:
        after = [t for t in tokens if t.start > eq]
        if after:
            return after[0].value
    return tokens[0].value


def extract_marker(text: str, strategy: str = "cot") -> Fraction | None:
    """The number stated in the sentence after the **last** final-answer marker, or None.

    >>> extract_marker("The answer is 5. Wait. **The final answer is** $1,200.50.")
    Fraction(2401, 2)
    >>> extract_marker("Natalia sold 72 clips.\\n#### 72")
    Fraction(72, 1)
    >>> extract_marker("The answer is 72. Then the answer is unclear. 48 + 24 = 73") is None
    True
    """
    text = normalize_text(text)
    last = None
    for last in _marker_regex(strategy).finditer(text):  # noqa: B007
        pass
    if last is None:
        return None
    rest = text[last.end() :].lstrip(" \t\n*_:=")
    end = _SENTENCE_END.search(rest)
    return _answer_in(rest[: end.start()] if end else rest)


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces, in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1])
    return out


def extract_boxed(text: str) -> Fraction | None:
    r"""The number in the last balanced ``\boxed{...}`` that holds one, or None.

    >>> extract_boxed(r"so $\boxed{\frac{3}{4}}$ and then \boxed{unclosed")
    Fraction(3, 4)
    """
    for content in reversed(_boxed_contents(text)):
        value = parse_number(content)
        if value is None:
            value = _answer_in(normalize_text(content))
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
    ("boxed", lambda text, strategy: extract_boxed(text), False),
    ("last_number", lambda text, strategy: extract_last_number(text), True),
)


def extract(text: str, strategy: str = "cot") -> Extraction:
    r"""Extract the final answer of a text rationale: truncate, then marker -> boxed -> last number.

    >>> extract("48 / 2 = 24. 48 + 24 = 72. The answer is 72.")
    Extraction(answer='72', value=Fraction(72, 1), rule='marker', fallback=False)
    >>> extract(r"So the total is \boxed{18}.")
    Extraction(answer='18', value=Fraction(18, 1), rule='boxed', fallback=False)
    >>> extract("She has 72 clips in total.")
    Extraction(answer='72', value=Fraction(72, 1), rule='last_number', fallback=True)
    >>> extract("I don't know.")
    Extraction(answer=None, value=None, rule='none', fallback=False)

    For a program strategy this reads the text only (no execution): use :func:`check`.
    """
    text = truncate(text)
    for rule, extractor, fallback in CASCADE:
        value = extractor(text, strategy)
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


def answers_match(
    pred: Fraction | None,
    gold: Fraction,
    strategy: str | None = None,
    *,
    rel_tol: float | None = None,
) -> bool:
    """Compare exactly as fractions, or within ``rel_tol`` (relative; with a tiny absolute
    tolerance :data:`PROGRAM_ABS_TOL` so that gold 0 can match a float residue).

    ``rel_tol`` defaults to :func:`strategy_tolerance` of ``strategy`` (exact when neither is
    given).

    >>> answers_match(Fraction("18.0"), Fraction(18)), answers_match(Fraction(1, 3), Fraction(1, 3))
    (True, True)
    >>> answers_match(Fraction("0.3333333333333333"), Fraction(1, 3))
    False
    >>> answers_match(Fraction("0.3333333333333333"), Fraction(1, 3), "pot")
    True
    >>> answers_match(Fraction("5.551115123125783e-17"), Fraction(0), rel_tol=1e-6)
    True
    >>> answers_match(None, Fraction(1))
    False
    """
    if pred is None:
        return False
    if rel_tol is None:
        rel_tol = strategy_tolerance(strategy) if strategy else 0.0
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


def verdict_from_text(text: str, gold: Fraction | int | str, strategy: str) -> Verdict:
    """Judge a text rationale (no execution).

    >>> verdict_from_text("The answer is 72.", "72", "cot")
    Verdict(strategy='cot', answer='72', correct=True, rule='marker', status='ok', error=None, fallback=False)
    """
    g = parse_gold(gold)
    ex = extract(text, strategy)
    if ex.value is None:
        return Verdict(strategy, None, False, "none", "no_answer", "no number found", False)
    correct = answers_match(ex.value, g, rel_tol=strategy_tolerance(strategy))
    return Verdict(strategy, ex.answer, correct, ex.rule, "ok", None, ex.fallback)


def verdict_from_exec(
    result: ExecResultLike, gold: Fraction | int | str, strategy: str = "pot"
) -> Verdict:
    """Judge the execution result of a program rationale.

    >>> from types import SimpleNamespace as NS
    >>> verdict_from_exec(NS(status="ok", answer="18.0", error=None, seconds=0.0, rule="answer"), 18)
    Verdict(strategy='pot', answer='18', correct=True, rule='program', status='ok', error=None, fallback=False)
    """
    g = parse_gold(gold)
    fallback = result.rule == "print"
    rule = "program_print" if fallback else "program"
    if result.status != "ok":
        status = result.status or "error"
        return Verdict(strategy, None, False, "none", status, result.error, False)
    if result.answer is None:
        return Verdict(strategy, None, False, "none", "no_answer", result.error, False)
    value = parse_number(result.answer)
    if value is None:
        err = f"{PROGRAM_ANSWER_VARIABLE} is not a number: {result.answer[:200]!r}"
        return Verdict(strategy, None, False, rule, "no_answer", err, fallback)
    correct = answers_match(value, g, rel_tol=strategy_tolerance(strategy))
    return Verdict(strategy, format_number(value), correct, rule, "ok", None, fallback)


def _default_sandbox() -> SandboxLike:
    try:
        from siked.sandbox import get_sandbox
    except ImportError as e:  # pragma: no cover - only while the sandbox is missing
        raise SikedError(
            f"PoT verification needs siked.sandbox, which failed to import: {e}"
        ) from e
    sandbox: SandboxLike = get_sandbox()
    return sandbox


def _strip_own_tag(text: str, strategy: str) -> str:
    name, rest = parse_tag(text)
    return rest if name == strategy else text


def check(
    text: str,
    gold: Fraction | int | str,
    strategy: str,
    sandbox: SandboxLike | None = None,
) -> Verdict:
    """Judge one rationale of ``strategy`` against ``gold``; programs run in the sandbox.

    A leading tag naming the same strategy (``[cot]: ``) is ignored.

    >>> check("[cot]: 48 + 24 = 72. The answer is 72.", "72", "cot").correct
    True
    """
    parse_gold(gold)  # fail early on a bad gold
    text = _strip_own_tag(text, strategy)
    if not is_program_strategy(strategy):
        return verdict_from_text(text, gold, strategy)
    program = extract_program(text)
    if not program.strip():
        return Verdict(strategy, None, False, "none", "no_answer", "empty program", False)
    sb = sandbox if sandbox is not None else _default_sandbox()
    return verdict_from_exec(sb.run(program), gold, strategy)


def check_many(
    items: Iterable[tuple[str, Fraction | int | str, str]],
    sandbox: SandboxLike | None = None,
) -> list[Verdict]:
    """:func:`check` for many ``(text, gold, strategy)``; programs go to the sandbox together
    (``run_many`` when the sandbox has it, so a pool of workers can run them in parallel)."""
    rows = list(items)
    out: list[Verdict | None] = [None] * len(rows)
    programs: list[tuple[int, str]] = []
    for i, (text, gold, strategy) in enumerate(rows):
        parse_gold(gold)
        text = _strip_own_tag(text, strategy)
        if not is_program_strategy(strategy):
            out[i] = verdict_from_text(text, gold, strategy)
            continue
        program = extract_program(text)
        if not program.strip():
            out[i] = Verdict(strategy, None, False, "none", "no_answer", "empty program", False)
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
    items: Iterable[tuple[str, Fraction | int | str, str]],
    *,
    sandbox: SandboxLike | None = None,
    timeout: float = 5.0,
    include_undecided: bool = False,
) -> list[dict[str, Any]]:
    """Where Math-Verify and this verifier disagree, over ``(text, gold, strategy)`` items.

    All questions go to one Math-Verify process. For program strategies Math-Verify judges the
    executed answer (it cannot run code). Each row: ``index``, ``strategy``, ``gold``, ``ours``,
    ``answer``, ``rule``, ``math_verify`` and the first 300 characters of ``text``. With
    ``include_undecided`` rows where Math-Verify timed out or failed (None) are reported too.
    """
    rows = list(items)
    verdicts = check_many(rows, sandbox=sandbox)
    out: list[dict[str, Any]] = []
    with MathVerifyWorker() as worker:
        for i, ((text, gold, strategy), v) in enumerate(zip(rows, verdicts, strict=True)):
            g = format_number(parse_gold(gold))
            if is_program_strategy(strategy):
                pred = v.answer if v.answer is not None else ""
            else:
                pred = truncate(_strip_own_tag(text, strategy))
            mv = worker.ask(pred, g, timeout) if pred.strip() else False
            if mv == v.correct or (mv is None and not include_undecided):
                continue
            out.append(
                {
                    "index": i,
                    "strategy": strategy,
                    "gold": g,
                    "ours": v.correct,
                    "answer": v.answer,
                    "rule": v.rule,
                    "math_verify": mv,
                    "text": text[:300],
                }
            )
    return out
