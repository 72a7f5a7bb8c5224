"""The vllm engine on a real ``vllm serve``: vLLM's CPU build (``make vllm``, its own environment
``.venv-vllm/``) serving the bundled student.

A server start takes minutes on a small CPU, so one server (a module fixture) answers most tests
and ``siked sample`` starts (and stops) one more. The student copy carries a
``generation_config.json`` with sampling defaults an instruct model may have, exaggerated
(``repetition_penalty`` 5, ``top_k`` 1): siked must sample what it asks for, not those.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siked.config import EngineConfig
from siked.engines.base import EngineError
from siked.engines.openai import OpenAIEngine
from siked.engines.vllm import VLLMEngine, find_vllm, free_port

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
#: what an instruct model's generation_config.json may say (Qwen2: repetition_penalty 1.1,
#: top_k 20), exaggerated so that applying it changes a greedy text
SAMPLING_DEFAULTS = {"do_sample": True, "temperature": 0.01, "top_k": 1, "repetition_penalty": 5.0}
#: bf16 (the CPU build's fast path), a short context (a small KV cache), no torch.compile (it
#: took minutes of a start on 2 cores; a LoRA server runs without it anyway)
SERVER_ARGS = ["--dtype", "bfloat16", "--max-model-len", "1024", "--enforce-eager"]
COUNT = [{"role": "user", "content": "Count from 1 to 20, one number per line."}]
OVERRIDDEN = "Default vLLM sampling parameters have been overridden"


def vllm_command() -> str:
    """The project's ``.venv-vllm/bin/vllm``, else where the engine would find one."""
    local = ROOT / ".venv-vllm" / "bin" / "vllm"
    try:
        return find_vllm(str(local) if local.exists() else None)
    except EngineError as e:
        pytest.skip(f"{e} (make vllm)")


@pytest.fixture(scope="module", autouse=True)
def small_kv_cache() -> Iterator[None]:
    """1 GiB of KV cache (vLLM's CPU default takes a share of the machine's memory)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        yield


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled student, its generation_config.json given sampling defaults."""
    from siked.models import BUNDLED_STUDENT, resolve_model

    dst = tmp_path_factory.mktemp("vllm") / "student"
    shutil.copytree(resolve_model(BUNDLED_STUDENT), dst)
    gen = dst / "generation_config.json"
    gen.write_text(json.dumps({**json.loads(gen.read_text()), **SAMPLING_DEFAULTS}))
    return dst


@pytest.fixture(scope="module")
def adapter(student: Path) -> Path:
    """A LoRA adapter of the student with random (non-zero) weights: it changes the text."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    out = student.with_name("adapter")
    get_peft_model(model, lora).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(
    student: Path, adapter: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMEngine]:
    cfg = EngineConfig(
        engine="vllm",
        vllm_executable=vllm_command(),
        port=free_port(),
        max_num_seqs=16,
        extra_args=SERVER_ARGS,
        lora_modules={"it1": str(adapter)},
        startup_timeout=1500,
        request_timeout=600,
    )
    t0 = time.monotonic()
    with VLLMEngine(cfg, str(student), run_dir=tmp_path_factory.mktemp("run"), cache=False) as e:
        print(f"vllm serve ready after {time.monotonic() - t0:.0f}s")
        yield e


def client(server: VLLMEngine, model: str | None = None, **over: Any) -> OpenAIEngine:
    """Another client of the server: the base model (or ``model``), ``over`` its settings."""
    cfg = EngineConfig(engine="openai", base_url=f"{server.url}/v1", request_timeout=600, **over)
    return OpenAIEngine(cfg, model=model or server.served_model_name, cache=False)


def greedy(engine: Any, max_tokens: int = 24) -> str:
    return str(engine.generate([COUNT], max_tokens=max_tokens)[0][0].text)


def test_the_server_samples_what_siked_asks_for(server: VLLMEngine) -> None:
    """Started with --generation-config vllm: a request without repetition_penalty/top_k gets
    vLLM's neutral values, the text of a request that sends them (with vLLM's default, `auto`,
    it got the file's repetition_penalty 5 and wrote something else)."""
    assert server.argv[server.argv.index("--generation-config") + 1] == "vllm"
    with (
        client(server) as plain,
        client(server, extra_body={"repetition_penalty": 1.0, "top_k": -1}) as explicit,
    ):
        text = greedy(plain)
        assert text == greedy(explicit)
    assert text.startswith("1")  # the student counts (with the file's penalty it did not)
    assert OVERRIDDEN not in server.log_path.read_text()


def test_the_lora_adapter_is_served(server: VLLMEngine) -> None:
    """Requests go to the adapter (the first LoRA module), which writes another text than the
    base model."""
    assert server.request_model == "it1"
    with client(server) as base:
        assert greedy(server) != greedy(base)


