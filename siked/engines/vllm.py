"""Engine that starts a ``vllm serve`` subprocess and talks to it through the openai engine.

The server runs in its own process group (``start_new_session``) with its log in
``<run_dir>/vllm_server.log``. The engine waits for ``GET /health`` (bounded by
``cfg.startup_timeout``, failing early with the log's tail if the process dies), then generates
through :class:`~siked.engines.openai.OpenAIEngine` (concurrency, retries, cache). The server is
stopped -- SIGTERM to the whole process group, SIGKILL after a grace period -- on ``close()``,
on leaving the ``with`` block (also on an exception or Ctrl-C), at interpreter exit, and if
start-up fails. On Linux the server also gets SIGTERM if this process dies (``PR_SET_PDEATHSIG``).

Sampling and training never share a process: vLLM does not reliably give GPU memory back, so the
stages start a server for evaluation and sampling (one for both when their engine keys are the
same: :class:`siked.loop.IterationEngine`) and stop it before training.

vLLM is an optional dependency, best installed in its own environment (it pins its own torch
and transformers): siked only runs its ``vllm`` command, found as ``cfg.vllm_executable``, else
``$SIKED_VLLM``, else on ``PATH``, else beside this Python (``pip install 'siked[vllm]'``), else
in ``.venv-vllm/`` beside this Python's environment (``make vllm``: vLLM's CPU build).
Options: ``cfg.model`` (or ``model=``), ``tensor_parallel_size``, ``gpu_memory_utilization``,
``port`` (a free port is used if it is taken), ``lora_modules`` (``{name: adapter_path}`` ->
``--enable-lora --lora-modules '{"name": ..., "path": ...}' --max-lora-rank R`` with R the
largest adapter rank, rounded up to a rank vLLM accepts; requests then go to the first adapter
unless ``adapter=`` says otherwise), ``dtype`` (``--dtype``), ``max_num_seqs``
(``--max-num-seqs``) and ``extra_args`` (appended to the command line; an option given there
is not also set by siked).

What is sampled is what siked asks for: the server starts with ``--generation-config vllm``
(unless ``extra_args`` names another), so the model's ``generation_config.json``
(``repetition_penalty``, ``top_k``, ... of an instruct model, carried into the merged students)
does not become the default of every request. Requests carry no seed unless
``seed_requests: true`` (vLLM samples seeded requests one by one, each with its own generator).
Unless ``concurrency`` is set, as many requests are in flight as the server batches sequences
(``max_num_seqs``, passed as ``--max-num-seqs``), so its batch stays full.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from siked.child import set_parent_death_signal
from siked.config import EngineConfig
from siked.engines.base import (
    Completion,
    Engine,
    EngineContext,
    EngineError,
    GenerateRequest,
    Prompt,
    find_command,
)
from siked.engines.openai import OpenAIEngine

log = logging.getLogger(__name__)

LOG_FILE = "vllm_server.log"
INSTALL_HINT = "pip install 'siked[vllm]'"
#: the environment `make vllm` builds (scripts/vllm_env.sh), beside the project's .venv
VLLM_VENV = ".venv-vllm"
#: environment variable naming the vllm command (e.g. a separate environment's bin/vllm)
EXECUTABLE_ENV = "SIKED_VLLM"
_SECRET_FLAGS = frozenset({"--api-key"})
#: the LoRA ranks `vllm serve --max-lora-rank` accepts (vllm.config.lora.MaxLoRARanks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def find_vllm(executable: str | None = None) -> str:
    """Path of the ``vllm`` command: ``executable``, else ``$SIKED_VLLM``, else on PATH, else
    beside this Python, else ``.venv-vllm/bin/vllm`` beside this Python's environment."""
    return find_command(
        "vllm",
        executable,
        EXECUTABLE_ENV,
        "vllm_executable",
        [
            Path(sys.executable).parent / "vllm",
            Path(sys.prefix).parent / VLLM_VENV / "bin" / "vllm",
        ],
        f"vLLM is not installed (no `vllm` command found): {INSTALL_HINT}, or `make vllm` (its "
        f"CPU build in {VLLM_VENV}/), or point ${EXECUTABLE_ENV} at one -- or start a server "
        "yourself and use `engine: openai` with `base_url`",
    )


def adapter_rank(adapter_dir: str | os.PathLike[str]) -> int | None:
    """The largest LoRA rank of a PEFT adapter directory (``r`` and ``rank_pattern``), or None
    if it holds no readable ``adapter_config.json`` (e.g. a hub id)."""
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        conf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ranks = [conf.get("r"), *(conf.get("rank_pattern") or {}).values()]
    ints = [int(r) for r in ranks if isinstance(r, int | float) and r > 0]
    return max(ints) if ints else None


