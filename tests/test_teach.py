"""The teacher stage: files and schema, the filter, dedupe, and resume (in-process and SIGKILL)."""

from __future__ import annotations

import doctest
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import pytest

from siked.config import TeacherConfig
from siked.data import Problem, load_problems
from siked.engines.base import Completion, Engine, GenerateRequest, Prompt
from siked.io import read_json, read_jsonl
from siked.records import Record
from siked.strategies import get_strategies, parse_teacher_prompt
from siked.teach import KEPT, SAMPLES, STATS, select_kept, teach

ROOT = Path(__file__).resolve().parent.parent
RECORD_KEYS = set(Record.__dataclass_fields__)


def keys(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(r["qid"], r["strategy"], r["sample"]) for r in rows]


# -- gold on real questions ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def train30() -> list[Problem]:
    return load_problems("gsm8k", "train", limit=30)


def test_teach_gold_writes_the_three_files(train30: list[Problem], tmp_path: Path) -> None:
    cfg = TeacherConfig(chunk_size=7)
    stats = teach(train30, cfg, tmp_path, ["cot", "l2m", "pot"], progress=False)
    samples = read_jsonl(tmp_path / SAMPLES)
    kept = read_jsonl(tmp_path / KEPT)
    assert len(samples) == 90 and len(set(keys(samples))) == 90
    for r in samples:
        Record.from_dict(r)
        assert r["source"] == "teacher" and r["iteration"] == -1 and r["sample"] == 0
        assert {"finish_reason", "prompt_tokens", "completion_tokens", "error"} <= r.keys()
    for r in kept:
        assert set(r) == RECORD_KEYS
        assert r["correct"] and r["status"] == "ok"
    assert Counter((r["qid"], r["strategy"]) for r in kept).most_common(1)[0][1] == 1
    # kept is ordered by question, then strategy
    order = {p.id: i for i, p in enumerate(train30)}
    s_order = {"cot": 0, "l2m": 1, "pot": 2}
    ranks = [(order[r["qid"]], s_order[r["strategy"]]) for r in kept]
    assert ranks == sorted(ranks)
    assert read_json(tmp_path / STATS) == stats
    assert stats["questions"] == 30 and stats["samples"] == 90 and stats["kept"] == len(kept)
    assert stats["yield"]["cot"] == 1.0 and stats["yield"]["pot"] >= 0.9
    assert sum(stats["solved_by_count"].values()) == 30
    assert stats["engine"] == "gold" and stats["model"] == "gsm8k-human"
    pot_kept = [r for r in kept if r["strategy"] == "pot"]
    assert all(r["rule"] == "program" for r in pot_kept)
    # rerunning does nothing new and gives the same files
    before = (tmp_path / KEPT).read_bytes()
    again = teach(train30, cfg, tmp_path, ["cot", "l2m", "pot"], progress=False)
    assert again["generated"] == 0 and again["resumed_samples"] == 90
    assert again["model"] == "gsm8k-human" and again["engine_stats"] is None
    assert (tmp_path / KEPT).read_bytes() == before


# -- a fake LLM teacher --------------------------------------------------------------------------


class FakeTeacher(Engine):
    """Answers every teacher prompt correctly in its strategy's format; counts requests and can
    crash on a given call (like a run killed mid-way)."""

    name = "fake"

    def __init__(self, answers: dict[str, Fraction], crash_on_call: int | None = None) -> None:
        super().__init__()
        self.answers = answers
        self.crash_on_call = crash_on_call
        self.calls = 0
        self.requested: list[tuple[str, str, int]] = []  # (question, strategy, sample)

    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise RuntimeError("teacher crashed")
        assert all(s is not None for s in request.seeds)
        out = []
        for prompt in prompts:
            found = parse_teacher_prompt(prompt)
            assert found is not None, "not a teacher prompt"
            strategy, question = found[0].name, found[1]
            a = self.answers[question]
            row = []
            for j in range(request.n):
                self.requested.append((question, strategy, j))
                text = {
                    "cot": f"It is {a} (way {j % 2}).\nThe answer is {a}.",
                    "l2m": f"Q1: What is it?\nA1: It is {a} (way {j % 2}).\nThe answer is {a}.",
                    "pot": f"```python\nanswer = {a}  # way {j % 2}\n```",
                }[strategy]
                row.append(Completion(text, "stop", 100, 10))
            out.append(row)
        return out


