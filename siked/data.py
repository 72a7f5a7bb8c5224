"""Dataset loaders: GSM8K (incl. Socratic), SVAMP, ASDiv, ASDiv-A and MultiArith -> :class:`Problem`.

The loaders read the original public files, unconverted (see ``../shared/data/README.md``):

=================  ======================================  ==========================================
name               splits                                  file(s) under the data directory
=================  ======================================  ==========================================
``gsm8k``          ``train`` (7473), ``test`` (1319),      ``gsm8k/{train,test}.jsonl``
                   ``train-easy`` (2674), ``test-easy`` (440)
``gsm8k-socratic`` ``train``, ``test`` (same ids)          ``gsm8k/{train,test}_socratic.jsonl``
``svamp``          ``test`` (1000)                         ``svamp/SVAMP.json``
``asdiv``          ``test`` (all 2305 raw records)         ``asdiv/ASDiv.xml``
``asdiv-a``        ``test`` (the 1218-id arithmetic set)   ``+ asdiv/nfolds/asdiv-a/fold{0..4}.txt``
``multiarith``     ``test`` (180: ChilleD/MultiArith),     ``multiarith/MultiArith.json``
                   ``train`` (the other 420), ``all``      ``+ multiarith/test_ids_chilled.json``
=================  ======================================  ==========================================

``multiarith:test`` is the 180-problem test split of the Hugging Face ``ChilleD/MultiArith``
re-split that the SIKeD authors evaluate on (``inference/inference_all_checkpoints.py``:
``load_dataset('ChilleD/MultiArith', split='test')``), in that split's row order; its ids come
from ``multiarith/test_ids_chilled.json`` (an id list derived from the public split, see
``docs/data.md``). ``multiarith:train`` is the other 420 problems (nothing of the test split),
``multiarith:all`` the whole original file.

``gsm8k:train-easy`` / ``gsm8k:test-easy`` are the problems whose reference solution has at most
:data:`EASY_MAX_STEPS` (2) calculation steps (``<<expr=value>>`` annotations): a rule on the
published solution, not a hand pick, for students too small for full GSM8K. They keep the full
split's ids (``gsm8k-train-00012``), so the gold teacher and the Socratic file find them.

**Data directory.** The first of these that applies is used:

1. the explicit ``data_dir`` argument (the config's ``data.dir``);
2. the environment variable ``$SIKED_DATA_DIR`` (when set and not empty);
3. ``../shared/data`` beside the project root (the directory holding the ``siked`` package),
   if that directory exists;
4. ``~/.cache/siked/data``.

**Checksums.** Every file is checked against the sha256 of the published file (the
:class:`FileSpec` its dataset lists, :func:`known_files`).
A check is cached per (path, mtime, size), so repeated loads in one process hash each file once.
A missing file or a mismatch raises :class:`~siked.errors.DataError` naming the path looked
for, the expected sha256 and where to get the file.

**Download (opt-in).** With ``download=True`` or ``SIKED_DATA_DOWNLOAD=1`` a missing file is
fetched from its public source (raw GitHub at a pinned commit) into the data directory and
verified the same way. It is off by default; nothing is ever fetched silently.

**More datasets.** Each dataset is one :class:`DatasetInfo` (its splits, the published files of
each split with their checksums and sources, and its parser), added with
:func:`register_dataset`; ``data.train`` / ``data.eval`` and ``siked data`` accept every
registered name.

**Ids** are stable: ``gsm8k-train-00000`` (zero-based line index; the Socratic files use the
same ids), ``svamp-chal-1``, ``asdiv-nluds-0001`` (ASDiv-A keeps ASDiv's ids and file order),
``multiarith-0`` (``iIndex``, in both splits).

**Gold answers** are exact :class:`~fractions.Fraction`\\ s. Records whose question is empty or
whose gold answer is not a single number (ASDiv has names, times, ratios such as ``2:3`` and
multiple answers such as ``5 (cakes); 3 (pies)``) are skipped, logged as a warning on the
``siked.data`` logger and counted in :func:`load_report` (``siked data stats`` prints them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from siked.errors import DataError
from siked.io import sha256_file
from siked.registry import Registry
from siked.text import collapse_whitespace, parse_plain_number

log = logging.getLogger(__name__)

ENV_DATA_DIR = "SIKED_DATA_DIR"
ENV_DOWNLOAD = "SIKED_DATA_DOWNLOAD"
#: The project root: the directory that holds the ``siked`` package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DATA_DIR = Path("~/.cache/siked/data")


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Problem:
    """One math word problem with its exact gold answer."""

    id: str
    question: str
    answer: Fraction


def check_unique_ids(problems: Sequence[Problem]) -> None:
    """Raise :class:`DataError` naming up to five ids that occur more than once."""
    dupes = [i for i, n in Counter(p.id for p in problems).items() if n > 1]
    if dupes:
        raise DataError(f"duplicate question ids: {', '.join(dupes[:5])}")


@dataclass(frozen=True)
class GSM8KSolutions:
    """The human-written GSM8K solutions of one problem (raw text, ``#### N`` line included)."""

    main: str  # from {split}.jsonl: step-by-step prose with <<expr=value>> annotations
    socratic: str  # from {split}_socratic.jsonl: "sub-question ** answer step" lines


@dataclass
class LoadReport:
    """What loading one dataset split found: raw records, loaded problems, skipped records."""

    name: str
    split: str
    files: list[str]
    raw: int = 0
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "files": list(self.files),
            "raw": self.raw,
            "loaded": self.loaded,
            "skipped": self.n_skipped,
            "skipped_ids": [i for i, _ in self.skipped],
        }


