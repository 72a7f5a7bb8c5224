"""The warm sandbox worker and the per-program child (see :mod:`siked.sandbox` for the API).

This file runs as a *script* in a fresh interpreter started by :class:`siked.sandbox.Sandbox`
with a scrubbed environment, so it imports nothing from ``siked`` (standard library only;
sympy and numpy are optional preloads). :func:`check_program` is also imported in-process by
``siked.sandbox`` for callers that want the static check alone.

Protocol (length-prefixed JSON frames, 4-byte big-endian length): the worker sends a ``ready``
frame with what isolation it could enforce, then answers one ``run`` request at a time.

At start the worker imports the allowed modules, enters an empty network namespace, becomes a
child subreaper and installs the runtime :class:`Guards` in itself (keeping private references
to the few real functions it needs), so children inherit them at no cost. For each request it
parses, checks and compiles the program (a refused program costs no fork), then forks a child
that isolates itself (new session, rlimits, empty working directory, ``nobody`` when root,
no-new-privs, parent-death signal) and executes the code object; the child writes one JSON
result to a pipe. The worker enforces the wall-clock timeout, kills the child's process group
whatever happens, reaps every process and removes the working directory.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import gc
import json
import math
import numbers
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any, NoReturn

# ----------------------------------------------------------------------------------------------
# Static policy
# ----------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Modules a math program may import (their submodules too, unless a part is denied below).
ALLOWED_MODULES = frozenset(
    _words(
        """math cmath fractions decimal numbers sympy mpmath numpy datetime itertools functools
        statistics collections operator re string heapq bisect random calendar typing
        dataclasses copy enum"""
    )
)

#: Builtins a program may not name (and that the runtime builtins do not provide).
DENIED_NAMES = frozenset(
    _words(
        """eval exec compile open input breakpoint globals locals vars setattr delattr exit
        quit help copyright credits license memoryview"""
    )
)

#: ``getattr``/``hasattr`` are allowed only as direct calls with a constant, allowed name.
_CHECKED_ATTR_CALLS = frozenset({"getattr", "hasattr"})

#: Attribute (and ``from X import name``) names that lead to processes, files, frames or module
#: loaders. Any name starting with ``_`` is denied as well.
DENIED_ATTRS = frozenset(
    # modules reachable as attributes of allowed modules (sympy.utilities.misc.os, ...)
    _words(
        """os sys subprocess builtins importlib ctypes socket shutil pathlib signal posix pty
        multiprocessing threading io inspect gc resource tempfile pickle marshal runpy"""
    )
    # process, environment and signal functions
    + _words(
        """system popen fork forkpty spawn execv execve execl execvp posix_spawn kill killpg
        environ getenv putenv modules import_module load_module"""
    )
    # frames and code objects
    + _words(
        """f_globals f_locals f_back f_builtins f_code gi_frame gi_code cr_frame cr_code
        ag_frame ag_code tb_frame tb_next func_globals co_code currentframe getmembers stack"""
    )
    # code execution and file access through library functions
    + _words(
        """exec eval open load loadtxt genfromtxt fromfile tofile save savez savetxt memmap
        DataSource f2py ctypeslib distutils testing npyio external preview test doctest
        runtests autowrap ufuncify codegen tmpfiles pkgdata"""
    )
    # dynamic attribute access that would bypass the attribute checks
    + _words("attrgetter methodcaller")
)

MAX_AST_NODES = 50_000

#: What a program finds defined before its first line (``Sandbox(prelude=...)``).
#: ``authors``: the names the SIKeD authors' PoT programs rely on (their ``prefix.txt``, run
#: before every program): ``math`` and all of ``from math import *``, sympy's ``Symbol``,
#: ``Eq``, ``simplify`` and ``solve``, a two-argument ``lcm`` and ``solve_it(equation,
#: variable)`` (the first solution as ``{variable: value}``; ``{variable: None}`` when there is
#: none). ``none``: an empty namespace.
PRELUDES = ("authors", "none")

#: The part of the ``authors`` prelude every worker defines (standard library only).
PRELUDE_MATH = """
import math
from math import *


def lcm(a, b):
    return a * b // math.gcd(a, b)
"""

#: The sympy part, defined by "full" workers only: a program that names one of
#: :data:`PRELUDE_SYMPY_NAMES` is sent to a full worker.
PRELUDE_SYMPY = """
from sympy import Eq, Symbol, simplify, solve


def solve_it(equation, variable):
    solutions = solve(equation, variable, dict=True)
    if solutions:
        return solutions[0]
    unknowns = variable if isinstance(variable, list) else [variable]
    return {unknown: None for unknown in unknowns}