def prompt_question(prompt: Prompt) -> str | None:
    """The question a few-shot prompt asks (the last ``Question: ...``), or None."""
    if isinstance(prompt, str):
        text = prompt
    else:
        users = [m["content"] for m in prompt if m.get("role") == "user"]
        text = users[-1] + "\nAnswer:" if users else ""
    _, sep, tail = text.rpartition("Question:")
    question, sep2, _ = tail.partition("\nAnswer:")
    return question.strip() if sep and sep2 else None


def problems(k: int) -> list[Problem]:
    return [Problem(f"q{i:03d}", f"What is {i} plus {i}?", Fraction(2 * i)) for i in range(k)]


def answers(ps: list[Problem]) -> dict[str, Fraction]:
    return {p.question: p.answer for p in ps}


def test_fake_teacher_resume_does_not_ask_again(tmp_path: Path) -> None:
    ps = problems(12)
    cfg = TeacherConfig(engine="hf", model="fake-70b", chunk_size=4)  # 3 calls per chunk
    first = FakeTeacher(answers(ps), crash_on_call=5)  # dies inside the second chunk
    with pytest.raises(RuntimeError, match="crashed"):
        teach(ps, cfg, tmp_path, progress=False, engine=first)
    written = read_jsonl(tmp_path / SAMPLES)
    assert len(written) == 12  # the first chunk: 4 questions x 3 strategies
    assert not (tmp_path / KEPT).exists()

    second = FakeTeacher(answers(ps))
    stats = teach(ps, cfg, tmp_path, progress=False, engine=second)
    asked_again = {(q, s) for q, s, _ in second.requested}
    done_before = {(p.question, r["strategy"]) for r in written for p in ps if p.id == r["qid"]}
    assert not asked_again & done_before
    assert len(second.requested) == 36 - 12 and second.calls == 6
    rows = read_jsonl(tmp_path / SAMPLES)
    assert sorted(keys(rows)) == sorted({(p.id, s, 0) for p in ps for s in ("cot", "l2m", "pot")})
    assert stats["kept"] == 36 and stats["resumed_samples"] == 12 and stats["generated"] == 24
    assert stats["tokens"] == {"prompt": 3600, "completion": 360, "reported": 36}
    assert stats["model"] == "fake-70b"

    third = FakeTeacher(answers(ps))
    teach(ps, cfg, tmp_path, progress=False, engine=third)
    assert third.calls == 0