# --------------------------------------------------------------------------------------------
# the published files


@dataclass(frozen=True)
class FileSpec:
    """One data file: where it lives under the data dir, its sha256, size and source."""

    path: str  # relative to the data directory
    sha256: str
    size: int
    url: str  # raw GitHub URL at the pinned commit; "" for a file derived here (no download)
    note: str = ""  # for a derived file: what it is and how to make it


_GSM8K = "https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data/"
_SVAMP = (
    "https://raw.githubusercontent.com/arkilpatel/SVAMP/689d7ccac74b9983a2ac7cc3b264f441b99e7c53/"
)
_ASDIV = "https://raw.githubusercontent.com/chaochun/nlu-asdiv-dataset/883f90a9a65bf00304ba8f37423910fe743abc47/dataset/"
MULTIARITH_TEST_IDS = "multiarith/test_ids_chilled.json"
#: Size of the ChilleD/MultiArith test split (the SIKeD authors' MultiArith evaluation set).
MULTIARITH_TEST_SIZE = 180
_MULTIARITH = "https://raw.githubusercontent.com/kojima-takeshi188/zero_shot_cot/5ef330fcdeec0cd26aee27943504f91f8ec1c33c/dataset/MultiArith/"

#: The published files (from ``../shared/data/SOURCE.md``); each dataset lists its own.
GSM8K_TRAIN = FileSpec(
    "gsm8k/train.jsonl",
    "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
    4166206,
    _GSM8K + "train.jsonl",
)
GSM8K_TEST = FileSpec(
    "gsm8k/test.jsonl",
    "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    749738,
    _GSM8K + "test.jsonl",
)
GSM8K_TRAIN_SOCRATIC = FileSpec(
    "gsm8k/train_socratic.jsonl",
    "153d86551187cfd64ef7afb59bfd0ef75cea3ae9388e7ad31e43920b6dd77872",
    5401739,
    _GSM8K + "train_socratic.jsonl",
)
GSM8K_TEST_SOCRATIC = FileSpec(
    "gsm8k/test_socratic.jsonl",
    "c96673362fa7a699f4836a9b6474a067448f95fe58064727501ee63ba4c3fdb6",
    972978,
    _GSM8K + "test_socratic.jsonl",
)
SVAMP_JSON = FileSpec(
    "svamp/SVAMP.json",
    "5be77703a6d891ae476d7c082787ad361392aa02453b132516cdd5f4e7934e3e",
    339970,
    _SVAMP + "SVAMP.json",
)
ASDIV_XML = FileSpec(
    "asdiv/ASDiv.xml",
    "ef8904068482919ac48c8eeaaf6df344b8a308ba66d048c2d4d87eab82dc4929",
    947401,
    _ASDIV + "ASDiv.xml",
)
ASDIV_A_FOLD0 = FileSpec(
    "asdiv/nfolds/asdiv-a/fold0.txt",
    "1e4e8c670e461e9d59beee13e64e28d7f92e3be8ba6766d3bbeb40818e03e8d6",
    2618,
    _ASDIV + "nfolds/asdiv-a/fold0.txt",
)
ASDIV_A_FOLD1 = FileSpec(
    "asdiv/nfolds/asdiv-a/fold1.txt",
    "81bb372c89696d8d0a253d8ac73500208a801c35670112d682c2f2306ef35fd2",
    2618,
    _ASDIV + "nfolds/asdiv-a/fold1.txt",
)
ASDIV_A_FOLD2 = FileSpec(
    "asdiv/nfolds/asdiv-a/fold2.txt",
    "56ffc96a9eead77224f782d7c4c84205c21079b3588b08e4a68d2deabf50febc",
    2618,
    _ASDIV + "nfolds/asdiv-a/fold2.txt",
)
ASDIV_A_FOLD3 = FileSpec(
    "asdiv/nfolds/asdiv-a/fold3.txt",
    "68733651260332fa6ae89155aa5e15d20a4b11833023712d0a9b2a2d06551e54",
    2618,
    _ASDIV + "nfolds/asdiv-a/fold3.txt",
)
ASDIV_A_FOLD4 = FileSpec(
    "asdiv/nfolds/asdiv-a/fold4.txt",
    "103d2091eab4ee825e55353af817af006ddd2fee4948b0ef7fa1df0f6a33723b",
    2926,
    _ASDIV + "nfolds/asdiv-a/fold4.txt",
)
MULTIARITH_JSON = FileSpec(
    "multiarith/MultiArith.json",
    "dc9db1b6cc68b1ecc2dec830d15aaf8c9a0932aa31d5ffce88ef3628179d36f4",
    254012,
    _MULTIARITH + "MultiArith.json",
)
MULTIARITH_TEST_SPLIT = FileSpec(
    MULTIARITH_TEST_IDS,
    "d2b71d798de2fd4fea63481021137826ff8f3c6268b79303a3097d9dc054f7aa",
    5692,
    "",
    note=(
        "it is derived, not published: the MultiArith.json iIndex of each of the 180 rows "
        "of the Hugging Face ChilleD/MultiArith test split, as a JSON object whose 'ids' "
        "list holds them in row order (the split equals random.seed(42); "
        "l = list(range(600)); random.shuffle(l); test = l[420:]); see docs/data.md"
    ),
)
_ASDIV_A_FOLDS = (ASDIV_A_FOLD0, ASDIV_A_FOLD1, ASDIV_A_FOLD2, ASDIV_A_FOLD3, ASDIV_A_FOLD4)


