"""The PoT sandbox against hostile programs.

Three sandboxes are used: ``sb`` with every layer (what siked uses), ``guards`` with the static
check off (runtime guards + kernel limits) and ``raw`` with both Python layers off (kernel
limits, namespaces and the dropped uid only), so each layer is shown to hold on its own. All
three load the ``authors`` prelude (sympy's names in every program's namespace), so every
hostile case below holds with it.
Every test also checks the host: the test process and the workers survive, a sentinel file is
untouched, and at the end no child, zombie or escaped process is left.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from siked import sandbox as sandbox_module
from siked._sandbox_worker import AnswerError, format_answer
from siked.cli import main as cli_main
from siked.sandbox import ExecResult, Limits, Sandbox, check_program, get_sandbox

SECRET = "sk-siked-test-SECRET-4242"
LIMITS = Limits(timeout_s=2, cpu_s=2)


def _private_tmp() -> str:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix="siked-test-sandbox-", dir=base)
    os.chmod(path, 0o711)
    return path


@pytest.fixture(scope="module")
def tmp_root() -> Iterator[str]:
    path = _private_tmp()
    yield path
    assert os.listdir(path) == [], "worker directories were left behind"
    os.rmdir(path)


_WORKER_PIDS: list[int] = []


@pytest.fixture(scope="module", autouse=True)
def record_workers() -> Iterator[None]:
    """Remember every worker this module starts, to check at the end that all were reaped."""
    real_init = sandbox_module._Worker.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        _WORKER_PIDS.append(self.pid)

    sandbox_module._Worker.__init__ = init  # type: ignore[method-assign]
    yield
    sandbox_module._Worker.__init__ = real_init  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def secret_env() -> Iterator[None]:
    """A secret in siked's environment before any worker starts."""
    old = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "HF_TOKEN")}
    os.environ["OPENAI_API_KEY"] = SECRET
    os.environ["HF_TOKEN"] = SECRET
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def sb(tmp_root: str, secret_env: None) -> Iterator[Sandbox]:
    with Sandbox(LIMITS, workers=2, tmp_dir=tmp_root, prelude="authors") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def guards(tmp_root: str, secret_env: None) -> Iterator[Sandbox]:
    with Sandbox(
        LIMITS, workers=1, tmp_dir=tmp_root, prelude="authors", _static_check=False
    ) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def raw(tmp_root: str, secret_env: None) -> Iterator[Sandbox]:
    with Sandbox(
        LIMITS,
        workers=1,
        tmp_dir=tmp_root,
        prelude="authors",
        _static_check=False,
        _runtime_guards=False,
    ) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="siked-sentinel-", dir="/tmp")
    os.write(fd, b"untouched")
    os.close(fd)
    os.chmod(name, 0o644)
    path = Path(name)
    yield path
    path.unlink()


def _dropped(sandbox: Sandbox) -> bool:
    return bool(sandbox.isolation.get("dropped_privileges"))


def _assert_host_ok(sandbox: Sandbox) -> None:
    for pid in sandbox.worker_pids():
        os.kill(pid, 0)  # the workers are alive
    assert sandbox.run("answer = 6 * 7").answer == "42"