class FakeChooser(FakeTeacher):
    """FakeTeacher that also answers free-choice prompts: question i picks pot (correct) when i
    is even, cot with a wrong answer when i % 3 == 1, and writes no tag otherwise."""

    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        free = [self._is_free(p) for p in prompts]
        if not any(free):
            return super()._generate(prompts, request)
        assert all(free)  # one call is one kind of prompt
        self.calls += 1
        assert all(s is not None for s in request.seeds)
        out = []
        for prompt in prompts:
            q = prompt_question(prompt)
            assert q is not None
            i, a = int(q.split()[2]), self.answers[q]
            row = []
            for j in range(request.n):
                self.requested.append((q, "choice", j))
                if i % 2 == 0:
                    text = f"[pot]: ```python\nanswer = {a}\n```"
                elif i % 3 == 1:
                    text = f"[cot]: It is {a + 1}.\nThe answer is {a + 1}."
                else:
                    text = f"It is {a}.\nThe answer is {a}."
                row.append(Completion(text, "stop", 50, 5))
            out.append(row)
        return out

    @staticmethod
    def _is_free(prompt: Prompt) -> bool:
        from siked.strategies import free_choice_prompt

        q = prompt_question(prompt)
        return q is not None and prompt == free_choice_prompt(
            q, get_strategies(), not isinstance(prompt, str)
        )


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_free_choice_pass_measures_the_teachers_choice(tmp_path: Path, api: str) -> None:
    from siked.teach import CHOICE

    ps = problems(6)  # i = 0..5: pot pot pot (0, 2, 4), cot (1), untagged (3, 5)
    cfg = TeacherConfig(engine="hf", model="fake-70b", api=api, free_choice_n=2, chunk_size=4)
    eng = FakeChooser(answers(ps))
    stats = teach(ps, cfg, tmp_path, progress=False, engine=eng)
    fc = stats["free_choice"]
    assert fc["samples"] == 12 and fc["questions"] == 6 and fc["n"] == 2
    assert fc["p_choice"] == pytest.approx(
        {"cot": 1 / 6, "l2m": 0.0, "pot": 0.5, "none": 1 / 3}, abs=1e-6
    )
    assert fc["per_strategy"]["pot"] == {"chosen": 6, "correct": 6, "accuracy": 1.0}
    assert fc["per_strategy"]["cot"] == {"chosen": 2, "correct": 0, "accuracy": 0.0}
    assert fc["accuracy"] == 0.5
    rows = read_jsonl(tmp_path / CHOICE)
    assert sorted((r["qid"], r["sample"]) for r in rows) == [(p.id, j) for p in ps for j in (0, 1)]
    untagged = [r for r in rows if r["strategy"] == "none"]
    assert {(r["status"], r["error"], r["correct"]) for r in untagged} == {
        ("invalid", "no strategy tag", False)
    }
    assert all(r["rule"] == "program" for r in rows if r["strategy"] == "pot")
    # the forced per-strategy samples (D_LLM, siked's P_LLM) are unaffected
    assert stats["kept"] == 18 and read_json(tmp_path / STATS)["free_choice"] == fc
    from siked.teach import format_stats

    assert "free choice (12 samples): cot 16.7%, l2m 0.0%, pot 50.0%, none 33.3%" in format_stats(
        stats
    )
    # a rerun asks for nothing, a larger n only for the new samples
    again = FakeChooser(answers(ps))
    teach(ps, cfg, tmp_path, progress=False, engine=again)
    assert again.requested == []
    more = FakeChooser(answers(ps))
    stats = teach(ps, cfg.model_copy(update={"free_choice_n": 3}), tmp_path, progress=False,
                  engine=more)  # fmt: skip
    grown = read_jsonl(tmp_path / CHOICE)
    assert grown[:12] == rows and sorted(r["sample"] for r in grown[12:]) == [2] * 6
    assert stats["free_choice"]["samples"] == 18


def test_free_choice_needs_an_llm_teacher() -> None:
    from siked.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"teacher.*free_choice_n: the gold teacher"):
        load_config(None, ["teacher.free_choice_n=1"])
    assert load_config(None, ["teacher.engine=openai", "teacher.free_choice_n=1"]).teacher


def test_partial_unit_keeps_its_seeds(tmp_path: Path) -> None:
    """A unit cut in the middle (kill between two rows) gets only its missing samples."""
    ps = problems(3)
    cfg = TeacherConfig(engine="hf", model="m", n=3, keep_per_strategy=3, chunk_size=8)
    full = tmp_path / "full"
    teach(ps, cfg, full, ["pot"], progress=False, engine=FakeTeacher(answers(ps)))
    part = tmp_path / "part"
    part.mkdir()
    rows = (full / SAMPLES).read_text().splitlines(keepends=True)
    (part / SAMPLES).write_text("".join(rows[:4]) + rows[4][:20])  # + a torn line
    (part / "teach.json").write_bytes((full / "teach.json").read_bytes())
    eng = FakeTeacher(answers(ps))
    teach(ps, cfg, part, ["pot"], progress=False, engine=eng)
    got = read_jsonl(part / SAMPLES)
    assert sorted(keys(got)) == sorted(keys(read_jsonl(full / SAMPLES)))
    assert len(got) == 9
    assert (part / KEPT).read_text() == (full / KEPT).read_text()