# --------------------------------------------------------------------------------------------
# data directory, checksums, download


DataDirSource = Literal["argument", "env", "project", "cache"]


def data_dir_source(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, DataDirSource]:
    """Resolve the data directory and say which rule chose it (see the module docstring).

    >>> data_dir_source("/tmp/d")
    (PosixPath('/tmp/d'), 'argument')
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "argument"
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        return Path(env).expanduser(), "env"
    shared = PROJECT_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared, "project"
    return CACHE_DATA_DIR.expanduser(), "cache"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir`` > ``$SIKED_DATA_DIR`` > ``../shared/data`` > cache."""
    return data_dir_source(data_dir)[0]


def download_enabled(download: bool | None = None) -> bool:
    """``download`` if given, else whether ``$SIKED_DATA_DOWNLOAD`` is set to a true value."""
    if download is not None:
        return download
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in {"1", "true", "yes", "on"}


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, cached per (path, mtime, size) for the life of the process."""
    p = Path(path)
    key = _stat_key(p)
    digest = _SHA_CACHE.get(key)
    if digest is None:
        digest = _SHA_CACHE[key] = sha256_file(p)
    return digest


def fetch_url(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` atomically (tests replace this function)."""
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _how_to_get(spec: FileSpec, root: Path) -> str:
    where = f"set {ENV_DATA_DIR} to a directory that holds {spec.path} (now: {root})"
    if not spec.url:
        return f"{spec.note}; {where}"
    return f"get it from {spec.url} (or set {ENV_DOWNLOAD}=1 to fetch it), or {where}"


