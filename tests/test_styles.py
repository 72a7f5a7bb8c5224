"""Prompt styles (``teacher.prompt_style``): the authors' layout and exemplars, the gold
teacher's rationales in the style of the prompt, and what the student is trained on."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from siked import verify
from siked.authors_prompts import INSTRUCTIONS, PROBLEMS
from siked.chat import training_example
from siked.config import ConfigError, TeacherConfig, load_config
from siked.data import load_problems
from siked.engines.gold import GoldEngine
from siked.io import read_jsonl
from siked.loop import split_train_validation
from siked.strategies import (
    exemplar_questions,
    free_choice_prompt,
    get_strategies,
    get_strategy,
    parse_teacher_prompt,
)
from siked.styles import ALPACA_PREAMBLE, AUTHORS, SIKED, get_style, style_names
from siked.teach import KEPT, fingerprint, teach
from siked.text import collapse_whitespace

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("cot", "l2m", "pot")


@pytest.fixture(scope="module")
def sandbox() -> verify.SandboxLike:
    mod = pytest.importorskip("siked.sandbox")
    return mod.get_sandbox()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gsm8k_train() -> dict[str, Fraction]:
    return {collapse_whitespace(p.question): p.answer for p in load_problems("gsm8k", "train")}


# -- the teacher prompt --------------------------------------------------------------------------


def test_authors_prompt_for_a_gsm8k_question() -> None:
    question = load_problems("gsm8k", "test", limit=1)[0].question
    for name in NAMES:
        s = get_strategy(name)
        prompt = s.teacher_prompt(question, style="authors")
        assert isinstance(prompt, str)
        head = f"{ALPACA_PREAMBLE}\n\nInstruction:\n{INSTRUCTIONS[name]}\n\nInput:\n"
        assert prompt.startswith(head)
        assert prompt.endswith(f"\n\nInput:\n{question.strip()}\n\nResponse:\n")
        # eight exemplars, then the question: nine Input/Response blocks
        assert prompt.count("\nInput:\n") == 9 and prompt.count("\nResponse:\n") == 9
        blocks = prompt[len(head) :].split("\n\nInput:\n")
        for block, p in zip(blocks, PROBLEMS, strict=False):
            q, response = block.split("\n\nResponse:\n")
            assert q == p["question"] and response == p[name]  # plain text, no code fence
        assert "```" not in prompt and "Question:" not in prompt
        # it reads back (the gold teacher's way of answering it), text and chat
        found = parse_teacher_prompt(prompt)
        assert found is not None and (found.strategy.name, found.question) == (name, question)
        assert found.style == "authors"
        chat = s.teacher_prompt(question, chat=True, style="authors")
        assert chat == [{"role": "user", "content": prompt}]  # one user turn
        assert parse_teacher_prompt(chat) == found
        # the siked layout is another prompt, read back as such
        siked = parse_teacher_prompt(s.teacher_prompt(question, chat=True))
        assert siked is not None and siked.style == "siked" and siked.question == question


def test_stop_strings_end_the_response_at_the_next_input() -> None:
    for name in NAMES:
        stops = get_strategy(name).stop_strings(chat=False, style="authors")
        assert "\nInput:" in stops and "```" not in stops
    assert "```" in get_strategy("pot").stop_strings(chat=False)  # siked fences programs
    # the verifier cuts there too (it owns the stop strings)
    assert "\nInput:" in verify.stop_sequences()
    assert verify.truncate("Final Answer: 5\n\nInput:\nTom has 9.") == "Final Answer: 5"


def test_free_choice_prompt_in_the_authors_layout() -> None:
    strategies = get_strategies(list(NAMES))
    text = free_choice_prompt("How many?", strategies, style="authors")
    assert isinstance(text, str) and text.startswith(ALPACA_PREAMBLE)
    assert text.endswith("Input:\nHow many?\n\nResponse:\n")
    assert "Response:\n[cot]: " in text and "Response:\n[l2m]: Sub-question 1:" in text
    assert "Response:\n[pot]: truck_tank = 20" in text  # exemplar i in strategy i mod 3


# -- the exemplars ---------------------------------------------------------------------------------


def test_authors_exemplars_are_gsm8k_training_problems(gsm8k_train: dict[str, Fraction]) -> None:
    questions = {
        name: [ex.question for ex in get_strategy(name).form("authors").exemplars] for name in NAMES
    }
    assert all(len(q) == 8 for q in questions.values())
    assert questions["cot"] == questions["l2m"] == questions["pot"]  # the same eight problems
    for ex in get_strategy("cot").form("authors").exemplars:
        assert gsm8k_train[collapse_whitespace(ex.question)] == ex.answer  # GSM8K's gold
    assert exemplar_questions("authors") == {collapse_whitespace(q) for q in questions["cot"]}
    # siked's own exemplars are not GSM8K problems: the default style leaves nothing out
    assert not exemplar_questions("siked") & set(gsm8k_train)


def test_authors_text_exemplars_verify_against_gold() -> None:
    for name in ("cot", "l2m"):
        s = get_strategy(name)
        for ex in s.form("authors").exemplars:
            lines = ex.rationale.splitlines()
            assert lines[-1] == f"Final Answer: {verify.format_number(ex.answer)}"
            assert "<<" in ex.rationale  # calculator annotations, as in GSM8K
            assert s.validate(ex.rationale) is None, ex.question
            v = s.extract(ex.rationale, ex.answer)
            assert v.correct and v.rule == "marker", (ex.question, v)
            wrong = s.extract(ex.rationale, ex.answer + 1)
            assert not wrong.correct
    for ex in get_strategy("l2m").form("authors").exemplars:
        body = ex.rationale.splitlines()[:-1]
        assert len(body) % 2 == 0
        for k in range(len(body) // 2):
            assert body[2 * k].startswith(f"Sub-question {k + 1}: ")
            assert body[2 * k + 1].startswith(f"Answer to Sub-question {k + 1}: ")


def test_authors_program_exemplars_run_in_the_sandbox(sandbox: verify.SandboxLike) -> None:
    s = get_strategy("pot")
    exemplars = s.form("authors").exemplars
    for ex in exemplars:
        assert s.validate(ex.rationale) is None
        assert ex.rationale.splitlines()[-1].startswith("answer = ")
    # one solves an equation with sympy, imported explicitly (the sandbox allows sympy)
    assert sum("from sympy import" in ex.rationale for ex in exemplars) == 1
    verdicts = s.extract_many([(ex.rationale, ex.answer) for ex in exemplars], sandbox)
    assert all(v.correct and v.rule == "program" for v in verdicts), verdicts
    wrong = s.extract_many([(ex.rationale, ex.answer + 1) for ex in exemplars], sandbox)
    assert not any(v.correct for v in wrong)


# -- the gold teacher and the student's training text -----------------------------------------


def test_gold_teacher_answers_in_the_style_of_the_prompt(sandbox: verify.SandboxLike) -> None:
    engine = GoldEngine()
    problems = load_problems("gsm8k", "train", limit=20)[8:20]
    for name in NAMES:
        s = get_strategy(name)
        for style in ("siked", "authors"):
            prompts = [s.teacher_prompt(p.question, True, style) for p in problems]
            texts = [c[0].text for c in engine.generate(prompts)]
            assert texts == [
                engine.solve(p.id, name, question=p.question, style=style) for p in problems
            ]
            items = [(s.clean(t), p.answer) for t, p in zip(texts, problems, strict=True)]
            verdicts = s.extract_many(items, sandbox)
            assert (
                sum(
                    v.correct and s.validate(t) is None
                    for (t, _), v in zip(items, verdicts, strict=True)
                )
                >= 10
            )
            if name == "pot":  # plain Python in both styles
                continue
            marker = get_style(style).marker
            assert all(t.splitlines()[-1].startswith(marker) for t in texts if t)
            annotated = sum("<<" in t for t in texts)  # GSM8K's calculator annotations
            assert annotated == 0 if style == "siked" else annotated >= 10
        if name == "l2m":
            authors = engine.solve(
                problems[0].id, "l2m", question=problems[0].question, style="authors"
            )
            assert authors is not None and authors.startswith("Sub-question 1: ")
            assert "\nAnswer to Sub-question 1: " in authors


def test_student_trains_on_the_format_the_teacher_was_shown(tmp_path: Path) -> None:
    problems = load_problems("gsm8k", "train", limit=20)[8:20]
    cfg = TeacherConfig(prompt_style="authors")
    stats = teach(problems, cfg, tmp_path, list(NAMES), progress=False)
    assert stats["prompt_style"] == "authors" and stats["yield"]["cot"] == 1.0
    kept = read_jsonl(tmp_path / KEPT)
    by_strategy = Counter(r["strategy"] for r in kept)
    assert by_strategy["cot"] == 12 and by_strategy["l2m"] >= 11
    for r in kept:
        ex = training_example(r["question"], r["strategy"], r["text"])
        completion = ex["completion"][0]["content"]
        assert completion.startswith(f"[{r['strategy']}]: ")
        if r["strategy"] == "cot":
            assert "<<" in completion and completion.endswith(f"Final Answer: {r['gold']}")
        if r["strategy"] == "l2m":
            assert completion.startswith("[l2m]: Sub-question 1: ")
            assert "\nAnswer to Sub-question 1: " in completion
        if r["strategy"] == "pot":
            assert "```" not in completion and "\nanswer = " in f"\n{completion}"


# -- configuration, resume and the data draw ---------------------------------------------------


def test_prompt_style_config_and_fingerprint() -> None:
    assert TeacherConfig().prompt_style == "siked" and style_names() == ["siked", "authors"]
    with pytest.raises(ConfigError, match=r"teacher\.prompt_style"):
        load_config(None, ["teacher.prompt_style=alpaca"])
    default = fingerprint(TeacherConfig(), 1, True)
    assert "prompt_style" not in default  # earlier runs' fingerprints stay valid
    assert fingerprint(TeacherConfig(prompt_style="authors"), 1, True) == {
        **default,
        "prompt_style": "authors",
    }
    assert AUTHORS.marker == verify.AUTHORS_ANSWER_MARKER and SIKED.marker == "The answer is"


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "paper").glob("*.yaml")))
def test_paper_presets_prompt_the_teacher_as_the_authors(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.teacher.prompt_style == "authors" and cfg.teacher.api == "completions"


def test_the_draw_leaves_the_exemplar_questions_out() -> None:
    cfg = load_config(None, ["data.validation_size=3000", "teacher.prompt_style=authors"])
    train, validation = split_train_validation(cfg)
    drawn = {collapse_whitespace(p.question) for p in train + validation}
    assert not drawn & exemplar_questions("authors")
    assert len(train) + len(validation) == 7473 - 8
    # the other questions keep their order; the default style draws as before
    base_train, base_val = split_train_validation(load_config(None, ["data.validation_size=3000"]))
    assert len(base_train) + len(base_val) == 7473
    kept = [p.id for p in base_val + base_train if collapse_whitespace(p.question) in drawn]
    assert kept == [p.id for p in validation + train]


def test_student_responses_in_the_authors_forms_are_judged_like_the_teacher(
    sandbox: verify.SandboxLike,
) -> None:
    from siked.student import judge

    first = get_strategy("l2m").form("authors").exemplars[0]
    responses = [
        (f"[{name}]: {get_strategy(name).form('authors').exemplars[0].rationale}", first.answer)
        for name in NAMES
    ]
    # an L2M sub-question left without its answer line is not valid in either style
    broken = "[l2m]: Sub-question 1: How many?\nSub-question 2: And now?\nFinal Answer: 5"
    outcomes = judge([(o, None, g) for o, g in [*responses, (broken, Fraction(5))]], NAMES, sandbox)
    assert [(o.strategy, o.correct, o.valid) for o in outcomes] == [
        ("cot", True, True),
        ("l2m", True, True),
        ("pot", True, True),
        ("l2m", True, False),
    ]
    assert outcomes[0].rule == "marker" and outcomes[2].rule == "program"


def test_the_teacher_stage_key_names_a_style_other_than_the_default() -> None:
    from siked.loop import teacher_inputs

    default = teacher_inputs(load_config(), [])
    assert "prompt_style" not in default["teacher"]  # runs made before the key stay done
    authors = teacher_inputs(load_config(None, ["teacher.prompt_style=authors"]), [])
    assert authors["teacher"] == {**default["teacher"], "prompt_style": "authors"}
