"""Dataset loaders: counts, ids, gold answers, checksums, data-dir precedence, download, CLI."""

from __future__ import annotations

import doctest
import json
import logging
import os
import random
import re
import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from siked import data
from siked.cli import main
from siked.config import DatasetSpec
from siked.data import Problem, load_problems, load_report
from siked.errors import DataError

SHARED = data.resolve_data_dir()


@pytest.fixture(scope="module")
def real_data() -> Path:
    bad = [s.path for s in data.file_status() if s.status != "ok"]
    if bad:
        pytest.skip(f"published data files not available in {SHARED}: {bad}")
    return SHARED


def _copy(rel: str, dest_root: Path) -> Path:
    dest = dest_root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / rel, dest)
    return dest


# ------------------------------------------------------------------------------ pure helpers


def test_doctests() -> None:
    result = doctest.testmod(data)
    assert result.attempted >= 5
    assert result.failed == 0


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("9 (apples)", Fraction(9)),
        ("0.46 (dollars)", Fraction(23, 50)),
        ("383", Fraction(383)),
        ("5/2", Fraction(5, 2)),
        ("-(1/3)", Fraction(-1, 3)),
        ("14  (seats)", Fraction(14)),
        ("2:3", None),
        ("3:30 p.m.", None),
        ("5 (cakes); 3 (pies)", None),
        ("8; 40", None),
        ("They are equal", None),
        ("6th", None),
        ("", None),
    ],
)
def test_parse_asdiv_answer(answer: str, value: Fraction | None) -> None:
    assert data.parse_asdiv_answer(answer) == value


def test_float_to_fraction_is_exact() -> None:
    assert data.float_to_fraction(0.1) == Fraction(1, 10)
    assert data.float_to_fraction(-2.25) == Fraction(-9, 4)
    assert data.float_to_fraction(float("inf")) is None


# ------------------------------------------------------------------------------ real files

EXPECTED = [
    ("gsm8k", "train", 7473, 7473),
    ("gsm8k", "test", 1319, 1319),
    ("gsm8k", "train-easy", 2674, 2674),
    ("gsm8k", "test-easy", 440, 440),
    ("gsm8k-socratic", "train", 7473, 7473),
    ("gsm8k-socratic", "test", 1319, 1319),
    ("gsm8k-socratic", "train-easy", 2674, 2674),
    ("gsm8k-socratic", "test-easy", 440, 440),
    ("svamp", "test", 1000, 1000),
    ("asdiv", "test", 2305, 2093),
    ("asdiv-a", "test", 1218, 1218),
    ("multiarith", "test", 180, 180),
    ("multiarith", "train", 420, 420),
    ("multiarith", "all", 600, 600),
]


def test_registry_covers_expected() -> None:
    assert data.all_splits() == [(n, s) for n, s, _, _ in EXPECTED]
    for info in data.DATASETS.values():
        for files in info.files.values():
            assert all(data.known_files()[f.path] is f for f in files)


def test_register_dataset(tmp_path: Path) -> None:
    """A dataset added with register_dataset loads like a built-in one (checked files, parser,
    splits) and is listed by all_splits."""
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.json").write_text('[{"q": "1 + 1?", "a": 2}, {"q": "", "a": 1}]')
    spec = data.FileSpec("toy/toy.json", data.file_sha256(tmp_path / "toy" / "toy.json"), 44, "")

    def parse(paths: list[Path], split: str) -> data.Parsed:
        rows = json.loads(paths[0].read_text())
        problems = [Problem(f"toy-{i}", r["q"], Fraction(r["a"])) for i, r in enumerate(rows)]
        good = [p for p in problems if p.question]
        return good, len(rows), [(p.id, "empty question") for p in problems if not p.question]

    data.register_dataset(data.DatasetInfo("toy", "a toy set", {"test": (spec,)}, parse))
    try:
        assert ("toy", "test") in data.all_splits()
        assert [p.id for p in load_problems("toy", "test", data_dir=tmp_path)] == ["toy-0"]
        assert load_report("toy", "test", data_dir=tmp_path).n_skipped == 1
        with pytest.raises(ValueError, match="already registered"):
            data.register_dataset(data.DatasetInfo("toy", "again", {}, parse))
    finally:
        data.DATASETS.unregister("toy")
    with pytest.raises(DataError, match="unknown dataset 'toy'"):
        load_problems("toy", "test", data_dir=tmp_path)