def test_dedupe_and_keep_per_strategy(tmp_path: Path) -> None:
    ps = problems(4)
    cfg = TeacherConfig(engine="hf", model="m", n=4, keep_per_strategy=3, temperature=0.7)
    stats = teach(
        ps, cfg, tmp_path, ["cot", "pot"], progress=False, engine=FakeTeacher(answers(ps))
    )
    kept = read_jsonl(tmp_path / KEPT)
    # 4 samples per unit but only 2 distinct texts ("way 0", "way 1"): 2 kept each
    assert Counter((r["qid"], r["strategy"]) for r in kept) == {
        (p.id, s): 2 for p in ps for s in ("cot", "pot")
    }
    assert [r["sample"] for r in kept[:2]] == [0, 1]
    assert stats["per_strategy"]["cot"] | {"status_counts": None} == {
        "samples": 16,
        "valid": 16,
        "correct": 16,
        "kept": 8,
        "questions_solved": 4,
        "yield": 1.0,
        "sample_yield": 1.0,
        "status_counts": None,
    }


def test_filter_rejects_wrong_and_invalid(tmp_path: Path) -> None:
    ps = problems(3)
    wrong = {p.question: p.answer + 1 for p in ps}
    stats = teach(
        ps,
        TeacherConfig(engine="hf", model="m"),
        tmp_path,
        progress=False,
        engine=FakeTeacher(wrong),
    )
    assert stats["kept"] == 0 and stats["solved_by_count"] == {"0": 3, "1": 0, "2": 0, "3": 0}
    rows = read_jsonl(tmp_path / SAMPLES)
    assert all(r["status"] == "ok" and not r["correct"] for r in rows)

    class Sloppy(FakeTeacher):
        def _generate(
            self, prompts: list[Prompt], request: GenerateRequest
        ) -> list[list[Completion]]:
            out = super()._generate(prompts, request)
            return [
                [
                    Completion(
                        c.text.replace("Q1:", "").replace("answer =", "result ="), "stop", 1, 1
                    )
                    for c in row
                ]
                for row in out
            ]

    other = tmp_path / "sloppy"
    stats = teach(
        ps, TeacherConfig(engine="hf", model="m"), other, progress=False, engine=Sloppy(answers(ps))
    )
    rows = read_jsonl(other / SAMPLES)
    by = {r["strategy"]: r for r in rows if r["qid"] == ps[1].id}
    assert by["cot"]["correct"]
    assert by["l2m"]["status"] == "invalid" and "sub-question" in by["l2m"]["error"]
    assert by["pot"]["status"] == "invalid" and "answer" in by["pot"]["error"]
    assert stats["yield"] == {"cot": 1.0, "l2m": 0.0, "pot": 0.0}


def test_changed_settings_start_afresh(tmp_path: Path) -> None:
    ps = problems(2)
    teach(
        ps,
        TeacherConfig(engine="hf", model="a"),
        tmp_path,
        ["cot"],
        progress=False,
        engine=FakeTeacher(answers(ps)),
    )
    eng = FakeTeacher(answers(ps))
    teach(ps, TeacherConfig(engine="hf", model="b"), tmp_path, ["cot"], progress=False, engine=eng)
    assert eng.calls == 1 and len(eng.requested) == 2
    assert (tmp_path / (SAMPLES + ".stale")).exists()
    assert len(read_jsonl(tmp_path / SAMPLES)) == 2


