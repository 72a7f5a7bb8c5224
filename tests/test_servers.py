"""Several replicas behind the openai engine: dispatch, failover, cooldown, per-server stats."""

from __future__ import annotations

import socket
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siked.config import ConfigError, EngineConfig, build, parse_base_urls
from siked.engines import make_engine
from siked.engines.base import EngineError
from siked.engines.openai import OpenAIEngine, served_model_name
from siked.engines.servers import ServerPool, cooldown_seconds

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer, record_waits

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(n: int, cooldown: float = 10.0) -> tuple[ServerPool, Clock]:
    clock = Clock()
    return ServerPool([(f"http://s{i}/v1", None) for i in range(n)], cooldown, clock), clock


# -- the pool (no I/O) ----------------------------------------------------------------------


def test_least_outstanding_requests_and_idle_servers_take_turns() -> None:
    p, _ = pool(3)
    a = p.acquire()
    b = p.acquire()
    c = p.acquire()
    assert [a.index, b.index, c.index] == [0, 1, 2]  # all idle: one each
    p.release(b)
    assert p.acquire() is b  # b has nothing in flight
    p.release(a)
    p.release(c)
    # a and c are idle; a, b, c have been sent 1, 2, 1: the tie goes to the one sent fewer
    assert p.acquire() is a
    assert [s.outstanding for s in p.servers] == [1, 1, 0]


def test_sequential_requests_alternate_over_replicas() -> None:
    p, _ = pool(2)
    picked = []
    for _ in range(6):
        s = p.acquire()
        picked.append(s.index)
        p.release(s)
    assert picked == [0, 1, 0, 1, 0, 1]


def test_failed_server_is_avoided_until_its_cooldown_ends() -> None:
    p, clock = pool(2, cooldown=10.0)
    bad = p.acquire()
    assert p.release(bad, failed=True) == 10.0
    assert p.available_besides(bad)
    assert {p.acquire().index for _ in range(5)} == {1}  # only the good one, even when busy
    clock.now += 10.0
    for s in p.servers:
        s.outstanding = 0
    assert p.acquire() is bad  # the cooldown is over: it gets a request again


def test_cooldown_doubles_per_failure_in_a_row_and_a_success_resets_it() -> None:
    p, clock = pool(2, cooldown=10.0)
    s = p.servers[0]
    waits = []
    for _ in range(3):
        p.acquire()
        waits.append(p.release(s, failed=True))
    assert waits == [10.0, 20.0, 40.0]
    assert s.avoid_until == clock.now + 40.0
    p.acquire()
    assert p.release(s) == 0.0 and s.failures_in_a_row == 0
    p.acquire()
    assert p.release(s, failed=True) == 10.0


def test_retry_after_longer_than_the_cooldown_is_honoured() -> None:
    p, _ = pool(2, cooldown=10.0)
    s = p.acquire()
    assert p.release(s, failed=True, asked=45.0) == 45.0


def test_when_every_server_is_avoided_the_first_free_again_is_used() -> None:
    p, clock = pool(2, cooldown=10.0)
    a, b = p.acquire(), p.acquire()
    p.release(b, failed=True)
    clock.now += 1.0
    p.release(a, failed=True)
    assert not p.available_besides(a) and not p.available_besides(b)
    assert p.acquire() is b  # avoided until 110 (a: until 111)


def test_one_server_is_never_avoided() -> None:
    p, _ = pool(1)
    s = p.acquire()
    assert p.release(s, failed=True) == 0.0
    assert p.acquire() is s and not p.available_besides(s)


def test_pool_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        ServerPool([])
    with pytest.raises(ValueError, match="cooldown"):
        ServerPool([("http://a/v1", None)], cooldown=0)


def test_cooldown_is_capped() -> None:
    assert cooldown_seconds(1.0, 50) == 10.0
    assert cooldown_seconds(1.0, 0) == 0.0


# -- config -------------------------------------------------------------------------------


