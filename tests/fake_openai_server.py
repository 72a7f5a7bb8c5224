"""A local OpenAI-compatible HTTP server for tests, with fault injection.

Implements ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /health`` and
``GET /v1/models`` on 127.0.0.1 (a random free port), served from a background thread. Replies
are deterministic functions of the request body::

    <PROMPT> DIGEST/i The answer is 7.
    Question: again

where PROMPT is the (last message) content, DIGEST a hash of the body and i the choice index,
so tests can check order, duplication and seeds. The server records every request it receives.

Faults (``FAULTS``) are scheduled per *distinct request* (same JSON body): with
``set_faults(["500", "429"])`` the first attempt of every request gets a 500, the second a 429
and later attempts succeed; ``set_faults(always="500")`` fails every attempt; ``match=`` limits
faults to requests whose body satisfies a predicate.

Run as a script it imitates ``vllm serve MODEL --port P --served-model-name NAME ...`` (used by
the fake ``vllm`` executable in the vLLM engine tests); environment variables tune it:
``FAKE_VLLM_STARTUP_DELAY`` (seconds before listening), ``FAKE_VLLM_FAIL`` (exit at once with
an error), ``FAKE_VLLM_CHILD`` (spawn a child process, like vLLM's workers),
``FAKE_VLLM_PROGRESS`` (draw a download progress bar with carriage returns before the delay)
and ``FAKE_VLLM_INFO`` (a file to write ``{"argv", "pid", "child_pid"}`` to).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: fault name -> what the server does
FAULTS = {
    "500": "HTTP 500 with a JSON error body",
    "503": "HTTP 503 with a JSON error body",
    "429": "HTTP 429 with a Retry-After header (server.retry_after)",
    "400": "HTTP 400 (not retryable)",
    "timeout": "sleep server.slow_seconds before replying (past the client timeout)",
    "malformed": "HTTP 200 with a body that is not JSON",
    "empty": "HTTP 200 with JSON that has no choices",
    "drop": "close the connection without any reply",
}

STOP_SUFFIX = "\nQuestion: again"


@dataclass
class RequestRecord:
    path: str
    body: dict[str, Any]
    key: str  # hash of the body: equal for retries of the same request
    attempt: int  # 0 for the first time this body was seen
    fault: str | None  # the fault injected, None if answered normally
    headers: dict[str, str] = field(default_factory=dict)
    time: float = 0.0


def body_key(body: dict[str, Any]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    p = body.get("prompt", "")
    return p if isinstance(p, str) else json.dumps(p)


def reply_text(body: dict[str, Any], index: int) -> str:
    """The text of choice ``index`` for a request body (before stop strings are applied)."""
    digest = body_key(body)[:12]
    return f"<{prompt_text(body)}> {digest}/{index} The answer is 7.{STOP_SUFFIX}"


class FakeOpenAIServer:
    """An OpenAI-compatible server in a background thread; use as a context manager."""

    def __init__(
        self,
        model: str = "fake-model",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        slow_seconds: float = 2.0,
        retry_after: str | None = "0",
        honor_stop: bool = True,
        # "ok", "reject" (400 naming n when n > 1), "ignore" (always 1 choice), "llama-400" /
        # "llama-500" (llama.cpp's "Only one completion choice is allowed", as 400 or 500)
        n_support: str = "ok",
    ) -> None:
        self.model = model
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.honor_stop = honor_stop
        self.n_support = n_support
        self.requests: list[RequestRecord] = []
        self._faults: list[str] = []
        self._always: str | None = None
        self._match: Callable[[dict[str, Any]], bool] | None = None
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0  # the most completion requests handled at the same time
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and records ----------------------------------------------------------------
    def set_faults(
        self,
        faults: list[str] | None = None,
        *,
        always: str | None = None,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        for f in [*(faults or []), *([always] if always else [])]:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._faults = list(faults or [])
            self._always = always
            self._match = match
            self._attempts.clear()

    def clear(self) -> None:
        """Forget recorded requests, attempt counts and faults."""
        with self._lock:
            self.requests.clear()
            self._attempts.clear()
            self.max_in_flight = 0
            self._faults = []
            self._always = None
            self._match = None

    def completion_requests(self) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("completions")]

    def _admit(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> RequestRecord:
        key = body_key(body)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            fault: str | None = None
            if self._match is None or self._match(body):
                if self._always:
                    fault = self._always
                elif attempt < len(self._faults):
                    fault = self._faults[attempt]
            rec = RequestRecord(path, body, key, attempt, fault, headers, time.time())
            self.requests.append(rec)
        return rec

    # -- replies ---------------------------------------------------------------------------
    def reply(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        n = int(body.get("n") or 1)
        if n > 1 and self.n_support == "reject":
            return 400, _error("n > 1 is not supported by this server", "n")
        if n > 1 and self.n_support == "ignore":
            n = 1
        if n > 1 and self.n_support.startswith("llama-"):
            code = int(self.n_support.split("-")[1])
            kind = "invalid_request_error" if code == 400 else "server_error"
            message = "Only one completion choice is allowed"
            return code, {"error": {"code": code, "message": message, "type": kind}}
        stop = body.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        chat = path.endswith("chat/completions")
        choices = []
        for i in range(n):
            text = reply_text(body, i)
            finish = "length"
            if self.honor_stop:
                cut = min((k for s in stop if (k := text.find(s)) >= 0), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            if chat:
                choices.append(
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                )
            else:
                choices.append({"index": i, "text": text, "finish_reason": finish})
        n_prompt = len(prompt_text(body).split())
        n_completion = sum(len(_choice_text(c).split()) for c in choices)
        return 200, {
            "id": "cmpl-" + body_key(body)[:16],
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": choices,
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_completion,
                "total_tokens": n_prompt + n_completion,
            },
        }


def _choice_text(c: dict[str, Any]) -> str:
    return str(c["message"]["content"] if "message" in c else c["text"])


def _error(message: str, param: str | None = None, code: int | str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, b"")
            elif self.path == "/v1/models":
                self._json(
                    200,
                    {"object": "list", "data": [{"id": server.model, "object": "model"}]},
                )
            else:
                self._json(404, _error(f"no route {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self._json(404, _error(f"no route {self.path}"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._json(400, _error("request body is not JSON"))
                return
            rec = server._admit(self.path, body, {k.lower(): v for k, v in self.headers.items()})
            with server._lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                if server.delay:
                    time.sleep(server.delay)
                if rec.fault is not None:
                    self._fault(rec.fault)
                    return
                status, obj = server.reply(self.path, body)
                self._json(status, obj)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _fault(self, fault: str) -> None:
            if fault in ("500", "503"):
                self._json(int(fault), _error("injected server error", code=int(fault)))
            elif fault == "429":
                headers = {"Retry-After": server.retry_after} if server.retry_after else {}
                self._json(429, _error("injected rate limit", code="rate_limit_exceeded"), headers)
            elif fault == "400":
                self._json(400, _error("injected bad request"))
            elif fault == "timeout":
                time.sleep(server.slow_seconds)
                self._json(503, _error("too late"))
            elif fault == "malformed":
                self._send(200, b'{"id": "cmpl-x", "choices": [{"text": "trunc')
            elif fault == "empty":
                self._json(200, {"id": "cmpl-x", "object": "text_completion", "choices": []})
            elif fault == "drop":
                self.close_connection = True  # the server closes the socket, sending nothing

    return Handler


# -- `vllm serve` imitation -----------------------------------------------------------------


def _opt(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    """Imitate ``vllm serve MODEL --port P [--served-model-name NAME] ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "serve" or len(argv) < 2:
        print("usage: vllm serve MODEL [--port P] [--served-model-name NAME] ...", file=sys.stderr)
        return 2
    model = argv[1]
    port = int(_opt(argv, "--port") or 8000)
    served = _opt(argv, "--served-model-name") or model
    print(f"fake vllm: serving {model} as {served} on port {port}", flush=True)
    if os.environ.get("FAKE_VLLM_FAIL"):
        print("fake vllm: CUDA out of memory (injected)", file=sys.stderr, flush=True)
        return 1
    child_pid = None
    if os.environ.get("FAKE_VLLM_CHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        child_pid = child.pid
    info = os.environ.get("FAKE_VLLM_INFO")
    if info:
        with open(info, "w") as f:
            json.dump({"argv": argv, "pid": os.getpid(), "child_pid": child_pid}, f)
    if os.environ.get("FAKE_VLLM_PROGRESS"):
        for pct in range(0, 50, 2):  # like tqdm: one line redrawn
            print(f"\rmodel-00003-of-00030.safetensors: {pct}%", end="", file=sys.stderr)
        print(file=sys.stderr, end="", flush=True)
    time.sleep(float(os.environ.get("FAKE_VLLM_STARTUP_DELAY") or 0))
    server = FakeOpenAIServer(model=served, port=port)

    def _term(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _term)
    if os.environ.get("FAKE_VLLM_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("fake vllm: ready", flush=True)
    try:
        server.serve_forever()
    finally:
        server._httpd.server_close()
    return 0


def record_waits(monkeypatch: Any) -> list[float]:
    """Every backoff an openai engine waits (it still waits them)."""
    waits: list[float] = []
    from siked.engines.openai import OpenAIEngine

    real = OpenAIEngine._wait

    def wait(self: Any, seconds: float) -> None:
        waits.append(seconds)
        real(self, seconds)

    monkeypatch.setattr(OpenAIEngine, "_wait", wait)
    return waits


if __name__ == "__main__":
    sys.exit(main())