"""

PRELUDE_SYMPY_NAMES = ("Eq", "Symbol", "simplify", "solve", "solve_it")


def _attr_reason(name: str) -> str | None:
    if name.startswith("_"):
        return f"access to {name!r} (names starting with '_' are not allowed)"
    if name in DENIED_ATTRS:
        return f"access to {name!r} is not allowed"
    return None


def _module_reason(module: str, allowed: frozenset[str]) -> str | None:
    parts = module.split(".")
    if parts[0] not in allowed:
        return f"import of module {parts[0]!r} is not allowed"
    for part in parts[1:]:
        if part.startswith("_") or part in DENIED_ATTRS:
            return f"import of {module!r} is not allowed"
    return None


def _import_reason(node: ast.Import | ast.ImportFrom, allowed: frozenset[str]) -> str | None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            reason = _module_reason(alias.name, allowed)
            if reason:
                return reason
        return None
    if node.level or not node.module:
        return "relative imports are not allowed"
    reason = _module_reason(node.module, allowed)
    if reason:
        return reason
    for alias in node.names:
        if alias.name != "*":
            reason = _attr_reason(alias.name)
            if reason:
                return f"import of {node.module}.{alias.name}: {reason}"
    return None


def _name_reason(node: ast.Name) -> str | None:
    name = node.id
    if name == "__name__" and isinstance(node.ctx, ast.Load):
        return None
    if name.startswith("__"):
        return f"use of {name!r} is not allowed"
    if name in DENIED_NAMES:
        return f"use of {name}() is not allowed"
    return None


def _checked_call_reason(node: ast.Call) -> str | None:
    """``getattr(obj, "name"[, default])`` / ``hasattr(obj, "name")`` with a safe constant name."""
    func = node.func
    assert isinstance(func, ast.Name)
    if len(node.args) < 2 or node.keywords:
        return f"{func.id}() needs a constant attribute name"
    name = node.args[1]
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        return f"{func.id}() with a computed attribute name is not allowed"
    return _attr_reason(name.value)


def check_tree(tree: ast.AST, allowed: frozenset[str] = ALLOWED_MODULES) -> str | None:
    """Return why the parsed program is refused, or None when it passes the static policy."""
    checked_funcs: set[int] = set()
    for count, node in enumerate(ast.walk(tree)):
        if count > MAX_AST_NODES:
            return f"program is too large (more than {MAX_AST_NODES} syntax nodes)"
        reason: str | None = None
        if isinstance(node, ast.Import | ast.ImportFrom):
            reason = _import_reason(node, allowed)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _CHECKED_ATTR_CALLS:
                checked_funcs.add(id(node.func))
                reason = _checked_call_reason(node)
        elif isinstance(node, ast.Name):
            if node.id in _CHECKED_ATTR_CALLS and id(node) not in checked_funcs:
                reason = f"{node.id} may only be called directly"
            else:
                reason = _name_reason(node)
        elif isinstance(node, ast.Attribute):
            reason = _attr_reason(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if "__" in text and text != "__main__":
                reason = "string constants containing '__' are not allowed"
        if reason:
            line = getattr(node, "lineno", None)
            return f"{reason} (line {line})" if line else reason
    return None


def check_program(code: str, allowed: frozenset[str] = ALLOWED_MODULES) -> str | None:
    """Parse ``code`` and return why it is refused, or None if it passes the static check.

    Raises ``SyntaxError`` when the program does not parse.
    """
    return check_tree(ast.parse(code, "<program>", "exec"), allowed)


# ----------------------------------------------------------------------------------------------
# Answers
# ----------------------------------------------------------------------------------------------

_NUMERIC_STRING = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FRACTION_STRING = re.compile(r"[-+]?\d+\s*/\s*\d+")
_PRINTED_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?")


class AnswerError(ValueError):
    """The value of ``answer`` is not a usable number."""


def _format_fraction(value: Fraction) -> str:
    # the wire encoding of an exact answer (this script imports nothing from siked): the
    # verifier reads it with siked.text.parse_number and writes records with format_number
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def _format_float(value: float) -> str:
    if not math.isfinite(value):
        raise AnswerError(f"answer is not finite: {value!r}")
    return repr(value)


def _format_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise AnswerError(f"answer is not finite: {value}")
    text = str(value)
    return format(value, "f") if "E" in text else text


def _format_string(value: str) -> str:
    text = value.strip().replace(",", "").removeprefix("$").strip()
    if _FRACTION_STRING.fullmatch(text):
        num, den = (int(p) for p in text.split("/"))
        if den == 0:
            raise AnswerError("answer is a fraction with denominator 0")
        return _format_fraction(Fraction(num, den))
    if _NUMERIC_STRING.fullmatch(text):
        if any(c in text for c in ".eE"):
            return _format_float(float(text)) if "e" in text.lower() else text.lstrip("+")
        return str(int(text))
    raise AnswerError(f"answer is a non-numeric string: {value[:40]!r}")


def _format_sympy(value: Any) -> str:
    if getattr(value, "is_Integer", False):
        return str(int(value))
    if getattr(value, "is_Rational", False):
        return _format_fraction(Fraction(int(value.p), int(value.q)))
    if not getattr(value, "is_number", False):
        raise AnswerError(f"answer is a symbolic expression: {str(value)[:40]}")
    number = complex(value.evalf())
    if number.imag != 0:
        raise AnswerError(f"answer is complex: {str(value)[:40]}")
    return _format_float(number.real)


def format_number(value: Any) -> str:
    """Canonical string of a numeric answer; raise :class:`AnswerError` otherwise."""
    if isinstance(value, bool) or value is None:
        raise AnswerError(f"answer is {value!r}, not a number")
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Fraction):
        return _format_fraction(value)
    if isinstance(value, float):
        return _format_float(float(value))
    if isinstance(value, Decimal):
        return _format_decimal(value)
    if isinstance(value, str):
        return _format_string(str(value))
    if type(value).__module__.split(".")[0] == "sympy":
        return _format_sympy(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Rational):
        return _format_fraction(Fraction(int(value.numerator), int(value.denominator)))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    if isinstance(value, complex | numbers.Complex):
        number = complex(value)
        if number.imag != 0:
            raise AnswerError(f"answer is complex: {number!r}")
        return format_number(number.real)
    if getattr(value, "size", None) == 1 and callable(getattr(value, "item", None)):
        return format_number(value.item())  # numpy array with a single element
    raise AnswerError(f"answer has type {type(value).__name__}, not a number")


def format_answer(value: Any) -> str:
    """Like :func:`format_number`; a tuple or list gives its first element."""
    if isinstance(value, tuple | list):
        if not value:
            raise AnswerError(f"answer is an empty {type(value).__name__}")
        value = value[0]
    return format_number(value)


def last_printed_number(text: str) -> str | None:
    """The last number in ``text`` (thousands separators removed), or None."""
    found = None
    for found in _PRINTED_NUMBER.finditer(text):  # noqa: B007
        pass
    return found.group(0).replace(",", "") if found else None


# ----------------------------------------------------------------------------------------------
# The child: output capture, runtime guards, execution
# ----------------------------------------------------------------------------------------------

STDOUT_HEAD = 2048
STDOUT_TAIL = 512


class OutputLimitExceeded(BaseException):
    """Raised into the program once it printed more than the output limit."""


class Capture:
    """A write-only text stream that keeps the head and the tail of what is written."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, limit_chars: int) -> None:
        self.limit = limit_chars
        self.total = 0
        self.head: list[str] = []
        self.head_len = 0
        self.tail = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.total > self.limit:
            raise OutputLimitExceeded
        n = len(text)
        self.total += n
        if self.head_len < STDOUT_HEAD:
            piece = text[: STDOUT_HEAD - self.head_len]
            self.head.append(piece)
            self.head_len += len(piece)
        self.tail = (self.tail + text[-STDOUT_TAIL:])[-STDOUT_TAIL:]
        if self.total > self.limit:
            raise OutputLimitExceeded
        return n

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        head = "".join(self.head)
        if self.total > STDOUT_HEAD:
            marker = f"\n...[truncated: {self.total} characters in all]"
            head = head[: STDOUT_HEAD - len(marker)] + marker
        return head.encode("utf-8", "replace").decode("utf-8")


