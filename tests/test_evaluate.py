"""Evaluation (siked.evaluate): eval.json numbers, modes, subsets, resume, the CLI.

A scripted fake engine (tests/test_sample.py) stands in for the model; the integration test
runs ``siked eval`` with the real default student on two GSM8K test questions.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from test_sample import GOLD, PROBLEMS, FakeEngine, FakeSandbox, good

from siked.config import DatasetSpec, EvalConfig
from siked.data import Problem
from siked.engines.base import derive_seed
from siked.evaluate import evaluate, format_table, resolve_datasets, subset, summarize
from siked.io import read_json, read_jsonl
from siked.stats import wilson_interval
from siked.strategies import COMMON_STOP

STRATS = ["cot", "l2m", "pot"]
PRED_KEYS = {"dataset", "qid", "question", "gold", "output", "strategy", "answer", "rule",
             "status", "correct"}  # fmt: skip


def free_script(question: str, forced: str | None, j: int, seed: int) -> str:
    """q1: cot right; q2: pot right; q3: cot without an answer; q4: no tag, right number."""
    assert forced is None and j == 0
    qid = next(p.id for p in PROBLEMS if p.question == question)
    return {
        "q1": "[cot]: 2 + 3 = 5.\nThe answer is 5.",
        "q2": "[pot]: boxes = 3\nanswer = boxes * 4",
        "q3": "[cot]: I cannot tell.",
        "q4": "So 10 - 4 = 6 coins are left.",
    }[qid]


def all_script(question: str, forced: str | None, j: int, seed: int) -> str:
    """cot solves q1, q2; pot solves q3; l2m nothing; q4 unsolved (oracle 3/4)."""
    assert forced is not None
    qid = next(p.id for p in PROBLEMS if p.question == question)
    right = {"cot": {"q1", "q2"}, "pot": {"q3"}, "l2m": set()}[forced]
    if qid in right:
        return " " + good(forced, GOLD[question])
    return " answer = -1" if forced == "pot" else " Q1: Hm?\nA1: 0.\nThe answer is 0."


def run(tmp: Path, script: Any, mode: str = "free", strategies: list[str] | None = None,
        datasets: Any = None, untagged: str = "extract", **kw: Any) -> dict[str, Any]:  # fmt: skip
    return evaluate(
        "fake-model",
        datasets if datasets is not None else [("validation", PROBLEMS)],
        EvalConfig(mode=mode, max_tokens=32, untagged=untagged),  # type: ignore[arg-type]
        tmp,
        strategies or STRATS,
        seed=5,
        engine=kw.pop("engine", None) or FakeEngine(script),
        progress=False,
        sandbox=FakeSandbox(),
        **kw,
    )


def test_free_mode_numbers(tmp_path: Path) -> None:
    engine = FakeEngine(free_script)
    result = run(tmp_path, free_script, engine=engine)
    d = result["datasets"]["validation"]
    assert d == {
        "n": 4,
        "questions": 4,
        "correct": 3,
        "accuracy": 0.75,
        "ci95": list(wilson_interval(3, 4)),
        "no_answer": 1,
        "untagged": 1,
        "untagged_correct": 1,
        "untagged_rule": "extract",
        "strategy_counts": {"cot": 2, "l2m": 0, "pot": 1, "none": 1},
        "strategy_distribution": {"cot": 0.5, "l2m": 0.0, "pot": 0.25, "none": 0.25},
        "per_strategy_accuracy": {"cot": 0.5, "l2m": None, "pot": 1.0, "none": 1.0},
        "oracle_accuracy": None,
    }
    assert (result["model"], result["mode"], result["seed"]) == ("fake-model", "free", 5)
    assert read_json(tmp_path / "eval.json") == json.loads(json.dumps(result))
    # greedy decoding, one prompt per question, the free stop strings
    call = engine.calls[0]
    assert call["temperature"] == 0.0 and call["n"] == 1 and call["max_tokens"] == 32
    assert call["stop"] == list(COMMON_STOP)
    assert call["seeds"][0] == derive_seed(5, "eval", "validation", "q1", None)
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert len(preds) == 4 and all(set(p) >= PRED_KEYS for p in preds)
    p4 = next(p for p in preds if p["qid"] == "q4")
    assert (p4["strategy"], p4["answer"], p4["rule"], p4["correct"]) == (
        "none",
        "6",
        "last_number",
        True,
    )
    assert p4["error"] == "no strategy tag" and p4["forced"] is None and p4["gold"] == "6"
    p3 = next(p for p in preds if p["qid"] == "q3")
    assert (p3["status"], p3["answer"], p3["correct"]) == ("no_answer", None, False)
    assert p3["output"] == "[cot]: I cannot tell."


def test_untagged_wrong_is_the_authors_rule(tmp_path: Path) -> None:
    """q4's answer has no strategy tag; its last number is right. The authors' scorer
    (inference/results.py:221-222) gives it -2048: wrong."""
    result = run(tmp_path, free_script, untagged="wrong")
    d = result["datasets"]["validation"]
    assert (d["correct"], d["accuracy"]) == (2, 0.5)
    assert (d["untagged"], d["untagged_correct"], d["untagged_rule"]) == (1, 1, "wrong")
    assert d["per_strategy_accuracy"]["none"] == 0.0
    assert d["ci95"] == list(wilson_interval(2, 4))
    p4 = next(p for p in read_jsonl(tmp_path / "predictions.jsonl") if p["qid"] == "q4")
    assert p4["correct"] is True  # the log keeps the extraction's verdict
    assert " 1 " in format_table(result).splitlines()[1]  # the untagged column


def test_all_mode_oracle(tmp_path: Path) -> None:
    engine = FakeEngine(all_script)
    result = run(tmp_path, all_script, mode="all", engine=engine)
    d = result["datasets"]["validation"]
    assert (d["n"], d["questions"], d["correct"]) == (12, 4, 3)
    assert d["accuracy"] == 0.25 and d["ci95"] == list(wilson_interval(3, 12))
    assert d["per_strategy_accuracy"] == {"cot": 0.5, "l2m": 0.0, "pot": 0.25}
    assert d["strategy_counts"] == {"cot": 4, "l2m": 4, "pot": 4, "none": 0}
    assert d["oracle_accuracy"] == 0.75
    assert [c["prompts"][0][-6:] for c in engine.calls] == ["[cot]:", "[l2m]:", "[pot]:"]
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert {(p["forced"], p["strategy"]) for p in preds} == {(s, s) for s in STRATS}
    assert "oracle" in format_table(result)


def test_forced_single_strategy(tmp_path: Path) -> None:
    result = run(tmp_path, all_script, mode="forced", strategies=["pot"])
    d = result["datasets"]["validation"]
    assert (d["n"], d["correct"], d["oracle_accuracy"]) == (4, 1, None)
    assert d["strategy_counts"] == {"pot": 4, "none": 0}
    assert d["per_strategy_accuracy"] == {"pot": 0.25}
    assert result["strategies"] == ["pot"]


def test_summarize_empty_and_unknown() -> None:
    s = summarize([], "free", ["cot"])
    assert (s["n"], s["accuracy"], s["ci95"]) == (0, None, [0.0, 1.0])
    s = summarize([{"qid": "a", "strategy": "weird", "correct": False, "answer": None}], "free",
                  ["cot"])  # fmt: skip
    assert s["strategy_counts"] == {"cot": 0, "none": 1}


def test_subset_is_seeded_and_nested() -> None:
    problems = [Problem(f"p{i}", f"question {i}", Fraction(i)) for i in range(100)]
    a = subset(problems, 10, 42, "gsm8k:test")
    assert a == subset(problems, 10, 42, "gsm8k:test")
    assert [p.id for p in a] != [f"p{i}" for i in range(10)]  # not the first N
    assert a == sorted(a, key=lambda p: int(p.id[1:]))  # file order kept
    assert subset(problems, 10, 43, "gsm8k:test") != a
    assert set(map(id, a)) <= set(map(id, subset(problems, 30, 42, "gsm8k:test")))
    assert subset(problems, None, 1, "x") == problems == subset(problems, 500, 1, "x")


def test_resolve_datasets() -> None:
    got = resolve_datasets(
        [DatasetSpec.parse("gsm8k:test:5"), "svamp:3", ("validation", PROBLEMS[:2])], seed=42
    )
    assert [(n, len(p)) for n, p in got] == [("gsm8k:test:5", 5), ("svamp:test:3", 3),
                                              ("validation", 2)]  # fmt: skip
    again = resolve_datasets(["gsm8k:test:5"], seed=42)
    assert [p.id for p in again[0][1]] == [p.id for p in got[0][1]]
    from siked.errors import SikedError

    with pytest.raises(SikedError, match="given twice"):
        resolve_datasets([("v", PROBLEMS), ("v", PROBLEMS)], seed=1)


def test_resume_after_crash(tmp_path: Path) -> None:
    datasets = [("validation", PROBLEMS), ("other", PROBLEMS[:2])]
    ref = run(tmp_path / "ref", free_script, datasets=datasets, chunk_size=1)

    crash = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(crash, free_script, datasets=datasets, chunk_size=1,
            engine=FakeEngine(free_script, fail_after=5))  # fmt: skip
    assert len(read_jsonl(crash / "predictions.jsonl")) == 5
    assert not (crash / "eval.json").exists()
    engine = FakeEngine(free_script)
    result = run(crash, free_script, datasets=datasets, chunk_size=1, engine=engine)
    assert len(engine.calls) == 1  # only the one missing prediction
    assert result == ref
    preds = read_jsonl(crash / "predictions.jsonl")
    assert len(preds) == 6 and len({(p["dataset"], p["qid"]) for p in preds}) == 6

    # finished datasets are skipped entirely; a new one is added
    engine = FakeEngine(free_script)
    more = run(crash, free_script, datasets=[*datasets, ("third", PROBLEMS[3:])], engine=engine)
    assert [len(c["prompts"]) for c in engine.calls] == [1]
    assert list(more["datasets"]) == ["validation", "other", "third"]

    # other settings (here: the mode) start afresh
    engine = FakeEngine(all_script)
    run(crash, all_script, mode="all", datasets=datasets[:1], engine=engine)
    assert len(read_jsonl(crash / "predictions.jsonl")) == 12
    assert (crash / "predictions.jsonl.stale").exists()  # moved aside, not deleted


def test_small_datasets_share_the_engines_calls(tmp_path: Path) -> None:
    # 4 + 2 + 1 questions, chunks of 5: two calls across the datasets, not one per dataset
    datasets = [("validation", PROBLEMS), ("other", PROBLEMS[:2]), ("third", PROBLEMS[3:])]
    engine = FakeEngine(free_script)
    result = run(tmp_path, free_script, datasets=datasets, chunk_size=5, engine=engine)
    assert [len(c["prompts"]) for c in engine.calls] == [5, 2]
    one_by_one = run(tmp_path / "alone", free_script, datasets=datasets, chunk_size=1)
    assert result == one_by_one
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert [p["dataset"] for p in preds] == ["validation"] * 4 + ["other"] * 2 + ["third"]


def test_foreign_predictions_file_is_kept(tmp_path: Path) -> None:
    from siked.errors import SikedError

    (tmp_path / "predictions.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(SikedError, match="not written by siked eval"):
        run(tmp_path, free_script)
    assert (tmp_path / "predictions.jsonl").read_text() == '{"x": 1}\n'


def test_format_table(tmp_path: Path) -> None:
    result = run(tmp_path, free_script)
    table = format_table(result)
    lo, hi = wilson_interval(3, 4)
    assert "validation" in table and f"75.0% [{100 * lo:.1f}, {100 * hi:.1f}]" in table
    assert "cot 50% pot 25% none 25%" in table


def test_cli_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from siked import evaluate as evaluate_mod
    from siked.cli import main

    engine = FakeEngine(lambda q, f, j, s: "[cot]: The answer is 3.")
    monkeypatch.setattr(evaluate_mod, "open_student_engine", lambda c, m: engine)
    out = tmp_path / "ev"
    rc = main(["eval", "--model", "some-model", "--datasets", "gsm8k:test:3,svamp:2",
               "--out", str(out), "--set", "max_tokens=20", "--quiet", "--seed", "9"])  # fmt: skip
    assert rc == 0
    result = read_json(out / "eval.json")
    assert list(result["datasets"]) == ["gsm8k:test:3", "svamp:test:2"]
    assert result["seed"] == 9 and result["max_tokens"] == 20 and result["model"] == "some-model"
    assert result["datasets"]["gsm8k:test:3"]["strategy_counts"]["cot"] == 3
    printed = capsys.readouterr().out
    assert "gsm8k:test:3" in printed and "accuracy" in printed
    assert main(["eval", "--out", str(out), "--set", "mode=nope", "--quiet"]) == 2
    assert "mode" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# integration: the real default student


@pytest.mark.integration
def test_eval_real_student(tmp_path: Path, capsys: Any) -> None:
    from siked.cli import main

    out = tmp_path / "ev"
    rc = main(["eval", "--model", "bundled:smollm2-135m-instruct", "--datasets", "gsm8k:test:2",
               "--out", str(out), "--set", "max_tokens=48", "--set", "dtype=float32",
               "--quiet"])  # fmt: skip
    assert rc == 0
    result = read_json(out / "eval.json")
    d = result["datasets"]["gsm8k:test:2"]
    assert d["n"] == 2 and sum(d["strategy_counts"].values()) == 2
    assert 0.0 <= d["ci95"][0] <= d["ci95"][1] <= 1.0
    preds = read_jsonl(out / "predictions.jsonl")
    assert len(preds) == 2 and all(set(p) >= PRED_KEYS for p in preds)
    assert all(p["tokens"] <= 48 for p in preds)
    assert "gsm8k:test:2" in capsys.readouterr().out


def test_a_rerun_in_another_dtype_starts_afresh(tmp_path: Path) -> None:
    # bf16 and float32 give other greedy outputs: predictions of one must not be reused by the other
    def evaluate_in(dtype: str) -> FakeEngine:
        engine = FakeEngine(free_script)
        cfg = EvalConfig(max_tokens=32, dtype=dtype)  # type: ignore[arg-type]
        evaluate("fake-model", [("validation", PROBLEMS)], cfg, tmp_path, STRATS, seed=5,
                 engine=engine, progress=False, sandbox=FakeSandbox())  # fmt: skip
        return engine

    assert len(evaluate_in("auto").calls) == 1
    assert evaluate_in("auto").calls == []  # resumed: same settings
    assert "dtype" not in read_json(tmp_path / "predictions.meta.json")  # as before dtype counted
    assert sum(len(c["prompts"]) for c in evaluate_in("float32").calls) == len(PROBLEMS)
    assert (tmp_path / "predictions.jsonl.stale").exists()
    assert read_json(tmp_path / "predictions.meta.json")["dtype"] == "float32"
    assert evaluate_in("float32").calls == []


def test_a_rerun_on_a_cpu_of_the_other_precision_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dtype auto is bf16 on a CPU with native bf16 and float32 elsewhere: predictions resumed on
    the other kind of CPU would mix both in one log, so they are moved aside instead. A log
    from before the resolved dtype was recorded resumes as it did."""
    from siked.engines.hf import HFEngine

    def evaluate_on(resolved: str) -> FakeEngine:
        monkeypatch.setattr(HFEngine, "auto_dtype", classmethod(lambda cls, cfg: resolved))
        engine = FakeEngine(free_script)
        evaluate("fake-model", [("validation", PROBLEMS)], EvalConfig(max_tokens=32), tmp_path,
                 STRATS, seed=5, engine=engine, progress=False, sandbox=FakeSandbox())  # fmt: skip
        return engine

    assert len(evaluate_on("bfloat16").calls) == 1
    assert read_json(tmp_path / "predictions.meta.json")["auto_dtype"] == "bfloat16"
    assert evaluate_on("bfloat16").calls == []  # the same CPU: resumed
    assert sum(len(c["prompts"]) for c in evaluate_on("float32").calls) == len(PROBLEMS)
    assert (tmp_path / "predictions.jsonl.stale").exists()
    # written before the resolved dtype counted: no "auto_dtype", resumed on any CPU
    meta = read_json(tmp_path / "predictions.meta.json")
    del meta["auto_dtype"]
    (tmp_path / "predictions.meta.json").write_text(json.dumps(meta))
    assert evaluate_on("bfloat16").calls == []