# ----------------------------------------------------------------------------------------------
# ordinary programs and answers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "answer", "rule"),
    [
        ("a = 3\nb = 4\nanswer = a * b", "ok", "12", "answer"),
        ("answer = 7 / 2", "ok", "3.5", "answer"),
        ("answer = 1 / 3", "ok", "0.3333333333333333", "answer"),
        ("answer = 18.0", "ok", "18.0", "answer"),
        ("answer = (5, 6)", "ok", "5", "answer"),
        ("answer = [2.5, 1]", "ok", "2.5", "answer"),
        ("from fractions import Fraction\nanswer = Fraction(7, 2)", "ok", "7/2", "answer"),
        ("import decimal\nanswer = decimal.Decimal('1.10')", "ok", "1.10", "answer"),
        ("import sympy\nanswer = sympy.Rational(7, 2)", "ok", "7/2", "answer"),
        ("import sympy\nanswer = sympy.Integer(18)", "ok", "18", "answer"),
        (
            "import sympy as sp\nx = sp.symbols('x')\nanswer = sp.solve(3*x + 5 - 20, x)",
            "ok",
            "5",
            "answer",
        ),
        ("import sympy\nanswer = sympy.sqrt(2)", "ok", "1.4142135623730951", "answer"),
        ("import numpy as np\nanswer = np.mean([1, 2, 3, 4])", "ok", "2.5", "answer"),
        ("answer = '1,234'", "ok", "1234", "answer"),
        ("answer = ' 42 '", "ok", "42", "answer"),
        ("print('step', 3)\nprint('total is', 42)", "ok", "42", "print"),
        ("x = 5\nprint(f'The answer is {x * 2}.')", "ok", "10", "print"),
        (
            "def main():\n    return 7\nif __name__ == '__main__':\n    answer = main()",
            "ok",
            "7",
            "answer",
        ),
        ("x = 1", "no_answer", None, None),
        ("print('no numbers here')", "no_answer", None, None),
        ("answer = True", "error", None, None),
        ("answer = None", "error", None, None),
        ("answer = 'twelve'", "error", None, None),
        ("answer = float('nan')", "error", None, None),
        ("answer = float('inf')", "error", None, None),
        ("answer = []", "error", None, None),
        ("import sympy\nanswer = sympy.Symbol('x') + 1", "error", None, None),
        ("answer = 1 / 0", "error", None, None),
        ("answer = = 3", "error", None, None),
    ],
)
def test_programs(
    sb: Sandbox, code: str, status: str, answer: str | None, rule: str | None
) -> None:
    result = sb.run(code)
    assert (result.status, result.answer, result.rule) == (status, answer, rule), result


def test_error_messages(sb: Sandbox) -> None:
    assert sb.run("answer = 1 / 0").error == "ZeroDivisionError: division by zero"
    assert sb.run("answer = = 3").error.startswith("SyntaxError")
    result = sb.run("import os")
    assert result.status == "rejected" and "os" in (result.error or "")


def test_results_are_typed_and_bounded(sb: Sandbox) -> None:
    result = sb.run("print('hello')\nanswer = 2")
    assert isinstance(result, ExecResult) and result.stdout == "hello\n"
    assert 0 < result.seconds < LIMITS.timeout_s
    assert result.to_dict()["status"] == "ok"


def test_run_many_keeps_order_and_dedups(sb: Sandbox) -> None:
    codes = [f"answer = {i} * 2" for i in range(40)] + ["answer = 0 * 2"] * 3 + ["import os"]
    results = sb.run_many(codes)
    assert [r.answer for r in results[:40]] == [str(i * 2) for i in range(40)]
    assert [r.answer for r in results[40:43]] == ["0", "0", "0"]
    assert results[-1].status == "rejected"
    assert sb.run_many([]) == []


# ----------------------------------------------------------------------------------------------
# the prelude (sandbox.prelude)
# ----------------------------------------------------------------------------------------------

#: A program in the authors' PoT style: it relies on their prefix for every name it uses.
AUTHORS_STYLE = """\
fish = Symbol('fish')
equation = Eq(3 * fish + 5, sqrt(400))
solution = solve_it(equation, fish)
answer = solution[fish] * ceil(2.5) + lcm(4, 6)
"""


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        (AUTHORS_STYLE, "27.0"),  # fish = 5, 5 * 3 + 12
        ("answer = sqrt(16) + floor(2.7) + factorial(3)", "12.0"),
        ("answer = math.ceil(7 / 2) + lcm(6, 4)", "16"),
        (
            "x, y = Symbol('x'), Symbol('y')\ns = solve_it([Eq(x + y, 10), Eq(x - y, 2)], [x, y])\n"
            "answer = s[x]",
            "6",
        ),
        ("x = Symbol('x')\nanswer = solve(Eq(x * 4, 10), x)[0]", "5/2"),
        ("x = Symbol('x')\nanswer = simplify((x ** 2 - 1) / (x - 1)).subs(x, 4)", "5"),
    ],
)
def test_prelude_authors(sb: Sandbox, code: str, answer: str) -> None:
    result = sb.run(code)
    assert (result.status, result.answer) == ("ok", answer), result


def test_prelude_solve_it_without_a_solution(sb: Sandbox) -> None:
    code = "x = Symbol('x')\ns = solve_it(Eq(x, x + 1), x)\nanswer = 1 if s[x] is None else 0"
    assert sb.run(code).answer == "1"
    code = "x, y = Symbol('x'), Symbol('y')\ns = solve_it(Eq(x, x + 1), [x, y])\nanswer = len(s)"
    assert sb.run(code).answer == "2"