_PROCESS_FUNCS = _words(
    """fork forkpty system popen execv execve execl execle execlp execlpe execvp execvpe
    fexecve spawnv spawnve spawnl spawnle spawnlp spawnlpe spawnvp spawnvpe
    posix_spawn posix_spawnp kill killpg pidfd_open setsid setpgid setuid setgid
    putenv unsetenv register_at_fork"""
)
_FILE_FUNCS = _words(
    """open fdopen remove unlink rmdir removedirs rename renames replace truncate chmod chown
    lchown link symlink mkfifo mknod chdir chroot"""
)
_BLOCKED_ELSEWHERE = {
    "subprocess": ("Popen", "run", "call", "check_call", "check_output", "getoutput"),
    "_posixsubprocess": ("fork_exec",),
    "socket": ("socket", "create_connection", "create_server", "socketpair", "fromfd"),
    "_socket": ("socket", "socketpair", "fromfd"),
    "pty": ("fork", "spawn"),
    # open: strings that sympy evaluates (sympify, parse_expr, lambdify) see the real builtins
    "builtins": ("breakpoint", "input", "open"),
    "io": ("open",),
    "_io": ("open",),
    "multiprocessing": ("Process", "Pool"),
    "_thread": ("start_new_thread", "start_new"),
}

# The worker and the child keep the real functions they need, taken before the guards replace
# them in the modules.
_fork, _kill, _killpg, _setsid = os.fork, os.kill, os.killpg, os.setsid
_os_open, _chdir, _chown, _chmod = os.open, os.chdir, os.chown, os.chmod
_rmdir, _setuid, _setgid = os.rmdir, os.setuid, os.setgid
_open = builtins.open


