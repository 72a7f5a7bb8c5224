"""The student layer (siked.student): parsing and judging responses, prompts through any
engine, and how a server names a local student. The stage tests are in test_sample.py, whose
fakes these tests share."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from test_sample import (
    GOLD,
    PROBLEMS,
    STRATS,
    FakeEngine,
    FakeSandbox,
    FakeTokenizer,
    cfg,
    free_script,
    good,
)

from siked.strategies import COMMON_STOP
from siked.student import Request, Student, judge, parse_response, stop_strings


def test_parse_response() -> None:
    assert parse_response("[cot]: x", STRATS) == ("cot", "x", None)
    assert parse_response("[pot]: x", ["cot"])[0] is None
    assert parse_response("no tag", STRATS) == (None, "no tag", "no strategy tag")
    assert parse_response("[zzz]: 1", STRATS)[2] == "unknown strategy tag"
    # forced over a chat API (no pre-fill): an untagged response counts as the forced strategy
    assert parse_response("answer = 1", STRATS, forced="pot") == ("pot", "answer = 1", None)
    assert parse_response("[cot]: x", STRATS, forced="pot")[0] is None


def test_stop_strings() -> None:
    assert stop_strings(STRATS, None) == list(COMMON_STOP)
    assert "\n\n\n" in stop_strings(STRATS, "cot")
    assert "\n\n\n" not in stop_strings(STRATS, "pot")


def test_judge_statuses() -> None:
    sb = FakeSandbox()
    gold = Fraction(5)
    outs = [free_script(PROBLEMS[0].question, None, j, 123) for j in range(9)]
    got = judge([(o, None, gold) for o in outs], STRATS, sandbox=sb)
    summary = [(o.strategy, o.correct, o.valid, o.fallback, o.status, o.accepted) for o in got]
    assert summary == [
        ("cot", True, True, False, "ok", True),
        ("pot", True, True, False, "ok", True),
        ("cot", False, True, False, "ok", False),
        ("none", True, False, False, "ok", False),  # right answer, but no tag
        ("l2m", True, True, False, "ok", True),
        ("cot", True, False, True, "ok", False),  # fallback + no marker
        ("none", True, False, True, "ok", False),  # unknown tag; last number fallback
        ("pot", False, False, False, "no_answer", False),  # prints, never assigns
        ("pot", False, True, False, "error", False),
    ]
    assert got[1].text == "result = 5 / 1\nanswer = result"
    assert got[3].text == "The answer is 5."
    assert got[6].text == "[foo]: 5"  # unknown tag: the whole response is kept
    # all programs of the batch went to the sandbox together
    assert len(sb.batches) == 1 and len(sb.batches[0]) == 3


def test_student_run_shapes() -> None:
    engine = FakeEngine(free_script)
    student = Student(engine, STRATS, tokenizer=FakeTokenizer(), sandbox=FakeSandbox())
    reqs = [Request(PROBLEMS[0], None, 1), Request(PROBLEMS[1], "cot", 2)]
    engine.script = lambda q, f, j, s: f" {good(f, GOLD[q])}" if f else "[cot]: The answer is 5."
    out = student.run(reqs, n=2, temperature=0.7, top_p=0.9, max_tokens=8)
    assert [len(o) for o in out] == [2, 2]
    assert out[1][0].output.startswith("[cot]: ") and out[1][0].accepted
    assert out[0][0].finish_reason == "stop" and out[0][0].tokens == 5


def test_served_student_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siked.student import open_student_engine as open_engine

    (tmp_path / "iter_00" / "merged").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    url = "http://127.0.0.1:9/v1"
    # a server started elsewhere resolves a relative path against its own directory
    with open_engine(cfg(engine="openai", base_url=url), "iter_00/merged") as e:
        assert e.model == str(tmp_path / "iter_00" / "merged")  # type: ignore[attr-defined]
    with open_engine(cfg(engine="openai", base_url=url), "org/hub-model") as e:
        assert e.model == "org/hub-model"  # type: ignore[attr-defined]
    with open_engine(cfg(engine="openai", base_url=url, model="served"), "iter_00/merged") as e:
        assert e.model == "served"  # type: ignore[attr-defined]
