"""One writer per output directory.

Every command that writes a directory (``teach``, ``sample``, ``eval``, ``train``, ``mix``,
``run``, ``report``) holds an exclusive lock on it while it writes: ``flock(2)`` on
``DIR/.siked.lock``. A second process that wants the same directory is refused at once
(:class:`OutputLocked`, exit status 75) with a message that names the holder; the lock file
holds the holder's pid, host, command line and start time as one JSON line.

- **The OS owns the lock**, not the file: a process that dies (SIGKILL, a reboot) releases it,
  so the lock file it leaves behind never blocks a rerun. The file is never deleted (deleting a
  lock file is racy); a free lock with stale content is simply taken over.
- **Trees**: taking ``DIR`` is refused while another process holds a lock on a directory
  *above* ``DIR`` (a stage command cannot write into a run that ``siked run`` is writing).
  Inside one process a lock covers its tree: ``siked run`` locks the run directory once and
  its stages, which lock their own sub-directories when called on their own, find them covered
  and take no second lock (re-entrant for the holder, so nothing can deadlock). ``siked run``
  also refuses at once when a stage command is still writing inside the run directory
  (:func:`busy_below`).
- **Readers never lock**: :func:`holder_of` tells whether a directory is being written (a
  shared lock tried for a moment, never waited for). Acquisition retries for
  :data:`PROBE_GRACE_S` so that such a probe never makes a writer fail.
- ``report/`` is written by readers of a running run (``siked report``) as well as by the run
  itself, so its lock ignores the locks above it (``nested=False``) and waits for another
  report writer instead of refusing.
- A forked child closes its copies of the lock descriptors (:func:`os.register_at_fork`), so a
  worker that outlives a killed parent does not keep the lock. Threads of one process share
  its locks.
- **Children that work for their parent** (the loop trains in a spawned child,
  :mod:`siked.child`) run under the parent's locks: the parent hands :func:`held` to the child,
  which enters :func:`inherited` (after checking that the parent still holds each one). The
  child's stage locks inside those trees are then covered, as in the parent itself; the child
  never takes or releases the parent's locks, and it dies with its parent.

POSIX only (``fcntl``). On a network file system the lock is as reliable as the file system's
``flock`` (NFSv4 emulates it with byte-range locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from siked.errors import SikedError

#: name of the lock file inside a locked directory
LOCK_NAME = ".siked.lock"
#: exit status of a command refused because its output is in use (EX_TEMPFAIL: try again later)
EXIT_LOCKED = 75
#: seconds an acquisition keeps retrying before it refuses (a reader's probe lasts microseconds)
PROBE_GRACE_S = 0.25
_POLL_S = 0.02

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Holder:
    """Who holds a directory's lock, as written in its lock file."""

    directory: str
    pid: int | None = None
    host: str | None = None
    command: str | None = None
    stage: str | None = None
    started: str | None = None

    @property
    def is_this_process(self) -> bool:
        return self.pid == os.getpid() and self.host == socket.gethostname()

    def describe(self) -> str:
        """``pid 123 on host h since 2025-01-01T00:00:00+00:00: `siked teach ...```."""
        if self.pid is None:
            return "a process that has not written its details yet"
        text = f"pid {self.pid} on host {self.host}"
        if self.started:
            text += f" since {self.started}"
        if self.command:
            text += f": `{self.command}`"
        return text


