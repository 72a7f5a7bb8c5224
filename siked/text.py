"""Text primitives every stage shares: strategy tags, numbers and whitespace.

Each rule has one owner, here, and every module imports it:

* **Tags.** A response starts with its strategy's tag, ``[cot]: ...`` (:func:`format_tag`,
  :func:`tag_prefix`). A strategy name is lower-case letters, digits and ``_``, starting with a
  letter (:data:`TAG_NAME`, :func:`check_tag_name`). Reading is lenient the way models write:
  :func:`parse_tag` accepts leading whitespace, upper case (``[COT]:``, read as ``cot``) and
  blanks before the colon; after the colon it drops blanks and one line break, so the first
  line of a program keeps its indentation. :data:`TAG_LINE` is the same grammar as a regex
  for "a line that starts with a tag" (where :func:`siked.verify.truncate` cuts a run-on).
  Whether a tag names a *registered* strategy is :func:`siked.strategies.parse_tagged`'s job.
* **Numbers.** :func:`parse_number` reads one answer as a model writes it (currency, units,
  ``\\frac``, ``1 1/2``, ...); :func:`parse_plain_number` reads one number as a data file
  writes it (digits, thousands commas, a decimal point, ``a/b``) and nothing else;
  :func:`find_numbers` scans running text. :func:`format_number` is the one way siked writes
  a number: in records (``gold`` and ``answer``), rationales and prompts.
* **Whitespace.** :func:`collapse_whitespace` (duplicate detection, question matching).

The module is pure and standard-library only.

>>> parse_tag("[POT]:\\nanswer = 4")
('pot', 'answer = 4')
>>> format_number(parse_number("$1,200.50")), format_number(parse_plain_number("7/2"))
('1200.5', '3.5')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# --------------------------------------------------------------------------------------------
# Strategy tags
# --------------------------------------------------------------------------------------------

#: A strategy name: the text between the brackets of its tag.
TAG_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: A tag as models write it (any case; blanks before the colon), the name in group 1.
_TAG = r"\[([A-Za-z0-9_]+)\][ \t]*:"
_LEADING_TAG = re.compile(rf"\s*{_TAG}[ \t]*\n?")
#: A line that starts with a tag (``re.MULTILINE``): a new response begins there.
TAG_LINE = re.compile(rf"^[ \t]*{_TAG}", re.MULTILINE)


def check_tag_name(name: str) -> str:
    """``name`` if it is a valid strategy name (:data:`TAG_NAME`), else ``ValueError``.

    >>> check_tag_name("cot")
    'cot'
    """
    if not isinstance(name, str) or not TAG_NAME.fullmatch(name):
        raise ValueError(
            f"bad strategy name {name!r}: use lower-case letters, digits and _, "
            "starting with a letter"
        )
    return name


def format_tag(name: str) -> str:
    """The tag of a strategy: ``[cot]``.

    >>> format_tag("pot")
    '[pot]'
    """
    return f"[{check_tag_name(name)}]"


def tag_prefix(name: str) -> str:
    """The tag as it begins a response: ``"[cot]: "``.

    >>> tag_prefix("l2m")
    '[l2m]: '
    """
    return f"{format_tag(name)}: "


def parse_tag(response: str) -> tuple[str | None, str]:
    """Split a leading tag off a response: ``(name in lower case, rest)``, or ``(None, response)``.

    >>> parse_tag("[cot]: Natalia sold 48 clips.")
    ('cot', 'Natalia sold 48 clips.')
    >>> parse_tag(" [COT] :\\n  x = 1")
    ('cot', '  x = 1')
    >>> parse_tag("no tag here")
    (None, 'no tag here')
    """
    m = _LEADING_TAG.match(response)
    if m is None:
        return None, response
    return m.group(1).lower(), response[m.end() :]


# --------------------------------------------------------------------------------------------
# Whitespace
# --------------------------------------------------------------------------------------------


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace (spaces, tabs, CR/LF) become one space; the ends are stripped.

    >>> collapse_whitespace("  Each pack\\r\\n costs  76 dollars ")
    'Each pack costs 76 dollars'
    """
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Numbers
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
_SIGNED_CORE = re.compile(rf"[-+]?{_CORE}")
_TEXT_CMD = re.compile(
    r"\\(?:text|textrm|textnormal|textbf|textit|mathrm|mathbf|mathit|mbox|hbox|operatorname)"
    r"\s*\{([^{}]*)\}"
)
#: spacing a writer puts between digit groups: LaTeX ``\,`` ``\:`` ``\;`` ``\ `` ``~`` and the
#: thin, narrow no-break and figure spaces (the no-break space is a plain space by then)
_GROUP_SPACE = re.compile(r"(?<=\d)(?:\\[,:; ]|~|\u2009|\u202f|\u2007)(?=\d{3}(?!\d))")
#: digit groups after single plain spaces (`` 000 000`` of ``1 000 000``), not continued by
#: another digit, a fraction or a comma group; :func:`_join_space_groups` checks what precedes
_SPACE_GROUPS = re.compile(r"(?<=\d)(?: \d{3})+(?![\d/]| \d|,\d)")
_DIGITS = frozenset("0123456789")
_LATEX_SPACING = re.compile(r"\\(?:[,:; ]|quad|qquad)(?![A-Za-z])")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?")
_APPROX = re.compile(r"\\(?:approx|simeq|thickapprox)(?![A-Za-z])|\u2248")
#: a control word glued to the digits after it (``\approx11``, ``\times3``)
_GLUED_COMMAND = re.compile(r"(\\[A-Za-z]+)(?=[\d.])")