@pytest.mark.parametrize(("name", "split", "raw", "loaded"), EXPECTED)
def test_counts(real_data: Path, name: str, split: str, raw: int, loaded: int) -> None:
    problems = load_problems(name, split)
    report = load_report(name, split)
    assert len(problems) == loaded == report.loaded
    assert report.raw == raw
    assert report.n_skipped == raw - loaded
    ids = [p.id for p in problems]
    assert len(set(ids)) == len(ids)
    assert all(p.question and p.question == p.question.strip() for p in problems)
    assert all(isinstance(p.answer, Fraction) for p in problems)


@pytest.mark.parametrize(
    ("name", "split", "index", "pid", "starts", "answer"),
    [
        ("gsm8k", "train", 0, "gsm8k-train-00000", "Natalia sold clips", Fraction(72)),
        ("gsm8k", "test", 0, "gsm8k-test-00000", "Janet’s ducks", Fraction(18)),
        ("svamp", "test", 0, "svamp-chal-1", "Each pack of dvds costs 76 dollars.", Fraction(51)),
        ("asdiv", "test", 0, "asdiv-nluds-0001", "Seven red apples", Fraction(9)),
        ("multiarith", "all", 0, "multiarith-0", "For Halloween Debby", Fraction(39)),
        ("multiarith", "test", 0, "multiarith-123", "Paige had 11 songs", Fraction(10)),
    ],
)
def test_known_records(
    real_data: Path, name: str, split: str, index: int, pid: str, starts: str, answer: Fraction
) -> None:
    p = load_problems(name, split)[index]
    assert p.id == pid
    assert p.question.startswith(starts)
    assert p.answer == answer


def test_id_formats_and_specific_golds(real_data: Path) -> None:
    train = load_problems("gsm8k", "train")
    assert train[-1].id == "gsm8k-train-07472"
    assert all(re.fullmatch(r"gsm8k-train-\d{5}", p.id) for p in train)
    svamp = load_problems("svamp")
    assert svamp[-1].id == "svamp-chal-1000"
    assert (
        svamp[0].question == "Each pack of dvds costs 76 dollars. If there is a discount of 25 "
        "dollars on each pack How much do you have to pay to buy each pack?"
    )
    assert [p.id for p in load_problems("multiarith", "all")] == [
        f"multiarith-{i}" for i in range(600)
    ]
    asdiv = {p.id: p for p in load_problems("asdiv")}
    assert asdiv["asdiv-nluds-0176"].answer == Fraction(23, 50)  # "0.46 (dollars)"
    assert asdiv["asdiv-nluds-1331"].answer == Fraction(-1, 3)  # "-(1/3)"
    assert "asdiv-nluds-0850" not in asdiv  # "5:6" (a ratio)
    assert "asdiv-nluds-1296" not in asdiv  # two answers
    # gsm8k golds with thousands separators ("#### 1,080") are parsed without the commas
    golds = {p.answer for p in train}
    assert Fraction(1080) in golds
    assert any(p.answer < 0 for p in load_problems("gsm8k", "test"))


def test_multiarith_test_split_is_the_chilled_180(real_data: Path) -> None:
    """multiarith:test = the 180 ids of ChilleD/MultiArith's test split, read from the data dir."""
    test = load_problems("multiarith", "test")
    assert len(test) == data.MULTIARITH_TEST_SIZE == 180
    ids = json.loads((real_data / data.MULTIARITH_TEST_IDS).read_text())["ids"]
    assert [p.id for p in test] == [f"multiarith-{i}" for i in ids]  # the split's row order
    full = {p.id: p for p in load_problems("multiarith", "all")}
    assert all(full[p.id] == p for p in test)
    # the split is the seed-42 shuffle of the 600 problems (ChilleD's 420 / 180)
    rng = random.Random(42)
    order = list(range(600))
    rng.shuffle(order)
    assert ids == order[420:]
    # the default split of a dataset spec is the test split
    spec = DatasetSpec.parse("multiarith")
    assert spec.split == "test" and load_problems(spec.name, spec.split) == test


