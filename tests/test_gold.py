"""The gold teacher: GSM8K human solutions rewritten into CoT, L2M and PoT."""

from __future__ import annotations

import ast
import doctest
from fractions import Fraction

import pytest

from siked import verify
from siked.config import TeacherConfig
from siked.data import load_problems
from siked.engines import make_engine
from siked.engines.gold import GoldEngine
from siked.gsm8k_rationales import (
    exact_value,
    gold_cot,
    gold_l2m,
    gold_pot,
    gold_rationale,
    name_from_words,
    normalize_expr,
    plain_equations,
    socratic_pairs,
    strip_annotations,
)
from siked.strategies import get_strategy

MAIN = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)
SOCRATIC = (
    "How many clips did Natalia sell in May? ** Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "How many clips did Natalia sell altogether in April and May? ** Natalia sold 48+24 = "
    "<<48+24=72>>72 clips altogether in April and May.\n#### 72"
)
QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)


def run_program(code: str) -> object:
    ns: dict[str, object] = {}
    exec(compile(code, "<gold>", "exec"), {}, ns)  # trusted: built from test strings
    return ns["answer"]


@pytest.fixture(scope="module")
def sandbox() -> verify.SandboxLike:
    from siked.sandbox import get_sandbox

    return get_sandbox()


# -- pure conversions ------------------------------------------------------------------------------


def test_cot_and_l2m_formats() -> None:
    cot = gold_cot(MAIN)
    assert cot == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\nThe answer is 72."
    )
    l2m = gold_l2m(SOCRATIC)
    assert l2m is not None
    assert l2m.splitlines()[0] == "Q1: How many clips did Natalia sell in May?"
    assert l2m.splitlines()[1] == "A1: Natalia sold 48/2 = 24 clips in May."
    assert l2m.endswith("\nThe answer is 72.")
    assert get_strategy("cot").validate(cot) is None
    assert get_strategy("l2m").validate(l2m) is None
    assert "<<" not in cot + l2m and "####" not in cot + l2m


def test_thousands_in_the_final_answer() -> None:
    assert gold_cot("It costs 2*600 = <<2*600=1200>>1200.\n#### 1,200") == (
        "It costs 2*600 = 1200.\nThe answer is 1200."
    )
    assert gold_cot("no final line") is None


def test_socratic_junk_is_cleaned() -> None:
    text = (
        "How many pies will they be able|endoftext|>|endoftext|> ** 6*2 = <<6*2=12>>12 pies.\n"
        "|endoftext|> ** 12 - 2 = <<12-2=10>>10 left.\n#### 10"
    )
    assert socratic_pairs(text) == [
        ("How many pies will they be able", "6*2 = 12 pies. 12 - 2 = 10 left.")
    ]


def test_pot_program() -> None:
    code = gold_pot(MAIN, SOCRATIC, QUESTION)
    assert code == "clips_sell_may = 48 / 2\nanswer = 48 + clips_sell_may"
    assert run_program(code) == 72
    # without the Socratic file, names come from the words after each result
    code = gold_pot(MAIN, "", QUESTION)
    assert code is not None and run_program(code) == 72
    assert code.splitlines()[0] == "clips_may = 48 / 2"


@pytest.mark.parametrize(
    ("raw", "expr"),
    [
        ("48/2", "48 / 2"),
        ("$1,200*2", "1200 * 2"),
        ("20%*50", "(20 / 100) * 50"),
        ("50 x 3", "50 * 3"),
        ("3×4÷2", "3 * 4 / 2"),
        ("10−4", "10 - 4"),
        ("2^10", "2 ** 10"),
        (".5*08", "0.5 * 8"),
        ("(3+4)*2 apples", "(3 + 4) * 2"),
        ("-3+5", "-3 + 5"),
    ],
)
def test_normalize_expr(raw: str, expr: str) -> None:
    assert normalize_expr(raw) == expr


@pytest.mark.parametrize("raw", ["", "abc", "3 +", "()", "import os", "2 ** ** 3"])
def test_normalize_expr_rejects(raw: str) -> None:
    assert normalize_expr(raw) is None


def test_exact_value() -> None:
    assert exact_value("0.1 + 0.2") == Fraction(3, 10)
    assert exact_value("2 ** 3 / 4") == 2
    assert exact_value("5 / (3 - 3)") is None


def test_robust_annotations() -> None:
    """Percent signs, commas, dollar signs and stray characters inside annotations."""
    main = (
        "The discount is <<20%*$1,500=300>>300 dollars.\n"
        "She pays 1500-300 = <<1,500-300=1200>>1200.\n"
        "Per month that is <<1200/12=100>>$100 .\n"
        "#### 100"
    )
    code = gold_pot(main, "", "A TV costs $1,500 with 20% off, paid over 12 months.")
    assert code is not None
    ast.parse(code)
    assert run_program(code) == 100
    assert "answer = " in code.splitlines()[-1]