def vllm_lora_rank(rank: int) -> int:
    """The smallest ``--max-lora-rank`` value vLLM accepts that holds ``rank``.

    >>> vllm_lora_rank(16), vllm_lora_rank(17), vllm_lora_rank(4)
    (16, 32, 8)
    """
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise EngineError(f"LoRA rank {rank} is above the largest vLLM serves ({VLLM_LORA_RANKS[-1]})")


def lora_args(modules: dict[str, str], extra_args: Sequence[str] = ()) -> list[str]:
    """``vllm serve`` options for LoRA ``modules`` (name -> adapter path).

    Each module is passed in vLLM's JSON form: its ``name=path`` form breaks on a path holding
    a comma or ``=``. ``--max-lora-rank`` (vLLM's default is 16) is set from the largest local
    adapter's rank unless ``extra_args`` sets it.

    >>> lora_args({"it1": "/runs/a,b/adapter"})
    ['--enable-lora', '--lora-modules', '{"name": "it1", "path": "/runs/a,b/adapter"}']
    """
    if not modules:
        return []
    argv = ["--enable-lora", "--lora-modules"]
    argv += [json.dumps({"name": name, "path": str(path)}) for name, path in modules.items()]
    ranks = [r for r in (adapter_rank(p) for p in modules.values()) if r is not None]
    if ranks and not _has_option(extra_args, "--max-lora-rank"):
        argv += ["--max-lora-rank", str(vllm_lora_rank(max(ranks)))]
    return argv


def _has_option(argv: Sequence[str], option: str) -> bool:
    """Whether ``argv`` sets ``option`` (``--opt value`` or ``--opt=value``)."""
    return any(a == option or a.startswith(option + "=") for a in argv)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # like the server will: a port in TIME_WAIT is free, one with a listener is not
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def redact(argv: Sequence[str]) -> list[str]:
    """The command line with secret option values replaced by ``***``."""
    out = list(argv)
    for i, a in enumerate(out):
        if a in _SECRET_FLAGS and i + 1 < len(out):
            out[i + 1] = "***"
        elif "=" in a and a.split("=", 1)[0] in _SECRET_FLAGS:
            out[i] = a.split("=", 1)[0] + "=***"
    return out


