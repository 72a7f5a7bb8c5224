"""Crash-safe file helpers shared by every stage.

Every stage writes JSON lines by appending and flushing one record at a time, so a run killed
at any moment (SIGKILL included) leaves at most one torn last line. :func:`read_jsonl` drops
such a torn line (and only a torn *last* line), so a resumed stage sees exactly the records
that were completely written. Whole files (stats, manifests, configs) are written atomically
through a temporary file and ``os.replace``.

A write that fails (disk full, file-size limit, quota) raises :class:`OutputWriteError` naming
the file; :class:`JsonlAppender` first cuts the partial line off again, and an atomic write
leaves the old file as it was, so the same command resumes cleanly once there is space.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from siked.errors import SikedError

#: errno values that mean "no room to write": disk full, file too large (RLIMIT_FSIZE), quota
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class OutputWriteError(SikedError):
    """Writing an output file failed (disk full, file-size limit, quota, I/O error)."""

    def __init__(self, path: str | os.PathLike[str], error: OSError) -> None:
        self.path = Path(path)
        self.errno = error.errno
        reason = error.strerror or str(error)
        hint = (
            "; free some space (or raise the limit) and rerun the same command: it resumes "
            "where it stopped"
            if error.errno in NO_SPACE_ERRNOS
            else ""
        )
        super().__init__(f"cannot write {self.path}: {reason}{hint}")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (readers see the old or the new file, never half).

    Raises :class:`OutputWriteError` naming ``path`` if it cannot be written (the old file, if
    any, is left as it was).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputWriteError(path, e) from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputWriteError(path, e) from e
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSON-lines file, skipping a torn last line left by a crash.

    A malformed line that is *not* the last one is real corruption and raises ``ValueError``
    naming the file and line number.
    """
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            is_last = i == len(lines) - 1
            if is_last and not line.endswith("\n"):
                return  # torn write from a killed process: ignore it
            raise ValueError(f"{path}:{i + 1}: malformed JSON line: {e}") from e


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def repair_jsonl(path: str | os.PathLike[str]) -> int:
    """Cut a torn last line off ``path`` so appends start on a fresh line; return rows kept."""
    path = Path(path)
    if not path.exists():
        return 0
    rows = read_jsonl(path)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
    return len(rows)


class JsonlAppender:
    """Append records to a JSON-lines file, one unbuffered write per line (optionally fsynced).

    A line that cannot be written completely (disk full, file-size limit) is cut off again and
    :class:`OutputWriteError` is raised, so the file keeps only whole lines. The appender
    assumes it is the file's only writer (stages hold their directory's lock,
    :mod:`siked.lock`).
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_jsonl(self.path)
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
        except OSError as e:
            raise OutputWriteError(self.path, e) from e
        self._size = os.fstat(self._fd).st_size
        self._fsync = fsync

    def write(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            if self._fsync:
                os.fsync(self._fd)
        except OSError as e:
            with contextlib.suppress(OSError):  # shrinking a file needs no space
                os.ftruncate(self._fd, self._size)
            raise OutputWriteError(self.path, e) from e
        self._size += len(line)

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            self.write(r)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSON-lines file atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    atomic_write_text(path, text)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(obj: Any) -> str:
    """Stable hash of a JSON-serialisable object (keys sorted)."""
    return sha256_text(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str))
