"""Isolated execution of PoT programs (programs come from models: hostile input).

``Sandbox`` keeps a pool of warm worker processes (``siked/_sandbox_worker.py``, started once,
with math, fractions... and, for programs that mention them, sympy and numpy already imported).
Each program runs in a child forked from a worker, so isolation costs a fork, not an
interpreter start.

What is enforced where (see also ``docs/architecture.md``):

- **Static check (in the worker, before any fork)**: the program is refused (status
  ``rejected``) if it imports a module outside :data:`ALLOWED_MODULES`, names ``eval``,
  ``exec``, ``compile``, ``open``, ``input``, ``globals``, ``vars``, ``__import__`` or another
  dunder name, touches an attribute starting with ``_`` or a denied one (``os``, ``sys``,
  ``system``, ``fork``, ``environ``, frame attributes...), calls ``getattr`` with a computed or
  denied name, or has a string constant containing ``__``.
- **Runtime guards (installed once in the worker, inherited by every child)**: restricted
  builtins; an ``__import__`` hook applying the same allow-list to the program and to strings it
  gets evaluated (``sympify("...")``); the process, file and socket functions of
  ``os``/``posix``/``subprocess``/``socket`` replaced by ones that raise.
- **Kernel (in the child)**: a new session and process group, killed and reaped whatever
  happens; ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
  ``RLIMIT_NPROC``, ``RLIMIT_CORE=0``; ``PR_SET_NO_NEW_PRIVS``; a parent-death signal; an empty
  private working directory, removed afterwards. When siked runs as root the child switches to
  ``nobody``: ``RLIMIT_NPROC`` is then enforced (the kernel ignores it for root), and signals to
  siked and writes outside the work dir fail with EPERM.
- **Worker (once)**: a fresh interpreter with a scrubbed environment (no API keys or tokens, no
  memory of the siked process); an empty network namespace where the OS allows it (as root, or
  through an unprivileged user namespace), else only the Python-level socket guards; a child
  subreaper, so escaped grandchildren are killed and reaped too; it exits when siked dies.

**Prelude**: programs run after the names of ``prelude`` (``authors`` by default: what the
SIKeD authors' ``prefix.txt`` defines before every program -- ``from math import *``, sympy's
``Symbol``, ``Eq``, ``simplify``, ``solve``, ``lcm``, ``solve_it``). It is built once per worker,
with the programs' own restricted builtins, and copied into each program's namespace, so it
costs no import per program; a program that names one of its sympy names runs on a full worker.

Results are cached by the sha256 of the code, the limits and the prelude: in memory (LRU) and,
optionally, in ``cache_dir``. Timeouts and sandbox failures are not cached.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import os
import queue
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

from siked._sandbox_worker import (
    ALLOWED_MODULES,
    PRELUDE_SYMPY_NAMES,
    PRELUDES,
    check_program,
    decode_frame,
    encode_frame,
)
from siked.errors import SikedError

__all__ = [
    "ALLOWED_MODULES",
    "PRELUDES",
    "STATUSES",
    "ExecResult",
    "Limits",
    "Sandbox",
    "SandboxError",
    "Status",
    "check_program",
    "default_prelude",
    "get_sandbox",
    "set_default_prelude",
    "usable_cpus",
]

Status = Literal["ok", "timeout", "error", "rejected", "no_answer", "memory"]
STATUSES: tuple[str, ...] = ("ok", "timeout", "error", "rejected", "no_answer", "memory")

#: Bump when the worker's behaviour changes, so on-disk cache entries are not reused.
CACHE_VERSION = 2

_WORKER_SCRIPT = Path(__file__).with_name("_sandbox_worker.py")
_BOOT = "import runpy, sys; del sys.path[0]; runpy.run_path(sys.argv[1], run_name='__main__')"
_PASS_ENV = ("LD_LIBRARY_PATH", "PYTHONHOME")
_STDOUT_MAX = 2048

#: Programs that may use these run on "full" workers (sympy and numpy preloaded); the others on
#: "light" workers (standard library only), which fork several times faster.
_HEAVY = re.compile(r"sympy|numpy|mpmath")
#: ... and, under the ``authors`` prelude, programs that name one of its sympy names.
_HEAVY_PRELUDE = re.compile(rf"sympy|numpy|mpmath|\b(?:{'|'.join(PRELUDE_SYMPY_NAMES)})\b")
Kind = Literal["light", "full"]
Prelude = Literal["authors", "none"]
_DEFAULT_PRELUDE: list[Prelude] = ["authors"]


def default_prelude() -> Prelude:
    """The prelude of a :class:`Sandbox` built without one (``sandbox.prelude`` of the config
    that siked was started with; ``authors`` until one is set)."""
    return _DEFAULT_PRELUDE[0]


def set_default_prelude(prelude: str) -> None:
    """Set :func:`default_prelude` (``siked run`` and every command do, from the config)."""
    if prelude not in PRELUDES:
        raise ValueError(f"unknown sandbox prelude {prelude!r} (choose from {', '.join(PRELUDES)})")
    _DEFAULT_PRELUDE[0] = cast(Prelude, prelude)


class SandboxError(SikedError):
    """The sandbox itself failed (a worker cannot start, or the sandbox is closed)."""


@dataclass(frozen=True)
class Limits:
    """Per-program limits. ``memory_mb`` is the address-space limit of the program's process
    (the worker with sympy and numpy loaded takes about 140 MB of it)."""

    timeout_s: float = 5.0
    cpu_s: float = 5.0
    memory_mb: int = 1024
    fsize_mb: int = 1
    nofile: int = 32
    nproc: int = 1
    output_kb: int = 1024  # the program is stopped (status error) after printing this much
    max_code_chars: int = 100_000

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one program. ``answer`` is set only when ``status == "ok"``."""

    status: Status
    answer: str | None = None
    error: str | None = None
    seconds: float = 0.0
    rule: Literal["answer", "print"] | None = None
    stdout: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecResult:
        status = data.get("status")
        if status not in STATUSES:
            return cls("error", error=f"sandbox: bad status {status!r}")
        rule = data.get("rule")
        return cls(
            status=status,
            answer=_opt_str(data.get("answer")) if status == "ok" else None,
            error=_opt_str(data.get("error")),
            seconds=float(data.get("seconds") or 0.0),
            rule=rule if rule in ("answer", "print") and status == "ok" else None,
            stdout=str(data.get("stdout") or "")[:_STDOUT_MAX],
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _cacheable(result: ExecResult) -> bool:
    if result.status == "timeout":
        return False
    return not (result.error or "").startswith("sandbox:")


# ----------------------------------------------------------------------------------------------
# One worker process, seen from siked
# ----------------------------------------------------------------------------------------------


class _WorkerFailed(Exception):
    """The worker died, closed its pipe or stopped answering."""


def _worker_env(root: str) -> dict[str, str]:
    env = {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": root,
        "TMPDIR": root,
        "PYTHONHASHSEED": "0",  # deterministic set/dict order: results are cacheable
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }
    env.update({k: os.environ[k] for k in _PASS_ENV if k in os.environ})
    return env


def _default_tmp_dir() -> str | None:
    """Work directories go to /dev/shm (tmpfs: creating and removing them is cheap) if usable."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


class _Worker:
    def __init__(self, kind: Kind, tmp_dir: str | None) -> None:
        self.owner = os.getpid()
        self.kind = kind
        base = tmp_dir or _default_tmp_dir()
        try:
            self.root = tempfile.mkdtemp(prefix="siked-sandbox-", dir=base)
        except OSError as e:
            raise SandboxError(f"cannot create a sandbox directory in {base}: {e}") from e
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _release
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-c", _BOOT, str(_WORKER_SCRIPT), kind, self.root],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                env=_worker_env(self.root),
                cwd=self.root,
                close_fds=True,
                start_new_session=True,  # terminal signals (Ctrl-C) do not reach it
            )
        except OSError as e:
            self.stderr.close()
            shutil.rmtree(self.root, ignore_errors=True)
            raise SandboxError(f"cannot start a sandbox worker ({sys.executable}): {e}") from e
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.buffer = b""
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        try:
            message = self._receive(time.monotonic() + timeout)
        except _WorkerFailed as e:
            raise SandboxError(f"sandbox worker failed to start: {e}{self._stderr_tail()}") from e
        if not message.get("ready"):
            raise SandboxError(f"sandbox worker sent {message!r} instead of 'ready'")
        self.info = message
        return message

    def call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        self._send(encode_frame(message), deadline)
        return self._receive(deadline)

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(select.POLLOUT, deadline)
            try:
                view = view[os.write(self.wfd, view) :]
            except BlockingIOError:
                continue
            except OSError as e:  # BrokenPipeError: the worker is gone
                raise _WorkerFailed(f"worker pipe closed ({e.strerror})") from e

    def _receive(self, deadline: float) -> dict[str, Any]:
        while True:
            message, self.buffer = decode_frame(self.buffer)
            if message is not None:
                return message
            self._wait(select.POLLIN, deadline)
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as e:  # closed under us (the sandbox is being closed)
                raise _WorkerFailed(f"worker pipe closed ({e.strerror})") from e
            if not chunk:
                raise _WorkerFailed(f"worker exited (code {self.proc.poll()})")
            self.buffer += chunk

    def _wait(self, event: int, deadline: float) -> None:
        fd = self.wfd if event == select.POLLOUT else self.rfd
        poller = select.poll()
        poller.register(fd, event)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise _WorkerFailed("worker did not answer in time")

    def _stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return f": {lines[-1]}" if lines else ""

    def close(self, grace: float = 2.0) -> None:
        """Stop the worker (politely, then by force) and remove its directory."""
        if os.getpid() != self.owner:
            self.abandon()
            return
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # EOF: the worker finishes and exits
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5.0)
        self._release()
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        self.proc.kill()  # its children die with it (parent-death signal)
        self.close(grace=5.0)

    def abandon(self) -> None:
        """Forget a worker inherited through fork(): it belongs to the parent process."""
        self._release()
        self.proc.returncode = 0  # keep Popen.__del__ from reaping someone else's child

    def _release(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()


# ----------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------


class _Cache:
    """In-memory LRU of results, backed by an optional directory of JSON files."""

    def __init__(self, size: int, directory: str | None) -> None:
        self.size = size
        self.dir = Path(directory) if directory else None
        self.memory: OrderedDict[str, ExecResult] = OrderedDict()
        self.lock = threading.Lock()
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> ExecResult | None:
        with self.lock:
            hit = self.memory.get(key)
            if hit is not None:
                self.memory.move_to_end(key)
                return hit
        if self.dir is None:
            return None
        try:
            result = ExecResult.from_dict(json.loads(self._path(key).read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        self._remember(key, result)
        return result

    def put(self, key: str, result: ExecResult) -> None:
        self._remember(key, result)
        if self.dir is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(result.to_dict()), "utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # the disk cache is an optimisation; never fail a run because of it

    def _remember(self, key: str, result: ExecResult) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.memory[key] = result
            self.memory.move_to_end(key)
            while len(self.memory) > self.size:
                self.memory.popitem(last=False)


# ----------------------------------------------------------------------------------------------
# The pool of workers (one per owning process)
# ----------------------------------------------------------------------------------------------


class _Pool:
    def __init__(self, kind: Kind, size: int, tmp_dir: str | None, start_timeout: float) -> None:
        self.kind = kind
        self.pid = os.getpid()
        self.size = size
        self.tmp_dir = tmp_dir
        self.start_timeout = start_timeout
        self.lock = threading.Lock()
        self.idle: queue.Queue[_Worker] = queue.Queue()
        self.workers: list[_Worker] = []
        self.started = False
        self.closed = False

    def start(self) -> None:
        with self.lock:
            if self.closed:
                raise SandboxError("the sandbox is closed")
            if self.started:
                return
            fresh: list[_Worker] = []
            try:
                for _ in range(self.size):  # start them all, then wait: they import in parallel
                    fresh.append(_Worker(self.kind, self.tmp_dir))
                for worker in fresh:
                    worker.wait_ready(self.start_timeout)
            except BaseException:
                for worker in fresh:
                    worker.kill()
                raise
            self.workers.extend(fresh)
            for worker in fresh:
                self.idle.put(worker)
            self.started = True

    def acquire(self, timeout: float) -> _Worker | None:
        try:
            return self.idle.get(timeout=timeout)
        except queue.Empty:
            return None

    def release(self, worker: _Worker) -> None:
        if self.closed:
            worker.close()
        else:
            self.idle.put(worker)

    def replace(self, worker: _Worker) -> _Worker:
        """Kill ``worker`` and start a fresh one in its place (held by the caller)."""
        worker.kill()
        with self.lock:
            if worker in self.workers:
                self.workers.remove(worker)
            if self.closed:
                raise SandboxError("the sandbox is closed")
        fresh = _Worker(self.kind, self.tmp_dir)
        try:
            fresh.wait_ready(self.start_timeout)
        except BaseException:
            fresh.kill()
            raise
        with self.lock:
            self.workers.append(fresh)
        return fresh

    def close(self) -> None:
        with self.lock:
            self.closed = True
            workers, self.workers = self.workers, []
        if os.getpid() != self.pid:
            for worker in workers:
                worker.abandon()
            return
        for worker in workers:
            worker.close()

    def abandon(self) -> None:
        """After fork() in a child process: forget the parent's workers without touching them."""
        self.closed = True
        for worker in self.workers:
            worker.abandon()
        self.workers = []


# ----------------------------------------------------------------------------------------------
# The public API
# ----------------------------------------------------------------------------------------------

_ALL_SANDBOXES: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a job scheduler's share of a node,
    ``taskset``), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class Sandbox:
    """Run PoT programs in isolated, limited child processes of warm workers.

    ``workers`` (default: the CPUs this process may run on, :func:`usable_cpus`) is the number of programs run at once. Workers
    start on first use: "light" ones (standard library preloaded) for most programs, "full"
    ones (sympy and numpy preloaded too) for programs that mention sympy, numpy or mpmath. A
    worker that dies is replaced and its program retried once. Safe to use from threads; after
    ``fork()`` a child process gets its own workers on first use. ``prelude`` names what a
    program finds defined (``authors``: ``from math import *``, sympy's ``Symbol``, ``Eq``,
    ``simplify``, ``solve``, ``lcm`` and ``solve_it``, as in the SIKeD authors' code; ``none``:
    nothing; default: :func:`default_prelude`); it is built once per worker, and part of the
    cache key. ``cache_size=0`` disables the
    in-memory cache. ``_static_check``/``_runtime_guards`` exist only so tests can show that
    each layer holds on its own; never turn them off for model output.
    """

    def __init__(
        self,
        limits: Limits = Limits(),
        workers: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        cache_size: int = 100_000,
        start_timeout_s: float = 120.0,
        tmp_dir: str | None = None,
        prelude: str | None = None,
        _static_check: bool = True,
        _runtime_guards: bool = True,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        prelude = default_prelude() if prelude is None else prelude
        if prelude not in PRELUDES:
            raise ValueError(f"unknown prelude {prelude!r} (choose from {', '.join(PRELUDES)})")
        self._init_args = {
            "limits": limits,
            "workers": workers,
            "cache_dir": cache_dir,
            "cache_size": cache_size,
            "start_timeout_s": start_timeout_s,
            "tmp_dir": tmp_dir,
            "prelude": prelude,
            "_static_check": _static_check,
            "_runtime_guards": _runtime_guards,
        }
        self.limits = limits
        self.prelude = prelude
        self._heavy = _HEAVY_PRELUDE if prelude == "authors" else _HEAVY
        self.workers = workers or usable_cpus()
        self._cache = _Cache(cache_size, os.fspath(cache_dir) if cache_dir else None)
        self._start_timeout = start_timeout_s
        self._tmp_dir = tmp_dir
        self._check = _static_check
        self._guards = _runtime_guards
        self._ids = itertools.count(1)
        self._grace_s = 15.0  # a worker silent for 2 * timeout_s + this is declared hung
        self._closed = False
        self._fingerprint = json.dumps(
            [CACHE_VERSION, limits.to_dict(), prelude, _static_check, _runtime_guards],
            sort_keys=True,
        )
        self._pools = self._new_pools()
        _ALL_SANDBOXES.add(self)

    def _new_pools(self) -> dict[Kind, _Pool]:
        pools: dict[Kind, _Pool] = {
            kind: _Pool(kind, self.workers, self._tmp_dir, self._start_timeout)
            for kind in ("light", "full")
        }
        for pool in pools.values():
            weakref.finalize(self, _Pool.close, pool)
        return pools

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickling (multiprocessing with "spawn") gives a new sandbox with the same settings."""
        return (_rebuild, (self._init_args,))

    # -- life cycle ----------------------------------------------------------------------------

    def _owned_pools(self) -> dict[Kind, _Pool]:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._pools["light"].pid != os.getpid():  # a forked child: get our own workers
            self._after_fork_in_child()
        return self._pools

    def _after_fork_in_child(self) -> None:
        # the pools' locks may have been held by another thread at fork time
        if self._pools["light"].pid != os.getpid():
            for pool in self._pools.values():
                pool.abandon()
            self._pools = self._new_pools()
        self._cache.lock = threading.Lock()

    def start(self, full: bool = False) -> Sandbox:
        """Start the light workers now (and the full ones if ``full``), not on first use."""
        pools = self._owned_pools()
        pools["light"].start()
        if full:
            pools["full"].start()
        return self

    def close(self) -> None:
        """Stop the workers. Safe to call twice; a closed sandbox refuses to run programs."""
        self._closed = True
        for pool in self._pools.values():
            pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def isolation(self) -> dict[str, Any]:
        """What the OS let the workers enforce (network namespace, dropped uid, ...)."""
        pool = self._owned_pools()["light"]
        pool.start()
        with pool.lock:
            info = dict(pool.workers[0].info) if pool.workers else {}
        for key in ("ready", "pid", "kind", "preloaded"):
            info.pop(key, None)
        return info

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (light and full)."""
        pids: list[int] = []
        for pool in self._pools.values():
            with pool.lock:
                pids.extend(w.pid for w in pool.workers)
        return pids

    # -- running -------------------------------------------------------------------------------

    def _key(self, code: str) -> str:
        data = f"{self._fingerprint}\0{code}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(data).hexdigest()

    def run(self, code: str) -> ExecResult:
        """Run one program (see :meth:`run_many`)."""
        return self.run_many([code])[0]

    def run_many(self, codes: Sequence[str]) -> list[ExecResult]:
        """Run programs in parallel on the workers; results in the order of ``codes``.

        Identical programs run once; cached results are returned without running.
        """
        pools = self._owned_pools()
        results: list[ExecResult | None] = [None] * len(codes)
        pending: dict[str, list[int]] = {}
        for i, code in enumerate(codes):
            if not isinstance(code, str):
                raise TypeError(f"program {i} is {type(code).__name__}, not str")
            if len(code) > self.limits.max_code_chars:
                results[i] = ExecResult(
                    "rejected", error=f"program longer than {self.limits.max_code_chars} characters"
                )
            elif (hit := self._cache.get(self._key(code))) is not None:
                results[i] = hit
            else:
                pending.setdefault(code, []).append(i)
        if pending:
            for code, result in self._execute(pools, list(pending)).items():
                if _cacheable(result):
                    self._cache.put(self._key(code), result)
                for i in pending[code]:
                    results[i] = result
        lost = ExecResult("error", error="sandbox: lost")
        return [r if r is not None else lost for r in results]

    def _execute(self, pools: dict[Kind, _Pool], codes: list[str]) -> dict[str, ExecResult]:
        by_kind: dict[Kind, list[str]] = {"light": [], "full": []}
        for code in codes:
            by_kind["full" if self._heavy.search(code) else "light"].append(code)
        out: dict[str, ExecResult] = {}
        jobs = []
        for kind, batch in by_kind.items():
            if batch:
                pools[kind].start()
                feed = _Feed(batch)
                jobs += [(pools[kind], feed)] * min(self.workers, len(batch))
        if len(jobs) == 1:
            self._drain(*jobs[0], out)
        else:
            with concurrent.futures.ThreadPoolExecutor(len(jobs), "siked-sandbox") as executor:
                futures = [executor.submit(self._drain, pool, feed, out) for pool, feed in jobs]
                for future in futures:
                    future.result()
        busy = ExecResult("error", error="sandbox: no worker became free in time")
        return {code: out.get(code, busy) for code in codes}

    def _drain(self, pool: _Pool, feed: _Feed, out: dict[str, ExecResult]) -> None:
        """Hold one worker and run programs from ``feed`` on it until the feed is empty."""
        worker = pool.acquire(self._acquire_timeout(len(feed.items)))
        if worker is None:
            return
        try:
            while (code := feed.next()) is not None:
                out[code], worker = self._run_on(pool, worker, code)
        finally:
            pool.release(worker)

    def _acquire_timeout(self, n: int) -> float:
        per_program = 2 * self.limits.timeout_s + self._grace_s
        return max(60.0, per_program * max(1, n // self.workers))

    def _request(self, code: str) -> dict[str, Any]:
        return {
            "id": next(self._ids),
            "code": code,
            "limits": self.limits.to_dict(),
            "prelude": self.prelude,
            "check": self._check,
            "guards": self._guards,
        }

    def _run_on(self, pool: _Pool, worker: _Worker, code: str) -> tuple[ExecResult, _Worker]:
        """Run ``code`` on ``worker``; a dead worker is replaced and the program retried once."""
        request = self._request(code)
        timeout = 2 * self.limits.timeout_s + self._grace_s
        for attempt in (1, 2):
            try:
                return ExecResult.from_dict(worker.call(request, timeout)), worker
            except _WorkerFailed as e:
                hung = "in time" in str(e)
                worker = pool.replace(worker)
                if hung or attempt == 2:
                    return ExecResult("error", error=f"sandbox: {e}"), worker
        raise AssertionError("unreachable")


def _rebuild(kwargs: dict[str, Any]) -> Sandbox:
    return Sandbox(**kwargs)


class _Feed:
    """A thread-safe iterator over programs."""

    def __init__(self, items: list[str]) -> None:
        self.items = items
        self._iter = iter(items)
        self._lock = threading.Lock()

    def next(self) -> str | None:
        with self._lock:
            return next(self._iter, None)


def _reset_after_fork() -> None:
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for sandbox in list(_ALL_SANDBOXES):
        sandbox._after_fork_in_child()


_SHARED: dict[str, Sandbox] = {}
_SHARED_LOCK = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def get_sandbox() -> Sandbox:
    """The process-wide shared sandbox of :func:`default_prelude` (default limits, one worker
    per CPU), closed at exit."""
    prelude = default_prelude()
    with _SHARED_LOCK:
        shared = _SHARED.get(prelude)
        if shared is None or shared.closed:
            shared = _SHARED[prelude] = Sandbox(prelude=prelude)
            atexit.register(shared.close)
        return shared
