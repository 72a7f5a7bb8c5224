"""Strategies: exemplars round-trip through the real filter, validity checks, tags, and a
fourth strategy added locally (an "equation" strategy solved by sympy in the sandbox)."""

from __future__ import annotations

import ast
import doctest
import re
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction

import pytest

from siked import strategies as S
from siked import verify
from siked.strategies import (
    Exemplar,
    Strategy,
    format_tagged,
    get_strategy,
    parse_tagged,
    register,
    strategy_names,
    unregister,
)
from siked.text import format_number

BUILTIN = ["cot", "l2m", "pot"]


@pytest.fixture(scope="module")
def sandbox() -> verify.SandboxLike:
    from siked.sandbox import get_sandbox

    return get_sandbox()


# -- registry and tags ---------------------------------------------------------------------------


def test_builtin_registry() -> None:
    assert strategy_names()[:3] == BUILTIN
    for name in BUILTIN:
        s = get_strategy(name)
        assert s.tag == f"[{name}]"
        assert s.description and s.instruction
    with pytest.raises(S.UnknownStrategyError, match="choose one of: cot, l2m, pot"):
        get_strategy("tot")
    with pytest.raises(ValueError, match="already registered"):
        register(get_strategy("cot"))
    with pytest.raises(ValueError, match="reserved"):
        register(replace(get_strategy("cot"), name=S.NO_STRATEGY))
    with pytest.raises(ValueError, match="bad strategy name"):
        register(replace(get_strategy("cot"), name="Bad Name"))


def test_tags_round_trip() -> None:
    for name in BUILTIN:
        text = get_strategy(name).exemplars[0].rationale
        assert parse_tagged(format_tagged(name, text)) == (name, text)
    assert parse_tagged("no tag") == (None, "no tag")
    assert parse_tagged("[tot]: x") == (None, "[tot]: x")
    assert parse_tagged("[pot]:\nanswer = 1") == ("pot", "answer = 1")
    assert parse_tagged(" [COT]:\n2 + 2 = 4.") == ("cot", "2 + 2 = 4.")  # the model's case


def test_answer_format_comes_from_the_strategy() -> None:
    assert get_strategy("cot").answer_format == verify.AnswerFormat("cot")
    assert get_strategy("pot").answer_format == verify.AnswerFormat("pot", program=True)
    assert get_strategy("l2m").student_label == "[l2m] least-to-most sub-questions"


@pytest.mark.parametrize("chat", [False, True])
def test_teacher_prompt_parses_back(chat: bool) -> None:
    q = "Ann has 3 pens and buys 2 more. How many pens does she have?"
    for name in BUILTIN:
        prompt = get_strategy(name).teacher_prompt(f"  {q}\n", chat=chat)
        found = S.parse_teacher_prompt(prompt)
        assert found is not None and (found[0].name, found[1]) == (name, q)
    assert S.parse_teacher_prompt("Question: 1+1?\nAnswer:") is None
    assert S.parse_teacher_prompt([{"role": "user", "content": "Question: 1+1?"}]) is None


# -- exemplars -------------------------------------------------------------------------------------


def test_same_eight_problems_in_every_strategy() -> None:
    per = [[(e.question, e.answer) for e in get_strategy(n).exemplars] for n in BUILTIN]
    assert len(per[0]) == 8
    assert per[0] == per[1] == per[2]
    assert len({q for q, _ in per[0]}) == 8


@pytest.mark.parametrize("name", ["cot", "l2m"])
def test_text_exemplars_extract_and_validate(name: str) -> None:
    s = get_strategy(name)
    for ex in s.exemplars:
        assert s.validate(ex.rationale) is None, ex.rationale
        assert s.clean(ex.rationale) == ex.rationale
        v = s.extract(ex.rationale, ex.answer)
        assert (v.correct, v.rule, v.fallback) == (True, "marker", False), (ex.question, v)
        assert ex.rationale.endswith(verify.marker_line(format_number(ex.answer)))


def test_pot_exemplars_run_in_the_sandbox(sandbox: verify.SandboxLike) -> None:
    s = get_strategy("pot")
    items = [(ex.rationale, ex.answer) for ex in s.exemplars]
    verdicts = s.extract_many(items, sandbox)
    for ex, v in zip(s.exemplars, verdicts, strict=True):
        assert s.validate(ex.rationale) is None
        assert "```" not in ex.rationale
        assert (v.correct, v.status, v.rule) == (True, "ok", "program"), (ex.question, v)
    # one at a time gives the same answers
    assert [s.extract(t, g, sandbox).answer for t, g in items] == [v.answer for v in verdicts]


