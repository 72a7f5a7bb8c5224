"""The one resume rule of teach, sample and eval (siked.resume); each stage's own test checks
that it follows it (other settings -> ``NAME.stale``: test_teach, test_sample, test_evaluate)."""

from __future__ import annotations

import json
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