def test_samples_asked_for_together_count_their_tokens(server: VLLMEngine) -> None:
    before = server.stats.completion_tokens
    rows = server.generate([COUNT], n=3, temperature=0.7, top_p=0.95, max_tokens=16)
    assert len(rows[0]) == 3
    assert all(c.completion_tokens is None for c in rows[0])  # the server reports the total
    assert 3 <= server.stats.completion_tokens - before <= 48


def test_seeded_requests_sample_the_same_texts_again(server: VLLMEngine) -> None:
    """seed_requests: true on the real server: the same seeds give the same samples (the vLLM
    CPU build has crashed on seeded requests under chunked prefill: this would show it)."""
    with client(server, seed_requests=True, n_mode="separate") as seeded:
        ask = {"n": 2, "temperature": 1.0, "max_tokens": 16, "seed": 7}
        first = seeded.generate([COUNT, COUNT], **ask)
        again = seeded.generate([COUNT, COUNT], **ask)
    assert [[c.text for c in r] for r in first] == [[c.text for c in r] for r in again]
    assert server.pid is not None and server._proc is not None and server._proc.poll() is None


def test_a_server_that_fails_to_start_shows_its_log(student: Path, tmp_path: Path) -> None:
    cfg = EngineConfig(
        engine="vllm",
        vllm_executable=vllm_command(),
        port=free_port(),
        extra_args=["--max-model-len", "not-a-number"],
        startup_timeout=600,
    )
    with pytest.raises(EngineError, match="exited with code") as info:
        VLLMEngine(cfg, str(student), run_dir=tmp_path)
    assert "max-model-len" in str(info.value)  # vLLM's own message, from the end of its log


def test_siked_sample_starts_and_stops_the_server(
    student: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`siked sample` with `sample.engine: vllm`: the server is started for the student and
    stopped; k samples per question asked for together, their tokens counted."""
    from siked.cli import main
    from siked.io import read_json, read_jsonl

    out = tmp_path / "samples.jsonl"
    args = [
        "sample", "--model", str(student), "--dataset", "gsm8k", "--split", "train",
        "--limit", "2", "--k", "2", "--out", str(out), "--quiet",
        "--set", "engine=vllm", "--set", f"vllm_executable={vllm_command()}",
        "--set", f"port={free_port()}", "--set", "max_tokens=96", "--set", "startup_timeout=1500",
        "--set", f"extra_args={json.dumps(SERVER_ARGS)}",
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    rows = read_jsonl(out)
    assert len(rows) == 4 and any(r["text"] for r in rows)
    stats = read_json(tmp_path / "sample_stats.json")
    assert stats["tokens"] == stats["engine_stats"]["completion_tokens"] > 0
    assert stats["engine_stats"]["requests"] == 2  # one request per question, n=2


def test_siked_run_on_vllm_with_training_in_a_child(tmp_path: Path) -> None:
    """What a GPU user runs, on CPU: `siked run` with vLLM evaluating and sampling (one server
    per iteration's student) and each training in a child process under the run's lock, from
    the teacher to the report."""
    import subprocess
    import sys

    from siked.io import read_json

    vllm = vllm_command()
    cmd = [sys.executable, "-m", "siked", "run", str(ROOT / "configs" / "quickstart.yaml")]
    cmd += ["--name", "tiny", "--output-dir", str(tmp_path)]
    sets = [
        "data.train=gsm8k:train:4", "data.validation_size=2", "data.eval=[svamp:2]",
        "loop.iterations=1", "loop.patience=3", "loop.train_subprocess=true",
        "loop.test_every_iteration=true",
        "train.max_steps=2", "train.per_device_batch_size=2", "train.max_length=384",
        "sample.k=2", "sample.max_tokens=32", "eval.max_tokens=32",
    ]  # fmt: skip
    for section in ("sample", "eval"):
        sets += [
            f"{section}.engine=vllm", f"{section}.vllm_executable={vllm}",
            f"{section}.dtype=bfloat16", f"{section}.startup_timeout=1500",
            f"{section}.extra_args={json.dumps(SERVER_ARGS[2:])}",
        ]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1700)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "tiny"
    stages = read_json(run / "manifest.json")["stages"]
    for key in ("teacher", "iter_00/train", "iter_00/eval", "iter_00/sample", "iter_01/train"):
        assert stages[key]["status"] == "done", key
    stats = read_json(run / "iter_00" / "sample_stats.json")
    assert stats["generated"] == 4 * 2 and stats["tokens"] > 0
    assert "siked.train: step 1: " in (run / "siked.log").read_text()  # the child's log lines
    assert (run / "report" / "report.md").is_file()
