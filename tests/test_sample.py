"""Student self-generation (siked.sample): row schema, modes, seeds, resume (judging and the
student's prompts: tests/test_student.py).

A scripted fake engine stands in for the student (fast); the integration test at the end runs
the real default student on two GSM8K training questions.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from siked.config import SampleConfig
from siked.data import Problem
from siked.engines.base import (
    Completion,
    Engine,
    GenerateRequest,
    Prompt,
    derive_seed,
    sample_seed,
)
from siked.io import read_json, read_jsonl
from siked.records import STATUSES, Record
from siked.sample import fingerprint, plan_requests, sample, sample_seeds, sample_stats
from siked.strategies import COMMON_STOP

# --------------------------------------------------------------------------------------------
# fakes shared with tests/test_evaluate.py


class FakeTokenizer:
    """Applies a trivial chat template (what student_prompt needs)."""

    chat_template = "fake"

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = False,
        add_generation_prompt: bool = True,
    ) -> str:
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + ("<assistant>" if add_generation_prompt else "")


def question_of(prompt: Prompt) -> str:
    """The question inside a fake-templated text prompt or chat messages."""
    if isinstance(prompt, str):
        return prompt.split("<user>", 1)[1].split("</user>", 1)[0]
    return next(m["content"] for m in prompt if m["role"] == "user")


def prefilled(prompt: Prompt) -> str | None:
    """The strategy pre-filled at the end of a text prompt (``...<assistant>[pot]:``)."""
    if isinstance(prompt, str) and not prompt.endswith("<assistant>"):
        return prompt.rsplit("<assistant>", 1)[1].strip("[]:")
    return None


Script = Callable[[str, str | None, int, int], str]


class FakeEngine(Engine):
    """Scripted engine: ``script(question, prefilled_strategy, sample_index, sample_seed)``.

    Follows the engine seed contract (sample ``j`` of prompt ``i`` gets
    ``derive_seed(seed_i, j)``) and records every call. ``fail_after`` raises on that call
    number (a crash mid-run).
    """

    name = "fake"

    def __init__(self, script: Script, tokenizer: Any = None, fail_after: int | None = None):
        super().__init__()
        self.script = script
        self.tokenizer = tokenizer if tokenizer is not None else FakeTokenizer()
        self.calls: list[dict[str, Any]] = []
        self.fail_after = fail_after
        self.closed = False

    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated crash")
        seeds = list(request.seeds)
        self.calls.append(
            {
                "prompts": list(prompts),
                "n": request.n,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "max_tokens": request.max_tokens,
                "stop": list(request.stops),
                "seeds": seeds,
            }
        )
        out = []
        for p, s in zip(prompts, seeds, strict=True):
            row = []
            for j in range(request.n):
                sj = sample_seed(s, j)
                text = self.script(question_of(p), prefilled(p), j, sj or 0)
                row.append(Completion(text, "stop", 10, len(text.split()), False))
            out.append(row)
        return out

    def close(self) -> None:
        self.closed = True


class FakeSandbox:
    """Runs the tests' own scripted programs in-process (never model output)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.runs = 0

    def run(self, code: str) -> Any:
        self.runs += 1
        env: dict[str, Any] = {}
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, env)
        except Exception as e:
            return SimpleNamespace(
                status="error", answer=None, error=repr(e), seconds=0.0, rule=None
            )
        if "answer" not in env:
            return SimpleNamespace(
                status="no_answer", answer=None, error=None, seconds=0.0, rule=None
            )
        return SimpleNamespace(
            status="ok", answer=repr(env["answer"]), error=None, seconds=0.0, rule="answer"
        )

    def run_many(self, codes: Sequence[str]) -> list[Any]:
        self.batches.append(list(codes))
        return [self.run(c) for c in codes]


PROBLEMS = [
    Problem("q1", "Ann has 2 apples and buys 3 more. How many apples?", Fraction(5)),
    Problem("q2", "A box holds 4 pens. How many pens are in 3 boxes?", Fraction(12)),
    Problem("q3", "Split 7 liters into 2 equal jugs. Liters per jug?", Fraction(7, 2)),
    Problem("q4", "Tom had 10 coins and lost 4. How many coins are left?", Fraction(6)),
]
GOLD = {p.question: p.answer for p in PROBLEMS}