def ensure_file(
    relpath: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify: bool = True,
    download: bool | None = None,
) -> Path:
    """Return the path of a known data file, checked by sha256; fetch it if allowed and missing.

    Raises :class:`DataError` naming the path, the expected sha256 and how to get the file.
    """
    files = known_files()
    spec = files.get(relpath)
    if spec is None:
        raise DataError(f"unknown data file {relpath!r}; known: {', '.join(files)}")
    root = resolve_data_dir(data_dir)
    path = root / spec.path
    if not path.is_file():
        if not download_enabled(download) or not spec.url:
            raise DataError(
                f"data file not found: {path} (expected sha256 {spec.sha256}); "
                + _how_to_get(spec, root)
            )
        log.info("downloading %s -> %s", spec.url, path)
        try:
            fetch_url(spec.url, path)
        except OSError as e:
            raise DataError(
                f"could not download {spec.url} to {path}: {e}; "
                f"copy the file there by hand or set {ENV_DATA_DIR}"
            ) from e
        got = file_sha256(path)
        if got != spec.sha256:
            path.unlink(missing_ok=True)
            raise DataError(
                f"downloaded {spec.url} has sha256 {got}, expected {spec.sha256}; removed {path}"
            )
        return path
    if verify:
        got = file_sha256(path)
        if got != spec.sha256:
            raise DataError(
                f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {got}; "
                "the file is not the published one. " + _how_to_get(spec, root)
            )
    return path


@dataclass(frozen=True)
class FileStatus:
    path: str  # relative to the data dir
    status: Literal["ok", "missing", "mismatch"]
    sha256: str | None  # the file's actual sha256 (None when missing)
    expected: str


def file_status(data_dir: str | os.PathLike[str] | None = None) -> list[FileStatus]:
    """Checksum status of every known file in the data directory (never raises, never fetches)."""
    root = resolve_data_dir(data_dir)
    out = []
    for spec in known_files().values():
        p = root / spec.path
        if not p.is_file():
            out.append(FileStatus(spec.path, "missing", None, spec.sha256))
            continue
        got = file_sha256(p)
        status: Literal["ok", "mismatch"] = "ok" if got == spec.sha256 else "mismatch"
        out.append(FileStatus(spec.path, status, got, spec.sha256))
    return out


# --------------------------------------------------------------------------------------------
# pure parsing helpers

_UNIT = re.compile(r"\s*\([^()]*\)\s*$")


def parse_gsm8k_gold(solution: str) -> Fraction | None:
    """The gold answer of a GSM8K solution: the number after the last ``#### ``.

    >>> parse_gsm8k_gold("Natalia sold 48+24 = <<48+24=72>>72 clips.\\n#### 72")
    Fraction(72, 1)
    >>> parse_gsm8k_gold("...\\n#### 1,080")
    Fraction(1080, 1)
    >>> parse_gsm8k_gold("no marker") is None
    True
    """
    if "####" not in solution:
        return None
    return parse_plain_number(solution.rsplit("####", 1)[1])