#: one argument of ``\frac``: a brace group without braces inside, a control word, one character
_FRAC_ARG = r"(?:\{([^{}]*)\}|(\\[A-Za-z]+|[^\s{}\\]))"
#: a fraction whose parts hold no other fraction (nested ones are expanded inside out)
_FRAC = re.compile(rf"\\[dtc]?frac(?![A-Za-z])\s*{_FRAC_ARG}\s*{_FRAC_ARG}")
#: nesting depth of ``\frac`` that is expanded (deeper: left as written)
MAX_FRAC_DEPTH = 4


def _frac_text(m: re.Match[str]) -> str:
    a, b = ((m[i] if m[i] is not None else m[i + 1]).strip() for i in (1, 3))
    if _SIGNED_CORE.fullmatch(a) and _SIGNED_CORE.fullmatch(b):
        negative = (a[0] == "-") != (b[0] == "-")
        return f"{'-' if negative else ''}{a.lstrip('+-')}/{b.lstrip('+-')}"
    return f"({a})/({b})"


def _expand_fracs(s: str) -> str:
    r"""``\frac{a}{b}``, ``\frac ab``, ``\frac3{3}``, ``\dfrac``, ``\tfrac``, ``\cfrac`` become
    ``a/b`` when both parts are numbers, else ``(a)/(b)``; nested ones inside out, at most
    :data:`MAX_FRAC_DEPTH` deep (each level is one linear pass).

    >>> _expand_fracs(r"\frac3{3}, \frac 1 2, \frac{-1}{2}, \frac{\frac{1}{2}}{3}, \frac{x}{2}")
    '3/3, 1/2, -1/2, (1/2)/(3), (x)/(2)'
    """
    for _ in range(MAX_FRAC_DEPTH):
        s, n = _FRAC.subn(_frac_text, s)
        if not n:
            break
    return s


def _join_space_groups(s: str) -> str:
    """``1 000 000`` -> ``1,000,000``: a lead of 1-3 digits, not glued to a word, a number, ``.``
    ``,`` ``/``, nor the second of a space-separated list (``7 2 100``), then groups of three.

    >>> _join_space_groups("1 000, 12 345 678.5, 7 2 100, 2019 500, x1 000, 3 100/7")
    '1,000, 12,345,678.5, 7 2 100, 2019 500, x1 000, 3 100/7'
    """
    out: list[str] = []
    pos = 0
    for m in _SPACE_GROUPS.finditer(s):
        j = m.start()
        while j > 0 and s[j - 1] in _DIGITS and m.start() - j < 4:
            j -= 1
        before = s[j - 1] if j > 0 else " "
        if not 1 <= m.start() - j <= 3 or before.isalnum() or before in "_.,/":
            continue
        if before == " " and j > 1 and s[j - 2] in _DIGITS:
            continue
        out += [s[pos:j], s[j : m.end()].replace(" ", ",")]
        pos = m.end()
    return "".join(out) + s[pos:] if out else s


