"""The openai engine against a local fake OpenAI-compatible server with injected faults."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siked.config import EngineConfig
from siked.engines import derive_seed, make_engine, prompt_seeds, sample_seed
from siked.engines.base import EngineError
from siked.engines.openai import CACHE_FILE, DEFAULT_CONCURRENCY, OpenAIEngine

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import STOP_SUFFIX, FakeOpenAIServer, reply_text

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(slow_seconds=1.0) as srv:
        yield srv


def make_cfg(server: FakeOpenAIServer, **over: Any) -> EngineConfig:
    fields: dict[str, Any] = {
        "engine": "openai",
        "model": "fake-model",
        "base_url": server.base_url,
        "max_retries": 3,
        "retry_backoff": 0.01,
        "retry_backoff_max": 0.05,
        "request_timeout": 0.4,
        "concurrency": 4,
        **over,
    }
    return EngineConfig(**fields)


def engine(server: FakeOpenAIServer, cache_dir: Path | None = None, **over: Any) -> OpenAIEngine:
    e = make_engine(make_cfg(server, **over), cache_dir=cache_dir)
    assert isinstance(e, OpenAIEngine)
    return e


def prompts(k: int, tag: str = "q") -> list[str]:
    return [f"{tag}{i}" for i in range(k)]


def successes(server: FakeOpenAIServer) -> list[Any]:
    return [r for r in server.completion_requests() if r.fault is None]


# -- basics -------------------------------------------------------------------------------


def test_chat_api_keeps_order_and_formats_messages(server: FakeOpenAIServer) -> None:
    ps: list[Any] = prompts(6)
    ps[2] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q2"}]
    with engine(server) as e:
        rows = e.generate(ps, max_tokens=32)
    assert [len(r) for r in rows] == [1] * 6
    for i, row in enumerate(rows):
        assert row[0].text.startswith(f"<q{i}> ")
        assert row[0].text.endswith(STOP_SUFFIX)  # no stop strings given: nothing cut
        assert row[0].finish_reason == "length"
        assert row[0].prompt_tokens == 1 and row[0].completion_tokens is not None
    bodies = [r.body for r in server.completion_requests()]
    assert all(r.path == "/v1/chat/completions" for r in server.completion_requests())
    assert {"role": "user", "content": "q0"} in next(b for b in bodies if "q0" in str(b))[
        "messages"
    ]
    assert all(b["max_tokens"] == 32 and b["model"] == "fake-model" for b in bodies)


def test_completions_api(server: FakeOpenAIServer) -> None:
    with engine(server, api="completions") as e:
        rows = e.generate(["a", "b"], stop=["Question:"])
    bodies = {r.body["prompt"]: r.body for r in server.completion_requests()}
    assert [r[0].text for r in rows] == [
        reply_text(bodies[p], 0).split("Question:")[0] for p in ("a", "b")
    ]
    assert all(r.path == "/v1/completions" for r in server.completion_requests())
    with engine(server, api="completions") as e, pytest.raises(EngineError, match="chat"):
        e.generate([[{"role": "user", "content": "hi"}]])


def test_stop_strings_applied_when_server_ignores_them(server: FakeOpenAIServer) -> None:
    server.honor_stop = False
    with engine(server) as e:
        rows = e.generate(["a", "b"], stop=["Question:", "never"])
    for row in rows:
        assert row[0].text.endswith("The answer is 7.\n")
        assert row[0].finish_reason == "stop"
    assert all(r.body["stop"] == ["Question:", "never"] for r in server.completion_requests())


def test_at_most_four_stop_strings_are_sent(server: FakeOpenAIServer) -> None:
    server.honor_stop = False
    stop = ["w1", "w2", "w3", "w4", "Question:"]
    with engine(server) as e:
        rows = e.generate(["a"], stop=stop)
    assert server.completion_requests()[0].body["stop"] == stop[:4]
    assert "Question" not in rows[0][0].text  # the fifth is applied client-side


def test_n_samples_in_one_request(server: FakeOpenAIServer) -> None:
    with engine(server) as e:
        rows = e.generate(prompts(3), n=4, temperature=0.7, seed=1)
    assert len(server.completion_requests()) == 3
    for i, row in enumerate(rows):
        assert [c.text.split()[1].split("/")[1] for c in row] == ["0", "1", "2", "3"]
        assert all(c.text.startswith(f"<q{i}>") for c in row)


@pytest.mark.parametrize("behaviour", ["reject", "ignore", "llama-400", "llama-500"])
def test_n_falls_back_to_separate_requests(server: FakeOpenAIServer, behaviour: str) -> None:
    server.n_support = behaviour
    # llama.cpp's server refuses n > 1 with a message that does not name the parameter, as a
    # 400 or (some versions) a 500: a fallback, not retries until the retries run out
    with engine(server, concurrency=1, retry_backoff=5.0) as e:
        rows = e.generate(["a", "b"], n=3, temperature=0.7, seed=[10, 20])
        assert len({c.text for row in rows for c in row}) == 6
        seeds = [r.body["seed"] for r in successes(server) if r.body.get("n", 1) == 1]
        assert sorted(seeds) == sorted(derive_seed(s, j) for s in (10, 20) for j in range(3))
        server.clear()
        e.generate(["c"], n=3, temperature=0.7)  # now planned as separate requests directly
        assert [r.body.get("n", 1) for r in server.completion_requests()] == [1, 1, 1]


def test_n_mode_n_fails_clearly_when_unsupported(server: FakeOpenAIServer) -> None:
    server.n_support = "reject"
    with engine(server, n_mode="n") as e, pytest.raises(EngineError, match="n_mode"):
        e.generate(["a"], n=2, temperature=0.7)


def test_separate_mode_seeds_do_not_depend_on_the_batch(server: FakeOpenAIServer) -> None:
    with engine(server, n_mode="separate") as e:
        both = e.generate(["a", "b"], n=2, temperature=0.7, seed=[5, 6])
        alone = e.generate(["b"], n=2, temperature=0.7, seed=[6])
        assert both[1] == alone[0]
        assert both[1][0].text != both[1][1].text
        base1 = e.generate(["a", "b"], n=1, temperature=0.7, seed=7)
        base2 = e.generate(["b", "a"], n=1, temperature=0.7, seed=7)
        assert base1[0] == base2[1] and base1[1] == base2[0]
    sent = {r.body["seed"] for r in server.completion_requests()}
    assert sample_seed(6, 0) in sent and sample_seed(6, 1) in sent
    assert sample_seed(prompt_seeds(["a"], 7)[0], 0) in sent


def test_seeds_are_sent_unless_seed_requests_is_false(server: FakeOpenAIServer) -> None:
    with engine(server, concurrency=None) as e:
        assert e.concurrency == DEFAULT_CONCURRENCY
        e.generate(["a"], n=2, temperature=0.7, seed=5)
    assert [r.body.get("seed") for r in server.completion_requests()] == prompt_seeds(["a"], 5)
    server.clear()
    with engine(server, seed_requests=False, n_mode="separate") as e:
        rows = e.generate(["a"], n=2, temperature=0.7, seed=5)
    sent = server.completion_requests()
    assert len(sent) == 2 and all("seed" not in r.body for r in sent)
    assert len(rows[0]) == 2


def test_derive_seed_is_stable() -> None:
    assert derive_seed(42, 1, "gsm8k-3", 0) == derive_seed(42, 1, "gsm8k-3", 0)
    assert derive_seed(42, 1, "gsm8k-3", 0) != derive_seed(42, 1, "gsm8k-3", 1)
    assert 0 <= derive_seed("x") < 2**31
    # pinned: changing the derivation would silently change every run's samples
    assert derive_seed(0) == 2019721527
    assert derive_seed(42, 1, "gsm8k-3", 0) == 1210831523


def test_concurrency_limit(server: FakeOpenAIServer) -> None:
    server.delay = 0.1
    with engine(server, concurrency=2) as e:
        rows = e.generate(prompts(6))
    assert len(rows) == 6
    assert server.max_in_flight == 2


def test_progress_bar(server: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    with engine(server) as e:
        e.generate(prompts(3), progress="teacher")
    assert "teacher" in capsys.readouterr().err


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        ["500", "503"],
        ["429", "429"],
        ["timeout"],
        ["malformed", "malformed"],
        ["drop", "drop"],
        ["empty"],
        ["500", "429", "drop", "malformed"],
    ],
)
def test_faults_are_retried(server: FakeOpenAIServer, schedule: list[str], tmp_path: Path) -> None:
    server.set_faults(schedule)
    ps = prompts(6)
    with engine(server, tmp_path, max_retries=len(schedule), concurrency=3) as e:
        rows = e.generate(ps, n=2, temperature=0.7, stop=["Question:"], seed=3)
        stats = e.stats.as_dict()
    # every row complete, in order, nothing duplicated
    assert [len(r) for r in rows] == [2] * 6
    for i, row in enumerate(rows):
        assert all(c.text.startswith(f"<q{i}>") and c.text.endswith("is 7.\n") for c in row)
    assert len({c.text for r in rows for c in r}) == 12
    # each distinct request answered exactly once, after exactly len(schedule) failures
    ok = Counter(r.key for r in successes(server))
    assert len(ok) == 6 and set(ok.values()) == {1}
    attempts = Counter(r.key for r in server.completion_requests())
    assert set(attempts.values()) == {len(schedule) + 1}
    assert stats["retries"] == 6 * len(schedule) == stats["errors"]
    assert stats["requests"] == 6 * (len(schedule) + 1)


def test_always_failing_request_raises_after_max_retries(server: FakeOpenAIServer) -> None:
    server.set_faults(always="500")
    with engine(server, max_retries=2) as e, pytest.raises(EngineError) as info:
        e.generate(["a"])
    assert "after 3 attempts" in str(info.value) and "HTTP 500" in str(info.value)
    assert len(server.completion_requests()) == 3
    assert e.stats.retries == 2


def test_max_retries_zero_means_one_attempt(server: FakeOpenAIServer) -> None:
    server.set_faults(always="drop")
    with engine(server, max_retries=0) as e, pytest.raises(EngineError, match="connection"):
        e.generate(["a"])
    assert len(server.completion_requests()) == 1


def test_bad_request_is_not_retried(server: FakeOpenAIServer) -> None:
    server.set_faults(always="400")
    with engine(server) as e, pytest.raises(EngineError, match="injected bad request"):
        e.generate(["a"])
    assert len(server.completion_requests()) == 1


def test_retry_after_is_honoured(server: FakeOpenAIServer) -> None:
    server.retry_after = "1"
    server.set_faults(["429"])
    with engine(server) as e:
        t0 = time.monotonic()
        e.generate(["a"])
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.95
    first, second = server.completion_requests()
    assert second.time - first.time >= 0.95


def test_failure_cancels_the_queue(server: FakeOpenAIServer) -> None:
    server.set_faults(always="400", match=lambda body: "q1" in str(body["messages"]))
    with engine(server, concurrency=1) as e, pytest.raises(EngineError):
        e.generate(prompts(20))
    assert len(server.completion_requests()) <= 3


# -- cache --------------------------------------------------------------------------------


def test_second_run_is_served_from_the_cache(server: FakeOpenAIServer, tmp_path: Path) -> None:
    ps = prompts(5)
    with engine(server, tmp_path) as e:
        first = e.generate(ps, n=2, temperature=0.7, stop=["Question:"], seed=1)
    sent = len(server.completion_requests())
    assert sent == 5
    with engine(server, tmp_path) as e:
        second = e.generate(ps, n=2, temperature=0.7, stop=["Question:"], seed=1)
        assert e.stats.cache_hits == 5 and e.stats.requests == 0
    assert len(server.completion_requests()) == sent  # zero new requests
    assert [[c.text for c in r] for r in first] == [[c.text for c in r] for r in second]
    assert all(c.cached for r in second for c in r)
    # any change to the request is a different key
    with engine(server, tmp_path) as e:
        e.generate(ps[:1], n=2, temperature=0.7, stop=["Question:"], seed=2)
        e.generate(ps[:1], n=2, temperature=0.5, stop=["Question:"], seed=1)
        e.generate(ps[:1], n=2, temperature=0.7, seed=1)
    assert len(server.completion_requests()) == sent + 3


def test_resume_after_a_failure_sends_only_the_missing(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    ps = prompts(8)
    server.set_faults(always="500", match=lambda body: "q5" in str(body["messages"]))
    with engine(server, tmp_path, concurrency=1, max_retries=1) as e, pytest.raises(EngineError):
        e.generate(ps)
    answered = [r.body["messages"][0]["content"] for r in successes(server)]
    # q0-q4, maybe q6 (the worker may pick it up before the failure cancels the queue)
    assert answered[:5] == ps[:5] and set(answered) <= {*ps[:5], "q6"}
    server.clear()
    with engine(server, tmp_path, concurrency=1) as e:
        rows = e.generate(ps)
    sent = [r.body["messages"][0]["content"] for r in server.completion_requests()]
    assert sent == [p for p in ps if p not in answered]
    assert [c[0].cached for c in rows] == [p in answered for p in ps]


CHILD = textwrap.dedent(
    """
    import sys
    from siked.config import EngineConfig
    from siked.engines import make_engine
    url, cache = sys.argv[1], sys.argv[2]
    cfg = EngineConfig(engine="openai", model="fake-model", base_url=url, concurrency=2)
    with make_engine(cfg, cache_dir=cache) as e:
        e.generate([f"q{i}" for i in range(16)])
    """
)


def test_resume_after_the_process_is_killed(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.delay = 0.1
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, server.base_url, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 30
        while len(server.completion_requests()) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with sqlite3.connect(tmp_path / CACHE_FILE) as conn:
        cached = conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    assert 4 <= cached < 16
    server.clear()
    server.delay = 0.0
    with engine(server, tmp_path) as e:
        rows = e.generate(prompts(16))
    assert len(server.completion_requests()) == 16 - cached
    assert sum(r[0].cached for r in rows) == cached
    assert [r[0].text.split()[0] for r in rows] == [f"<q{i}>" for i in range(16)]


# -- the API key --------------------------------------------------------------------------


def test_api_key_is_used_but_never_stored_or_logged(
    server: FakeOpenAIServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-test-SECRET-4242"
    monkeypatch.setenv("SIKED_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    server.set_faults(["500"])
    cfg = make_cfg(server, api_key_env="SIKED_TEST_KEY")
    e = make_engine(cfg, cache_dir=tmp_path)
    with e:
        e.generate(["a", "b"], seed=1)
        text = f"{e!r} {e!s} {cfg!r} {cfg.model_dump()} {e.__dict__}"
    assert server.completion_requests()[0].headers["authorization"] == f"Bearer {secret}"
    assert secret not in text
    assert secret not in caplog.text
    assert "retry" in caplog.text  # the retries were logged
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f
    server.set_faults(always="400")
    with make_engine(cfg, cache_dir=tmp_path) as e2, pytest.raises(EngineError) as info:
        e2.generate(["c"])
    assert secret not in str(info.value)


def test_missing_api_key_sends_empty(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIKED_TEST_KEY", raising=False)
    with engine(server, api_key_env="SIKED_TEST_KEY") as e:
        e.generate(["a"])
    assert server.completion_requests()[0].headers["authorization"] == "Bearer EMPTY"


def test_make_engine_errors() -> None:
    from siked.engines import engine_class
    from siked.errors import SikedError

    with pytest.raises(SikedError, match="unknown engine"):
        engine_class("nope")
    with pytest.raises(EngineError, match="model"):
        make_engine(EngineConfig(engine="openai"))
