"""Engine for any OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, llama.cpp, OpenAI).

Uses the official ``openai`` client with its own retries disabled (``max_retries=0``), so the
retry count is ours, bounded by ``cfg.max_retries`` and counted in :attr:`OpenAIEngine.stats`.

- **Concurrency**: at most ``cfg.concurrency`` requests in flight (a thread pool), over all
  servers (:data:`DEFAULT_CONCURRENCY` when unset).
- **Replicas**: ``cfg.base_url`` may name several servers of one model (a list, or one string
  with commas). Each attempt goes to the server with the fewest requests in flight; a server
  whose attempt fails in a retryable way is avoided for ``cfg.server_cooldown`` seconds (doubled
  per failure in a row) and the request is retried on another server at once, without backoff
  (see :mod:`siked.engines.servers`). ``stats.servers`` counts requests, usable replies
  (``served``) and errors per server. Replicas share one request cache (the URL is not part of
  the key).
- **Retries**: 429 (honouring ``Retry-After`` / ``retry-after-ms``), 408/409/5xx, timeouts,
  dropped connections and malformed replies are retried with exponential backoff and jitter
  (``cfg.retry_backoff`` doubled per attempt, capped at ``cfg.retry_backoff_max``). Other 4xx
  replies (bad request, authentication, unknown model) fail at once with the server's message.
- **Samples**: ``cfg.n_mode`` = ``n`` asks for n samples in one request (``seed`` = the
  prompt's seed); ``separate`` sends n requests with n=1 and ``seed = derive_seed(seed_i, j)``
  (the seed is sent unless ``cfg.seed_requests`` is false; it is part of the cache key either way);
  ``auto`` (default) uses ``n`` and falls back to ``separate`` for the rest of the engine's life
  when the server rejects ``n`` or returns fewer choices. With ``n == 1`` both modes send the same
  request (``seed = derive_seed(seed_i, 0)``).
- **Cache**: a persistent SQLite cache (``<cache_dir>/openai_cache.sqlite``) keyed by the full
  request (model, api, messages/prompt, n, temperature, top_p, max_tokens, stop, seed,
  ``extra_body``, sample index and an optional namespace). Each reply is written as soon as it
  arrives (WAL mode, safe across threads and processes), so a killed run resumes without asking
  again and a finished one reruns for free. The server's raw text is stored; stop strings are applied on the way out.
- **API key**: read from the environment variable named ``cfg.api_key_env`` (``"EMPTY"`` when
  unset, for local servers); it is never stored in the cache, logged, or shown by ``repr``.
- **Stop strings**: sent to the server (at most 4, the OpenAI limit) and always applied again
  to the returned text.
- **Model names**: a bundled student (``bundled:smollm2-135m-instruct``) is sent as the local
  path of its converted checkpoint, the name ``transformers serve`` and ``vllm serve`` give a
  model started from that path.
- **Extra fields**: ``cfg.extra_body`` is merged into every request body (server-specific
  options such as vLLM's ``top_k`` or transformers serve's ``generation_config``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from siked.config import EngineConfig, parse_base_urls
from siked.engines.base import (
    NO_CONTEXT,
    Completion,
    Engine,
    EngineContext,
    EngineError,
    GenerateRequest,
    Prompt,
    generate_progress,
    sample_seed,
    truncate_at_stop,
)
from siked.engines.servers import Server, ServerPool
from siked.io import sha256_json

log = logging.getLogger(__name__)

CACHE_FILE = "openai_cache.sqlite"
#: the OpenAI API accepts at most 4 stop sequences; the rest are applied client-side
MAX_SERVER_STOP = 4
#: requests in flight when ``concurrency`` is unset (the vllm engine uses its server's batch size)
DEFAULT_CONCURRENCY = 8
#: a Retry-After longer than this is capped (seconds)
MAX_RETRY_AFTER = 600.0
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_CACHE_VERSION = 1


class RequestCache:
    """A persistent key -> JSON cache in SQLite, safe across threads and processes.

    One connection per cache object, serialised by a lock (SQLite serialises writers anyway);
    WAL mode lets other processes read while one writes, and every ``put`` commits at once.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=60.0, check_same_thread=False
        )
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                "created REAL NOT NULL)"
            )
            self._conn.commit()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise EngineError(f"the request cache {self.path} is closed")
        return self._conn

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db().execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])  # type: ignore[no-any-return]

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, created) VALUES (?, ?, ?)",
                (key, blob, time.time()),
            )
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM cache").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _Malformed(Exception):
    """The server answered 200 with something that is not a usable completion."""