def normalize_math_notation(s: str) -> str:
    r"""Light, answer-preserving normalisation shared by extraction and parsing.

    Unicode minus and dash variants become ``-``; ``\frac{a}{b}`` (``\frac ab``, ``\dfrac``,
    ``\tfrac``) becomes ``a/b`` (``1\frac12`` a mixed number ``1 1/2``); ``\text{...}`` keeps
    its content; ``\$``, ``\%``, ``{,}``, ``\!``, ``\left``/``\right`` are undone; LaTeX, thin,
    no-break and single plain spaces between groups of three digits become commas;
    ``\approx`` becomes ``≈``; a LaTeX command glued to digits is spaced off them.

    >>> normalize_math_notation(r"\dfrac{3}{4} and −5 and \$1{,}200 and 1\,000\,000")
    '3/4 and -5 and $1,200 and 1,000,000'
    >>> normalize_math_notation(r"-\frac{1}{2}, 2\frac{1}{2}, \frac12, \frac3{4}, \text{12 apples}")
    '-1/2, 2 1/2, 1/2, 3/4, 12 apples'
    >>> normalize_math_notation(r"\$16,\!386.20, 1 000, x\approx11, \left(\frac{a}{2}\right)")
    '$16,386.20, 1,000, x ≈ 11, ((a)/(2))'
    """
    if not s.isascii():
        s = s.translate(_MINUS)
    s = s.replace("{,}", ",").replace("{.}", ".")
    latex = "\\" in s
    if latex or "~" in s or "\u2009" in s or "\u202f" in s or "\u2007" in s:
        s = _GROUP_SPACE.sub(",", s.replace("\\!", ""))
    if latex:  # the regexes below all need a backslash: plain text skips them (speed)
        s = s.replace("\\$", "$").replace("\\%", "%")
        s = _TEXT_CMD.sub(r"\1", s)
        if "frac" in s:
            s = re.sub(r"(\d)\s*(?=\\[dtc]?frac(?![A-Za-z]))", r"\1 ", s)
            s = _expand_fracs(s)
        s = _LEFT_RIGHT.sub("", s)
        s = _LATEX_SPACING.sub(" ", s)
        s = _DEGREES.sub("°", s)
    if latex or "\u2248" in s:
        s = _APPROX.sub(" \u2248 ", s)
    if latex:
        s = _GLUED_COMMAND.sub(r"\1 ", s)
    return _join_space_groups(s)


@dataclass(frozen=True)
class NumberToken:
    """One number found in (normalised) text: its span and exact value."""

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


def number_tokens(text: str) -> list[NumberToken]:
    """All numbers in ``text`` (already through :func:`normalize_math_notation`), mixed numbers
    merged, in order."""
    out: list[NumberToken] = []
    for m in _TOKEN.finditer(text):
        value = _token_value(m)
        if value is None:
            continue
        plain = m["den"] is None and m["exp"] is None
        integer = plain and "." not in m["num"]
        proper = m["den"] is not None and m["sign"] is None and 0 < value < 1
        tok = NumberToken(m.start(), m.end(), value, integer, proper)
        if proper and out and out[-1].integer and text[out[-1].end : m.start()] == " ":
            whole = out.pop()
            mixed = whole.value - value if whole.value < 0 else whole.value + value
            tok = NumberToken(whole.start, m.end(), mixed, False, False)
        out.append(tok)
    return out


