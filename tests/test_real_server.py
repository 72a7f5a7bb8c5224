"""The openai engine against a real OpenAI-compatible server: ``transformers serve`` on the
bundled student, on a free loopback port, started and killed by the tests themselves.

- ``siked teach --engine openai`` on 2 questions x 3 strategies, the server killed (SIGKILL)
  mid-run, then a rerun against a fresh server that completes from the request cache;
- two replicas, one of which drops every connection: everything is served by the other;
- student self-generation through the server (``sample.engine: openai``) keeps the seeds
  contract: the same rows whatever the question order and chunking.

Few prompts and few tokens: the whole module takes about two minutes on two CPU cores.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from siked.config import EngineConfig, SampleConfig
from siked.engines import make_engine
from siked.engines.openai import CACHE_FILE
from siked.io import read_json, read_jsonl
from siked.records import STATUSES

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer, record_waits
from real_server import RealServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

STUDENT = "bundled:smollm2-135m-instruct"
#: transformers serve samples only if do_sample is set: the bundled student's generation config
#: does not set it, so without this every "sample" would be the greedy answer
SAMPLING = {"generation_config": '{"do_sample": true}'}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with RealServer(log_dir=tmp_path_factory.mktemp("serve")) as srv:
        yield srv
    assert srv.proc is None


def env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def teach_command(out: Path, base_url: str) -> list[str]:
    cmd = [sys.executable, "-m", "siked", "teach", "--engine", "openai", "--model", STUDENT]
    cmd += ["--base-url", base_url, "--limit", "2", "--chunk-size", "1", "--out", str(out)]
    cmd += ["--quiet", "--set", "max_tokens=12", "--set", "concurrency=1"]
    return [*cmd, "--set", "max_retries=1", "--set", "retry_backoff=0.2"]


def cache_entries(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def test_teach_killed_server_then_rerun_completes_from_the_cache(
    tmp_path: Path, server: RealServer
) -> None:
    out = tmp_path / "teacher"
    cache = out / "cache" / CACHE_FILE
    with RealServer(log_dir=tmp_path) as doomed:
        proc = subprocess.Popen(
            teach_command(out, doomed.base_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        try:
            deadline = time.monotonic() + 300
            while cache_entries(cache) < 1 and proc.poll() is None:
                assert time.monotonic() < deadline, "no reply was cached in time"
                time.sleep(0.05)
            doomed.kill()  # SIGKILL to the server's process group, mid-run
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 2, stdout + stderr
    assert "request failed after 2 attempts" in stderr and "connection error" in stderr
    cached_before = cache_entries(cache)
    rows_before = read_jsonl(out / "samples.jsonl")
    assert 1 <= cached_before < 6
    assert len(rows_before) in (0, 3)  # a question's rows are appended together

    again = subprocess.run(
        teach_command(out, server.base_url),
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    rows = read_jsonl(out / "samples.jsonl")
    keys = Counter((r["qid"], r["strategy"], r["sample"]) for r in rows)
    assert len(keys) == 6 and set(keys.values()) == {1}  # every row once
    assert {k[1] for k in keys} == {"cot", "l2m", "pot"} and len({k[0] for k in keys}) == 2
    for r in rows:
        assert r["status"] in STATUSES and isinstance(r["correct"], bool)
        assert r["prompt_tokens"] > 500  # the 8-shot prompt, as counted by the server
        assert 1 <= r["completion_tokens"] <= 12
        assert r["source"] == "teacher" and r["iteration"] == -1
    stats = read_json(out / "stats.json")
    engine = stats["engine_stats"]
    # what was cached but not yet written before the kill came from the cache, the rest from
    # the new server, one request each
    from_cache = cached_before - len(rows_before)
    assert engine["cache_hits"] == from_cache == sum(r["cached"] for r in rows)
    assert engine["servers"][server.base_url]["served"] == 6 - cached_before
    assert engine["retries"] == 0 and cache_entries(cache) == 6
    assert stats["resumed_samples"] == len(rows_before) and stats["samples"] == 6
    assert (out / "kept.jsonl").exists()


def test_replica_that_drops_connections_is_avoided(
    server: RealServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = record_waits(monkeypatch)
    with FakeOpenAIServer() as dropping:
        dropping.set_faults(always="drop")
        cfg = EngineConfig(
            engine="openai",
            base_url=[dropping.base_url, server.base_url],
            concurrency=2,
            max_retries=2,
            retry_backoff=30.0,
            request_timeout=120,
        )
        with make_engine(cfg, model=STUDENT) as e:
            rows = e.generate([f"What is {i} + 3?" for i in range(4)], max_tokens=6, seed=1)
            stats = e.stats.as_dict()
    assert all(len(r) == 1 and r[0].completion_tokens for r in rows)
    assert waits == []  # failover does not wait a backoff
    assert stats["servers"][server.base_url] == {"requests": 4, "served": 4, "errors": 0}
    dropped = stats["servers"][dropping.base_url]
    assert dropped["served"] == 0 and 1 <= dropped["requests"] == dropped["errors"] <= 2


def test_student_sampled_through_the_server_keeps_the_seeds_contract(
    tmp_path: Path, server: RealServer
) -> None:
    from siked.data import load_problems
    from siked.models import resolve_model
    from siked.sample import sample

    problems = load_problems("gsm8k", "train", limit=2)
    cfg = SampleConfig(
        engine="openai",
        base_url=server.base_url,
        k=2,
        temperature=1.0,
        max_tokens=10,
        concurrency=1,  # transformers serve sets the seed globally: one request at a time
        extra_body=SAMPLING,
    )
    model = resolve_model(STUDENT)  # the server loads the student from its path
    strategies = ["cot", "l2m", "pot"]

    def texts(rows: list[dict]) -> dict[tuple[str, int], str]:
        return {(r["qid"], r["sample"]): r["text"] for r in rows}

    one = sample(problems, model, cfg, tmp_path / "a.jsonl", 1, 7, strategies, progress=False)
    two = sample(
        problems[::-1], model, cfg, tmp_path / "b.jsonl", 1, 7, strategies, progress=False,
        chunk_size=1,
    )  # fmt: skip
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert len(a) == len(b) == 4 and one["samples"] == two["samples"] == 4
    assert texts(a) == texts(b)  # same seeds, other order and chunking: the same samples
    for p in problems:  # sampled, not greedy: the two samples of a question differ
        assert texts(a)[(p.id, 0)] != texts(a)[(p.id, 1)]
    other = sample(problems, model, cfg, tmp_path / "c.jsonl", 1, 8, strategies, progress=False)
    assert other["samples"] == 4 and texts(read_jsonl(tmp_path / "c.jsonl")) != texts(a)