class _NotSupported(Exception):
    """The server rejected or ignored the ``n`` parameter."""


class _Aborted(Exception):
    """generate() is unwinding (another request failed, or Ctrl-C): stop retrying."""


@dataclass
class _Job:
    prompt_index: int
    samples: list[int]  # sample indices this request answers (n-mode: all of them)
    n: int
    seed: int | None
    key: str
    kwargs: dict[str, Any]
    prompt: Prompt
    params: dict[str, Any]
    stops: list[str]


def retry_after_seconds(error: BaseException) -> float | None:
    """The wait a 429/503 reply asks for (``retry-after-ms`` or ``Retry-After``), if any."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_retryable(error: BaseException) -> bool:
    """Whether a failed attempt may succeed if sent again."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code in _RETRYABLE_STATUS or error.status_code >= 500
    return isinstance(
        error,
        openai.APIConnectionError | openai.APIResponseValidationError | _Malformed | ValueError,
    )


def describe_error(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {error.message}"
    if isinstance(error, openai.APITimeoutError):
        return "request timed out"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        return f"connection error ({type(cause).__name__ if cause else 'no reply'})"
    if isinstance(error, ValueError | _Malformed):
        return f"malformed reply ({error})"
    return f"{type(error).__name__}: {error}"


class OpenAIEngine(Engine):
    """Generate through an OpenAI-compatible HTTP API (see the module docstring)."""

    name = "openai"

    def __init__(
        self,
        cfg: EngineConfig,
        model: str | None = None,
        *,
        base_url: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache: bool = True,
        cache_namespace: str = "",
    ) -> None:
        super().__init__()
        self.cfg = cfg
        name = model or cfg.model
        if not name:
            raise EngineError("the openai engine needs a model name (engine.model)")
        self.model = served_model_name(name)
        address = base_url or cfg.base_url
        self.base_urls: list[str | None] = list(parse_base_urls(address)) if address else [None]
        self.api = cfg.api
        self.cache_namespace = cache_namespace
        self._n_ok: bool | None = {"n": True, "separate": False}.get(cfg.n_mode)
        self.concurrency = cfg.concurrency or DEFAULT_CONCURRENCY
        self.seed_requests = cfg.seed_requests is not False
        self._max_tokens_param = "max_tokens"
        self._abort = threading.Event()
        self._lock = threading.Lock()
        directory = cache_dir if cache_dir is not None else cfg.cache_dir
        self.cache: RequestCache | None = (
            RequestCache(Path(directory) / CACHE_FILE) if cache and directory else None
        )
        # the key goes to the client objects only, never to an attribute, file or log line
        key = os.environ.get(cfg.api_key_env) or "EMPTY"
        self._pool = ServerPool(
            [
                (
                    url,
                    openai.OpenAI(
                        api_key=key, base_url=url, timeout=cfg.request_timeout, max_retries=0
                    ),
                )
                for url in self.base_urls
            ],
            cooldown=cfg.server_cooldown,
        )

    @property
    def base_url(self) -> str | None:
        """The server address as configured (several replicas: joined with commas)."""
        urls = [u for u in self.base_urls if u]
        return ",".join(urls) if urls else None

    @classmethod
    def from_config(
        cls,
        cfg: EngineConfig,
        model: str | None = None,
        context: EngineContext = NO_CONTEXT,
        **kw: Any,
    ) -> OpenAIEngine:
        """The served model is ``cfg.model`` when set, else ``model``, a local directory named by
        its absolute path (a server started in another directory can load it, as
        ``transformers serve`` does for the model a request names). Requests are cached in the
        stage's ``context.cache_dir``, else ``cfg.cache_dir``."""
        if model is not None and not cfg.model and Path(model).is_dir():
            model = str(Path(model).resolve())
        return super().from_config(cfg, model=cfg.model or model, context=context, **kw)

    @classmethod
    def context_kwargs(cls, context: EngineContext) -> dict[str, Any]:
        return {"cache_dir": context.cache_dir}

    def __repr__(self) -> str:
        return (
            f"OpenAIEngine(model={self.model!r}, base_url={self.base_url!r}, api={self.api!r}, "
            f"cache={str(self.cache.path) if self.cache else None!r})"
        )

    __str__ = __repr__

    def close(self) -> None:
        self._abort.set()
        self._pool.close()
        if self.cache is not None:
            self.cache.close()

    # -- planning --------------------------------------------------------------------------
    def _input(self, prompt: Prompt) -> dict[str, Any]:
        if self.api == "chat":
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            return {"messages": messages}
        if not isinstance(prompt, str):
            raise EngineError(
                "the completions API needs text prompts; chat messages need api: chat "
                "(or apply the chat template first)"
            )
        return {"prompt": prompt}

    def _job(
        self,
        i: int,
        prompt: Prompt,
        samples: list[int],
        n: int,
        seed: int | None,
        params: dict[str, Any],
        stop: list[str],
    ) -> _Job:
        kwargs: dict[str, Any] = {"model": self.model, **self._input(prompt), **params}
        if n > 1:
            kwargs["n"] = n
        if stop:
            kwargs["stop"] = stop[:MAX_SERVER_STOP]
        if seed is not None and self.seed_requests:
            kwargs["seed"] = seed
        key_parts = {
            "v": _CACHE_VERSION,
            "api": self.api,
            "ns": self.cache_namespace,
            **{k: v for k, v in kwargs.items() if k != "stop"},
            "n": n,
            "stop": stop,
            "seed": seed,
            "sample": samples[0] if n == 1 else None,
        }
        if self.cfg.extra_body:  # absent when empty: keys made before extra_body stay valid
            key_parts["extra_body"] = self.cfg.extra_body
        return _Job(i, samples, n, seed, sha256_json(key_parts), kwargs, prompt, params, stop)

    def _plan(
        self,
        prompts: Sequence[Prompt],
        n: int,
        seeds: list[int | None],
        params: dict[str, Any],
        stop: list[str],
    ) -> list[_Job]:
        jobs = []
        for i, (prompt, s) in enumerate(zip(prompts, seeds, strict=True)):
            if n > 1 and self._n_ok is not False:
                jobs.append(self._job(i, prompt, list(range(n)), n, s, params, stop))
            else:
                jobs.extend(
                    self._job(i, prompt, [j], 1, sample_seed(s, j), params, stop) for j in range(n)
                )
        return jobs

    # -- generate --------------------------------------------------------------------------
    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        n, stops = request.n, list(request.stops)
        params = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        jobs = self._plan(prompts, n, list(request.seeds), params, stops)
        results: list[list[Completion | None]] = [[None] * n for _ in prompts]
        bar = generate_progress(request.progress, len(prompts) * n)
        try:
            todo = []
            for job in jobs:
                hit = self.cache.get(job.key) if self.cache else None
                if hit is not None:
                    self.stats.add(cache_hits=1)
                    self._place(results, job, hit, stops, cached=True, bar=bar)
                else:
                    todo.append(job)
            self._run(todo, results, stops, bar)
        finally:
            if bar is not None:
                bar.close()
        out: list[list[Completion]] = []
        for i, row in enumerate(results):
            if any(c is None for c in row):  # pragma: no cover - guarded by _run
                raise EngineError(f"internal error: prompt {i} has missing samples")
            out.append([c for c in row if c is not None])
        return out

    def _run(
        self,
        jobs: list[_Job],
        results: list[list[Completion | None]],
        stops: list[str],
        bar: Any,
    ) -> None:
        if not jobs:
            return
        self._abort.clear()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="siked-oai")
        futures: dict[Future[list[tuple[_Job, dict[str, Any]]]], _Job] = {}
        try:
            futures = {pool.submit(self._execute, job): job for job in jobs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    for job, reply in fut.result():  # re-raises the first failure
                        self._place(results, job, reply, stops, cached=False, bar=bar)
        except BaseException as e:
            # stop the retry loops in flight and drop queued jobs; on an error, let the requests
            # in flight finish (their replies are cached), on Ctrl-C do not wait for them
            self._abort.set()
            pool.shutdown(wait=not isinstance(e, KeyboardInterrupt), cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _place(
        self,
        results: list[list[Completion | None]],
        job: _Job,
        reply: dict[str, Any],
        stops: list[str],
        *,
        cached: bool,
        bar: Any,
    ) -> None:
        choices = reply["choices"]
        per_sample_tokens = reply.get("completion_tokens") if len(choices) == 1 else None
        for j, choice in zip(job.samples, choices, strict=True):
            text, cut = truncate_at_stop(choice["text"], stops)
            results[job.prompt_index][j] = Completion(
                text=text,
                finish_reason="stop" if cut else choice.get("finish_reason"),
                prompt_tokens=reply.get("prompt_tokens"),
                completion_tokens=per_sample_tokens,
                cached=cached,
            )
        if not cached:
            self.stats.add(
                prompt_tokens=reply.get("prompt_tokens") or 0,
                completion_tokens=reply.get("completion_tokens") or 0,
            )
        if bar is not None:
            bar.update(len(job.samples))

    # -- one job (runs in a worker thread) -------------------------------------------------
    def _execute(self, job: _Job) -> list[tuple[_Job, dict[str, Any]]]:
        """Answer one job, via the cache or the server; returns (job, reply) pairs."""
        if job.n > 1 and self._n_ok is False:
            return self._execute_separately(job)
        try:
            reply = self._request(job)
        except _NotSupported as e:
            if self.cfg.n_mode == "n":
                raise EngineError(
                    f"the server does not support n={job.n} samples per request ({e}); "
                    "set n_mode: separate (or auto)"
                ) from None
            with self._lock:
                if self._n_ok is not False:
                    log.warning(
                        "server does not support n > 1 (%s); sending one request per sample", e
                    )
                self._n_ok = False
            return self._execute_separately(job)
        if job.n > 1:
            with self._lock:
                self._n_ok = True
        if self.cache is not None:
            self.cache.put(job.key, reply)
        return [(job, reply)]

    def _execute_separately(self, job: _Job) -> list[tuple[_Job, dict[str, Any]]]:
        out = []
        for j in job.samples:
            seed = sample_seed(job.seed, j)
            sub = self._job(job.prompt_index, job.prompt, [j], 1, seed, job.params, job.stops)
            hit = self.cache.get(sub.key) if self.cache else None
            if hit is not None:
                self.stats.add(cache_hits=1)
                out.append((sub, hit))
                continue
            reply = self._request(sub)
            if self.cache is not None:
                self.cache.put(sub.key, reply)
            out.append((sub, reply))
        return out

    def _request(self, job: _Job) -> dict[str, Any]:
        """Send one request with bounded retries; return the parsed reply.

        Each attempt goes to the server the pool picks; after a retryable failure the server is
        avoided for a while and, if another server is available, the retry goes there at once.
        """
        attempts = self.cfg.max_retries + 1
        last: BaseException | None = None
        last_server: Server | None = None
        for attempt in range(attempts):
            if self._abort.is_set():
                raise _Aborted()
            server = self._pool.acquire()
            self.stats.add(requests=1, retries=1 if attempt else 0)
            self.stats.add_server(server.label, requests=1)
            failed, asked = False, None
            try:
                reply = self._send(job, server)
                self.stats.add_server(server.label, served=1)
                return reply
            except _NotSupported:  # a reply, with fewer choices than asked for
                self.stats.add_server(server.label, served=1)
                raise
            except openai.BadRequestError as e:
                self._count_error(server)
                self._raise_bad_request(job, e, server)
                last, last_server = e, server  # a parameter was switched: try again
            except (openai.APIError, ValueError, _Malformed) as e:
                self._count_error(server)
                if job.n > 1 and self.cfg.n_mode != "separate" and _blames_n(e):
                    # llama.cpp's server refuses n > 1 with an HTTP 500 in some versions
                    raise _NotSupported(describe_error(e)) from None
                if not is_retryable(e):
                    raise EngineError(
                        f"{self._where(server)} rejected the request: {describe_error(e)}"
                    ) from None
                failed, asked = True, retry_after_seconds(e)
                last, last_server = e, server
            finally:
                avoided = self._pool.release(server, failed=failed, asked=asked)
            if failed and attempt + 1 < attempts:
                self._before_retry(server, last, attempt, attempts, avoided)
        assert last is not None
        hint = ""
        if isinstance(last, openai.APIConnectionError) and not isinstance(
            last, openai.APITimeoutError
        ):
            hint = "; is a server running at that address?"
        raise EngineError(
            f"{self._where(last_server)}: request failed after {attempts} attempts "
            f"(max_retries={self.cfg.max_retries}); last error: {describe_error(last)}{hint}"
        )

    def _count_error(self, server: Server) -> None:
        self.stats.add(errors=1)
        self.stats.add_server(server.label, errors=1)

    def _before_retry(
        self, server: Server, error: BaseException, attempt: int, attempts: int, avoided: float
    ) -> None:
        """Wait before the next attempt: not at all if another server can take it."""
        if avoided and self._pool.available_besides(server):
            log.warning(
                "%s failed (%s); avoiding it for %.0fs, retry %d/%d on another server",
                server.label,
                describe_error(error),
                avoided,
                attempt + 1,
                attempts - 1,
            )
            return
        delay = self._backoff(attempt, error)
        log.info(
            "request to %s failed (%s); retry %d/%d in %.2fs",
            server.label,
            describe_error(error),
            attempt + 1,
            attempts - 1,
            delay,
        )
        self._wait(delay)

    def _raise_bad_request(
        self, job: _Job, e: openai.BadRequestError, server: Server | None = None
    ) -> None:
        """Handle a 400: switch a parameter the server wants differently, or raise."""
        message = str(e.message)
        if job.n > 1 and self.cfg.n_mode != "separate" and _blames_n(e):
            raise _NotSupported(message)
        if (
            "max_completion_tokens" in message
            and self._max_tokens_param == "max_tokens"
            and self.api == "chat"
        ):
            self._max_tokens_param = "max_completion_tokens"
            return
        raise EngineError(
            f"{self._where(server)} rejected the request: HTTP 400: {message}"
        ) from None

    def _send(self, job: _Job, server: Server) -> dict[str, Any]:
        kwargs = dict(job.kwargs)
        if self._max_tokens_param != "max_tokens" and "max_tokens" in kwargs:
            kwargs[self._max_tokens_param] = kwargs.pop("max_tokens")
        if self.cfg.extra_body:
            kwargs["extra_body"] = self.cfg.extra_body
        client = server.client
        if self.api == "chat":
            resp: Any = client.chat.completions.create(**kwargs)
        else:
            resp = client.completions.create(**kwargs)
        return self._parse(resp, job.n)

    def _parse(self, resp: Any, n: int) -> dict[str, Any]:
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise _Malformed(f"no choices in the reply: {str(resp)[:200]!r}")
        parsed = []
        for c in sorted(choices, key=lambda c: getattr(c, "index", 0) or 0):
            if self.api == "chat":
                message = getattr(c, "message", None)
                text = getattr(message, "content", None)
                if text is None and message is not None:
                    text = getattr(message, "reasoning_content", None)
            else:
                text = getattr(c, "text", None)
            if not isinstance(text, str):
                raise _Malformed(f"a choice has no text: {str(c)[:200]!r}")
            parsed.append({"text": text, "finish_reason": getattr(c, "finish_reason", None)})
        if len(parsed) < n:
            raise _NotSupported(f"asked for n={n} samples, the server returned {len(parsed)}")
        usage = getattr(resp, "usage", None)
        return {
            "choices": parsed[:n],
            "prompt_tokens": getattr(usage, "prompt_tokens", None),
            "completion_tokens": getattr(usage, "completion_tokens", None),
        }

    def _backoff(self, attempt: int, error: BaseException) -> float:
        base = min(self.cfg.retry_backoff_max, self.cfg.retry_backoff * 2**attempt)
        delay = base / 2 + random.uniform(0, base / 2)  # "equal jitter"
        asked = retry_after_seconds(error)
        if asked is not None:
            delay = max(delay, min(asked, MAX_RETRY_AFTER))
        return delay

    def _wait(self, seconds: float) -> None:
        if self._abort.wait(seconds):
            raise _Aborted()

    def _where(self, server: Server | None = None) -> str:
        where = server.label if server is not None else self.base_url or "the OpenAI API"
        return f"{where} (model {self.model!r})"


def served_model_name(name: str) -> str:
    """The name to send for ``name``: a bundled student becomes the local path of its converted
    checkpoint (what ``transformers serve`` / ``vllm serve`` on that path call it); any other
    name is sent as it is."""
    from siked.models import is_bundled, resolve_model

    return resolve_model(name) if is_bundled(name) else name


def _mentions(e: openai.APIStatusError, param: str) -> bool:
    """Whether an error reply blames parameter ``param``."""
    body = e.body if isinstance(e.body, dict) else {}
    if body.get("param") == param:
        return True
    message = str(e.message).lower()
    return f"'{param}'" in message or f"{param} >" in message or f"{param}=" in message


def _blames_n(e: BaseException) -> bool:
    """Whether an error reply refuses more than one choice per request (the ``n`` parameter):
    it names ``n``, or speaks of choices (llama.cpp: "Only one completion choice is allowed")."""
    if not isinstance(e, openai.APIStatusError) or e.status_code not in (400, 422, 500):
        return False
    return _mentions(e, "n") or "choice" in str(e.message).lower()