def good(strategy: str, value: Fraction) -> str:
    """A correct, valid rationale body (no tag)."""
    v = str(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    if strategy == "cot":
        return f"We compute it.\nThe answer is {v}."
    if strategy == "l2m":
        return f"Q1: What is the result?\nA1: It is {v}.\nThe answer is {v}."
    return f"result = {value.numerator} / {value.denominator}\nanswer = result"


def free_script(question: str, forced: str | None, j: int, seed: int) -> str:
    """Free sampling script: sample j of each question is a different kind of response."""
    gold = GOLD[question]
    return [
        "[cot]: " + good("cot", gold),
        "[pot]: " + good("pot", gold),
        "[cot]: We compute it.\nThe answer is 999.",  # wrong
        "The answer is " + str(gold.numerator) + ".",  # no tag
        "[l2m]: " + good("l2m", gold),
        f"[cot]: it is {gold.numerator}",  # no marker: invalid, fallback answer
        "[foo]: 5",  # unknown tag
        "[pot]: print(1)",  # never assigns answer: invalid
        "[pot]: answer = 1 / 0",  # sandbox error
        f"[cot]: seed {seed % 1000}.\nThe answer is 1.",  # depends on the seed
    ][j % 10]


def forced_script(question: str, forced: str | None, j: int, seed: int) -> str:
    assert forced is not None, "forced sampling must pre-fill the tag"
    gold = GOLD[question]
    if j == 0:
        return " " + good(forced, gold)
    return " The answer is 0." if forced != "pot" else " answer = 0"


def cfg(**kw: Any) -> SampleConfig:
    return SampleConfig(**kw)


STRATS = ["cot", "l2m", "pot"]


# --------------------------------------------------------------------------------------------
# pure pieces


def test_seed_derivation() -> None:
    s = sample_seeds(42, 1, "q1")
    assert s == derive_seed(42, 1, "q1") == sample_seeds(42, 1, "q1")
    assert (
        len(
            {
                sample_seeds(42, 1, "q1"),
                sample_seeds(43, 1, "q1"),
                sample_seeds(42, 2, "q1"),
                sample_seeds(42, 1, "q2"),
                sample_seeds(42, 1, "q1", "pot"),
            }
        )
        == 5
    )
    reqs = plan_requests(PROBLEMS[:2], "forced", ["cot", "pot"], 42, 0)
    assert [(r.problem.id, r.forced) for r in reqs] == [
        ("q1", "cot"),
        ("q1", "pot"),
        ("q2", "cot"),
        ("q2", "pot"),
    ]
    assert reqs[1].seed == derive_seed(42, 0, "q1", "pot")


def test_sample_stats_numbers() -> None:
    rows = [
        {"qid": "a", "strategy": "cot", "status": "ok", "correct": True},
        {"qid": "a", "strategy": "cot", "status": "ok", "correct": False},
        {"qid": "a", "strategy": "pot", "status": "invalid", "correct": False},
        {"qid": "b", "strategy": "none", "status": "invalid", "correct": False},
    ]
    s = sample_stats(rows, STRATS)
    assert s["samples"] == 4 and s["valid"] == 2 and s["correct"] == 1 and s["yield"] == 0.25
    assert s["per_strategy"]["cot"] == {"samples": 2, "valid": 2, "correct": 1, "yield": 0.5}
    assert s["per_strategy"]["l2m"]["yield"] is None
    assert s["distribution"] == {"cot": 0.5, "l2m": 0.0, "pot": 0.25, "none": 0.25}
    assert s["questions"] == 2 and s["questions_solved"] == 1
    assert s["status_counts"] == {"invalid": 2, "ok": 2}


# --------------------------------------------------------------------------------------------
# the stage with the fake engine


def run_free(tmp: Path, engine: FakeEngine, **kw: Any) -> dict[str, Any]:
    return sample(
        PROBLEMS,
        "fake-model",
        cfg(k=10, max_tokens=64),
        tmp / "samples.jsonl",
        iteration=2,
        seed=7,
        strategies=STRATS,
        engine=engine,
        progress=False,
        sandbox=FakeSandbox(),
        **kw,
    )


def test_free_rows_schema_and_stats(tmp_path: Path) -> None:
    engine = FakeEngine(free_script)
    stats = run_free(tmp_path, engine, chunk_size=3)
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 40
    for r in rows:
        Record.from_dict(r)  # every key of the schema is there
        extra = {"finish_reason", "completion_tokens", "error"}  # as teacher rows
        assert set(r) == set(Record.__dataclass_fields__) | extra
        assert r["source"] == "student" and r["iteration"] == 2
        assert r["status"] in STATUSES
        assert not (r["correct"] and r["status"] != "ok")
    q3 = [r for r in rows if r["qid"] == "q3"]
    assert [r["sample"] for r in q3] == list(range(10))
    assert q3[0]["gold"] == "3.5" and q3[0]["question"] == PROBLEMS[2].question  # format_number
    assert [r["strategy"] for r in q3] == [
        "cot",
        "pot",
        "cot",
        "none",
        "l2m",
        "cot",
        "none",
        "pot",
        "pot",
        "cot",
    ]
    assert [r["correct"] for r in q3] == [True, True, False, False, True] + [False] * 5
    assert [r["status"] for r in q3] == [
        "ok",
        "ok",
        "ok",
        "invalid",
        "ok",
        "invalid",
        "invalid",
        "invalid",
        "error",
        "ok",
    ]
    assert q3[0]["error"] is None and q3[3]["error"] == "no strategy tag"
    assert "never assigns" in q3[7]["error"] and "ZeroDivisionError" in q3[8]["error"]
    assert q3[0]["finish_reason"] == "stop" and q3[0]["completion_tokens"] > 0
    # the engine got one prompt per question, n=k, the sampling settings and the free stops
    assert [len(c["prompts"]) for c in engine.calls] == [3, 1]  # chunks of 3 questions
    call = engine.calls[0]
    assert call["n"] == 10 and call["temperature"] == 0.7 and call["top_p"] == 0.95
    assert call["max_tokens"] == 64 and call["stop"] == list(COMMON_STOP)
    assert call["seeds"] == [derive_seed(7, 2, q) for q in ("q1", "q2", "q3")]
    assert call["prompts"][0].endswith("<assistant>")  # nothing pre-filled in free mode
    assert "[cot]" in call["prompts"][0]  # the free instruction lists the tags
    # stats
    assert stats["samples"] == 40 and stats["correct"] == 12 and stats["questions_solved"] == 4
    assert stats["per_strategy"]["cot"] == {"samples": 16, "valid": 12, "correct": 4, "yield": 0.25}
    assert stats["per_strategy"]["none"]["samples"] == 8
    assert stats["distribution"]["pot"] == 12 / 40
    assert stats["generated"] == 40 and stats["tokens"] > 0 and stats["resumed_questions"] == 0
    assert read_json(tmp_path / "sample_stats.json") == json.loads(json.dumps(stats))
    assert not engine.closed  # a passed engine is the caller's to close


def test_forced_mode(tmp_path: Path) -> None:
    engine = FakeEngine(forced_script)
    stats = sample(
        PROBLEMS[:2],
        "fake-model",
        cfg(k=2, mode="forced"),
        tmp_path / "s.jsonl",
        iteration=0,
        seed=1,
        strategies=["cot", "pot"],
        engine=engine,
        progress=False,
        sandbox=FakeSandbox(),
    )
    rows = read_jsonl(tmp_path / "s.jsonl")
    assert [(r["qid"], r["strategy"], r["sample"], r["correct"]) for r in rows] == [
        ("q1", "cot", 0, True), ("q1", "cot", 1, False),
        ("q1", "pot", 0, True), ("q1", "pot", 1, False),
        ("q2", "cot", 0, True), ("q2", "cot", 1, False),
        ("q2", "pot", 0, True), ("q2", "pot", 1, False),
    ]  # fmt: skip
    # one call per forced strategy, each pre-filled with the tag and its own stop strings
    assert len(engine.calls) == 2
    cot_call, pot_call = engine.calls
    assert all(p.endswith("[cot]:") for p in cot_call["prompts"])
    assert all(p.endswith("[pot]:") for p in pot_call["prompts"])
    assert "\n\n\n" in cot_call["stop"] and "\n\n\n" not in pot_call["stop"]
    assert pot_call["seeds"] == [derive_seed(1, 0, "q1", "pot"), derive_seed(1, 0, "q2", "pot")]
    assert rows[0]["text"] == "We compute it.\nThe answer is 5."
    assert "l2m" not in stats["per_strategy"]  # restricted to the given strategies
    assert stats["correct"] == 4 and stats["mode"] == "forced"


def test_chat_engine_gets_messages(tmp_path: Path) -> None:
    """An engine on a chat API (no tokenizer) gets messages; forced names the strategy."""
    engine = FakeEngine(lambda q, f, j, s: "answer = 5", tokenizer=None)
    engine.tokenizer = None
    sample(
        PROBLEMS[:1],
        "served-name",
        cfg(k=1, mode="forced", engine="openai", api="chat"),
        tmp_path / "s.jsonl",
        iteration=0,
        seed=1,
        strategies=["pot"],
        engine=engine,
        progress=False,
        sandbox=FakeSandbox(),
    )
    prompt = engine.calls[0]["prompts"][0]
    assert isinstance(prompt, list) and prompt[0]["role"] == "system"
    assert "[pot]" in prompt[0]["content"] and prompt[1]["content"] == PROBLEMS[0].question
    row = read_jsonl(tmp_path / "s.jsonl")[0]
    assert (row["strategy"], row["correct"]) == ("pot", True)


def test_tokens_of_samples_asked_for_together(tmp_path: Path) -> None:
    """A server answering k samples in one request reports their total only; sample_stats.json
    counts it (it said 0 tokens and 0 tok/s whenever k > 1)."""
    import sys

    from siked.engines.openai import OpenAIEngine

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        conf = cfg(k=3, engine="openai", model="fake-model", base_url=server.base_url)
        with OpenAIEngine(conf) as engine:
            stats = sample(
                PROBLEMS[:2],
                "fake-model",
                conf,
                tmp_path / "s.jsonl",
                iteration=0,
                seed=1,
                strategies=["cot"],
                engine=engine,
                progress=False,
                sandbox=FakeSandbox(),
            )
    assert [r.body.get("n") for r in server.completion_requests()] == [3, 3]
    assert stats["generated"] == 6
    assert stats["tokens"] == stats["engine_stats"]["completion_tokens"] > 0
    assert stats["tokens_per_second"] > 0


def test_same_seed_same_samples_and_k_prefix(tmp_path: Path) -> None:
    a = run_free(tmp_path / "a", FakeEngine(free_script), chunk_size=1)
    b = run_free(tmp_path / "b", FakeEngine(free_script), chunk_size=4)  # batching differs
    ra = read_jsonl(tmp_path / "a" / "samples.jsonl")
    rb = read_jsonl(tmp_path / "b" / "samples.jsonl")
    assert ra == rb and a["correct"] == b["correct"]
    # another seed changes the seed-dependent sample
    other = sample(
        PROBLEMS, "fake-model", cfg(k=10), tmp_path / "c.jsonl", iteration=2, seed=8,
        strategies=STRATS, engine=FakeEngine(free_script), progress=False, sandbox=FakeSandbox(),
    )  # fmt: skip
    rc = read_jsonl(tmp_path / "c.jsonl")
    assert other["samples"] == 40
    assert [r["text"] for r in rc if r["sample"] == 9] != [
        r["text"] for r in ra if r["sample"] == 9
    ]


def test_resume_after_crash(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    run_free(ref, FakeEngine(free_script), chunk_size=1)
    expected = read_jsonl(ref / "samples.jsonl")

    crash = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_free(crash, FakeEngine(free_script, fail_after=2), chunk_size=1)
    assert len(read_jsonl(crash / "samples.jsonl")) == 20  # two chunks made it
    # a torn partial row, as a kill mid-write leaves it
    with open(crash / "samples.jsonl", "a", encoding="utf-8") as f:
        f.write('{"qid": "q3", "stra')
    engine = FakeEngine(free_script)
    stats = run_free(crash, engine, chunk_size=1)
    assert read_jsonl(crash / "samples.jsonl") == expected  # no duplicates, same rows
    assert [len(c["prompts"]) for c in engine.calls] == [1, 1]  # only q3 and q4 generated
    assert stats["resumed_questions"] == 2 and stats["generated"] == 20
    assert stats["samples"] == 40

    # a finished file: nothing is generated again
    engine2 = FakeEngine(free_script)
    again = run_free(crash, engine2, chunk_size=1)
    assert engine2.calls == [] and again["samples"] == 40 and again["tokens_per_second"] is None


def test_resume_drops_incomplete_questions(tmp_path: Path) -> None:
    out = tmp_path / "samples.jsonl"
    run_free(tmp_path, FakeEngine(free_script))
    rows = read_jsonl(out)
    # keep q1 complete, q2 with only 3 of its 10 rows (a crash inside a chunk's write)
    with open(out, "w", encoding="utf-8") as f:
        for r in [*rows[:10], *rows[10:13]]:
            f.write(json.dumps(r) + "\n")
    engine = FakeEngine(free_script)
    run_free(tmp_path, engine)
    assert read_jsonl(out) == rows
    assert [question_of(p) for c in engine.calls for p in c["prompts"]] == [
        p.question for p in PROBLEMS[1:]
    ]


def test_other_settings_start_afresh(tmp_path: Path) -> None:
    out = tmp_path / "samples.jsonl"
    run_free(tmp_path, FakeEngine(free_script))
    engine = FakeEngine(free_script)
    stats = sample(
        PROBLEMS, "fake-model", cfg(k=2), out, iteration=2, seed=7, strategies=STRATS,
        engine=engine, progress=False, sandbox=FakeSandbox(),
    )  # fmt: skip
    assert stats["samples"] == 8 and len(read_jsonl(out)) == 8
    assert read_json(tmp_path / "samples.meta.json")["k"] == 2
    assert len(read_jsonl(tmp_path / "samples.jsonl.stale")) == 40  # moved aside, not deleted


def test_bad_inputs(tmp_path: Path) -> None:
    from siked.errors import DataError, SikedError

    foreign = tmp_path / "kept.jsonl"
    foreign.write_text('{"qid": "q1"}\n')
    with pytest.raises(SikedError, match="not written by siked sample"):
        sample(PROBLEMS, "m", cfg(), foreign, 0, 1, STRATS, engine=FakeEngine(free_script),
               progress=False)  # fmt: skip
    assert foreign.read_text() == '{"qid": "q1"}\n'

    with pytest.raises(SikedError, match="unknown strategy"):
        sample(PROBLEMS, "m", cfg(), tmp_path / "s.jsonl", 0, 1, ["cot", "nope"],
               engine=FakeEngine(free_script), progress=False)  # fmt: skip
    with pytest.raises(DataError, match="duplicate"):
        sample([PROBLEMS[0], PROBLEMS[0]], "m", cfg(), tmp_path / "s.jsonl", 0, 1, STRATS,
               engine=FakeEngine(free_script), progress=False)  # fmt: skip


def test_cli_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """``siked sample`` end to end on GSM8K train with the fake engine."""
    from siked import sample as sample_mod
    from siked.cli import main

    def script(question: str, forced: str | None, j: int, seed: int) -> str:
        return "[cot]: I think.\nThe answer is 3."

    monkeypatch.setattr(sample_mod, "open_student_engine", lambda c, m: FakeEngine(script))
    out = tmp_path / "samples.jsonl"
    rc = main([
        "sample", "--model", "x", "--dataset", "gsm8k", "--split", "train", "--limit", "3",
        "--out", str(out), "--k", "2", "--set", "max_tokens=16", "--quiet", "--iteration", "1",
    ])  # fmt: skip
    assert rc == 0
    rows = read_jsonl(out)
    assert len(rows) == 6 and {r["iteration"] for r in rows} == {1}
    stats = read_json(tmp_path / "sample_stats.json")
    assert stats["k"] == 2 and stats["max_tokens"] == 16
    assert "questions solved" in capsys.readouterr().out
    # a bad override names the key
    assert main(["sample", "--out", str(out), "--set", "k=0", "--quiet"]) == 2
    assert "k:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# integration: the real default student


@pytest.mark.integration
def test_sample_real_student(tmp_path: Path) -> None:
    from siked.data import load_problems
    from siked.models import BUNDLED_STUDENT

    problems = load_problems("gsm8k", "train", limit=2)
    c = SampleConfig(k=2, max_tokens=48, batch_size=4, dtype="float32")
    stats = sample(problems, BUNDLED_STUDENT, c, tmp_path / "samples.jsonl", iteration=0, seed=3,
                   strategies=STRATS, progress=False)  # fmt: skip
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 4 and stats["samples"] == 4 and stats["tokens"] > 0
    for r in rows:
        Record.from_dict(r)
        assert r["status"] in STATUSES and r["source"] == "student"
    assert {r["sample"] for r in rows} == {0, 1}
    # a rerun resumes: nothing generated, same rows
    again = sample(problems, BUNDLED_STUDENT, c, tmp_path / "samples.jsonl", iteration=0, seed=3,
                   strategies=STRATS, progress=False)  # fmt: skip
    assert again["generated"] == 0 and read_jsonl(tmp_path / "samples.jsonl") == rows


# --------------------------------------------------------------------------------------------
# an engine that ignores temperature (transformers serve without do_sample)


def greedy_script(question: str, forced: str | None, j: int, seed: int) -> str:
    return "[cot]: " + good("cot", GOLD[question])  # the same answer for every sample


@pytest.mark.parametrize(
    ("script", "temperature", "warns"),
    [(greedy_script, 0.7, True), (greedy_script, 0.0, False), (free_script, 0.7, False)],
)
def test_identical_samples_at_a_temperature_are_reported(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    script: Script,
    temperature: float,
    warns: bool,
) -> None:
    stats = sample(
        PROBLEMS,
        "fake-model",
        cfg(k=3, temperature=temperature),
        tmp_path / "samples.jsonl",
        iteration=1,
        seed=7,
        strategies=STRATS,
        engine=FakeEngine(script),
        progress=False,
        sandbox=FakeSandbox(),
    )
    assert stats["identical_samples"] == (1.0 if script is greedy_script else 0.0)
    assert stats["engine_stats"] is not None  # the engine's counters of this call
    greedy = [r for r in caplog.records if "decode greedily" in r.getMessage()]
    assert bool(greedy) is warns
    if warns:
        assert "generation_config" in greedy[0].getMessage()


def test_the_dtype_is_part_of_the_fingerprint() -> None:
    # samples drawn in bf16 are not resumed by a float32 rerun (other logits, other samples)
    def fp(dtype: str) -> dict[str, Any]:
        return fingerprint("m", SampleConfig(dtype=dtype), 1, 7, ["cot"])  # type: ignore[arg-type]

    assert fp("bfloat16") != fp("float32") != fp("auto")
    assert "dtype" not in fp("auto")  # as written before the dtype counted


def test_the_dtype_auto_resolves_to_is_part_of_the_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from siked.engines.openvino import OpenVINOEngine

    monkeypatch.setattr(OpenVINOEngine, "auto_dtype", classmethod(lambda cls, cfg: "float32"))
    cfg = SampleConfig(engine="openvino")
    assert fingerprint("m", cfg, 1, 7, ["cot"])["auto_dtype"] == "float32"
    assert "auto_dtype" not in fingerprint(
        "m", SampleConfig(engine="openvino", dtype="float32"), 1, 7, ["cot"]
    )