def parse_asdiv_answer(answer: str) -> Fraction | None:
    """An ASDiv ``Answer``: one number with an optional ``(unit)``; anything else is None.

    >>> parse_asdiv_answer("9 (apples)")
    Fraction(9, 1)
    >>> parse_asdiv_answer("14  (seats)")
    Fraction(14, 1)
    >>> parse_asdiv_answer("-(1/3)")
    Fraction(-1, 3)
    >>> [parse_asdiv_answer(a) for a in ("2:3", "5 (cakes); 3 (pies)", "3:30 p.m.", "Mrs. Hilt")]
    [None, None, None, None]
    """
    s = answer.strip()
    if ";" in s:
        return None  # several answers
    value = parse_plain_number(s)
    if value is None:
        value = parse_plain_number(_UNIT.sub("", s))
    return value


def float_to_fraction(x: float | int | str) -> Fraction | None:
    """Exact value of a gold answer stored as a JSON number, via its shortest decimal repr.

    ``Fraction(str(x))`` keeps what the file says (``0.1`` -> ``1/10``, not the binary float).

    >>> float_to_fraction(51.0), float_to_fraction(2.5), float_to_fraction(0.1)
    (Fraction(51, 1), Fraction(5, 2), Fraction(1, 10))
    >>> float_to_fraction(float("nan")) is None
    True
    """
    if isinstance(x, bool):
        return None
    try:
        return Fraction(str(x))
    except (ValueError, ZeroDivisionError):
        return None


# --------------------------------------------------------------------------------------------
# per-dataset parsers: path(s) -> (problems, raw count, skipped [(id, reason)])

#: what a parser returns: the problems, the raw record count, the skipped ``(id, reason)``
Parsed = tuple[list[Problem], int, list[tuple[str, str]]]


def _check(
    pid: str, question: str, gold: Fraction | None, raw_gold: Any, skipped: list[tuple[str, str]]
) -> Problem | None:
    if not question:
        skipped.append((pid, "empty question"))
        return None
    if gold is None:
        skipped.append((pid, f"gold answer {str(raw_gold)[:60]!r} is not a single number"))
        return None
    return Problem(pid, question, gold)


def _read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i + 1}: not valid JSON: {e}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{i + 1}: expected a JSON object")
            rows.append(row)
    return rows


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None


def _read_json_list(path: Path) -> list[Any]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of problems")
    return data


#: the most calculation steps (``<<expr=value>>`` annotations) of a ``-easy`` GSM8K problem
EASY_MAX_STEPS = 2


def calculation_steps(solution: str) -> int:
    """The calculation steps of a GSM8K reference solution: its ``<<expr=value>>`` annotations.

    >>> calculation_steps("He has 2*3=<<2*3=6>>6 apples.\\n6+1=<<6+1=7>>7\\n#### 7")
    2
    """
    return solution.count("<<")


def _parse_gsm8k(paths: Sequence[Path], split: str) -> Parsed:
    """``train``/``test``; ``train-easy``/``test-easy`` keep the problems whose reference
    solution has at most :data:`EASY_MAX_STEPS` calculation steps, with the full split's ids."""
    rows = _read_jsonl_rows(paths[0])
    base, easy = split.removesuffix("-easy"), split.endswith("-easy")
    raw = len(rows)
    problems: list[Problem] = []
    skipped: list[tuple[str, str]] = []
    for i, row in enumerate(rows):
        pid = f"gsm8k-{base}-{i:05d}"
        solution = str(row.get("answer") or "")
        if easy and calculation_steps(solution) > EASY_MAX_STEPS:
            raw -= 1  # not a record of this split
            continue
        p = _check(
            pid,
            str(row.get("question") or "").strip(),
            parse_gsm8k_gold(solution),
            solution.rsplit("\n", 1)[-1],
            skipped,
        )
        if p is not None:
            problems.append(p)
    return problems, raw, skipped


