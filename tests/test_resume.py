"""The one resume rule of teach, sample and eval (siked.resume), and that each stage follows it."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from siked.errors import SikedError
from siked.io import read_json
from siked.resume import chunked, resume_rows, stale_path


def write(path: Path, rows: list[dict], torn: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + torn)


def resume(tmp_path: Path, fp: dict, **kw) -> list[dict]:
    return resume_rows(
        tmp_path / "rows.jsonl",
        fp,
        fingerprint_path=tmp_path / "rows.meta.json",
        stage="siked test",
        **kw,
    )


def test_fresh_start_writes_the_fingerprint(tmp_path: Path) -> None:
    assert resume(tmp_path, {"seed": 1}) == []
    assert read_json(tmp_path / "rows.meta.json") == {"seed": 1}


def test_same_settings_keep_whole_rows_and_cut_a_torn_line(tmp_path: Path) -> None:
    resume(tmp_path, {"seed": 1})
    write(tmp_path / "rows.jsonl", [{"a": 1}, {"a": 2}], torn='{"a": 3')
    assert resume(tmp_path, {"seed": 1}) == [{"a": 1}, {"a": 2}]
    assert (tmp_path / "rows.jsonl").read_text().endswith("}\n")  # appends start on a new line


def test_other_settings_move_rows_aside_and_remove_derived(tmp_path: Path) -> None:
    resume(tmp_path, {"seed": 1})
    write(tmp_path / "rows.jsonl", [{"a": 1}])
    write(tmp_path / "more.jsonl", [{"b": 1}])
    (tmp_path / "stats.json").write_text("{}")
    rows = resume(
        tmp_path,
        {"seed": 2},
        companions=[tmp_path / "more.jsonl"],
        derived=[tmp_path / "stats.json"],
    )
    assert rows == []
    assert (stale_path(tmp_path / "rows.jsonl")).read_text() == '{"a": 1}\n'
    assert (stale_path(tmp_path / "more.jsonl")).exists()
    assert not (tmp_path / "rows.jsonl").exists() and not (tmp_path / "stats.json").exists()
    assert read_json(tmp_path / "rows.meta.json") == {"seed": 2}


@pytest.mark.parametrize("name", ["rows.jsonl", "more.jsonl"])
def test_a_foreign_file_is_never_overwritten(tmp_path: Path, name: str) -> None:
    write(tmp_path / name, [{"x": 1}])
    with pytest.raises(SikedError, match=f"{name} exists but was not written by siked test"):
        resume(tmp_path, {"seed": 1}, companions=[tmp_path / "more.jsonl"])
    assert (tmp_path / name).read_text() == '{"x": 1}\n'
    assert not (tmp_path / "rows.meta.json").exists()


def test_an_empty_file_without_fingerprint_is_fine(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text("")
    assert resume(tmp_path, {"seed": 1}) == []


def test_chunked() -> None:
    assert chunked([], 3) == []
    assert chunked("abcde", 2) == ["ab", "cd", "e"]


# -- every stage follows the rule -------------------------------------------------------------


def test_stages_move_files_of_other_settings_aside(tmp_path: Path) -> None:
    """sample and eval (teach: tests/test_teach.py): other settings -> NAME.stale."""
    from test_sample import PROBLEMS as SAMPLE_PROBLEMS
    from test_sample import FakeEngine, FakeSandbox, free_script, good

    from siked.config import EvalConfig, SampleConfig
    from siked.evaluate import evaluate
    from siked.sample import sample

    out = tmp_path / "s" / "samples.jsonl"
    for k in (1, 2):
        sample(
            SAMPLE_PROBLEMS, "m", SampleConfig(k=k), out, iteration=0, seed=1,
            strategies=["cot", "l2m", "pot"], engine=FakeEngine(free_script), progress=False,
            sandbox=FakeSandbox(),
        )  # fmt: skip
    assert stale_path(out).exists() and read_json(out.with_name("samples.meta.json"))["k"] == 2

    ev = tmp_path / "e"
    for mode in ("free", "forced"):
        evaluate(
            "m", [("v", SAMPLE_PROBLEMS[:1])], EvalConfig(mode=mode), ev, ["cot"], seed=1,
            engine=FakeEngine(lambda q, f, j, s: "[cot]: " + good("cot", Fraction(5))),
            progress=False,
            sandbox=FakeSandbox(),
        )  # fmt: skip
    assert stale_path(ev / "predictions.jsonl").exists()
    assert read_json(ev / "predictions.meta.json")["mode"] == "forced"