def find_numbers(text: str) -> list[Fraction]:
    """Every number in running text, in order (the scanner behind ``last_number``).

    >>> [str(x) for x in find_numbers("She paid $1,200.50 for 3/4 of 2 1/2 boxes, or 1,2 (5-3).")]
    ['2401/2', '3/4', '5/2', '1', '2', '5', '3']
    >>> [str(x) for x in find_numbers("Temperatures fell to −4 and then 1e3 people. x2 CO2 3rd")]
    ['-4', '1000', '3']
    """
    return [t.value for t in number_tokens(normalize_math_notation(text))]


_UNIT_TAIL = re.compile(
    r"""\s*(?:[A-Za-z°µ²³][A-Za-z°µ²³/.'’\ -]*?(?:\^\d+)?)?   # units or words after the number
    [\s.,;:!?)*]*$""",
    re.VERBOSE,
)
_WRAPPERS = (
    (re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.S), r"\1"),
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

    Accepted: currency (``$ € £``, ``\$``), thousands separators in groups of three (``,``
    ``{,}`` ``\,`` ``\!`` thin, no-break or one plain space), unicode minus and dash variants, a
    leading ``+``, decimals (``.5``), scientific notation, ``a/b``, mixed numbers (``1 1/2``,
    ``1\frac12``), ``\frac``/``\dfrac``/``\tfrac`` (``\frac34``, ``\frac3{4}``),
    ``\boxed{}``/``\fbox{}``, ``$..$``, ``**..**``, parentheses, ``\left(..\right)``, trailing
    punctuation, ``%`` (kept as written), and words, units or ``\text{}`` after the number.

    >>> parse_number("1,200.50"), parse_number("$1,200.50"), parse_number("−3")
    (Fraction(2401, 2), Fraction(2401, 2), Fraction(-3, 1))
    >>> parse_number("25%"), parse_number("0.50"), parse_number("18.0"), parse_number("1e3")
    (Fraction(25, 1), Fraction(1, 2), Fraction(18, 1), Fraction(1000, 1))
    >>> parse_number(r"\frac{3}{4}"), parse_number("1 1/2"), parse_number("-(1/3)")
    (Fraction(3, 4), Fraction(3, 2), Fraction(-1, 3))
    >>> parse_number("72 clips."), parse_number("5 m^2"), parse_number("50 cents"), parse_number(".5")
    (Fraction(72, 1), Fraction(5, 1), Fraction(50, 1), Fraction(1, 2))
    >>> [parse_number(x) for x in ("1,2", "3 and 4", "", "abc", "3/0", "1 20", "nan", "inf")]
    [None, None, None, None, None, None, None, None]
    """
    if len(s) > 20 * MAX_NUMBER_CHARS:
        return None  # e.g. the repr of a huge list from a program: not one number
    s = _unwrap(normalize_math_notation(s))
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
    tokens = number_tokens(s)
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


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")


def parse_plain_number(text: str) -> Fraction | None:
    """One number exactly as a data file writes it, else None: ``12``, ``-3``, ``1,080``,
    ``2.5``, ``5/2``, ``-(1/3)``. Unlike :func:`parse_number` nothing else is accepted (no
    currency, units, words, ``%`` or LaTeX), so a dataset answer such as ``5 cakes`` or ``2:3``
    is not mistaken for a number.

    >>> parse_plain_number("1,080"), parse_plain_number("0.46"), parse_plain_number("-(1/3)")
    (Fraction(1080, 1), Fraction(23, 50), Fraction(-1, 3))
    >>> [parse_plain_number(x) for x in ("2:3", "5; 3", "Yes", "5 cakes", "$5")]
    [None, None, None, None, None]
    """
    s = text.strip()
    m = re.fullmatch(r"([-+]?)\((.*)\)", s)  # -(1/3)
    if m:
        inner = parse_plain_number(m.group(2))
        return None if inner is None else (-inner if m.group(1) == "-" else inner)
    if "/" in s:
        num, _, den = s.partition("/")
        a, b = parse_plain_number(num), parse_plain_number(den)
        if a is None or b is None or b == 0 or "/" in den:
            return None
        return a / b
    if not _PLAIN_NUMBER.fullmatch(s):
        return None
    return Fraction(s.replace(",", ""))