def test_prelude_none_and_the_cache_key(tmp_root: str, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    with Sandbox(LIMITS, workers=1, tmp_dir=tmp_root, cache_dir=cache_dir, prelude="none") as sb:
        assert sb.prelude == "none"
        result = sb.run(AUTHORS_STYLE)
        assert result.status == "error" and "NameError" in (result.error or ""), result
        assert "NameError" in (sb.run("answer = sqrt(4)").error or "")
    # the same program, same cache directory: another prelude is another key
    with Sandbox(LIMITS, workers=1, tmp_dir=tmp_root, cache_dir=cache_dir) as sb:
        assert sb.prelude == "authors"  # the default
        assert sb.run(AUTHORS_STYLE).answer == "27.0"
    with pytest.raises(ValueError, match="prelude"):
        Sandbox(prelude="everything")


def test_prelude_programs_may_redefine_its_names(sb: Sandbox) -> None:
    code = "def solve(a, b):\n    return a * b\npi = 3\nanswer = solve(pi, 4)"
    assert sb.run(code).answer == "12"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (18, "18"),
        (18.0, "18.0"),
        (Fraction(7, 2), "7/2"),
        (Fraction(8, 2), "4"),
        (Decimal("2.50"), "2.50"),
        (Decimal("1E+2"), "100"),
        ((3, 4), "3"),
        ("3/6", "1/2"),
        ("$1,200.50", "1200.50"),
        (complex(2, 0), "2.0"),
    ],
)
def test_format_answer(value: object, text: str) -> None:
    assert format_answer(value) == text


@pytest.mark.parametrize("value", [True, None, "abc", float("nan"), complex(1, 1), {}, ()])
def test_format_answer_refuses(value: object) -> None:
    with pytest.raises(AnswerError):
        format_answer(value)


# ----------------------------------------------------------------------------------------------
# the static check
# ----------------------------------------------------------------------------------------------


STATIC_REFUSALS = [
    "import os",
    "import subprocess",
    "import socket",
    "import sys\nsys.exit(0)",
    "from os import system",
    "import importlib",
    "import numpy.f2py",
    "from sympy.utilities.misc import os",
    "import sympy\nsympy.utilities.misc.os.fork()",
    "from . import x",
    "__import__('os')",
    "eval('1')",
    "exec('x = 1')",
    "compile('1', 'f', 'eval')",
    "open('/tmp/x', 'w')",
    "input()",
    "breakpoint()",
    "globals()",
    "vars()",
    "exit()",
    "().__class__.__base__.__subclasses__()",
    "(lambda: 0).__globals__",
    "x = __builtins__",
    "getattr((), '__class__')",
    "getattr((), '_' + '_class_' + '_')",
    "g = getattr",
    "setattr(int, 'x', 1)",
    "import random\nrandom._os",
    "'{0.__class__}'.format(1)",
    "__name__ = 'sympy'",
    "import operator\noperator.attrgetter('x')",
    "from operator import methodcaller",
    "from sympy.utilities.autowrap import autowrap",
    "from sympy import preview",
    "from sympy.printing.preview import preview",
    "solve_it.__globals__",
    "getattr(simplify, '_' + '_globals_' + '_')",
]


@pytest.mark.parametrize("code", STATIC_REFUSALS)
def test_static_check_refuses(code: str) -> None:
    assert check_program(code) is not None


def test_static_refusals_hold_with_the_prelude(sb: Sandbox) -> None:
    results = sb.run_many(STATIC_REFUSALS)
    assert [r.status for r in results] == ["rejected"] * len(STATIC_REFUSALS)


@pytest.mark.parametrize(
    "code",
    [
        "import math\nanswer = math.floor(3.5)",
        "from fractions import Fraction\nanswer = Fraction(1, 3)",
        "import sympy as sp\nanswer = sp.Rational(1, 2)",
        "from collections import Counter\nanswer = Counter('aab')['a']",
        "import math\nanswer = getattr(math, 'pi')",
        "class A:\n    def __init__(self):\n        self.v = 1\nanswer = A().v",
        "if __name__ == '__main__':\n    answer = 1",
    ],
)
def test_static_check_accepts(code: str) -> None:
    assert check_program(code) is None


def test_syntax_error_raises_in_check_program() -> None:
    with pytest.raises(SyntaxError):
        check_program("answer = = 1")


# ----------------------------------------------------------------------------------------------
# hostile programs
# ----------------------------------------------------------------------------------------------