class OutputLocked(SikedError):
    """The output directory (or one above it) is being written by another process."""

    exit_code = EXIT_LOCKED

    def __init__(self, directory: Path, holder: Holder) -> None:
        self.directory = directory
        self.holder = holder
        locked = Path(holder.directory)
        where = str(directory) if locked == directory else f"{directory} is inside {locked}, which"
        super().__init__(
            f"{where} is being written by another process ({holder.describe()}); "
            f"wait for it to finish or stop it, then rerun (lock: {locked / LOCK_NAME})"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (siked.child)
        return (type(self), (self.directory, self.holder))


@dataclass
class _Held:
    fd: int | None  # None: a lock the parent process holds for us (:func:`inherited`)
    holder: Holder
    count: int = 1


_HELD: dict[Path, _Held] = {}
_REGISTRY = threading.RLock()


def current_command() -> str:
    """This process's command line, as a user would type it (``siked teach --out d``)."""
    argv = list(sys.argv) or ["python"]
    prog = Path(argv[0]).name
    if prog == "__main__.py":  # python -m siked
        prog = f"python -m {Path(argv[0]).parent.name}"
    return shlex.join([prog, *argv[1:]]) if argv[1:] else prog


def _key(directory: str | os.PathLike[str]) -> Path:
    return Path(directory).resolve()


def _read_holder(fd: int, directory: Path) -> Holder:
    """The holder written in an open lock file; the fields stay empty while it is being written."""
    deadline = time.monotonic() + PROBE_GRACE_S
    while True:
        raw = os.pread(fd, 65536, 0)
        try:
            info = json.loads(raw.decode("utf-8"))
            fields = {k: info.get(k) for k in ("pid", "host", "command", "stage", "started")}
            return Holder(directory=str(directory), **fields)
        except (ValueError, AttributeError):
            if time.monotonic() >= deadline:
                return Holder(directory=str(directory))
            time.sleep(_POLL_S)


def holder_of(directory: str | os.PathLike[str]) -> Holder | None:
    """The holder of ``directory``'s lock (this process included), or None when nobody writes it.

    Never waits and never blocks a writer for longer than a system call.
    """
    d = _key(directory)
    with _REGISTRY:
        held = _HELD.get(d)
        if held is not None:
            return held.holder
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd, d)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _covering(d: Path) -> _Held | None:
    """This process's lock on ``d`` or on a directory above it."""
    for p in (d, *d.parents):
        if p in _HELD:
            return _HELD[p]
    return None


def _open_locked(d: Path, deadline: float) -> int | None:
    """An fd of ``d/LOCK_NAME`` holding the exclusive lock, or None if still held at ``deadline``."""
    path = d / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)
            continue
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file was replaced between open and flock: lock the new one


def _write_holder(fd: int, holder: Holder) -> None:
    data = (json.dumps(asdict(holder), sort_keys=True) + "\n").encode("utf-8")
    with contextlib.suppress(OSError):  # the details are informative; the lock is what counts
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)  # a free lock reads as empty (a killed holder leaves its details)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _make_dir(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SikedError(f"cannot create the output directory {d}: {e.strerror or e}") from e


def _check_parents(d: Path) -> None:
    for p in d.parents:
        above = holder_of(p)
        if above is not None:
            raise OutputLocked(d, above)