def test_l2m_exemplars_use_the_canonical_format() -> None:
    for ex in get_strategy("l2m").exemplars:
        pairs = S.l2m_pairs(ex.rationale)
        assert len(pairs) >= 2
        assert all(q.endswith("?") and a for q, a in pairs)
        assert ex.rationale.count("\nA") == len(pairs)


# -- prompts ---------------------------------------------------------------------------------------


def test_text_prompt_shape() -> None:
    q = "Ann has 3 pens and buys 2 more. How many pens does she have?"
    cot = get_strategy("cot").teacher_prompt(q, chat=False)
    assert isinstance(cot, str)
    assert cot.startswith(get_strategy("cot").instruction)
    assert cot.endswith(f"\n\nQuestion: {q}\nAnswer:")
    assert cot.count("\nAnswer: ") == 8
    pot = get_strategy("pot").teacher_prompt(q, chat=False)
    assert isinstance(pot, str)
    assert pot.endswith(f"Question: {q}\nAnswer:\n```python\n")
    assert pot.count("```python\n") == 9
    assert "Answer: \n" not in pot


def test_chat_prompt_shape() -> None:
    q = "Ann has 3 pens and buys 2 more. How many pens does she have?"
    for name in BUILTIN:
        s = get_strategy(name)
        msgs = s.teacher_prompt(q, chat=True)
        assert isinstance(msgs, list)
        assert [m["role"] for m in msgs] == ["user", "assistant"] * 8 + ["user"]
        assert msgs[0]["content"].startswith(s.instruction)
        assert msgs[-1]["content"] == f"Question: {q}"
        assert msgs[1]["content"] == s.render(s.exemplars[0].rationale)


def test_stop_strings() -> None:
    assert "\nQuestion:" in get_strategy("cot").stop_strings()
    assert "\n\n\n" in get_strategy("l2m").stop_strings()
    pot = get_strategy("pot")
    assert "```" in pot.stop_strings(chat=False)
    assert "```" not in pot.stop_strings(chat=True)  # the reply opens its own fence
    assert "\n\n\n" not in pot.stop_strings()  # blank lines are normal in code


def test_clean() -> None:
    pot, cot = get_strategy("pot"), get_strategy("cot")
    assert pot.clean("Here:\n```python\nx = 2\nanswer = x\n```\nDone") == "x = 2\nanswer = x"
    assert pot.clean("x = 2\nanswer = x\n") == "x = 2\nanswer = x"
    assert cot.clean("2 + 2 = 4.\nThe answer is 4.\n\nQuestion: next") == (
        "2 + 2 = 4.\nThe answer is 4."
    )


# -- validity (negative cases) ---------------------------------------------------------------------

INVALID = [
    ("cot", "", "empty"),
    ("cot", "   \n ", "empty"),
    ("cot", "2 + 2 = 4, so she has 4 pens.", "final answer line"),
    ("l2m", "2 + 2 = 4.\nThe answer is 4.", "no sub-question"),
    ("l2m", "Q1: How many pens?\nThe answer is 4.", "no sub-question"),
    ("l2m", "Q1: Add the pens\nA1: 2 + 2 = 4.\nThe answer is 4.", "no sub-question"),
    ("l2m", "Q1: How many?\nA1: 4.\nQ2: And then?\nThe answer is 4.", "without an answer"),
    ("l2m", "Q1: How many?\nA2: 4.\nThe answer is 4.", "no sub-question"),
    ("l2m", "Q1: How many pens?\nA1: 2 + 2 = 4.", "final answer line"),
    ("pot", "answer = (2 + ", "not valid Python"),
    ("pot", "x = 2 + 2\nprint(x)", "never assigns 'answer'"),
    ("pot", "def f():\n    return 4\nf()", "never assigns 'answer'"),
]


@pytest.mark.parametrize(("name", "text", "why"), INVALID)
def test_invalid_rationales(name: str, text: str, why: str) -> None:
    reason = get_strategy(name).validate(text)
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("cot", "2 + 2 = 4.\nThe answer is 4."),
        ("l2m", "Q1: How many pens?\nA1: 2 + 2 = 4\npens.\nThe answer is 4."),
        ("pot", "answer: int = 4"),
        ("pot", "answer = 0\nfor i in range(3):\n    answer += i"),
    ],
)
def test_valid_rationales(name: str, text: str) -> None:
    assert get_strategy(name).validate(text) is None


# -- a fourth strategy, added locally ------------------------------------------------------------