def test_select_kept_ignores_other_questions() -> None:
    row = {k: None for k in RECORD_KEYS} | {
        "qid": "zz",
        "strategy": "cot",
        "text": "t",
        "correct": True,
        "sample": 0,
    }
    assert select_kept([row], 1, ["q1"], ["cot"]) == []


# -- the CLI, killed with SIGKILL and resumed ------------------------------------------------------


def _teach_cmd(out: Path, limit: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "siked", "teach", "--engine", "gold", "--dataset", "gsm8k",
        "--split", "train", "--limit", str(limit), "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_cli_sigkill_and_resume(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _teach_cmd(out, 300, "--chunk-size", "1"), cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _lines(out / SAMPLES) < 60 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    n_before = len(read_jsonl(out / SAMPLES))
    assert 0 < n_before < 900
    assert not (out / KEPT).exists()

    done = subprocess.run(_teach_cmd(out, 300), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pot" in done.stdout and "yield" in done.stdout
    rows = read_jsonl(out / SAMPLES)
    assert len(rows) == 900 and len(set(keys(rows))) == 900
    stats = read_json(out / STATS)
    assert stats["resumed_samples"] == n_before and stats["generated"] == 900 - n_before

    clean = tmp_path / "clean"
    done = subprocess.run(_teach_cmd(clean, 300), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / KEPT).read_text() == (clean / KEPT).read_text()
    by_key = {k: r for k, r in zip(keys(rows), rows, strict=True)}
    for r in read_jsonl(clean / SAMPLES):
        assert by_key[(r["qid"], r["strategy"], r["sample"])] == r


def test_cli_rejects_bad_input(tmp_path: Path) -> None:
    from siked.cli import main

    assert main(["teach", "--out", str(tmp_path), "--strategies", "tot", "--limit", "2"]) == 2
    assert main(["teach", "--out", str(tmp_path), "--set", "teacher.n=0", "--limit", "2"]) == 2
    assert main(["teach", "--out", str(tmp_path), "--engine", "nope", "--limit", "2"]) == 2


def test_cli_prints_yields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from siked.cli import main

    rc = main(["teach", "--engine", "gold", "--limit", "5", "--out", str(tmp_path), "--quiet",
               "--strategies", "cot,pot", "--set", "keep_per_strategy=2"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cot" in printed and "pot" in printed and "l2m" not in printed
    stats = json.loads((tmp_path / STATS).read_text())
    assert stats["keep_per_strategy"] == 2 and stats["strategies"] == ["cot", "pot"]


def test_doctests() -> None:
    import siked.cli.teach
    import siked.teach

    for mod in (siked.teach, siked.cli.teach):
        assert doctest.testmod(mod).failed == 0


# -- an engine registered by a plug-in gets what the built-in ones get -----------------------------


class PluginTeacher(FakeTeacher):
    """A teacher registered with ``register_engine``: it takes its request cache, run directory
    and data directory from the stage's context, as the built-in engines do."""

    built: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def from_config(cls, cfg: Any, model: Any = None, context: Any = None, **kw: Any) -> Any:
        cls.built.append(
            {
                "model": model,
                "cache": context.cache_dir,
                "run": context.run_dir,
                "data": context.data_dir,
            }
        )
        return cls(answers(problems(3)))


def test_a_registered_engine_gets_the_stage_context(tmp_path: Path) -> None:
    from siked.engines import ENGINES, register_engine

    register_engine("plugin-teacher", f"{__name__}:PluginTeacher")
    try:
        cfg = TeacherConfig(engine="plugin-teacher", model="m")  # the config accepts the name
        stats = teach(problems(3), cfg, tmp_path, ["cot"], progress=False, data_dir="/data")
    finally:
        ENGINES.unregister("plugin-teacher")
    assert stats["kept"] == 3
    assert PluginTeacher.built == [
        {"model": None, "cache": tmp_path / "cache", "run": tmp_path, "data": "/data"}
    ]
