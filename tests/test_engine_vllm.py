"""The vllm engine with a fake ``vllm`` executable that serves the fake OpenAI server."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from siked.config import EngineConfig
from siked.engines import make_engine
from siked.engines.base import EngineError
from siked.engines.vllm import LOG_FILE, VLLMEngine, redact

pytestmark = pytest.mark.timeout(60)

TESTS = Path(__file__).parent


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake `vllm` on PATH; returns the file it writes its argv and pids to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "vllm"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from fake_openai_server import main\n"
        "sys.exit(main())\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    info = tmp_path / "info.json"
    monkeypatch.setenv("FAKE_VLLM_INFO", str(info))
    monkeypatch.setenv("FAKE_VLLM_CHILD", "1")
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY", "0.3")
    return info


def cfg(**over: Any) -> EngineConfig:
    base: dict[str, Any] = {
        "engine": "vllm",
        "model": "org/student-1b",
        "port": 18123,
        "max_retries": 1,
        "retry_backoff": 0.01,
        "request_timeout": 5,
        **over,
    }
    return EngineConfig(**base)


def start(tmp_path: Path, **kw: Any) -> VLLMEngine:
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("stop_grace", 3.0)
    engine = make_engine(kw.pop("config", cfg()), run_dir=tmp_path / "run", **kw)
    assert isinstance(engine, VLLMEngine)
    return engine


def test_start_generate_stop(fake_vllm: Path, tmp_path: Path) -> None:
    config = cfg(
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        extra_args=["--max-model-len", "2048", "--api-key", "hunter2"],
        lora_modules={"iter1": "/runs/x/iter_01/model/adapter"},
    )
    with start(tmp_path, config=config, cache_dir=tmp_path / "cache") as engine:
        info = json.loads(fake_vllm.read_text())
        assert info["pid"] == engine.pid
        rows = engine.generate(["a", "b"], n=2, temperature=0.7, stop=["Question:"], seed=1)
        assert [[c.text.split()[0] for c in r] for r in rows] == [["<a>"] * 2, ["<b>"] * 2]
        assert all(c.text.endswith("is 7.\n") for r in rows for c in r)
        assert engine.stats.requests == 2
        again = engine.generate(["a", "b"], n=2, temperature=0.7, stop=["Question:"], seed=1)
        assert all(c.cached for r in again for c in r)
        pid, child = engine.pid, info["child_pid"]
        assert pid is not None and alive(pid) and alive(child)
    argv = info["argv"]
    assert argv[:2] == ["serve", "org/student-1b"]
    joined = " ".join(argv)
    assert "--port 18123" in joined and "--served-model-name org/student-1b" in joined
    assert "--tensor-parallel-size 2" in joined and "--gpu-memory-utilization 0.5" in joined
    lora = argv.index("--lora-modules")
    assert argv[lora - 1] == "--enable-lora"
    assert json.loads(argv[lora + 1]) == {"name": "iter1", "path": "/runs/x/iter_01/model/adapter"}
    assert "--max-lora-rank" not in argv  # no local adapter_config.json to read the rank from
    # sampling is what siked asks for, not the model's generation_config.json; the batch size
    # is known, and as many requests are in flight; no seeds (vLLM's batched sampler)
    assert "--generation-config vllm" in joined and "--max-num-seqs 256" in joined
    assert engine._client is not None
    assert (engine._client.concurrency, engine._client.seed_requests) == (256, False)
    assert joined.endswith("--max-model-len 2048 --api-key hunter2")
    assert engine.request_model == "iter1"
    # cleanup: server and its child are gone; the log is in the run dir, without the secret
    assert wait_dead(pid) and wait_dead(child)
    log_text = (tmp_path / "run" / LOG_FILE).read_text()
    assert "fake vllm: ready" in log_text
    assert "hunter2" not in log_text and "--api-key ***" in log_text
    engine.close()  # idempotent


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_cleanup_when_the_block_raises(
    fake_vllm: Path, tmp_path: Path, error: type[BaseException]
) -> None:
    with pytest.raises(error), start(tmp_path) as engine:
        info = json.loads(fake_vllm.read_text())
        engine.generate(["a"])
        raise error("boom")
    assert wait_dead(info["pid"]) and wait_dead(info["child_pid"])


def test_process_ignoring_sigterm_is_killed(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_IGNORE_TERM", "1")
    engine = start(tmp_path, stop_grace=0.3)
    info = json.loads(fake_vllm.read_text())
    engine.close()  # SIGTERM, then SIGKILL after the grace: it returns (else the test hangs)
    assert wait_dead(info["pid"]) and wait_dead(info["child_pid"])


def test_server_dying_at_startup_is_reported(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_FAIL", "1")
    with pytest.raises(EngineError, match=r"exited with code 1[\s\S]*out of memory"):
        start(tmp_path)


def test_startup_timeout_says_what_was_still_happening(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY", "30")
    monkeypatch.setenv("FAKE_VLLM_PROGRESS", "1")
    with pytest.raises(EngineError, match="still starting after 2s") as e:
        start(tmp_path, startup_timeout=2)
    message = str(e.value)
    assert "startup_timeout" in message and "download" in message
    # the progress bar's last state, once (not every redraw of it)
    assert message.endswith("model-00003-of-00030.safetensors: 48%")
    assert message.count("safetensors") == 1
    info = json.loads(fake_vllm.read_text())
    assert wait_dead(info["pid"]) and wait_dead(info["child_pid"])


def test_lora_modules_in_json_form_with_the_adapters_rank(tmp_path: Path) -> None:
    from siked.engines.vllm import lora_args

    a, b = tmp_path / "it,1" / "adapter", tmp_path / "it=2"
    for d, conf in ((a, {"r": 16}), (b, {"r": 32, "rank_pattern": {"q_proj": 64}})):
        d.mkdir(parents=True)
        (d / "adapter_config.json").write_text(json.dumps(conf))
    argv = lora_args({"one": str(a), "two": str(b)})
    assert argv[:2] == ["--enable-lora", "--lora-modules"]
    assert [json.loads(x) for x in argv[2:4]] == [
        {"name": "one", "path": str(a)},
        {"name": "two", "path": str(b)},
    ]
    assert argv[4:] == ["--max-lora-rank", "64"]
    assert lora_args({"one": str(a)})[-2:] == ["--max-lora-rank", "16"]
    (a / "adapter_config.json").write_text(json.dumps({"r": 24}))  # vLLM takes 8, 16, 32, ...
    assert lora_args({"one": str(a)})[-2:] == ["--max-lora-rank", "32"]
    # a rank the user gives is kept
    assert "--max-lora-rank" not in lora_args({"one": str(a)}, ["--max-lora-rank", "128"])
    assert lora_args({}) == []


def test_vllm_from_its_own_environment(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vllm installed elsewhere (its own venv) is found through the setting or $SIKED_VLLM."""
    elsewhere = tmp_path / "vllm-env" / "bin"
    elsewhere.mkdir(parents=True)
    (tmp_path / "bin" / "vllm").rename(elsewhere / "vllm")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # not beside python either
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # nor in a .venv-vllm beside it
    with pytest.raises(EngineError, match="not installed"):
        start(tmp_path)
    with start(tmp_path, config=cfg(vllm_executable=str(elsewhere / "vllm"))) as engine:
        assert engine.argv[0] == str(elsewhere / "vllm")
        assert engine.generate(["a"])[0][0].text.startswith("<a>")
    monkeypatch.setenv("SIKED_VLLM", str(elsewhere / "vllm"))
    with start(tmp_path) as engine:
        assert engine.argv[0] == str(elsewhere / "vllm")
    with pytest.raises(EngineError, match=r"not found or not executable: /nowhere/vllm"):
        start(tmp_path, config=cfg(vllm_executable="/nowhere/vllm"))