def test_infinite_loop_times_out(sb: Sandbox) -> None:
    result = sb.run("while True:\n    pass")
    assert result.status == "timeout"
    _assert_host_ok(sb)


def test_busy_loop_in_c_times_out(sb: Sandbox) -> None:
    result = sb.run("answer = 3 ** (10 ** 8)")  # one long C call: no Python signal handler runs
    assert result.status == "timeout"
    _assert_host_ok(sb)


def test_cpu_limit_stops_a_busy_loop_in_c(tmp_root: str) -> None:
    with Sandbox(Limits(timeout_s=20, cpu_s=1), workers=1, tmp_dir=tmp_root) as sandbox:
        result = sandbox.run("answer = 3 ** (10 ** 8)")
        assert result.status == "timeout" and "CPU" in (result.error or "")  # not the 20 s wall


def test_fork_bomb_is_rejected(sb: Sandbox) -> None:
    result = sb.run("import os\nwhile True:\n    os.fork()")
    assert result.status == "rejected"


def test_fork_through_a_string_sympy_evaluates(sb: Sandbox) -> None:
    """Passes the static check (no '__' in any literal): the runtime guards stop it."""
    code = textwrap.dedent(
        """
        import sympy
        u = '_' * 2
        s = ("[c for c in ()." + u + "class" + u + "." + u + "base" + u + "." + u
             + "subclasses" + u + "() if c." + u + "name" + u + " == '_wrap_close'][0]."
             + u + "init" + u + "." + u + "globals" + u + "['fork']()")
        answer = sympy.parse_expr(s, transformations=())
        """
    )
    assert check_program(code) is None
    result = sb.run(code)
    assert result.status == "error" and "fork" in (result.error or ""), result
    _assert_host_ok(sb)


def test_fork_bomb_runtime_guards(guards: Sandbox) -> None:
    result = guards.run("import os\nos.fork()")
    assert result.status == "error" and "ImportError" in (result.error or "")
    code = (
        "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']\n"
        "w[0].__init__.__globals__['fork']()"
    )
    result = guards.run(code)
    assert result.status == "error" and "blocked" in (result.error or ""), result


def test_fork_bomb_kernel_limit(raw: Sandbox) -> None:
    result = raw.run("import os\nfor _ in range(1000):\n    os.fork()\nanswer = 1")
    assert result.status == "error" and "Resource temporarily unavailable" in (
        result.error or ""
    ), result
    _assert_host_ok(raw)


def test_memory_bomb(sb: Sandbox, tmp_root: str) -> None:
    assert sb.run("x = bytearray(10 ** 11)").status == "memory"
    assert sb.run("x = [0] * (10 ** 10)").status == "memory"
    with Sandbox(Limits(memory_mb=300), workers=1, tmp_dir=tmp_root) as small:
        result = small.run("chunks = []\nwhile True:\n    chunks.append(' ' * 10 ** 7)")
        assert result.status == "memory", result
    _assert_host_ok(sb)


def test_huge_output_is_capped(sb: Sandbox) -> None:
    for code in ("while True:\n    print('x' * 1000)", "print('y' * 10 ** 8)"):
        result = sb.run(code)
        assert result.status == "error" and "output limit" in (result.error or ""), result
        assert len(result.stdout) <= 2048
    _assert_host_ok(sb)


def test_files_outside_the_work_dir(
    sb: Sandbox, guards: Sandbox, raw: Sandbox, sentinel: Path
) -> None:
    attempts = [
        f"open({str(sentinel)!r}, 'w').write('pwned')",
        f"import os\nos.remove({str(sentinel)!r})",
        f"import shutil\nshutil.rmtree('/tmp')\nshutil.copy('/etc/passwd', {str(sentinel)!r})",
        f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('pwned')",
    ]
    for code in attempts:
        assert sb.run(code).status == "rejected"
        assert guards.run(code).status == "error"
    if _dropped(raw):  # the kernel alone protects siked's files only when the uid is dropped
        for code in attempts[:2]:
            result = raw.run(code)
            assert result.status == "error" and "Permission" in (result.error or ""), result
    assert sentinel.read_bytes() == b"untouched"


