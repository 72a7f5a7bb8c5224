"""The run directory's one owner (siked.rundir): paths, summary rows and the best iteration,
which the loop, the report and compare share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_run import make_synthetic_run

from siked.io import read_json
from siked.loop import should_stop
from siked.report import best_iteration as report_best
from siked.report import load_run, summary_table
from siked.rundir import RunPaths, best_iteration, iteration_summary


def rows(*accs: float | None, evaluated: bool = True) -> list[dict]:
    return [
        {"iteration": i, "validation_accuracy": a, "eval": {"svamp": 0.1} if evaluated else {}}
        for i, a in enumerate(accs)
    ]


@pytest.mark.parametrize(
    ("table", "best"),
    [
        (rows(0.2, 0.3, 0.3), 1),  # the earliest of the highest
        (rows(0.5, 0.3, 0.4), 0),
        (rows(None, 0.1, None), 1),  # only iterations with a validation accuracy compete
        (rows(None, None, None), 2),  # no validation at all: the last evaluated iteration
        (rows(None, None, evaluated=False), None),  # nothing evaluated yet
        ([], None),
    ],
)
def test_best_iteration_definition(table: list[dict], best: int | None) -> None:
    assert best_iteration(table) == best


def test_should_stop_uses_the_same_best() -> None:
    assert should_stop(rows(0.2, 0.3, 0.3), patience=1)
    assert not should_stop(rows(None, None, None), patience=1)  # no validation: never stops


def test_paths_spell_the_documented_layout(tmp_path: Path) -> None:
    p = RunPaths(tmp_path)
    rel = {
        "teacher_kept": p.teacher_kept,
        "train": p.train_data(3),
        "merged": p.merged(3),
        "samples": p.samples(3),
        "eval": p.eval_json(3),
        "predictions": p.predictions(3),
        "report": p.report,
    }
    assert {k: v.relative_to(tmp_path).as_posix() for k, v in rel.items()} == {
        "teacher_kept": "teacher/kept.jsonl",
        "train": "iter_03/train.jsonl",
        "merged": "iter_03/model/merged",
        "samples": "iter_03/samples.jsonl",
        "eval": "iter_03/eval/eval.json",
        "predictions": "iter_03/eval/predictions.jsonl",
        "report": "report",
    }
    for n in (0, 2, 11):
        p.iteration(n).mkdir()
    (tmp_path / "iter_x").mkdir()
    assert p.iterations() == [0, 2, 11]


def test_loop_report_and_compare_agree_on_the_best_iteration(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path, iterations=3)
    loaded = load_run(run)
    recorded = read_json(run / "summary.json")["best_iteration"]
    assert report_best(loaded) == best_iteration(summary_table(loaded)) == recorded
    # the rows the report rebuilds from the files are the rows the loop writes
    paths = RunPaths(run)
    for row in summary_table(loaded):
        n = row["iteration"]
        again = iteration_summary(
            n, read_json(paths.mix_stats(n)), read_json(paths.eval_json(n)), row["seconds"]
        )
        assert row["validation_accuracy"] == again["validation_accuracy"]
        assert row["eval"] == again["eval"]


def test_without_validation_every_reader_takes_the_last_evaluated(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path, iterations=2)
    paths = RunPaths(run)
    for n in paths.iterations():
        ev = read_json(paths.eval_json(n))
        del ev["datasets"]["validation"]
        paths.eval_json(n).write_text(json.dumps(ev))
    summary = read_json(paths.summary)
    summary.pop("best_iteration")
    for r in summary["iterations"]:
        r["validation_accuracy"] = None
    paths.summary.write_text(json.dumps(summary))
    assert report_best(load_run(run)) == 2
    assert best_iteration(summary["iterations"]) == 2