def test_asdiv_a_is_subset_in_file_order(real_data: Path) -> None:
    a = load_problems("asdiv-a")
    full = load_problems("asdiv")
    order = {p.id: i for i, p in enumerate(full)}
    assert all(p.id in order for p in a)
    assert [order[p.id] for p in a] == sorted(order[p.id] for p in a)
    assert a[0] == full[order[a[0].id]]


def test_limit_is_first_n(real_data: Path) -> None:
    full = load_problems("svamp")
    assert load_problems("svamp", limit=5) == full[:5]
    assert load_problems("svamp", limit=0) == []
    assert load_problems("svamp", limit=5000) == full
    with pytest.raises(DataError, match="limit"):
        load_problems("svamp", limit=-1)


def test_returned_list_is_a_copy(real_data: Path) -> None:
    a = load_problems("multiarith")
    a.clear()
    assert len(load_problems("multiarith")) == 180


def test_socratic_alignment(real_data: Path) -> None:
    for split in ("train", "test"):
        plain = load_problems("gsm8k", split)
        soc = load_problems("gsm8k-socratic", split)
        assert plain == soc
    sols = data.load_gsm8k_solutions("train")
    assert len(sols) == 7473
    first = sols["gsm8k-train-00000"]
    assert first.main.startswith("Natalia sold 48/2 = <<48/2=24>>24 clips in May.")
    assert first.socratic.startswith("How many clips did Natalia sell in May? ** Natalia sold")
    assert first.main.endswith("#### 72") and first.socratic.endswith("#### 72")
    test_sols = data.load_gsm8k_solutions("test")
    assert list(test_sols) == [p.id for p in load_problems("gsm8k", "test")]
    for p in load_problems("gsm8k", "test", limit=50):
        assert data.parse_gsm8k_gold(test_sols[p.id].socratic) == p.answer


def test_unknown_name_and_split() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'mawps'.*gsm8k.*svamp.*multiarith"):
        load_problems("mawps")
    with pytest.raises(DataError, match=r"no split 'train'; valid splits: test"):
        load_problems("svamp", "train")
    with pytest.raises(DataError, match=r"valid splits: train, test"):
        data.load_gsm8k_solutions("dev")


# ------------------------------------------------------------------------------ checksums


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_problems("svamp", data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "svamp" / "SVAMP.json") in msg
    assert data.known_files()["svamp/SVAMP.json"].sha256 in msg
    assert "https://raw.githubusercontent.com/arkilpatel/SVAMP/" in msg
    assert "SIKED_DATA_DIR" in msg


def test_checksum_mismatch_and_bypass(real_data: Path, tmp_path: Path) -> None:
    path = _copy("svamp/SVAMP.json", tmp_path)
    raw = bytearray(path.read_bytes())
    i = raw.index(b"dvds")
    raw[i] = ord("D")  # one corrupted byte, still valid JSON
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e:
        load_problems("svamp", data_dir=tmp_path)
    msg = str(e.value)
    assert "checksum mismatch" in msg and str(path) in msg
    assert data.known_files()["svamp/SVAMP.json"].sha256 in msg
    problems = load_problems("svamp", data_dir=tmp_path, verify_checksums=False)
    assert problems[0].question.startswith("Each pack of Dvds")


def test_checksum_cached_per_path_mtime_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = data.sha256_file

    def counting(path: os.PathLike[str]) -> str:
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(data, "sha256_file", counting)
    f = tmp_path / "f.txt"
    f.write_text("abc")
    first = data.file_sha256(f)
    assert data.file_sha256(f) == first
    assert len(calls) == 1
    f.write_text("abcd")  # size changes -> recomputed
    assert data.file_sha256(f) != first
    assert len(calls) == 2