def _parse_svamp(paths: Sequence[Path], split: str) -> Parsed:
    rows = _read_json_list(paths[0])
    problems: list[Problem] = []
    skipped: list[tuple[str, str]] = []
    for i, row in enumerate(rows):
        pid = f"svamp-{row.get('ID', i)}"
        question = collapse_whitespace(f"{row.get('Body') or ''} {row.get('Question') or ''}")
        raw = row.get("Answer")
        gold = float_to_fraction(raw) if isinstance(raw, (int, float, str)) else None
        p = _check(pid, question, gold, raw, skipped)
        if p is not None:
            problems.append(p)
    return problems, len(rows), skipped


def _asdiv_elements(path: Path) -> list[ET.Element]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}: not valid XML: {e}") from None
    return root.findall(".//Problem")


def _parse_asdiv_elements(elements: list[ET.Element]) -> Parsed:
    problems: list[Problem] = []
    skipped: list[tuple[str, str]] = []
    for i, el in enumerate(elements):
        pid = f"asdiv-{el.get('ID') or i}"
        question = collapse_whitespace(
            f"{el.findtext('Body') or ''} {el.findtext('Question') or ''}"
        )
        raw = el.findtext("Answer") or ""
        p = _check(pid, question, parse_asdiv_answer(raw), raw, skipped)
        if p is not None:
            problems.append(p)
    return problems, len(elements), skipped


def _parse_asdiv(paths: Sequence[Path], split: str) -> Parsed:
    return _parse_asdiv_elements(_asdiv_elements(paths[0]))


def _parse_asdiv_a(paths: Sequence[Path], split: str) -> Parsed:
    ids: list[str] = []
    for fold in paths[1:]:
        ids += fold.read_text(encoding="utf-8").split()
    wanted = set(ids)
    elements = [el for el in _asdiv_elements(paths[0]) if el.get("ID") in wanted]
    problems, _, skipped = _parse_asdiv_elements(elements)
    found = {el.get("ID") for el in elements}
    skipped += [
        (f"asdiv-{i}", "id listed in the folds is not in ASDiv.xml") for i in sorted(wanted - found)
    ]
    return problems, len(wanted), skipped