_OWN_GLOBALS = globals()


def _blocked(name: str) -> Any:
    def blocked(*args: Any, **kwargs: Any) -> NoReturn:
        raise PermissionError(f"{name} is blocked in the sandbox")

    return blocked


def _is_library_frame(frame_globals: dict[str, Any]) -> bool:
    """True when the importing code is a loaded module or this file (not the program, nor a
    string the program gets evaluated). C functions import too (``os.wait4`` imports
    ``resource``): then the frame is the Python code that called them."""
    if frame_globals is _OWN_GLOBALS:
        return True
    name = frame_globals.get("__name__")
    if not isinstance(name, str) or name == "__main__":
        return False
    module = sys.modules.get(name)
    return module is not None and getattr(module, "__dict__", None) is frame_globals


def _import_guard(allowed: frozenset[str], real_import: Any) -> Any:
    get_frame = sys._getframe

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if not _is_library_frame(get_frame(1).f_globals):
            if level:
                raise ImportError("relative imports are blocked in the sandbox")
            reason = _module_reason(str(name), allowed)
            if reason is None:
                for item in fromlist or ():
                    if item != "*" and (reason := _attr_reason(str(item))):
                        break
            if reason:
                raise ImportError(f"{reason} (blocked in the sandbox)")
        return real_import(name, globals, locals, fromlist, level)

    return guarded_import


def _safe_getattr(obj: Any, name: Any, *default: Any) -> Any:
    if not isinstance(name, str) or _attr_reason(name):
        raise AttributeError(f"access to attribute {name!r} is blocked in the sandbox")
    return getattr(obj, name, *default)


def _safe_hasattr(obj: Any, name: Any) -> bool:
    if not isinstance(name, str) or _attr_reason(name):
        raise AttributeError(f"access to attribute {name!r} is blocked in the sandbox")
    return hasattr(obj, name)


class Guards:
    """The runtime guards: an import hook, restricted builtins, blocked module functions.

    The worker installs them once, before forking, so every child inherits them for free (a
    child touching fewer pages is a faster child). The worker itself only uses the real
    functions saved above. ``remove`` exists for the test-only unguarded mode.
    """

    def __init__(self, allowed: frozenset[str]) -> None:
        self.real_import = builtins.__import__
        self.hook = _import_guard(allowed, self.real_import)
        hidden = DENIED_NAMES | {"__loader__", "__spec__", "__doc__", "__package__"}
        self.builtins = {k: v for k, v in vars(builtins).items() if k not in hidden}
        self.builtins.update(__import__=self.hook, getattr=_safe_getattr, hasattr=_safe_hasattr)
        self.saved: list[tuple[Any, str, Any]] = []
        self.installed = False

    def _targets(self) -> list[tuple[Any, str]]:
        table = dict(_BLOCKED_ELSEWHERE)
        table["os"] = table["posix"] = _PROCESS_FUNCS + _FILE_FUNCS
        found = []
        for modname, names in table.items():
            module = sys.modules.get(modname)
            if module is not None:
                found += [(module, name) for name in names if hasattr(module, name)]
        return found

    def install(self) -> None:
        if self.installed:
            return
        for module, name in self._targets():
            self.saved.append((module, name, getattr(module, name)))
            setattr(module, name, _blocked(f"{module.__name__}.{name}"))
        builtins.__import__ = self.hook
        self.installed = True

    def remove(self) -> None:
        for module, name, original in reversed(self.saved):
            setattr(module, name, original)
        self.saved.clear()
        builtins.__import__ = self.real_import
        self.installed = False


def _error_text(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a hostile __str__
        message = ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:300]


def parse_program(
    code: str, static_check: bool = True, allowed: frozenset[str] = ALLOWED_MODULES
) -> tuple[Any, dict[str, Any]]:
    """Parse, check and compile ``code``: (code object, {}) or (None, failure result)."""
    try:
        tree = ast.parse(code, "<program>", "exec")
    except SyntaxError as e:
        return None, {"status": "error", "error": f"SyntaxError: {e.msg} (line {e.lineno})"}
    except (MemoryError, RecursionError, ValueError) as e:
        return None, {"status": "error", "error": f"SyntaxError: cannot parse ({_error_text(e)})"}
    if static_check:
        reason = check_tree(tree, allowed)
        if reason:
            return None, {"status": "rejected", "error": reason}
    try:
        return compile(tree, "<program>", "exec"), {}
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return None, {"status": "error", "error": _error_text(e)}