def test_rounded_and_broken_annotations() -> None:
    # a rounded result is reproduced with round(); an unparsable one falls back to its value
    main = "Each gets 10/3 = <<10/3=3.33>>3.33.\nThen <<3.33*3=9.99>>9.99 in all.\n#### 9.99"
    code = gold_pot(main)
    assert code is not None and "round(10 / 3, 2)" in code
    assert run_program(code) == pytest.approx(9.99)
    code = gold_pot("It is <<what=7>>7 days.\nSo 7*2 = <<7*2=14>>14.\n#### 14")
    assert code is not None and run_program(code) == 14


def test_plain_equation_fallback() -> None:
    """A last step written without annotation still ends the program."""
    main = (
        "Carlos memorized 24/6=<<24/6=4>>4 digits of pi.\nSam memorized 4+6=10 digits of pi.\n"
        "#### 10"
    )
    code = gold_pot(main)
    assert code is not None
    assert code.splitlines()[-1] == "answer = digits_pi + 6"
    assert run_program(code) == 10
    eqs = plain_equations("So 250 calories / 1250 calories * 100% = 20% of them.")
    assert [e[:2] for e in eqs] == [("250 / 1250 * 100", "20")]


def test_names() -> None:
    assert name_from_words("How much does Weng earn per minute?") == "earn_minute"
    assert name_from_words("How many clips did Natalia sell in May?") == "clips_sell_may"
    assert name_from_words("What is 2 + 2?") is None
    code = gold_pot(
        "He buys <<3*4=12>>12 apples and <<2*5=10>>10 pears.\nIn all <<12+10=22>>22.\n#### 22"
    )
    assert code is not None
    names = [ln.split(" = ")[0] for ln in code.splitlines()]
    assert names[:2] == ["apples", "pears"]
    assert names[-1] == "answer"
    assert code.splitlines()[-1] == "answer = apples + pears"


def test_no_annotation_no_program() -> None:
    assert gold_pot("Let x be the age. Then 2x = 10 so x = 5.\n#### 5") is None


def test_strip_annotations() -> None:
    assert strip_annotations("a <<1+1=2>>2 b <<2*2=4>>4") == "a 2 b 4"


# -- the engine on real GSM8K training questions ------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> GoldEngine:
    return GoldEngine()


@pytest.fixture(scope="module")
def problems() -> list:
    return load_problems("gsm8k", "train", limit=40)


def test_make_engine_builds_gold() -> None:
    eng = make_engine(TeacherConfig())
    assert isinstance(eng, GoldEngine)
    assert eng.model == "gsm8k-human"


def test_gold_yields_on_real_questions(
    engine: GoldEngine, problems: list, sandbox: verify.SandboxLike
) -> None:
    yields = {}
    for name in ("cot", "l2m", "pot"):
        s = get_strategy(name)
        texts = [engine.solve(p.id, name, question=p.question) for p in problems]
        assert all(t for t in texts[:10])
        items = [(s.clean(t or ""), p.answer) for t, p in zip(texts, problems, strict=True)]
        verdicts = s.extract_many(items, sandbox)
        ok = [
            v.correct and s.validate(t) is None for (t, _), v in zip(items, verdicts, strict=True)
        ]
        yields[name] = sum(ok) / len(problems)
        if name == "pot":  # the programs really ran in the sandbox
            assert sum(v.status == "ok" and v.rule == "program" for v in verdicts) >= 36
    assert yields["cot"] == 1.0
    assert yields["l2m"] >= 0.95
    assert yields["pot"] >= 0.9


def test_generate_answers_teacher_prompts(engine: GoldEngine, problems: list) -> None:
    p = problems[0]
    for chat in (False, True):
        prompts = [get_strategy(n).teacher_prompt(p.question, chat) for n in ("cot", "l2m", "pot")]
        out = engine.generate(prompts, n=2, temperature=0.7, top_p=0.9, seed=[1, 2, 3])
        assert [len(o) for o in out] == [2, 2, 2]
        texts = [o[0].text for o in out]
        assert texts == [engine.solve(p.id, n, question=p.question) for n in ("cot", "l2m", "pot")]
        assert all(o[0].text == o[1].text and o[0].finish_reason == "stop" for o in out)
    unknown = get_strategy("cot").teacher_prompt("What is the airspeed of a swallow?")
    (c,) = engine.generate([unknown])[0]
    assert (c.text, c.finish_reason) == ("", "no_solution")
    assert engine.generate(["free text, no question"])[0][0].finish_reason == "no_solution"
    assert engine.solve(p.id, "equation") is None
    assert engine.solve("gsm8k-train-99999", "cot") is None


def test_unknown_prompts_get_no_solution() -> None:
    """A prompt that is no registered strategy's teacher prompt, or a strategy without a gold
    builder, gets an empty ``no_solution`` completion (no data needed to know that)."""
    eng = GoldEngine()
    out = eng.generate(["Question: What is 1 + 1?\nAnswer:"])
    assert (out[0][0].text, out[0][0].finish_reason) == ("", "no_solution")
    assert gold_rationale(None, "equation") is None  # type: ignore[arg-type]


def test_doctests() -> None:
    import siked.gsm8k_rationales

    assert doctest.testmod(siked.gsm8k_rationales).failed == 0