def test_work_dir_is_empty_private_and_removed(raw: Sandbox, tmp_root: str) -> None:
    code = "import os\nopen('a.txt', 'w').write('x')\nprint(os.getcwd())\nanswer = len(os.listdir('.'))"
    result = raw.run(code)
    assert result.answer == "1", result  # only its own file: it started empty
    workdir = result.stdout.strip()
    assert workdir.startswith(tmp_root)
    # the worker removes work dirs right *after* replying (cleanup is off the critical path)
    deadline = time.monotonic() + 10
    while os.path.exists(workdir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(workdir)
    result = raw.run("open('big', 'w').write('x' * (2 * 1024 * 1024))")
    assert result.status == "error" and "File too large" in (result.error or "")
    result = raw.run("fs = [open(f'f{i}', 'w') for i in range(100)]")
    assert result.status == "error" and "Too many open files" in (result.error or "")


def test_environment_secrets_do_not_leak(sb: Sandbox, guards: Sandbox, raw: Sandbox) -> None:
    assert sb.run("import os\nprint(os.environ)").status == "rejected"
    leak = (
        "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']\n"
        "print(dict(w[0].__init__.__globals__['environ']))"
    )
    result = guards.run(leak)
    assert result.status in ("ok", "no_answer") and "PATH" in result.stdout
    assert SECRET not in result.stdout
    result = raw.run("import os\nprint(dict(os.environ))\nanswer = 1")
    assert result.status == "ok" and SECRET not in result.stdout
    if _dropped(raw):
        result = raw.run(f"print(open('/proc/{os.getpid()}/environ').read())")
        assert result.status == "error" and SECRET not in result.stdout


def test_network_is_unreachable(sb: Sandbox, guards: Sandbox, raw: Sandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    code = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nanswer = 1"
    )
    try:
        assert sb.run(code).status == "rejected"
        result = guards.run(code)
        assert result.status == "error" and "socket" in (result.error or ""), result
        result = raw.run(code)  # socket itself may not even be importable as nobody
        assert result.status == "error", result
        with pytest.raises(TimeoutError):
            server.accept()  # nobody got through
    finally:
        server.close()


def test_network_namespace_is_empty(raw: Sandbox) -> None:
    if raw.isolation["network"] == "python-guards-only":
        pytest.skip("no network namespace on this system: only the Python guards apply")
    code = "import os\nprint(os.readlink('/proc/self/ns/net'))\nprint(open('/proc/self/net/dev').read())"
    result = raw.run(code)
    namespace, _, devices = result.stdout.partition("\n")
    assert namespace != os.readlink("/proc/self/ns/net")
    interfaces = {line.split(":")[0].strip() for line in devices.splitlines() if ":" in line}
    assert interfaces == {"lo"}, devices


def test_system_and_subprocess(sb: Sandbox, guards: Sandbox) -> None:
    marker = Path(tempfile.gettempdir()) / f"siked-pwned-{os.getpid()}"
    for code in (
        f"import os\nos.system('touch {marker}')",
        f"import subprocess\nsubprocess.run(['touch', '{marker}'])",
        f"import os\nos.popen('touch {marker}')",
    ):
        assert sb.run(code).status == "rejected"
        assert guards.run(code).status == "error"
    escape = (
        "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']\n"
        f"w[0].__init__.__globals__['system']('touch {marker}')"
    )
    assert sb.run(escape).status == "rejected"
    result = guards.run(escape)
    assert result.status == "error" and "blocked" in (result.error or "")
    assert not marker.exists()


def test_import_and_subclass_escapes(sb: Sandbox, guards: Sandbox) -> None:
    for code in (
        "__import__('os').getpid()",
        "().__class__.__base__.__subclasses__()",
        "import math\nmath.__loader__",
        "f = lambda: 0\nf.__globals__['__builtins__']",
    ):
        assert sb.run(code).status == "rejected", code
    assert "ImportError" in (guards.run("__import__('os').getpid()").error or "")
    assert "ImportError" in (guards.run("import ctypes").error or "")
    assert "NameError" in (guards.run("open('x', 'w')").error or "")
    assert "NameError" in (guards.run("eval('1')").error or "")


def test_sys_exit(sb: Sandbox, guards: Sandbox) -> None:
    assert sb.run("import sys\nsys.exit(0)").status == "rejected"
    assert sb.run("exit()").status == "rejected"
    result = sb.run("answer = 1\nraise SystemExit(0)")
    assert result.status == "error" and "SystemExit" in (result.error or "")
    assert guards.run("import sys\nsys.exit(0)").status == "error"
    _assert_host_ok(sb)


def test_signals_to_the_parent(sb: Sandbox, guards: Sandbox, raw: Sandbox) -> None:
    assert sb.run("import os\nos.kill(os.getppid(), 9)").status == "rejected"
    assert sb.run("import signal").status == "rejected"
    escape = (
        "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']\n"
        f"w[0].__init__.__globals__['kill']({os.getpid()}, 9)"
    )
    assert guards.run(escape).status == "error"
    if _dropped(raw):  # never try the kernel layer alone as the same uid: it would work
        for target in ("os.getppid()", str(os.getpid())):
            result = raw.run(f"import os\nos.kill({target}, 9)")
            assert result.status == "error" and "Operation not permitted" in (result.error or "")
    _assert_host_ok(sb)
    _assert_host_ok(guards)
    _assert_host_ok(raw)


def test_deep_recursion(sb: Sandbox) -> None:
    result = sb.run("def f(n):\n    return f(n + 1)\nanswer = f(0)")
    assert result.status == "error" and result.error.startswith("RecursionError")
    result = sb.run("a = []\nfor _ in range(10 ** 6):\n    a = [a]\nprint(a)")
    assert result.status == "error"
    _assert_host_ok(sb)


def test_a_crash_is_contained(raw: Sandbox) -> None:
    result = raw.run("import ctypes\nctypes.string_at(0)")
    assert result.status == "error" and "SIGSEGV" in (result.error or ""), result
    _assert_host_ok(raw)


# ----------------------------------------------------------------------------------------------
# hostile programs through sympy, which the prelude puts in every namespace: strings that sympy
# evaluates (sympify, parse_expr), code it compiles (lambdify), printing, init_session
# ----------------------------------------------------------------------------------------------


def _hostile_strings(marker: Path, sentinel: Path) -> list[str]:
    return [
        f"__import__('os').system('touch {marker}')",
        f"open({str(sentinel)!r}, 'w').write('pwned')",
        f"__import__('shutil').copy('/etc/passwd', {str(sentinel)!r})",
        "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']"
        "[0].__init__.__globals__['fork']()",
    ]


def _through_sympy(expression: str) -> list[str]:
    """Programs that hand the string ``expression`` (a Python expression building it) to the
    prelude's sympy names and to sympy's string evaluators and code generators."""
    head = "u = '_' * 2\nx = Symbol('x')\ns = " + expression + "\n"
    calls = [
        "answer = simplify(s)",
        "answer = solve(s, x)",
        "answer = Eq(s, 0)",
        "answer = solve_it(Eq(x, s), x)",
        "answer = x.subs(s, 1)",
        "from sympy import sympify\nanswer = sympify(s)",
        "from sympy.parsing.sympy_parser import parse_expr\nanswer = parse_expr(s, transformations=())",
        "from sympy import lambdify\nanswer = lambdify([], Symbol(s))()",
        "from sympy import lambdify\nanswer = lambdify([x], x + Symbol(s))(1)",
    ]
    return [head + call for call in calls]


def _expression(text: str) -> str:
    """A Python expression that builds ``text`` at run time with no '__' in any literal (so it
    passes the static check; ``u`` holds '__'): the runtime guards and the kernel must stop it."""
    parts = text.split("__")
    return " + u + ".join(repr(p) for p in parts)


def test_strings_sympy_evaluates_are_guarded(sb: Sandbox, guards: Sandbox, sentinel: Path) -> None:
    marker = Path(tempfile.gettempdir()) / f"siked-pwned-sympy-{os.getpid()}"
    programs = [
        code
        for text in _hostile_strings(marker, sentinel)
        for code in _through_sympy(_expression(text))
    ]
    for code in programs:
        assert check_program(code) is None, code  # nothing for the static check to see
    for sandbox in (sb, guards):
        for code, result in zip(programs, sandbox.run_many(programs), strict=True):
            assert result.status == "error", (code, result)
    assert not marker.exists()
    assert sentinel.read_bytes() == b"untouched"
    # open() in code sympy generates is stopped by the guards, not only by the dropped uid
    code = _through_sympy(_expression(_hostile_strings(marker, sentinel)[1]))[7]
    assert "lambdify" in code
    result = sb.run(code)
    assert result.status == "error" and "open is blocked" in (result.error or ""), result
    _assert_host_ok(sb)
    _assert_host_ok(guards)


def test_sympy_printing_and_sessions(sb: Sandbox, guards: Sandbox) -> None:
    marker = Path(tempfile.gettempdir()) / f"siked-pwned-print-{os.getpid()}"
    name = _expression(f"__import__('os').system('touch {marker}')")
    printing = (
        f"u = '_' * 2\nx = Symbol({name})\n"
        "from sympy import init_printing, latex, pprint, srepr\ninit_printing()\n"
        "print(x, latex(x), srepr(x))\npprint(x)\nanswer = 1"
    )
    result = sb.run(printing)  # printing a symbol shows its name, it does not run it
    assert (result.status, result.answer) == ("ok", "1"), result
    for code in (
        "from sympy import init_session\ninit_session(ipython=False)\nanswer = 1",
        "from sympy import init_session\ninit_session()\nanswer = 1",
        "from sympy.interactive.session import init_python_session\n"
        "init_python_session().interact()\nanswer = 1",
    ):
        for sandbox in (sb, guards):
            result = sandbox.run(code)
            assert result.status in ("error", "rejected"), (code, result)
    assert sb.run("from sympy import preview\npreview(Symbol('x'))").status == "rejected"
    assert guards.run("from sympy import preview\npreview(Symbol('x'))").status == "error"
    assert not marker.exists()
    _assert_host_ok(sb)
    _assert_host_ok(guards)


# ----------------------------------------------------------------------------------------------
# robustness of the pool
# ----------------------------------------------------------------------------------------------


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _proc_state(pid)
        if state is None or state == "Z":
            return True
        time.sleep(0.02)
    return False


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _children_of(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def _processes_in(root: str) -> list[int]:
    """Processes whose working directory is inside ``root``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(root):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_killed_worker_is_replaced(sb: Sandbox) -> None:
    sb.run("answer = 1")
    before = sb.worker_pids()
    os.kill(before[0], signal.SIGKILL)
    assert _wait_gone(before[0])
    results = sb.run_many([f"answer = {i} + 100" for i in range(8)])
    assert [r.answer for r in results] == [str(i + 100) for i in range(8)]
    after = sb.worker_pids()
    assert before[0] not in after and len(after) == len(before)


def test_worker_killed_during_a_program(tmp_root: str) -> None:
    with Sandbox(Limits(timeout_s=1, cpu_s=1), workers=1, tmp_dir=tmp_root) as sandbox:
        sandbox.start()
        (pid,) = sandbox.worker_pids()
        killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        killer.start()
        result = sandbox.run("while True:\n    pass")
        killer.join()
        assert result.status == "timeout"  # retried once on a fresh worker
        assert sandbox.worker_pids() != [pid]
        assert sandbox.run("answer = 2").answer == "2"


def test_a_hung_worker_never_hangs_the_caller(tmp_root: str) -> None:
    with Sandbox(Limits(timeout_s=0.5, cpu_s=1), workers=1, tmp_dir=tmp_root) as sandbox:
        sandbox._grace_s = 1.0
        sandbox.start()
        (pid,) = sandbox.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        result = sandbox.run("answer = 1")
        assert result.status == "error" and "did not answer" in (result.error or "")
        assert _wait_gone(pid) and sandbox.worker_pids() != [pid]
        assert sandbox.run("answer = 3").answer == "3"


def test_threads_share_a_sandbox(sb: Sandbox) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            codes = [f"answer = {k} * 1000 + {i}" for i in range(15)]
            answers = [r.answer for r in sb.run_many(codes)]
            assert answers == [str(k * 1000 + i) for i in range(15)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_fork_after_use(sb: Sandbox) -> None:
    """A process that forks (DataLoader workers) gets its own workers; the parent's are kept."""
    assert sb.run("answer = 5").answer == "5"
    parent_workers = sb.worker_pids()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            result = sb.run("answer = 11 * 11")
            os.write(write_fd, json.dumps([result.answer, sb.worker_pids()]).encode())
            sb.close()
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        answer, child_workers = json.loads(f.read() or b"[null, []]")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert answer == "121" and not set(child_workers) & set(parent_workers)
    assert sb.worker_pids() == parent_workers
    assert sb.run("answer = 6").answer == "6"


def test_cache(tmp_root: str, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    with Sandbox(workers=1, cache_dir=cache_dir, tmp_dir=tmp_root) as first:
        a = first.run("answer = 2 ** 10")
        b = first.run("answer = 2 ** 10")
        assert a == b and a.answer == "1024"
    assert list(cache_dir.rglob("*.json"))
    with Sandbox(workers=1, cache_dir=cache_dir, tmp_dir=tmp_root) as second:
        assert second.run("answer = 2 ** 10") == a
        assert second.worker_pids() == []  # answered from disk, no worker started


def test_timeouts_are_not_cached(tmp_root: str) -> None:
    with Sandbox(Limits(timeout_s=0.5, cpu_s=1), workers=1, tmp_dir=tmp_root) as sandbox:
        first = sandbox.run("while True:\n    pass")
        second = sandbox.run("while True:\n    pass")
        assert first.status == second.status == "timeout" and first is not second


def test_pickle_gives_a_fresh_sandbox(tmp_root: str) -> None:
    import pickle

    with Sandbox(LIMITS, workers=1, tmp_dir=tmp_root) as sandbox:
        copy = pickle.loads(pickle.dumps(sandbox))
        with copy:
            assert copy.limits == LIMITS and copy.worker_pids() == []
            assert copy.run("answer = 9").answer == "9"


def test_closed_sandbox_refuses(tmp_root: str) -> None:
    sandbox = Sandbox(workers=1, tmp_dir=tmp_root)
    sandbox.close()
    with pytest.raises(Exception, match="closed"):
        sandbox.run("answer = 1")


def test_shared_sandbox() -> None:
    shared = get_sandbox()
    assert shared is get_sandbox()
    assert shared.run("answer = 3 + 4").answer == "7"
    shared.close()
    assert get_sandbox() is not shared
    get_sandbox().close()


def test_siked_dying_takes_its_workers_along() -> None:
    tmp_root = _private_tmp()  # only this test's processes live here
    script = textwrap.dedent(
        f"""
        import sys, threading
        from siked.sandbox import Limits, Sandbox
        sb = Sandbox(Limits(timeout_s=60, cpu_s=60), workers=1, tmp_dir={tmp_root!r})
        sb.start()
        threading.Thread(target=sb.run, args=("while True:\\n    pass",), daemon=True).start()
        print(sb.worker_pids()[0], flush=True)
        threading.Event().wait()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        deadline = time.monotonic() + 10
        while not [p for p in _processes_in(tmp_root) if _proc_state(p) == "R"]:
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert _wait_gone(worker, 5.0), "the worker outlived siked"
    deadline = time.monotonic() + 5
    while [p for p in _processes_in(tmp_root) if _proc_state(p) not in (None, "Z")]:
        assert time.monotonic() < deadline, "the program outlived siked"
        time.sleep(0.05)
    while os.listdir(tmp_root):  # the worker removes its directory on the way out
        assert time.monotonic() < deadline, "the worker left its directory behind"
        time.sleep(0.05)
    os.rmdir(tmp_root)


# ----------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------


def test_cli_exec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "p.py"
    program.write_text("a = 3\nb = 4\nanswer = a * b\n")
    assert cli_main(["exec", str(program)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["answer"] == "12" and out["rule"] == "answer"
    assert set(out) == {"status", "answer", "error", "seconds", "rule"}


def test_cli_exec_stdin_and_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("while True:\n    pass\n"))
    assert cli_main(["exec", "--timeout", "0.5", "--memory-mb", "512", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "timeout"
    monkeypatch.setattr(sys, "stdin", io.StringIO("import os\n"))
    assert cli_main(["exec", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "rejected"


def test_cli_exec_prelude(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "authors.py"
    program.write_text(AUTHORS_STYLE)
    assert cli_main(["exec", str(program)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["answer"]) == ("ok", "27.0"), out
    assert cli_main(["exec", "--prelude", "none", str(program)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error" and "NameError" in out["error"], out


def test_cli_exec_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["exec", "/nonexistent/p.py"]) == 2
    assert "not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# last: nothing is left behind
# ----------------------------------------------------------------------------------------------


def test_zz_no_leftover_processes(
    sb: Sandbox, guards: Sandbox, raw: Sandbox, tmp_root: str
) -> None:
    for sandbox in (sb, guards, raw):
        sandbox.close()
    assert len(_WORKER_PIDS) > 5
    deadline = time.monotonic() + 5
    while True:
        alive = [p for p in _WORKER_PIDS if _proc_state(p) is not None]  # zombies count too
        workers = [p for p, _ in _children_of(os.getpid()) if "_sandbox_worker" in _cmdline(p)]
        in_work_dirs = _processes_in(tmp_root)
        if not (alive or workers or in_work_dirs):
            break
        assert time.monotonic() < deadline, (
            f"left behind: workers {alive} {workers}, in the work dirs {in_work_dirs}"
        )
        time.sleep(0.05)
    assert os.listdir(tmp_root) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