def test_options_given_in_extra_args_are_not_repeated(fake_vllm: Path, tmp_path: Path) -> None:
    config = cfg(
        extra_args=["--generation-config", "auto", "--max-num-seqs=8"],
        max_num_seqs=64,
        concurrency=3,
        seed_requests=True,
    )
    with start(tmp_path, config=config) as engine:
        argv = engine.argv
        assert engine._client is not None
        assert (engine._client.concurrency, engine._client.seed_requests) == (3, True)
    assert argv.count("--generation-config") == 1 and "--max-num-seqs" not in argv
    assert argv[-3:] == ["--generation-config", "auto", "--max-num-seqs=8"]


def test_taken_port_is_replaced(fake_vllm: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with start(tmp_path, config=cfg(port=taken)) as engine:
            assert engine.port != taken
            assert engine.generate(["a"])[0][0].text.startswith("<a>")


def test_missing_vllm_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # no .venv-vllm beside it
    with pytest.raises(EngineError, match=r"pip install 'siked\[vllm\]'"):
        make_engine(cfg())


def test_redact() -> None:
    assert redact(["serve", "m", "--api-key", "k", "--api-key=k2"]) == [
        "serve",
        "m",
        "--api-key",
        "***",
        "--api-key=***",
    ]


@pytest.mark.parametrize(
    "preset", sorted((TESTS.parent / "configs" / "paper").glob("*.yaml")), ids=lambda p: p.name
)
def test_paper_presets_give_the_70b_teacher_time_to_start(preset: Path) -> None:
    """Loading (let alone downloading) ~140 GB of weights takes longer than the 900 s default."""
    from siked.config import load_config

    teacher = load_config(preset).teacher
    if teacher.engine == "vllm":
        assert teacher.startup_timeout >= 3600