def model_fingerprint(paths: Sequence[str]) -> str:
    """A cheap fingerprint of local model/adapter directories (names, sizes, mtimes).

    Used as the request-cache namespace so that a retrained model at the same path is never
    answered from the cache of the old one. Hub ids (no local path) contribute their name only.
    """
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode())
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file():
                    st = f.stat()
                    h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        elif path.is_file():
            st = path.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a live member (zombies, waiting to be reaped, aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after the command: state, ppid, pgrp, ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server log as a terminal would show them.

    Progress bars (downloads, weight loading) redraw one line with carriage returns; only each
    line's last state is kept, so the tail says what was happening rather than repeating one
    bar thirty times.
    """
    try:
        text = path.read_bytes().decode(
            "utf-8", errors="replace"
        )  # keeps "\r" (read_text would not)
    except OSError:
        return ""
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    shown = [line for line in shown if line.strip()]
    return "\n".join(shown[-lines:])


class VLLMEngine(Engine):
    """Start ``vllm serve`` for ``model``, generate through it, stop it on close."""

    name = "vllm"

    def __init__(
        self,
        cfg: EngineConfig,
        model: str | None = None,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        lora_modules: dict[str, str] | None = None,
        adapter: str | None = None,
        served_model_name: str | None = None,
        executable: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache: bool = True,
        startup_timeout: float | None = None,
        stop_grace: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__()
        self.model = model or cfg.model
        if not self.model:
            raise EngineError("the vllm engine needs a model (engine.model or model=)")
        self.cfg = cfg
        self.stop_grace = stop_grace
        self.lora_modules = dict(cfg.lora_modules if lora_modules is None else lora_modules)
        self.served_model_name = served_model_name or self.model
        if adapter is not None and adapter not in self.lora_modules:
            raise EngineError(f"adapter {adapter!r} is not one of the LoRA modules")
        self.request_model = adapter or next(iter(self.lora_modules), self.served_model_name)
        self.port = cfg.port if port_is_free(cfg.port) else free_port()
        if self.port != cfg.port:
            log.warning("port %d is taken; starting vllm on port %d", cfg.port, self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self._log_path(run_dir, log_path)
        self.argv = self._command(find_vllm(executable or cfg.vllm_executable))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._client: OpenAIEngine | None = None
        try:
            self._start()
            timeout = cfg.startup_timeout if startup_timeout is None else startup_timeout
            self._wait_healthy(timeout, poll_interval)
            fingerprint = model_fingerprint([self.model, *self.lora_modules.values()])
            client_cfg = cfg.model_copy(
                update={
                    "engine": "openai",
                    "base_url": f"{self.url}/v1",
                    "concurrency": cfg.concurrency or cfg.max_num_seqs,
                    "seed_requests": bool(cfg.seed_requests),
                }
            )
            self._client = OpenAIEngine(
                client_cfg,
                model=self.request_model,
                cache_dir=cache_dir,
                cache=cache,
                cache_namespace=f"vllm:{fingerprint}",
            )
            self.stats = self._client.stats  # one set of counters
        except BaseException:
            self.close()
            raise

    @classmethod
    def context_kwargs(cls, context: EngineContext) -> dict[str, Any]:
        """The server logs to ``context.run_dir`` (else a temporary directory); requests are
        cached in ``context.cache_dir`` (else ``cfg.cache_dir``)."""
        return {"cache_dir": context.cache_dir, "run_dir": context.run_dir}

    @classmethod
    def check_ready(cls, cfg: EngineConfig) -> None:
        """A ``vllm`` command is found (:func:`find_vllm`)."""
        find_vllm(cfg.vllm_executable)

    def __repr__(self) -> str:
        return f"VLLMEngine(model={self.model!r}, url={self.url!r}, log={str(self.log_path)!r})"

    # -- process ---------------------------------------------------------------------------
    @staticmethod
    def _log_path(
        run_dir: str | os.PathLike[str] | None, log_path: str | os.PathLike[str] | None
    ) -> Path:
        if log_path is not None:
            return Path(log_path)
        if run_dir is not None:
            return Path(run_dir) / LOG_FILE
        return Path(tempfile.mkdtemp(prefix="siked-vllm-")) / LOG_FILE

    def _command(self, exe: str) -> list[str]:
        cfg = self.cfg
        argv = [
            exe,
            "serve",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--served-model-name",
            self.served_model_name,
            "--tensor-parallel-size",
            str(cfg.tensor_parallel_size),
            "--gpu-memory-utilization",
            str(cfg.gpu_memory_utilization),
        ]
        if not _has_option(cfg.extra_args, "--dtype"):
            argv += ["--dtype", cfg.dtype]
        if not _has_option(cfg.extra_args, "--max-num-seqs"):
            argv += ["--max-num-seqs", str(cfg.max_num_seqs)]
        if not _has_option(cfg.extra_args, "--generation-config"):
            argv += ["--generation-config", "vllm"]  # no sampling defaults from the model
        argv += lora_args(self.lora_modules, cfg.extra_args)
        return argv + list(cfg.extra_args)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self._log_file.write(f"$ {' '.join(redact(self.argv))}\n".encode())
        self._log_file.flush()
        log.info(
            "starting vllm serve %s on port %d (log: %s)", self.model, self.port, self.log_path
        )
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, which close() kills as a whole
            preexec_fn=set_parent_death_signal if sys.platform.startswith("linux") else None,
        )
        atexit.register(self.close)

    def _wait_healthy(self, timeout: float, poll_interval: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EngineError(
                    f"vllm serve exited with code {code} before it was ready; "
                    f"the end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if self._healthy():
                log.info("vllm server ready at %s", self.url)
                return
            if time.monotonic() > deadline:
                raise EngineError(
                    f"vllm serve {self.model} was still starting after {timeout:.0f}s "
                    "(startup_timeout of this engine's config section). A first start downloads "
                    "the model: download it beforehand (`hf download MODEL`) or raise "
                    f"startup_timeout. What it was doing, the end of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(poll_interval)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2.0) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def close(self) -> None:
        """Stop the server (idempotent): SIGTERM the process group, SIGKILL after the grace."""
        if self._client is not None:
            self._client.close()
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is not None:
            self._stop(proc)
        if getattr(self, "_log_file", None) is not None:
            assert self._log_file is not None
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            log.warning("vllm did not stop within %.0fs; killing it", self.stop_grace)
            _signal_group(pgid, signal.SIGKILL)
            proc.wait()
        # workers left in the group (the leader is gone): give them the rest of the grace
        deadline = time.monotonic() + min(self.stop_grace, 5.0)
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        log.info("vllm server stopped (exit code %s)", proc.returncode)

    # -- generation ------------------------------------------------------------------------
    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        if self._client is None or self._proc is None:
            raise EngineError("the vllm engine is closed")
        code = self._proc.poll()
        if code is not None:
            raise EngineError(
                f"vllm serve died (exit code {code}); the end of {self.log_path}:\n"
                f"{log_tail(self.log_path)}"
            )
        return self._client._generate(prompts, request)  # checked, counted by generate