_LET = re.compile(r"^Let ([a-z]) be ", re.MULTILINE)
_EQ = re.compile(r"^Equation: (.+?) = (.+)$", re.MULTILINE)


def equation_program(text: str) -> str:
    """The sympy program that solves an "equation" rationale for its first unknown."""
    unknown = _LET.findall(text)[0]
    lhs, rhs = _EQ.findall(text)[0]
    return "\n".join(
        [
            "import sympy",
            f"{unknown} = sympy.Symbol({unknown!r})",
            f"solutions = sympy.solve(sympy.Eq({lhs}, {rhs}), {unknown})",
            "answer = solutions[0]",
        ]
    )


def has_equation(text: str) -> str | None:
    if not _LET.search(text):
        return "no unknown ('Let x be ...')"
    eqs = _EQ.findall(text)
    if len(eqs) != 1:
        return "needs exactly one 'Equation: lhs = rhs' line"
    try:
        ast.parse(f"({eqs[0][0]}) - ({eqs[0][1]})", mode="eval")
    except SyntaxError:
        return "the equation is not an expression"
    return None


def solve_equation(text: str, gold: Fraction, sandbox: verify.SandboxLike | None) -> verify.Verdict:
    if has_equation(text) is not None:
        return verify.Verdict("equation", None, False, "none", "no_answer", "no equation")
    v = get_strategy("pot").extract(equation_program(text), gold, sandbox)
    return verify.Verdict("equation", v.answer, v.correct, "sympy", v.status, v.error)


EQUATION = Strategy(
    name="equation",
    description="write one equation for the unknown and let sympy solve it",
    instruction="Name the unknown with 'Let x be ...' and write one line 'Equation: ... = ...'.",
    exemplars=(
        Exemplar(
            "Liam is 4 years older than his sister Emma. In 6 years, the sum of their ages will "
            "be 40. How old is Emma now?",
            Fraction(12),
            "Let e be Emma's age now.\nEquation: (e + 6) + (e + 4 + 6) = 40",
        ),
        Exemplar(
            "A water tank holds 1,200 liters and is 1/3 full. A pump adds 50 liters of water per "
            "minute. How many minutes will it take to fill the tank?",
            Fraction(16),
            "Let m be the number of minutes.\nEquation: 1200 / 3 + 50 * m = 1200",
        ),
    ),
    validators=(has_equation,),
    extractor=solve_equation,
)


@pytest.fixture()
def equation() -> Iterator[Strategy]:
    register(EQUATION)
    try:
        yield EQUATION
    finally:
        unregister("equation")


def test_fourth_strategy(equation: Strategy, sandbox: verify.SandboxLike) -> None:
    assert strategy_names() == [*BUILTIN, "equation"]
    s = get_strategy("equation")
    prompt = s.teacher_prompt("A pen costs $2 more than a pencil. Together they cost $6.")
    assert isinstance(prompt, str) and prompt.endswith("Answer:")
    for ex in s.exemplars:
        assert s.validate(ex.rationale) is None
        v = s.extract(ex.rationale, ex.answer, sandbox)
        assert (v.correct, v.rule, v.answer) == (True, "sympy", format_number(ex.answer))
    wrong = "Let p be the pencil price.\nEquation: p + p + 2 = 6"
    assert s.validate(wrong) is None
    assert s.extract(wrong, Fraction(3), sandbox).correct is False  # p = 2, not 3
    assert s.validate("The pencil costs 2.") == "no unknown ('Let x be ...')"
    assert parse_tagged(format_tagged("equation", wrong)) == ("equation", wrong)
    from siked import chat

    assert "[equation] write one equation" in chat.instruction(forced="equation")
    # the student's free instruction offers it, after the built-in three
    assert chat.instruction().startswith(
        "Solve the math word problem with one strategy: [cot] chain of thought, "
    )
    assert (
        ", [pot] a Python program that stores the result in `answer`, or [equation] write one "
        "equation for the unknown and let sympy solve it. Begin with the tag" in chat.instruction()
    )
    # the prompt reads back as this strategy's (the gold teacher's way of knowing it)
    found = S.parse_teacher_prompt(s.teacher_prompt("How old is Emma?", chat=True))
    assert found is not None and found[0] is s


def test_fourth_strategy_is_gone_after_unregister(equation: Strategy) -> None:
    unregister("equation")
    assert strategy_names() == BUILTIN
    assert parse_tagged("[equation]: x")[0] is None
    from siked import chat

    assert "[equation]" not in chat.instruction()
    register(equation)  # the fixture unregisters it again


def test_doctests() -> None:
    import siked.strategies

    assert doctest.testmod(siked.strategies).failed == 0