def test_file_status(real_data: Path, tmp_path: Path) -> None:
    assert all(s.status == "ok" for s in data.file_status())
    _copy("multiarith/MultiArith.json", tmp_path)
    (tmp_path / "svamp").mkdir()
    (tmp_path / "svamp" / "SVAMP.json").write_text("[]")
    status = {s.path: s.status for s in data.file_status(tmp_path)}
    assert status["multiarith/MultiArith.json"] == "ok"
    assert status["svamp/SVAMP.json"] == "mismatch"
    assert status["gsm8k/train.jsonl"] == "missing"


# ------------------------------------------------------------------------------ data dir


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.setattr(data, "PROJECT_ROOT", project)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SIKED_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir_source(tmp_path / "arg") == (tmp_path / "arg", "argument")
    assert data.data_dir_source() == (tmp_path / "env", "env")
    monkeypatch.setenv("SIKED_DATA_DIR", "")  # empty counts as unset
    assert data.data_dir_source() == (tmp_path / "home" / ".cache" / "siked" / "data", "cache")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert data.data_dir_source() == (tmp_path / "shared" / "data", "project")
    monkeypatch.delenv("SIKED_DATA_DIR")
    assert data.resolve_data_dir() == tmp_path / "shared" / "data"
    assert data.resolve_data_dir("~/x") == tmp_path / "home" / "x"


# ------------------------------------------------------------------------------ bad records


def _write_gsm8k(root: Path, rows: list[dict[str, str]], split: str = "test") -> None:
    (root / "gsm8k").mkdir(parents=True, exist_ok=True)
    with open(root / "gsm8k" / f"{split}.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_bad_records_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        {"question": "Q0?", "answer": "a\n#### 1,000"},
        {"question": "  ", "answer": "#### 3"},
        {"question": "Q2?", "answer": "no final line"},
        {"question": "Q3?", "answer": "#### 7/2"},
        {"question": "Q4?", "answer": "#### two"},
    ]
    _write_gsm8k(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="siked.data"):
        problems = load_problems("gsm8k", "test", data_dir=tmp_path, verify_checksums=False)
    assert problems == [
        Problem("gsm8k-test-00000", "Q0?", Fraction(1000)),
        Problem("gsm8k-test-00003", "Q3?", Fraction(7, 2)),
    ]
    report = load_report("gsm8k", "test", data_dir=tmp_path, verify_checksums=False)
    assert (report.raw, report.loaded, report.n_skipped) == (5, 2, 3)
    assert [i for i, _ in report.skipped] == [
        "gsm8k-test-00001",
        "gsm8k-test-00002",
        "gsm8k-test-00004",
    ]
    assert "empty question" in report.skipped[0][1]
    text = caplog.text
    assert "gsm8k:test: skipped 3 of 5 records" in text
    assert "gsm8k-test-00001" in text and "gsm8k-test-00004" in text


def test_many_bad_records_list_a_few_then_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    problems = "".join(
        f'<Problem ID="nluds-{i:04d}"><Body>B{i}.</Body><Question>Q?</Question>'
        f"<Answer>{i}:{i + 1}</Answer></Problem>"
        for i in range(1, 9)
    )
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\r\n<Machine-Reading-Corpus-File><ProblemSet>'
        f'{problems}<Problem ID="nluds-0100"><Body>Ten\r\n apples.</Body>'
        "<Question>How many?</Question><Answer>10 (apples)</Answer></Problem>"
        "</ProblemSet></Machine-Reading-Corpus-File>"
    )
    (tmp_path / "asdiv").mkdir()
    (tmp_path / "asdiv" / "ASDiv.xml").write_text(xml, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="siked.data"):
        got = load_problems("asdiv", data_dir=tmp_path, verify_checksums=False)
    assert got == [Problem("asdiv-nluds-0100", "Ten apples. How many?", Fraction(10))]
    assert "skipped 8 of 9 records" in caplog.text
    assert "and 3 more" in caplog.text
    assert "'1:2' is not a single number" in caplog.text