def test_base_url_accepts_one_url_a_list_or_commas() -> None:
    assert EngineConfig(base_url="http://a:1/v1/").base_url == "http://a:1/v1"
    assert EngineConfig(base_url=["http://a/v1", "http://b/v1"]).base_url == [
        "http://a/v1",
        "http://b/v1",
    ]
    assert EngineConfig(base_url="http://a/v1,http://b/v1, http://a/v1").base_url == [
        "http://a/v1",
        "http://b/v1",
    ]
    assert EngineConfig(base_url=["http://a/v1"]).base_url == "http://a/v1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost:8000", "not an http"),
        (" , ", "no server URL"),
        ([1], "must be a string"),
    ],
)
def test_bad_base_url_names_the_key(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build(EngineConfig, {"base_url": value}, prefix="teacher.")
    assert "teacher.base_url" in str(info.value)
    with pytest.raises(ValueError):
        parse_base_urls(value)


def test_extra_body_may_not_override_what_siked_sends() -> None:
    with pytest.raises(ConfigError, match=r"sample\.extra_body: .*seed, temperature"):
        build(EngineConfig, {"extra_body": {"temperature": 1, "seed": 2}}, prefix="sample.")
    assert EngineConfig(extra_body={"top_k": 20}).extra_body == {"top_k": 20}


# -- the engine against fake replicas ------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    with FakeOpenAIServer(delay=0.02) as a, FakeOpenAIServer(delay=0.02) as b:
        yield a, b


def replica_engine(urls: list[str], cache_dir: Path | None = None, **over: Any) -> OpenAIEngine:
    cfg = EngineConfig(
        **{
            "engine": "openai",
            "model": "fake-model",
            "base_url": urls,
            "max_retries": 3,
            # a failover must not wait: a test that hit a backoff would take seconds
            "retry_backoff": 5.0,
            "retry_backoff_max": 5.0,
            "request_timeout": 5.0,
            "concurrency": 4,
            **over,
        }
    )
    e = make_engine(cfg, cache_dir=cache_dir)
    assert isinstance(e, OpenAIEngine)
    return e


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_requests_are_spread_over_replicas(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    a, b = servers
    with replica_engine([a.base_url, b.base_url]) as e:
        rows = e.generate([f"q{i}" for i in range(16)], seed=1)
        stats = e.stats.as_dict()
    assert [r[0].text.split(">")[0] for r in rows] == [f"<q{i}" for i in range(16)]
    na, nb = len(a.completion_requests()), len(b.completion_requests())
    assert na + nb == 16 and min(na, nb) >= 4  # both worked
    assert stats["servers"] == {
        a.base_url: {"requests": na, "served": na, "errors": 0},
        b.base_url: {"requests": nb, "served": nb, "errors": 0},
    }
    assert stats["requests"] == 16


def test_replicas_give_the_same_answers_as_one_server(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    a, b = servers
    ps = [f"q{i}" for i in range(6)]
    with replica_engine([a.base_url]) as e:
        one = e.generate(ps, n=2, temperature=0.7, seed=3)
    with replica_engine([a.base_url, b.base_url]) as e:
        two = e.generate(ps, n=2, temperature=0.7, seed=3)
    assert [[c.text for c in r] for r in one] == [[c.text for c in r] for r in two]


@pytest.mark.parametrize("failure", ["drop", "500", "refused"])
def test_a_failing_replica_is_avoided_and_its_requests_retried_elsewhere(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
    failure: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, bad = servers
    if failure == "refused":
        bad_url = dead_url()
    else:
        bad.set_faults(always=failure)
        bad_url = bad.base_url
    waits = record_waits(monkeypatch)
    with replica_engine([bad_url, good.base_url]) as e:
        rows = e.generate([f"q{i}" for i in range(12)], seed=1)
        stats = e.stats.as_dict()
    assert all(r[0].text.endswith("The answer is 7.\nQuestion: again") for r in rows)
    assert waits == []  # no backoff was waited: the retries went to the good server
    per = stats["servers"]
    assert per[bad_url]["served"] == 0 and per[bad_url]["errors"] == per[bad_url]["requests"]
    # avoided after its first failures: at most the first wave of requests went there
    assert 1 <= per[bad_url]["requests"] <= 4
    assert per[good.base_url] == {"requests": 12, "served": 12, "errors": 0}
    assert Counter(r.key for r in good.completion_requests()).most_common(1)[0][1] == 1
    assert stats["retries"] == stats["errors"] == per[bad_url]["errors"]


def test_every_replica_failing_raises_naming_the_last_server(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    a, b = servers
    a.set_faults(always="503")
    b.set_faults(always="503")
    with (
        replica_engine(
            [a.base_url, b.base_url], max_retries=2, retry_backoff=0.01, retry_backoff_max=0.01
        ) as e,
        pytest.raises(EngineError, match=r"after 3 attempts.*HTTP 503") as info,
    ):
        e.generate(["q0"])
    assert a.base_url in str(info.value) or b.base_url in str(info.value)
    assert len(a.completion_requests()) + len(b.completion_requests()) == 3


def test_replicas_share_the_request_cache(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path
) -> None:
    a, b = servers
    ps = [f"q{i}" for i in range(6)]
    with replica_engine([a.base_url], tmp_path) as e:
        e.generate(ps, seed=1)
    with replica_engine([b.base_url, a.base_url], tmp_path) as e:
        e.generate(ps, seed=1)
        assert e.stats.cache_hits == 6 and e.stats.requests == 0
    assert not b.completion_requests()


def test_extra_body_is_sent_and_keys_the_cache(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path
) -> None:
    a, _ = servers
    with replica_engine([a.base_url], tmp_path) as e:
        e.generate(["q0"], seed=1)
    extra = {"generation_config": '{"do_sample": true}', "top_k": 20}
    with replica_engine([a.base_url], tmp_path, extra_body=extra) as e:
        e.generate(["q0"], seed=1)
        assert e.stats.requests == 1  # a different request: not answered from the cache
    with replica_engine([a.base_url], tmp_path, extra_body=extra) as e:
        e.generate(["q0"], seed=1)
        assert e.stats.cache_hits == 1
    first, second = a.completion_requests()
    assert "top_k" not in first.body
    assert (
        second.body["top_k"] == 20
        and second.body["generation_config"] == extra["generation_config"]
    )
    assert second.body["seed"] == first.body["seed"]


def test_bundled_student_is_sent_as_its_local_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import siked.models

    monkeypatch.setattr(siked.models, "resolve_model", lambda name: "/models/smollm2")
    assert served_model_name("bundled:smollm2-135m-instruct") == "/models/smollm2"
    assert served_model_name("meta-llama/Llama-3.1-70B-Instruct") == (
        "meta-llama/Llama-3.1-70B-Instruct"
    )
    e = OpenAIEngine(
        EngineConfig(engine="openai", base_url="http://127.0.0.1:9/v1"),
        model="bundled:smollm2-135m-instruct",
    )
    assert e.model == "/models/smollm2"
    e.close()


def test_no_server_at_the_address_says_so() -> None:
    url = dead_url()
    with (
        replica_engine([url], max_retries=1, retry_backoff=0.01, retry_backoff_max=0.01) as e,
        pytest.raises(EngineError) as info,
    ):
        e.generate(["q0"])
    message = str(info.value)
    assert url in message and "connection error" in message
    assert "is a server running at that address?" in message