def _read_test_ids(path: Path) -> list[int]:
    doc = _read_json(path)
    ids = doc.get("ids") if isinstance(doc, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise DataError(f"{path}: expected a JSON object with an 'ids' list of integers")
    return ids


def _parse_multiarith(paths: Sequence[Path], split: str) -> Parsed:
    rows = _read_json_list(paths[0])
    problems: list[Problem] = []
    skipped: list[tuple[str, str]] = []
    by_index: dict[str, Problem] = {}
    for i, row in enumerate(rows):
        pid = f"multiarith-{row.get('iIndex', i)}"
        sols = row.get("lSolutions") or []
        raw = sols[0] if sols else None
        gold = float_to_fraction(raw) if isinstance(raw, (int, float, str)) else None
        p = _check(pid, collapse_whitespace(str(row.get("sQuestion") or "")), gold, raw, skipped)
        if p is not None:
            problems.append(p)
            by_index[pid] = p
    if split == "all":
        return problems, len(rows), skipped
    ids = [f"multiarith-{i}" for i in _read_test_ids(paths[1])]
    wanted = set(ids)
    if split == "train":  # every problem outside the test split, in file order
        train = [p for p in problems if p.id not in wanted]
        kept = [s for s in skipped if s[0] not in wanted]
        return train, len(rows) - len(wanted), kept
    # test: the ChilleD/MultiArith test split, in its row order
    test = [by_index[i] for i in ids if i in by_index]
    skipped = [s for s in skipped if s[0] in wanted]
    listed = {s[0] for s in skipped}
    skipped += [
        (i, f"id listed in {paths[1].name} is not in {paths[0].name}")
        for i in ids
        if i not in by_index and i not in listed
    ]
    return test, len(ids), skipped


# --------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset :func:`load_problems` accepts: per split, the published files it reads (with
    their checksums and sources) and the parser that turns them into problems.

    ``parser(paths, split) -> (problems, raw record count, skipped [(id, reason)])`` gets the
    checked local paths of ``files[split]``, in order.
    """

    name: str
    description: str
    files: dict[str, tuple[FileSpec, ...]]  # split -> its files
    parser: Callable[[Sequence[Path], str], Parsed]

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)


DATASETS: Registry[DatasetInfo] = Registry("dataset", DataError)


def register_dataset(info: DatasetInfo, replace: bool = False) -> DatasetInfo:
    """Add a dataset (``replace=True`` overrides one of the same name); its files join
    :func:`known_files` (checked by sha256, fetched with ``siked data fetch``)."""
    for spec in (f for files in info.files.values() for f in files):
        other = known_files().get(spec.path)
        if other is not None and other != spec:
            raise ValueError(f"dataset {info.name!r}: {spec.path} is known with other checksums")
    return DATASETS.register(info.name, info, replace=replace)


def known_files() -> dict[str, FileSpec]:
    """Every file of every registered dataset, by its path under the data directory."""
    return {f.path: f for info in DATASETS.values() for files in info.files.values() for f in files}


register_dataset(
    DatasetInfo(
        "gsm8k",
        "GSM8K grade-school math (Cobbe et al. 2021), official train/test split",
        {
            "train": (GSM8K_TRAIN,),
            "test": (GSM8K_TEST,),
            "train-easy": (GSM8K_TRAIN,),
            "test-easy": (GSM8K_TEST,),
        },
        _parse_gsm8k,
    )
)
register_dataset(
    DatasetInfo(
        "gsm8k-socratic",
        "GSM8K, Socratic solution files (same questions and ids as gsm8k)",
        {
            "train": (GSM8K_TRAIN_SOCRATIC,),
            "test": (GSM8K_TEST_SOCRATIC,),
            "train-easy": (GSM8K_TRAIN_SOCRATIC,),
            "test-easy": (GSM8K_TEST_SOCRATIC,),
        },
        _parse_gsm8k,
    )
)
register_dataset(
    DatasetInfo(
        "svamp",
        "SVAMP challenge set (Patel et al. 2021), all 1000 problems",
        {"test": (SVAMP_JSON,)},
        _parse_svamp,
    )
)
register_dataset(
    DatasetInfo(
        "asdiv",
        "ASDiv v1.0 (Miao et al. 2020), all problems with a single numeric answer",
        {"test": (ASDIV_XML,)},
        _parse_asdiv,
    )
)
register_dataset(
    DatasetInfo(
        "asdiv-a",
        "ASDiv-A: the arithmetic subset of ASDiv (1218 ids of the upstream nfolds/asdiv-a)",
        {"test": (ASDIV_XML, *_ASDIV_A_FOLDS)},
        _parse_asdiv_a,
    )
)
register_dataset(
    DatasetInfo(
        "multiarith",
        "MultiArith (Roy & Roth 2015): test = the 180-problem ChilleD/MultiArith test split "
        "(the SIKeD authors' evaluation set), train = the other 420, all = the 600 problems",
        {
            "test": (MULTIARITH_JSON, MULTIARITH_TEST_SPLIT),
            "train": (MULTIARITH_JSON, MULTIARITH_TEST_SPLIT),
            "all": (MULTIARITH_JSON,),
        },
        _parse_multiarith,
    )
)


# --------------------------------------------------------------------------------------------
# public loaders


def dataset_info(name: str, split: str | None = None) -> DatasetInfo:
    """The registered dataset ``name``; checks ``split`` too. Raises DataError listing valid ones."""
    info = DATASETS.get(name)
    if split is not None and split not in info.files:
        raise DataError(
            f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(info.splits)}"
        )
    return info


_CacheKey = tuple[str, str, tuple[tuple[str, int, int], ...]]
_PARSE_CACHE: dict[_CacheKey, tuple[list[Problem], LoadReport]] = {}
_MAX_LISTED = 5


def _warn_skipped(report: LoadReport) -> None:
    if not report.skipped:
        return
    listed = "; ".join(f"{i} ({why})" for i, why in report.skipped[:_MAX_LISTED])
    more = report.n_skipped - _MAX_LISTED
    log.warning(
        "%s:%s: skipped %d of %d records: %s%s",
        report.name,
        report.split,
        report.n_skipped,
        report.raw,
        listed,
        f"; and {more} more" if more > 0 else "",
    )


def _load(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    verify_checksums: bool,
    download: bool | None,
) -> tuple[list[Problem], LoadReport]:
    info = dataset_info(name, split)
    paths = [
        ensure_file(spec.path, data_dir, verify=verify_checksums, download=download)
        for spec in info.files[split]
    ]
    key: _CacheKey = (name, split, tuple(_stat_key(p) for p in paths))
    cached = _PARSE_CACHE.get(key)
    if cached is None:
        problems, raw, skipped = info.parser(paths, split)
        report = LoadReport(name, split, [str(p) for p in paths], raw, len(problems), skipped)
        _warn_skipped(report)
        cached = _PARSE_CACHE[key] = (problems, report)
    return cached


def load_problems(
    name: str,
    split: str = "test",
    limit: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify_checksums: bool = True,
    download: bool | None = None,
) -> list[Problem]:
    """Load a dataset split as a list of :class:`Problem`, in file order.

    ``limit`` keeps the first N problems (deterministic). Bad records are skipped with a warning;
    :func:`load_report` tells how many. ``verify_checksums=False`` skips the sha256 check (for
    test fixtures and hand-edited copies). ``download`` overrides ``$SIKED_DATA_DOWNLOAD``.
    """
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    problems, _ = _load(name, split, data_dir, verify_checksums, download)
    return list(problems[:limit] if limit is not None else problems)


def load_report(
    name: str,
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify_checksums: bool = True,
    download: bool | None = None,
) -> LoadReport:
    """The :class:`LoadReport` (raw, loaded, skipped) of a dataset split; loads it if needed."""
    _, report = _load(name, split, data_dir, verify_checksums, download)
    return replace(report, files=list(report.files), skipped=list(report.skipped))


def load_gsm8k_solutions(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify_checksums: bool = True,
    download: bool | None = None,
) -> dict[str, GSM8KSolutions]:
    """The human solutions of GSM8K ``split`` keyed by problem id (as in :func:`load_problems`).

    ``main`` comes from ``{split}.jsonl``, ``socratic`` from ``{split}_socratic.jsonl``; the two
    files must hold the same questions in the same order (else DataError). Only ids that
    ``load_problems("gsm8k", split)`` returns are included.
    """
    main_path, soc_path = (
        ensure_file(
            dataset_info(name, split).files[split][0].path,
            data_dir,
            verify=verify_checksums,
            download=download,
        )
        for name in ("gsm8k", "gsm8k-socratic")
    )
    main_rows, soc_rows = _read_jsonl_rows(main_path), _read_jsonl_rows(soc_path)
    if len(main_rows) != len(soc_rows):
        raise DataError(
            f"{main_path} has {len(main_rows)} records but {soc_path} has {len(soc_rows)}"
        )
    for i, (m, s) in enumerate(zip(main_rows, soc_rows, strict=True)):
        if str(m.get("question") or "").strip() != str(s.get("question") or "").strip():
            raise DataError(f"{main_path} and {soc_path} differ in the question on line {i + 1}")
    ids = {
        p.id
        for p in load_problems(
            "gsm8k", split, data_dir=data_dir, verify_checksums=verify_checksums, download=download
        )
    }
    out = {}
    base = split.removesuffix("-easy")  # an easy split keeps its full split's ids
    for i, (m, s) in enumerate(zip(main_rows, soc_rows, strict=True)):
        pid = f"gsm8k-{base}-{i:05d}"
        if pid in ids:
            out[pid] = GSM8KSolutions(str(m.get("answer") or ""), str(s.get("answer") or ""))
    return out


def all_splits() -> list[tuple[str, str]]:
    """Every registered (dataset, split) pair, in registry order."""
    return [(info.name, split) for info in DATASETS.values() for split in info.splits]
