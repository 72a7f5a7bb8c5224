"""Run a function in a fresh child process and get its result back (or its exception).

The loop trains in a child process on GPUs: CUDA memory that PyTorch, the Trainer or a leaked
reference hold is only given back reliably when the process ends, and the vLLM server that
samples next checks at start-up that the share of GPU memory it was given is free.

:func:`call_in_child` starts a *spawned* interpreter (never a fork: the parent may hold CUDA
state or threads), which inherits stdout/stderr (progress bars and warnings print as usual),
the environment and ``sys.path``. The child's return value comes back pickled. An exception in
the child is raised again in the parent: a :class:`~siked.errors.SikedError` as itself (the CLI
prints its one line), any other exception with the child's traceback as its cause (like
``concurrent.futures`` does). A child that dies without answering (killed by a signal, e.g. the
out-of-memory killer) raises :class:`ChildError` with the exit status. The child dies
with its parent (``PR_SET_PDEATHSIG`` on Linux), and Ctrl-C or an exception in the parent stops
the child before it returns.

The child works *for* its parent: it runs under the output locks the parent holds
(:func:`siked.lock.inherited`; a stage in the child writing inside the parent's run directory is
covered, not refused), it logs where the parent logs (inside ``siked run``, the run's
``siked.log`` and the same terminal filter: :func:`siked.console.run_console`), and ``env``
sets environment variables in it before ``fn`` runs (e.g. ``CUDA_VISIBLE_DEVICES``, read when
CUDA initialises, which importing torch does not do).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from siked.console import ConsoleSettings, console_settings, run_console
from siked.errors import SikedError
from siked.lock import Holder, held, inherited

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds a child gets to stop after SIGTERM before it is killed
STOP_GRACE = 30.0


class ChildError(SikedError):
    """The child process ended without returning a result (killed, crashed)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in the child (the cause of the re-raised one)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\n(in the child process)\n{self.text}"


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (best effort, no-op
    elsewhere). Used by children siked starts: vLLM servers, training processes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


@dataclass(frozen=True)
class _Inherited:
    """What the child takes over from its parent."""

    log_level: int
    console: ConsoleSettings | None
    locks: list[Holder]
    env: dict[str, str]


def _child_main(
    conn: Any, parent: int, given: _Inherited, fn: Callable[..., Any], args: Any, kwargs: Any
) -> None:  # pragma: no cover - runs in the child (covered through call_in_child)
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    os.environ.update(given.env)
    try:
        with contextlib.ExitStack() as stack:
            if given.console is not None:
                stack.enter_context(run_console(given.console.log_file, given.console.verbose))
            elif given.log_level != logging.NOTSET:
                logging.basicConfig(level=given.log_level)
            stack.enter_context(inherited(given.locks))
            result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except BaseException as e:
        conn.send(("error", _portable(e), traceback.format_exc()))
    finally:
        conn.close()


def _portable(e: BaseException) -> BaseException | None:
    """``e`` if it survives pickling (it is sent to the parent), else None."""
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        return None
    return e


def _stop(proc: Any) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(STOP_GRACE)
    if proc.is_alive():
        proc.kill()
        proc.join()


def call_in_child(
    fn: Callable[..., T],
    *args: Any,
    what: str = "child",
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` in a spawned child process; see the module docstring.

    ``fn``, its arguments and its result must be picklable (a module-level function). ``what``
    names the work in error messages ("training"); ``env`` is set in the child's environment
    before ``fn`` runs (importing a module such as torch initialises no GPU).
    """
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    level = logging.getLogger().level if logging.getLogger().handlers else logging.NOTSET
    given = _Inherited(level, console_settings(), held(), dict(env or {}))
    proc = ctx.Process(
        target=_child_main,
        args=(send, os.getpid(), given, fn, args, kwargs),
        name=f"siked-{what}",
    )
    proc.start()
    send.close()  # the child holds the only writer: EOF here means it died
    try:
        try:
            message = recv.recv()
        except EOFError:
            message = None
        proc.join()
    finally:
        _stop(proc)
        recv.close()
    if message is None:
        raise ChildError(f"the {what} process {proc.pid} {_exit_reason(proc.exitcode)}")
    if message[0] == "ok":
        return message[1]  # type: ignore[no-any-return]
    _, exc, tb = message
    if isinstance(exc, SikedError | KeyboardInterrupt):
        raise exc
    if exc is None:
        raise ChildError(f"the {what} process failed:\n{tb}")
    raise exc from RemoteTraceback(tb)


def _exit_reason(code: int | None) -> str:
    """How a child that sent nothing ended.

    >>> _exit_reason(-9)
    'was killed by SIGKILL (out of memory? see `dmesg`)'
    >>> _exit_reason(3)
    'exited with code 3 without a result'
    """
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            name = signal.Signals(-code).name
            hint = " (out of memory? see `dmesg`)" if -code == signal.SIGKILL else ""
            return f"was killed by {name}{hint}"
        return f"was killed by signal {-code}"
    return f"exited with code {code} without a result"
