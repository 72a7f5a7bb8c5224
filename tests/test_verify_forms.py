"""What real models write: the case table (``tests/golden/verify_table.jsonl``), a seeded
property test over every supported number form, and Math-Verify as a second opinion.

Each line of the table is one case: ``text``, ``gold``, the verdict ``correct``, the ``answer``
siked must read (null: none), a ``note``, and -- where Math-Verify judges otherwise -- ``mv``,
the id of the documented choice (docs/verify.md, "Where siked differs from Math-Verify") that
explains the difference. The expected verdicts were written by construction (a rendered value
against itself and against a changed one), not copied from the verifier.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from siked import verify
from siked.text import format_number
from siked.verify import TEXT_ANSWER, check, extract, parse_gold, truncate

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "golden" / "verify_table.jsonl"
CHOICES_DOC = ROOT / "docs" / "verify.md"

#: the four answers of issue 32 that siked misread
ISSUE_32 = [
    (r"$\frac3{3} $", "1"),
    (r"$x\approx11$", "11"),
    (r"The house is now worth $\boxed{\$16,\!386.20}$ after the repairs.", "16386.2"),
    ("1 000", "1000"),
]


def _table() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line]


def documented_choices() -> set[str]:
    """The ids in the first column of the choices table of docs/verify.md."""
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", CHOICES_DOC.read_text(), re.MULTILINE))


# ----------------------------------------------------------------------------- the case table


def test_table_shape() -> None:
    cases = _table()
    assert len(cases) >= 300
    for c in cases:
        assert {"text", "gold", "correct", "answer", "note"} <= c.keys(), c
        assert isinstance(c["correct"], bool)
        assert not c["correct"] or c["answer"] == format_number(parse_gold(c["gold"])), c
    texts = {(c["text"], format_number(parse_gold(c["gold"]))) for c in cases if c["correct"]}
    assert set(ISSUE_32) <= texts


def test_table() -> None:
    wrong = []
    for c in _table():
        v = check(c["text"], c["gold"], TEXT_ANSWER)
        if (v.correct, v.answer) != (c["correct"], c["answer"]):
            wrong.append((c["text"], c["gold"], c["correct"], c["answer"], v.correct, v.answer))
    assert not wrong, f"{len(wrong)} cases misjudged, e.g. {wrong[:10]}"


@pytest.mark.parametrize(("text", "gold"), ISSUE_32)
def test_issue_32_answers(text: str, gold: str) -> None:
    v = check(text, gold, TEXT_ANSWER)
    assert (v.correct, v.answer) == (True, gold)


def test_every_math_verify_difference_is_a_documented_choice() -> None:
    tags = {c["mv"] for c in _table() if "mv" in c}
    assert tags, "the table records where Math-Verify differs"
    assert tags <= documented_choices(), tags - documented_choices()


needs_math_verify = pytest.mark.skipif(
    __import__("importlib").util.find_spec("math_verify") is None,
    reason="math-verify not installed",
)


@needs_math_verify
def test_math_verify_second_opinion_over_the_table() -> None:
    """Math-Verify judges every case; it disagrees exactly where the table says, and why."""
    cases = _table()
    unexpected = []
    with verify.MathVerifyWorker() as worker:
        for c in cases:
            mv = worker.ask(truncate(c["text"]), format_number(parse_gold(c["gold"])), 10)
            if (mv != c["correct"]) != ("mv" in c):
                unexpected.append((c["text"], c["gold"], c["correct"], mv, c.get("mv")))
    assert not unexpected, f"{len(unexpected)} unlisted (dis)agreements: {unexpected[:10]}"


# ----------------------------------------------------------------------------- property test

Render = Callable[[str], str]


def _group(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    return sep.join([digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)])


#: thousands separators a writer uses (each between groups of three digits)
SEPARATORS = [",", "{,}", r"\,", r",\!", r"\!,\!", "~", "\\ ", " ", "\u00a0", "\u2009", "\u202f"]


def render_decimal(x: Fraction, rng: random.Random) -> str:
    """``x`` (an integer or a terminating decimal) with a random thousands separator."""
    text = format_number(x)
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = text.partition(".")
    if len(whole) > 3 and rng.random() < 0.7:
        whole = _group(whole, rng.choice(SEPARATORS))
    if dot and rng.random() < 0.3:
        frac += "0"  # 1.50
    return sign + whole + dot + frac


def render_fraction(x: Fraction, rng: random.Random) -> str:
    """A non-integer ``x`` as ``a/b``, ``\\frac`` in every spelling, or a mixed number."""
    sign = "-" if x < 0 else ""
    a, b = abs(x.numerator), x.denominator
    forms = [
        f"{a}/{b}",
        rf"\frac{{{a}}}{{{b}}}",
        rf"\dfrac{{{a}}}{{{b}}}",
        rf"\tfrac{{{a}}}{{{b}}}",
        rf"\frac{{{a}}} {{{b}}}",
    ]
    if a < 10:
        forms.append(rf"\frac{a}{{{b}}}")
    if b < 10:
        forms.append(rf"\frac{{{a}}}{b}")
    if a < 10 and b < 10:
        forms += [rf"\frac{a}{b}", rf"\frac {a} {b}"]
    if a > b:
        whole, rest = divmod(a, b)
        forms += [rf"{whole}\frac{{{rest}}}{{{b}}}", f"{whole} {rest}/{b}"]
    return sign + rng.choice(forms)


#: math-mode decorations of a number ``n``
MATH = [
    "{n}",
    r"\boxed{{{n}}}",
    r"\boxed{{\boxed{{{n}}}}}",
    r"\fbox{{{n}}}",
    r"\left({n}\right)",
    r"x = {n}",
    r"x \approx {n}",
    r"x\approx{n}",
    r"{n}\text{{ apples}}",
    r"{n}\,\text{{cm}}",
    r"\mathbf{{{n}}}",
]
#: how a response states the (math) answer
CONTEXTS = [
    "The answer is {m}.",
    "The answer is ${m}$.",
    "The final answer is ${m}$. I hope it is correct.",
    "**Final Answer:** ${m}$",
    "### Final Answer\n\n${m}$",
    "First 2 + 3 = 5, then 5 * 4 = 20.\nSo the total is $\\boxed{{{m}}}$ in all.",
    "We add 2 + 2 = 4.\n\\[ {m} \\]",
]
#: prose-only decorations of a plain number
PROSE = ["The answer is **{n}**.", "**Final Answer:** {n}", "So she has {n} apples left.", "{n}"]


def random_value(rng: random.Random) -> Fraction:
    kind = rng.choice(["int", "big", "decimal", "fraction"])
    sign = -1 if rng.random() < 0.15 else 1
    if kind == "int":
        return Fraction(sign * rng.randint(0, 999))
    if kind == "big":
        return Fraction(sign * rng.randint(1000, 10**9))
    if kind == "decimal":
        return Fraction(sign * rng.randint(1, 10**7), rng.choice([10, 100, 4, 8]))
    b = rng.randint(2, 40)
    a = rng.randint(1, 5 * b)
    x = Fraction(sign * a, b)
    return x if x.denominator > 1 else x + Fraction(1, 2)


def render(x: Fraction, rng: random.Random) -> str:
    """``x`` written the way an LLM might: a number form, a decoration, a context."""
    terminating = format_number(x).lstrip("-").replace(".", "").isdigit()
    if x.denominator == 1 or (terminating and rng.random() < 0.8):
        n = render_decimal(x, rng)
    else:
        n = render_fraction(x, rng)
    if rng.random() < 0.25 and "\\" not in n and "{" not in n:
        return rng.choice(PROSE).format(n=n)
    m = rng.choice(MATH).format(n=n)
    return rng.choice(CONTEXTS).format(m=m)


def changed_digit(x: Fraction, rng: random.Random) -> Fraction:
    """``x`` with one digit of its canonical form changed (to another value)."""
    text = format_number(x)
    while True:
        i = rng.choice([k for k, ch in enumerate(text) if ch.isdigit()])
        new = text[:i] + rng.choice([d for d in "0123456789" if d != text[i]]) + text[i + 1 :]
        if new.endswith("/0") or re.search(r"/0+$", new):
            continue
        y = parse_gold(new)
        if y != x:
            return y


@pytest.mark.parametrize("seed", range(20))
def test_rendered_numbers_are_read(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        x = random_value(rng)
        text = render(x, rng)
        ex = extract(text)
        assert ex.value == x, (text, format_number(x), ex)
        assert check(text, format_number(x)).correct, text
        assert not check(text, format_number(changed_digit(x, rng))).correct, text