# ------------------------------------------------------------------------------ download


def test_download_opt_in(real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        rel = next(k for k, s in data.known_files().items() if s.url == url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / rel, dest)

    monkeypatch.setattr(data, "fetch_url", fake_fetch)
    monkeypatch.delenv("SIKED_DATA_DOWNLOAD", raising=False)
    with pytest.raises(DataError, match="not found"):
        load_problems("multiarith", "all", data_dir=tmp_path)
    assert fetched == []
    monkeypatch.setenv("SIKED_DATA_DOWNLOAD", "1")
    assert len(load_problems("multiarith", "all", data_dir=tmp_path)) == 600
    assert fetched == [data.known_files()["multiarith/MultiArith.json"].url]
    assert fetched[0].startswith("https://raw.githubusercontent.com/kojima-takeshi188/")
    # a second load finds the file: no new fetch
    load_problems("multiarith", "all", data_dir=tmp_path)
    assert len(fetched) == 1
    # the test split's id list is derived here: never downloaded, the error says what it is
    with pytest.raises(DataError, match=r"test_ids_chilled\.json.*derived.*ChilleD"):
        load_problems("multiarith", "test", data_dir=tmp_path)
    assert len(fetched) == 1
    # download=False overrides the environment
    with pytest.raises(DataError, match="not found"):
        load_problems("svamp", data_dir=tmp_path, download=False)


def test_download_with_bad_checksum_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bad_fetch(url: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("<html>rate limited</html>")

    monkeypatch.setattr(data, "fetch_url", bad_fetch)
    with pytest.raises(DataError, match="expected 5be77703") as e:
        load_problems("svamp", data_dir=tmp_path, download=True)
    assert "https://raw.githubusercontent.com/arkilpatel/SVAMP/" in str(e.value)
    assert not (tmp_path / "svamp" / "SVAMP.json").exists()


def test_download_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(data, "fetch_url", offline)
    with pytest.raises(DataError, match=r"could not download .*SVAMP\.json.*not known"):
        load_problems("svamp", data_dir=tmp_path, download=True)


# ------------------------------------------------------------------------------ CLI


def test_cli_stats(real_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gsm8k\s+train\s+7473\s+7473\s+0", out)
    assert re.search(r"asdiv\s+test\s+2305\s+2093\s+212", out)
    assert re.search(r"multiarith\s+test\s+180\s+180\s+0", out)
    assert re.search(r"multiarith\s+all\s+600\s+600\s+0", out)
    assert main(["data", "stats", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    rows = {(d["name"], d["split"]): d for d in got["datasets"]}
    assert {k: (v["raw"], v["loaded"]) for k, v in rows.items()} == {
        (n, s): (r, ld) for n, s, r, ld in EXPECTED
    }
    assert rows[("asdiv", "test")]["skipped"] == 212
    assert "asdiv-nluds-0850" in rows[("asdiv", "test")]["skipped_ids"]


def test_cli_show(real_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "show", "gsm8k", "--split", "train", "--limit", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    assert lines[0]["id"] == "gsm8k-train-00000"
    assert lines[0]["answer"] == "72"
    assert set(lines[0]) == {"id", "question", "answer"}
    assert main(["data", "show", "asdiv"]) == 0
    rows = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["asdiv-nluds-1331"]["answer"] == "-1/3"
    assert rows["asdiv-nluds-0176"]["answer"] == "0.46"  # text.format_number: 23/50
    assert main(["data", "show", "svamp:test:3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_cli_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["data", "show", "mawps"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'mawps'" in err and "asdiv-a" in err
    assert main(["data", "show", "svamp", "--data-dir", str(tmp_path)]) == 2
    assert str(tmp_path / "svamp" / "SVAMP.json") in capsys.readouterr().err


def test_cli_path(real_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["data", "path"]) == 0
    out = capsys.readouterr().out
    assert f"data dir: {SHARED}" in out
    assert re.search(r"ok\s+gsm8k/train\.jsonl", out)
    assert main(["data", "path", "--data-dir", str(tmp_path), "--json"]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["source"] == "argument" and got["ok"] is False
    assert {f["status"] for f in got["files"]} == {"missing"}


def test_cli_config_data_dir(
    real_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data:\n  dir: {tmp_path / 'd'}\n")
    assert main(["data", "path", "--config", str(cfg)]) == 1
    assert f"data dir: {tmp_path / 'd'}" in capsys.readouterr().out


def test_cli_fetch(
    real_data: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_fetch(url: str, dest: Path) -> None:
        rel = next(k for k, s in data.known_files().items() if s.url == url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / rel, dest)

    monkeypatch.setattr(data, "fetch_url", fake_fetch)
    _copy("svamp/SVAMP.json", tmp_path)
    # the MultiArith test ids are derived here, not published: reported, not fetched
    assert main(["data", "fetch", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"ok\s+\S+SVAMP\.json", out)
    assert re.search(r"fetched\s+\S+MultiArith\.json", out)
    assert re.search(r"missing\s+\S+test_ids_chilled\.json: not downloadable", out)
    _copy(data.MULTIARITH_TEST_IDS, tmp_path)
    assert main(["data", "fetch", "--data-dir", str(tmp_path)]) == 0
    assert all(s.status == "ok" for s in data.file_status(tmp_path))


def test_fetch_url_writes_atomically(tmp_path: Path) -> None:
    src = tmp_path / "src.json"
    src.write_text("[1, 2]")
    dest = tmp_path / "out" / "x.json"
    data.fetch_url(src.as_uri(), dest)  # file:// exercises the real function without network
    assert dest.read_text() == "[1, 2]"
    assert [p.name for p in dest.parent.iterdir()] == ["x.json"]
    with pytest.raises(OSError):
        data.fetch_url((tmp_path / "absent").as_uri(), tmp_path / "out" / "y.json")
    assert [p.name for p in dest.parent.iterdir()] == ["x.json"]


def test_multiarith_train_is_the_rest_of_the_600(real_data: Path) -> None:
    train = load_problems("multiarith", "train")
    test = {p.id for p in load_problems("multiarith", "test")}
    assert len(train) == 420 and not test & {p.id for p in train}
    full = {p.id: p for p in load_problems("multiarith", "all")}
    assert all(full[p.id] == p for p in train) and len(test) + len(train) == len(full)


@pytest.mark.parametrize("split,n", [("train", 2674), ("test", 440)])
def test_gsm8k_easy_splits_keep_the_problems_of_at_most_two_steps(
    real_data: Path, split: str, n: int
) -> None:
    easy = load_problems("gsm8k", f"{split}-easy")
    rows = [json.loads(x) for x in (real_data / "gsm8k" / f"{split}.jsonl").open()]
    steps = {
        f"gsm8k-{split}-{i:05d}": data.calculation_steps(r["answer"]) for i, r in enumerate(rows)
    }
    assert len(easy) == n and all(steps[p.id] <= data.EASY_MAX_STEPS for p in easy)
    full = {p.id: p for p in load_problems("gsm8k", split)}
    assert all(full[p.id] == p for p in easy)  # the full split's ids and problems
    assert sum(s <= 2 for s in steps.values()) == n  # every such problem, none picked by hand
    socratic = load_problems("gsm8k-socratic", f"{split}-easy")
    assert [p.id for p in socratic] == [p.id for p in easy]
    # their human solutions (what `siked plan` measures the gold rationales' lengths on)
    sols = data.load_gsm8k_solutions(f"{split}-easy")
    assert sorted(sols) == sorted(p.id for p in easy)
    assert sols == {pid: s for pid, s in data.load_gsm8k_solutions(split).items() if pid in sols}
