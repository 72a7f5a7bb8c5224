"""scripts/prediction_agreement.py: two prediction logs of the same questions, output by output."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from load_script import load_script


def script() -> ModuleType:
    return load_script("prediction_agreement")


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_counts_identical_outputs_same_answers_and_solved_questions(tmp_path: Path) -> None:
    def row(qid: str, output: str, answer: str, correct: bool, dataset: str = "svamp") -> dict:
        return {"dataset": dataset, "qid": qid, "forced": None, "output": output,
                "answer": answer, "correct": correct}  # fmt: skip

    a = write(
        tmp_path / "a.jsonl",
        [row("1", "x", "2", True), row("2", "y", "3", False), row("3", "z", "4", True),
         row("9", "w", "1", True, dataset="only-a")],
    )  # fmt: skip
    b = write(
        tmp_path / "b.jsonl",
        [row("1", "x", "2", True), row("2", "y'", "3", False), row("3", "z'", "5", False),
         row("4", "v", "1", True)],
    )  # fmt: skip
    assert script().agreement(script().load(a), script().load(b)) == [
        ["svamp", "3", "1", "2", "2", "1", "1"]
    ]


def test_prints_a_markdown_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rows = [{"dataset": "d", "qid": 1, "output": "o", "answer": "1", "correct": True}]
    a, b = write(tmp_path / "a.jsonl", rows), write(tmp_path / "b.jsonl", rows)
    assert script().main([str(a), str(b), "--name", "bf16", "fp32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "| dataset | n | identical outputs | same answer | bf16 solved | fp32 solved "
        "| both solved |"
    )
    assert out[2] == "| d | 1 | 1 | 1 | 1 | 1 | 1 |"


def test_the_committed_precision_table_comes_from_the_committed_predictions() -> None:
    """results/precision/agreement.md (in the README) is what the script computes from the
    evidence: the untrained student in bf16 (reference CPU) and in float32 (AVX2)."""
    root = Path(__file__).resolve().parents[1] / "results"
    bf16 = script().load(root / "experiment/untrained/iter_00/eval/predictions.jsonl")
    fp32 = script().load(root / "precision/untrained-avx2/iter_00/eval/predictions.jsonl")
    row = script().agreement(bf16, fp32)[0]
    assert "| " + " | ".join(row) + " |" in (root / "precision/agreement.md").read_text()
