"""Start a real OpenAI-compatible server (``transformers serve``) for tests and benchmarks.

``transformers serve`` needs the ``serve`` extra (``pip install -e '.[serve]'``; the dev extra and
``make setup`` install it). The server runs on a free loopback port in its own process group,
started without a pinned model, so it loads whatever local path a request names (the bundled
student, or an iteration's merged student) on first use. :meth:`RealServer.kill` and leaving
the ``with`` block kill the whole group and check that no process of it is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from siked.engines.vllm import _group_alive, free_port

STARTUP_TIMEOUT = 180.0


def transformers_cli() -> str:
    """The ``transformers`` command of this Python environment."""
    exe = Path(sys.executable).parent / "transformers"
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: install transformers in this environment")
    missing = [m for m in ("fastapi", "uvicorn") if not _importable(m)]
    if missing:
        raise RuntimeError(
            f"`transformers serve` needs {', '.join(missing)}: pip install -e '.[serve]' "
            "(make setup installs it)"
        )
    return str(exe)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class RealServer:
    """``transformers serve`` on 127.0.0.1:<free port>; a context manager."""

    def __init__(self, threads: int | None = None, log_dir: str | os.PathLike[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        directory = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="siked-serve-"))
        self.log_path = directory / f"transformers_serve_{self.port}.log"
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = STARTUP_TIMEOUT) -> RealServer:
        argv = [transformers_cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--device", "cpu", "--log-level", "warning"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, killed as a whole
        )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2.0) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"transformers serve not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pgid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the server's whole process group and reap it; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            deadline = time.monotonic() + 10
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"process group {proc.pid} outlived its server")
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RealServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
