"""Resumable JSON-lines outputs: the one resume rule of teach, sample and eval.

Those stages write their rows (``teacher/samples.jsonl``, ``iter_NN/samples.jsonl``,
``eval/predictions.jsonl``) one chunk of work at a time with :class:`~siked.io.JsonlAppender`,
so a run killed at any moment leaves whole rows and at most one torn last line. Beside the
file lies its *fingerprint*: a small JSON file with the settings that determine the rows
(model, seed, sampling settings, the engine's dtype, or what ``auto`` resolved to on the machine
that wrote them...; ``teach.json``, ``samples.meta.json``, ``predictions.meta.json``). On every
start :func:`resume_rows` applies one rule:

1. **Foreign file.** The file holds rows but there is no fingerprint: it was not written by the
   stage. That is an error naming the file; it is never overwritten.
2. **Other settings.** The fingerprint differs from the current settings: the file and its
   ``companions`` (other row files of the same settings) are moved aside to ``NAME.stale``
   (replacing an older one), files ``derived`` from them (stats, summaries rebuilt at the end)
   are removed, a warning says so, and the stage starts afresh.
3. **Same settings.** The rows already written are returned (a torn last line dropped) and the
   stage asks only for the rest. Which rows count as done (whole questions, first copy of a
   key) is the stage's rule, applied to these rows.

The fingerprint is (re)written before the first new row. ``train`` keeps its own checkpoint
mechanism (``train_inputs.json`` / ``train_done.json``, :mod:`siked.train`); the loop's
``manifest.json`` (:mod:`siked.manifest`) sits above all stages and decides which stage runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from siked.errors import SikedError
from siked.io import atomic_write_json, read_json, read_jsonl, repair_jsonl

log = logging.getLogger(__name__)

T = TypeVar("T")

#: suffix of a row file moved aside because it was made with other settings
STALE_SUFFIX = ".stale"


#: the fingerprint key of what ``dtype: auto`` resolved to on the machine that wrote the rows
AUTO_DTYPE = "auto_dtype"


def with_dtype(fingerprint: dict[str, Any], dtype: str, auto: str | None = None) -> dict[str, Any]:
    """``fingerprint`` with the engine's ``dtype`` when one is set: bf16 and float32 give other
    greedy outputs and samples, so rows made in one are not resumed in the other. ``auto``
    records what ``dtype: auto`` resolved to here (``Engine.auto_dtype``: bf16 on a CPU with
    native bf16, float32 on one without), so rows are not continued on the other kind of
    machine either; a fingerprint written before that counted (no :data:`AUTO_DTYPE`) still
    matches (:func:`same_fingerprint`).

    >>> with_dtype({"seed": 1}, "auto"), with_dtype({"seed": 1}, "float32")
    ({'seed': 1}, {'seed': 1, 'dtype': 'float32'})
    >>> with_dtype({"seed": 1}, "auto", auto="bfloat16")
    {'seed': 1, 'auto_dtype': 'bfloat16'}
    """
    if dtype != "auto":
        return {**fingerprint, "dtype": dtype}
    return fingerprint if auto is None else {**fingerprint, AUTO_DTYPE: auto}


def same_fingerprint(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether rows written under fingerprint ``old`` continue under ``new``: equal, or equal
    but for :data:`AUTO_DTYPE`, which ``old`` did not record yet.

    >>> same_fingerprint({"seed": 1}, {"seed": 1, "auto_dtype": "float32"})
    True
    >>> same_fingerprint({"auto_dtype": "bfloat16"}, {"auto_dtype": "float32"})
    False
    """
    if old == new:
        return True
    return AUTO_DTYPE not in old and old == {k: v for k, v in new.items() if k != AUTO_DTYPE}


def stale_path(path: Path) -> Path:
    """Where a row file made with other settings is kept: ``NAME.stale``.

    >>> stale_path(Path("it/samples.jsonl")).as_posix()
    'it/samples.jsonl.stale'
    """
    return path.with_name(path.name + STALE_SUFFIX)


def resume_rows(
    path: str | os.PathLike[str],
    fingerprint: dict[str, Any],
    *,
    fingerprint_path: str | os.PathLike[str],
    stage: str,
    companions: Sequence[str | os.PathLike[str]] = (),
    derived: Sequence[str | os.PathLike[str]] = (),
) -> list[dict[str, Any]]:
    """The rows of ``path`` that a resumed run keeps (see the module docstring for the rule).

    ``stage`` names the writer in the error about a foreign file (``siked sample``).
    """
    path, meta = Path(path), Path(fingerprint_path)
    files = [path, *(Path(p) for p in companions)]
    if not meta.exists():
        for f in files:
            if f.exists() and f.stat().st_size:
                raise SikedError(
                    f"{f} exists but was not written by {stage} (no {meta.name}): remove it or "
                    "choose another output"
                )
    elif not same_fingerprint(read_json(meta), fingerprint):
        for f in files:
            if f.exists():
                log.warning(
                    "%s was made with other settings: moved to %s; starting afresh",
                    f,
                    stale_path(f),
                )
                os.replace(f, stale_path(f))
        for f in (Path(p) for p in derived):
            f.unlink(missing_ok=True)
    atomic_write_json(meta, fingerprint)
    repair_jsonl(path)  # a torn last line goes now, so appends start on a fresh line
    return read_jsonl(path)


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive slices of ``size``: the units of work that are appended (and so
    resumed) together.

    >>> chunked([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    return [items[i : i + size] for i in range(0, len(items), size)]