def _acquire(d: Path, stage: str, wait: float, nested: bool) -> Holder:
    if nested:
        _check_parents(d)  # before creating anything, so that a refused process writes nothing
    _make_dir(d)
    try:
        fd = _open_locked(d, time.monotonic() + max(wait, PROBE_GRACE_S))
    except OSError as e:
        raise SikedError(f"cannot lock {d / LOCK_NAME}: {e.strerror or e}") from e
    if fd is None:
        raise OutputLocked(d, holder_of(d) or Holder(directory=str(d)))
    holder = Holder(
        directory=str(d),
        pid=os.getpid(),
        host=socket.gethostname(),
        command=current_command(),
        stage=stage,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    _write_holder(fd, holder)
    if nested:  # again once locked: a process that locked a parent meanwhile sees our lock
        try:
            _check_parents(d)
        except OutputLocked:
            _release(fd)
            raise
    _HELD[d] = _Held(fd=fd, holder=holder)
    return holder


@contextmanager
def output_lock(
    directory: str | os.PathLike[str],
    stage: str,
    *,
    wait: float = 0.0,
    nested: bool = True,
) -> Iterator[Holder]:
    """Hold ``directory``'s exclusive lock (created with its parents if needed) for the block.

    ``stage`` names the writer in the lock file (``teach``, ``run``...). Raises
    :class:`OutputLocked` when another process holds the directory (after waiting up to
    ``wait`` seconds) or, with ``nested``, a directory above it. A directory this process
    already holds, or (with ``nested``) one inside it, is re-entered without a second lock.
    ``nested=False`` locks exactly ``directory``, whatever is locked above it (``report/``).
    """
    d = _key(directory)
    with _REGISTRY:
        held = _HELD.get(d) if not nested else _covering(d)
        if held is not None:
            _make_dir(d)
            held.count += 1
        else:
            holder = _acquire(d, stage, wait, nested)
    if held is not None:
        try:
            yield held.holder
        finally:
            with _REGISTRY:
                held.count -= 1
        return
    try:
        yield holder
    finally:
        with _REGISTRY:
            mine = _HELD[d]
            mine.count -= 1
            if mine.count == 0:
                del _HELD[d]
                if mine.fd is not None:
                    _release(mine.fd)


def held() -> list[Holder]:
    """The locks this process works under (its own and inherited ones), for a child process
    that works for it (:func:`inherited`)."""
    with _REGISTRY:
        return [h.holder for h in _HELD.values()]


@contextmanager
def inherited(holders: Iterable[Holder]) -> Iterator[None]:
    """Work under locks another process (the parent) holds, without taking them: inside the
    block this process's :func:`output_lock` calls in those trees are covered, as in the holder.

    Each lock must still be held by the process its :class:`Holder` names, else the parent is
    gone (or never held it) and :class:`~siked.errors.SikedError` is raised.
    """
    added: list[Path] = []
    with _REGISTRY:
        try:
            for h in holders:
                d = _key(h.directory)
                if d in _HELD:
                    continue
                now = holder_of(d)
                if now is None or (now.pid, now.host) != (h.pid, h.host):
                    raise SikedError(
                        f"{d}: the lock handed down by pid {h.pid} is not held by it any more"
                        + (f" (now: {now.describe()})" if now is not None else "")
                    )
                _HELD[d] = _Held(fd=None, holder=h)
                added.append(d)
        except BaseException:
            for d in added:
                del _HELD[d]
            raise
    try:
        yield
    finally:
        with _REGISTRY:
            for d in added:
                _HELD.pop(d, None)


def busy_below(directory: str | os.PathLike[str], depth: int = 2, skip: Iterable[str] = ()) -> None:
    """Raise :class:`OutputLocked` if another process holds a lock on a directory up to
    ``depth`` levels below ``directory`` (sub-directories named in ``skip`` are not looked at).

    ``siked run`` calls it once it holds the run directory: a stage command started earlier
    inside the run is found at once. (A stage command started later is refused by the run's
    lock, and one racing with the check sees the run's lock when it checks its parents.)
    """
    skipped = set(skip)
    level = [_key(directory)]
    for _ in range(depth):
        below: list[Path] = []
        for d in level:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                if e.name in skipped or not e.is_dir(follow_symlinks=False):
                    continue
                sub = Path(e.path)
                holder = holder_of(sub)
                if holder is not None and not holder.is_this_process:
                    raise OutputLocked(sub, holder)
                below.append(sub)
        level = below


def locks_outputs(
    stage: str,
    directories: Callable[[Mapping[str, Any]], Iterable[str | os.PathLike[str] | None]],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a stage function so that it holds :func:`output_lock` on the directories that
    ``directories(arguments)`` returns (its bound arguments by name, defaults applied; None
    entries are skipped) while it runs."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            dirs = {_key(d) for d in directories(bound.arguments) if d is not None}
            with ExitStack() as stack:
                for d in sorted(dirs):
                    stack.enter_context(output_lock(d, stage))
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def _forget_after_fork() -> None:
    """In a forked child: drop the copies of the parent's lock descriptors, never unlock them
    (an flock belongs to the open file, shared with the parent, which keeps holding it)."""
    global _REGISTRY
    _REGISTRY = threading.RLock()  # another thread may have held it at fork time
    for h in _HELD.values():
        if h.fd is not None:
            with contextlib.suppress(OSError):
                os.close(h.fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_after_fork)

__all__ = [
    "EXIT_LOCKED",
    "LOCK_NAME",
    "Holder",
    "OutputLocked",
    "busy_below",
    "current_command",
    "held",
    "holder_of",
    "inherited",
    "locks_outputs",
    "output_lock",
]