def _answer_of(namespace: dict[str, Any], capture: Capture) -> dict[str, Any]:
    if "answer" in namespace:
        try:
            return {"status": "ok", "answer": format_answer(namespace["answer"]), "rule": "answer"}
        except AnswerError as e:
            return {"status": "error", "error": str(e)[:300]}
        except BaseException as e:  # a hostile __float__/__str__, or huge ints
            return {"status": "error", "error": f"bad answer: {_error_text(e)}"}
    printed = last_printed_number(capture.tail)
    if printed is not None:
        return {"status": "ok", "answer": printed, "rule": "print"}
    return {"status": "no_answer"}


def execute(
    code_obj: Any, user_builtins: Any, output_kb: int, prelude: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run a compiled program in this process, after the names of ``prelude``; return the
    result fields."""
    namespace: dict[str, Any] = dict(prelude or {})
    namespace.update(__name__="__main__", __builtins__=user_builtins)
    capture = Capture(output_kb * 1024)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = capture, Capture(STDOUT_HEAD)  # type: ignore[assignment]
    result: dict[str, Any]
    try:
        exec(code_obj, namespace)
        result = {}
    except MemoryError:
        result = {"status": "memory", "error": "MemoryError"}
    except OutputLimitExceeded:
        result = {"status": "error", "error": f"output limit exceeded ({output_kb} KB)"}
    except BaseException as e:
        result = {"status": "error", "error": _error_text(e)}
    finally:
        sys.stdout, sys.stderr = saved
    _release_memory_headroom()
    if not result:
        result = _answer_of(namespace, capture)
    result["stdout"] = capture.text()
    return result


def _release_memory_headroom() -> None:
    """Raise the soft address-space limit to the hard one so the result can be written."""
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    except (ValueError, OSError):
        pass


# ----------------------------------------------------------------------------------------------
# Child set-up (runs in the forked child, before any program code)
# ----------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_RESULT_FD = 3
_MEMORY_HEADROOM = 64 << 20


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


LIBC = _libc()


def _prctl(option: int, value: int) -> bool:
    if LIBC is None or not hasattr(LIBC, "prctl"):
        return False
    return bool(LIBC.prctl(option, value, 0, 0, 0) == 0)


def _set_limits(limits: dict[str, Any]) -> None:
    mb = 1 << 20
    cpu = max(1, math.ceil(float(limits["cpu_s"])))
    memory = int(limits["memory_mb"]) * mb
    table = [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, memory, memory + _MEMORY_HEADROOM),
        (resource.RLIMIT_FSIZE, int(limits["fsize_mb"]) * mb, int(limits["fsize_mb"]) * mb),
        (resource.RLIMIT_NOFILE, int(limits["nofile"]), int(limits["nofile"])),
        (resource.RLIMIT_NPROC, int(limits["nproc"]), int(limits["nproc"])),
    ]
    for which, soft, hard in table:
        resource.setrlimit(which, (soft, hard))


def _isolate_fds(result_fd: int) -> None:
    if result_fd != _RESULT_FD:
        os.dup2(result_fd, _RESULT_FD)
    devnull = _os_open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(_RESULT_FD + 1, 1 << 20)


def _drop_privileges(ids: tuple[int, int] | None) -> None:
    if ids is None:
        return
    uid, gid = ids
    os.setgroups([])
    _setgid(gid)
    _setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("could not drop privileges")


def _can_drop(ids: tuple[int, int]) -> tuple[bool, bool]:
    """Whether a child can switch to ``ids`` (not in every container), and whether it can then
    still read the standard library (for modules imported lazily)."""
    pid = _fork()
    if pid == 0:
        try:
            _drop_privileges(ids)
            os._exit(0 if os.access(os.path.dirname(os.__file__), os.R_OK | os.X_OK) else 3)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    return code in (0, 3), code == 0


def child_main(
    code_obj: Any, request: dict[str, Any], result_fd: int, ctx: dict[str, Any]
) -> NoReturn:
    """Isolate this freshly forked process, run the program, report, exit. Never returns."""
    write, exit_now = os.write, os._exit
    status = 70
    try:
        _setsid()
        _isolate_fds(result_fd)
        _chdir(ctx["workdir"])
        _set_limits(request["limits"])
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _drop_privileges(ctx["drop_ids"])
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        if os.getppid() != ctx["worker_pid"]:
            exit_now(71)
        guards: Guards = ctx["guards"]
        if not request.get("guards", True):
            guards.remove()  # test-only: show what the kernel layer holds on its own
        user_builtins = guards.builtins if guards.installed else builtins
        limit = int(request["limits"]["output_kb"])
        result = execute(code_obj, user_builtins, limit, ctx["prelude"])
        payload = json.dumps(result).encode("utf-8")
        view = memoryview(payload)
        while view:
            view = view[write(_RESULT_FD, view) :]
        status = 0
    except BaseException:
        status = 72
    finally:
        exit_now(status)


# ----------------------------------------------------------------------------------------------
# The worker
# ----------------------------------------------------------------------------------------------

_HEADER = struct.Struct(">I")
_MAX_RESULT_BYTES = 1 << 20


def encode_frame(message: dict[str, Any]) -> bytes:
    """One protocol frame: the JSON of ``message`` after its 4-byte big-endian length.

    >>> encode_frame({"a": 1})
    b'\\x00\\x00\\x00\\x08{"a": 1}'
    """
    data = json.dumps(message).encode("utf-8")
    return _HEADER.pack(len(data)) + data


def decode_frame(buffer: bytes) -> tuple[dict[str, Any] | None, bytes]:
    """The first whole frame of ``buffer`` and the bytes after it; ``(None, buffer)`` while the
    frame is still incomplete.

    >>> decode_frame(encode_frame({"a": 1}) + b"\\x00")
    ({'a': 1}, b'\\x00')
    >>> decode_frame(b"\\x00\\x00")
    (None, b'\\x00\\x00')
    """
    if len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        end = _HEADER.size + size
        if len(buffer) >= end:
            message: dict[str, Any] = json.loads(buffer[_HEADER.size : end])
            return message, buffer[end:]
    return None, buffer


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_WORKER: Worker | None = None


class Worker:
    """Serve ``run`` requests from the parent, one child process per program."""

    def __init__(self, root: str, in_fd: int, out_fd: int, full: bool = True) -> None:
        self.root = root
        self.full = full
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.parent = os.getppid()
        self.pid = os.getpid()
        self.counter = 0
        self.buffer = b""
        self.allowed = ALLOWED_MODULES
        self.drop_ids: tuple[int, int] | None = None
        self.info: dict[str, Any] = {}
        self.leftovers: list[str] = []
        self.guards = Guards(ALLOWED_MODULES)
        self.preludes: dict[str, dict[str, Any]] = {}

    # -- start-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _preload(self.full)
        self.preludes = {
            "authors": build_prelude(self.full, self.guards.builtins),
            "none": {},
        }
        random.seed(0)
        self.info["network"] = _unshare_network()
        self.info["subreaper"] = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        if os.geteuid() == 0:
            ids = _nobody_ids()
            can_drop, readable = _can_drop(ids)
            self.drop_ids = ids if can_drop else None
            self.info["stdlib_readable"] = readable
        self.info["uid"] = self.drop_ids[0] if self.drop_ids else os.geteuid()
        self.info["dropped_privileges"] = self.drop_ids is not None
        self.info["preloaded"] = sorted(ALLOWED_MODULES & set(sys.modules))
        self.info["kind"] = "full" if self.full else "light"
        self.info["pid"] = self.pid
        os.chmod(self.root, 0o711)  # nobody may enter its own work dir, not list the root
        self.guards.install()  # from here on the worker uses only the real functions saved above
        gc.collect()
        gc.freeze()  # keep the collector from touching (copying) inherited pages in children

    # -- framing -------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        view = memoryview(encode_frame(message))
        while view:
            view = view[os.write(self.out_fd, view) :]

    def receive(self) -> dict[str, Any] | None:
        """The next request; None at end of input or when the parent is gone."""
        while True:
            message, self.buffer = decode_frame(self.buffer)
            if message is not None:
                return message
            ready, _, _ = select.select([self.in_fd], [], [], 1.0)
            if os.getppid() != self.parent:
                return None
            if ready:
                chunk = os.read(self.in_fd, 1 << 16)
                if not chunk:
                    return None
                self.buffer += chunk

    # -- one program ---------------------------------------------------------------------------

    def make_workdir(self) -> str:
        self.counter += 1
        path = os.path.join(self.root, f"p{self.counter}")
        os.mkdir(path, 0o700)
        if self.drop_ids:
            _chown(path, *self.drop_ids)
        return path

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one program in a child; the child is reaped, its directory left for cleanup().

        The program is parsed, checked and compiled here, so a refused program costs no fork
        and the child inherits the code object.
        """
        start = time.monotonic()
        prelude = self.preludes.get(str(request.get("prelude", "none")))
        if prelude is None:
            return {"status": "error", "error": f"sandbox: unknown prelude {request['prelude']!r}"}
        code_obj, failure = parse_program(
            request["code"], bool(request.get("check", True)), self.allowed
        )
        if code_obj is None:
            failure["seconds"] = round(time.monotonic() - start, 6)
            return failure
        workdir = self.make_workdir()
        self.leftovers.append(workdir)
        ctx = {
            "workdir": workdir,
            "drop_ids": self.drop_ids,
            "worker_pid": self.pid,
            "guards": self.guards,
            "prelude": prelude,
        }
        read_fd, write_fd = os.pipe()
        pid = _fork()
        if pid == 0:
            os.close(read_fd)
            child_main(code_obj, request, write_fd, ctx)
        del code_obj
        os.close(write_fd)
        deadline = start + float(request["limits"]["timeout_s"])
        data, timed_out = b"", True
        try:
            data, timed_out = _read_result(read_fd, deadline, self.parent)
            if not timed_out:
                timed_out = not _wait_exit(pid, deadline)
        finally:
            os.close(read_fd)
            _kill_group(pid)  # the leader is not reaped yet, so its pid cannot be reused
            exited = _reap(pid)
        seconds = time.monotonic() - start
        result = _interpret(data, timed_out, exited, request)
        result["seconds"] = round(seconds, 6)
        return result

    def cleanup(self) -> None:
        """Kill escaped processes and remove finished work directories."""
        self.sweep()
        while self.leftovers:
            _remove_tree(self.leftovers.pop())

    def sweep(self) -> None:
        """Kill and reap any process that escaped to us (we are a child subreaper)."""
        for pid in _children():
            _kill_group(pid)
        give_up = time.monotonic() + 2.0
        while time.monotonic() < give_up:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                if not _children():
                    return
                time.sleep(0.001)

    def serve(self) -> None:
        self.send({"ready": True, **self.info})
        while (request := self.receive()) is not None:
            try:
                result = self.run(request)
            except Exception as e:  # our own failure: report it, keep serving
                traceback.print_exc()  # to the worker's stderr (kept by the parent)
                result = {"status": "error", "error": f"sandbox: {_error_text(e)}"}
            result["id"] = request.get("id")
            self.send(result)
            self.cleanup()  # after answering, so the parent is not kept waiting


def _read_result(fd: int, deadline: float, parent: int) -> tuple[bytes, bool]:
    """Read the child's result until EOF; (data, timed_out)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if os.getppid() != parent:
            return b"", True  # our parent is gone: stop the program now
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > _MAX_RESULT_BYTES:
            return b"", False
        chunks.append(chunk)


def _cpu_seconds(usage: Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait until ``deadline`` for the child to exit, without reaping it; True if it did."""
    delay = 0.0001
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _kill_group(pid: int) -> None:
    for kill in (_killpg, _kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _reap(pid: int) -> tuple[int, float] | None:
    try:
        _, status, usage = os.wait4(pid, 0)
        return status, _cpu_seconds(usage)
    except ChildProcessError:
        return None


def _children() -> list[int]:
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with _open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return pids


def _remove_tree(path: str) -> None:
    """Remove a work directory (no process can still write to it: all were killed)."""
    try:
        _rmdir(path)  # the usual case: the program wrote nothing
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    for root, dirs, _ in os.walk(path):  # make everything removable (a dir may be mode 000)
        for name in dirs:
            child = os.path.join(root, name)
            if not os.path.islink(child):  # never follow a link the program planted
                with contextlib.suppress(OSError):
                    _chmod(child, 0o700)
    with _unguarded():
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _unguarded() -> Iterator[None]:
    """Lift the guards in the worker for a moment (shutil needs os.unlink, os.rmdir...)."""
    guards: Guards | None = _WORKER.guards if _WORKER is not None else None
    installed = guards is not None and guards.installed
    if installed:
        assert guards is not None
        guards.remove()
    try:
        yield
    finally:
        if installed:
            assert guards is not None
            guards.install()


def _interpret(
    data: bytes, timed_out: bool, exited: tuple[int, float] | None, request: dict[str, Any]
) -> dict[str, Any]:
    limits = request["limits"]
    if timed_out:
        return {"status": "timeout", "error": f"wall-clock limit of {limits['timeout_s']} s"}
    if data:
        try:
            result: dict[str, Any] = json.loads(data)
            return result
        except ValueError:
            return {"status": "error", "error": "sandbox: unreadable result from the program"}
    if exited is None:
        return {"status": "error", "error": "program exited without a result"}
    wait_status, cpu = exited
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        if signum == signal.SIGXCPU or (signum == signal.SIGKILL and cpu >= limits["cpu_s"]):
            return {"status": "timeout", "error": f"CPU-time limit of {limits['cpu_s']} s"}
        if signum == signal.SIGKILL:  # not us, not the CPU limit: the kernel's OOM killer
            return {"status": "memory", "error": "program killed (out of memory)"}
        return {"status": "error", "error": f"program killed by {_signal_name(signum)}"}
    code = os.WEXITSTATUS(wait_status)
    return {"status": "error", "error": f"program exited without a result (exit code {code})"}


# ----------------------------------------------------------------------------------------------
# Worker start-up helpers
# ----------------------------------------------------------------------------------------------

_PRELOAD_STDLIB = _words(
    """math cmath fractions decimal numbers datetime itertools functools statistics
    collections collections.abc operator re string heapq bisect random calendar typing
    dataclasses copy enum"""
)
_PRELOAD_OPTIONAL = ("sympy", "numpy")
#: Standard-library modules sympy and numpy import lazily. Preloaded by full workers because a
#: child running as ``nobody`` may not be able to read the standard library (e.g. a pyenv Python
#: under /root).
_PRELOAD_LAZY = _words("inspect tokenize linecache textwrap unicodedata pprint traceback locale")

#: Run once by full workers: sympy imports many modules lazily (sympy.tensor on the first
#: addition, solvers, integrals...), which would otherwise happen again in every child.
_WARMUP = """
import sympy as sp
x, y = sp.symbols('x y')
sp.solve(sp.Eq(3*x + 5, 20), x); sp.solve([x + y - 10, x - y - 2], [x, y])
sp.simplify((x**2 - 1)/(x - 1)); sp.nsimplify(0.75); sp.sympify('3/4 + 1')
sp.sqrt(2).evalf(); float(sp.pi); sp.factorint(360); sp.expand((x+1)**3); sp.factor(x**2-1)
sp.binomial(10, 3); sp.factorial(5); sp.gcd(12, 18); sp.lcm(4, 6); sp.isprime(97)
sp.divisors(12); sp.N(sp.Rational(1, 3)); sp.floor(sp.Rational(7, 2)); sp.ceiling(2.5)
sp.integrate(x**2, (x, 0, 1)); sp.diff(x**3, x); sp.limit(1/x, x, sp.oo)
sp.summation(x, (x, 1, 10)); sp.Matrix([[1, 2], [3, 4]]).det()
sp.linsolve([x + y - 3, x - y - 1], x, y); sp.nsolve(x**2 - 2, x, 1)
sp.solveset(x**2 - 4, x, sp.S.Reals); sp.Poly(x**2 + 1, x).all_coeffs()
import numpy as np
np.mean([1, 2]); np.round(2.5); np.sqrt(4.0); np.linalg.solve([[1, 0], [0, 1]], [1, 2])
"""


def _preload(full: bool) -> None:
    """Import the allowed standard-library modules once, and sympy and numpy when ``full``.

    A missing optional module is not an error: a program importing it fails when it runs.
    """
    for name in _PRELOAD_STDLIB:
        __import__(name)
    if full:
        for name in _PRELOAD_OPTIONAL + _PRELOAD_LAZY:
            with contextlib.suppress(Exception):
                __import__(name)
        with contextlib.suppress(Exception):
            exec(_WARMUP, {"__name__": "__warmup__"})


def build_prelude(full: bool, user_builtins: dict[str, Any]) -> dict[str, Any]:
    """The names of the ``authors`` prelude (:data:`PRELUDE_MATH`, and :data:`PRELUDE_SYMPY`
    when ``full`` and sympy imports), built once per worker and copied into every program's
    namespace.

    The prelude runs with the programs' restricted builtins (its imports pass the same import
    hook), so its functions give a program nothing it could not write itself.
    """
    namespace: dict[str, Any] = {"__name__": "siked_prelude", "__builtins__": user_builtins}
    exec(PRELUDE_MATH, namespace)
    if full:
        with contextlib.suppress(ImportError):  # no sympy: programs that need it fail
            exec(PRELUDE_SYMPY, namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("_")}


def _write_proc(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _unshare_network() -> str:
    """Move this worker (and so every child) into an empty network namespace if allowed.

    As root this is a plain new network namespace; otherwise a new user namespace that maps
    only our own uid/gid (so files can still be created) plus a network namespace.
    """
    if LIBC is None or not hasattr(LIBC, "unshare"):
        return "python-guards-only"
    if LIBC.unshare(_CLONE_NEWNET) == 0:
        return "namespace"
    uid, gid = os.geteuid(), os.getegid()
    if LIBC.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        try:
            _write_proc("/proc/self/setgroups", "deny")
            _write_proc("/proc/self/uid_map", f"{uid} {uid} 1")
            _write_proc("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError:
            pass
        return "user-namespace"
    return "python-guards-only"


def _nobody_ids() -> tuple[int, int]:
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except (ImportError, KeyError):
        return 65534, 65534


def _protocol_fds() -> tuple[int, int]:
    """Move the protocol pipes off fds 0 and 1, so stray prints cannot corrupt them."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return in_fd, out_fd


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[-2] not in ("light", "full") or not os.path.isdir(argv[-1]):
        print("usage: _sandbox_worker.py light|full ROOT_DIR", file=sys.stderr)
        return 2
    global _WORKER
    in_fd, out_fd = _protocol_fds()
    worker = _WORKER = Worker(argv[-1], in_fd, out_fd, full=argv[-2] == "full")
    worker.setup()
    try:
        worker.serve()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        worker.cleanup()
        with _unguarded():
            shutil.rmtree(worker.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
