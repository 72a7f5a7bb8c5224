"""Student generation throughput: the hf engine, openvino and llama.cpp side by side, with
equality checks.

Workload (the student's own sampling and evaluation): GSM8K test questions in the student's
free-choice chat prompt (``siked.chat.student_prompt``), the free-mode stop strings, and

- ``sample``: k samples per question at temperature 0.7, top_p 0.95 (SIKeD's self-generation);
- ``greedy``: one greedy answer per question (evaluation).

Each configuration ``LOOP:BATCH`` runs the same prompts in this process, one after the other,
on one loaded model: ``static`` is the hf engine (transformers' ``generate`` on left-padded
batches of BATCH rows; its own continuous loop, ``continuous``, was removed on 2026-12-07,
results/ JSON files before then have it); with ``--repeats N`` in N rounds over all configurations, so that drift (a noisy
neighbour, the clock) hits them alike: ``seconds`` is the median of a configuration's rounds,
``speedup_rounds`` the first configuration's seconds over its own in each round. Effective
tokens/s = generated tokens up to EOS or a stop string (what the caller receives) / wall seconds
of the ``generate`` call, prefill included; a short warm-up runs first. Equality: every
configuration's texts are compared with the first one's (greedy: must be equal up to float
noise; sampling: same seeds, so equal up to float noise at token boundaries), and
``--check-greedy N`` compares the hf engine's greedy outputs at the largest ``static`` BATCH with
transformers' ``generate`` at batch 1 (no padding at all) on N questions.

``LOOP@row`` runs torch's own linear layers on the weights as loaded (row-major, MKL),
``LOOP@col`` the same on column-major weights; without ``@`` the engine's default for the machine (:func:`siked.engines.hf.set_linear_kernel`).
``llama-server[@TYPE]:SLOTS`` (with ``--llama-cpp DIR``, a llama.cpp checkout built with CMake)
runs the same prompts through llama.cpp instead: the model is converted to GGUF of TYPE (bf16,
f32, q8_0...; default bf16) once with ``convert_hf_to_gguf.py``, a fresh ``build/bin/llama-server``
is started per repeat (no prompt cached from the last one) with SLOTS parallel slots (continuous
batching) and the prompts go through siked's ``openai`` engine (completions API, SLOTS requests in
flight), so the time includes HTTP. ``openvino[@f32|@bf16]:SEQS`` runs siked's openvino engine
(float32 IR, converted once before the timings, ``openvino_convert`` in the JSON; a pipeline
compiled afresh per repeat and warmed on an unrelated prompt, SEQS sequences at once) computing
in float32 or bf16 (without ``@``: the engine's ``dtype: auto``, bf16 on a CPU with native bf16);
``openvino...:SEQS:TOKENS`` also sets its ``max_num_batched_tokens`` (tokens per scheduler step);
``vllm:SEQS`` runs siked's vllm engine: a fresh ``vllm serve`` of the model (the command of
``make vllm``, vLLM's CPU build here; bf16, ``--enforce-eager``, SEQS = ``max_num_seqs``)
started per repeat before the clock starts and warmed on an unrelated prompt, the prompts sent as
chat requests with SEQS in flight, so the time includes HTTP;
with ``--check-greedy N`` its greedy outputs in each checked dtype are also compared with
``generate`` at batch 1 in that dtype.

    .venv/bin/python benchmarks/generate_bench.py --model runs/quickstart/iter_02/model/merged \\
        --questions 32 --k 4 --configs static:16,static:32,openvino:32 --check-greedy 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _prompts(tokenizer: Any, n: int, offset: int) -> tuple[list[str], list[str]]:
    from siked.chat import student_prompt
    from siked.data import load_problems
    from siked.student import stop_strings

    problems = load_problems("gsm8k", "test")[offset : offset + n]
    prompts = [student_prompt(tokenizer, p.question) for p in problems]
    return prompts, stop_strings(["cot", "l2m", "pot"], None)


class LlamaServer:
    """A llama.cpp server on the model, converted to GGUF once (``--llama-cpp``)."""

    def __init__(self, llama_cpp: str, model: str) -> None:
        import tempfile
        from pathlib import Path

        from siked.models import resolve_model

        self.root = Path(llama_cpp)
        self.dir = Path(tempfile.mkdtemp(prefix="siked-gguf-"))
        self.src = resolve_model(model)
        self.convert_seconds: dict[str, float] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def gguf(self, outtype: str) -> str:
        """The model as GGUF of ``outtype`` (bf16, f32, q8_0...), converted on first use."""
        out = self.dir / f"model-{outtype}.gguf"
        if not out.exists():
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, str(self.root / "convert_hf_to_gguf.py"), str(self.src),
                 "--outtype", outtype, "--outfile", str(out)],
                check=True, capture_output=True,
                env={**os.environ, "PYTHONPATH": str(self.root / "gguf-py")},
            )  # fmt: skip
            self.convert_seconds[outtype] = round(time.perf_counter() - t0, 1)
        return str(out)

    def start(self, outtype: str, slots: int, max_tokens: int) -> str:
        import urllib.request

        from siked.engines.vllm import free_port

        port = free_port()
        self.proc = subprocess.Popen(
            [str(self.root / "build/bin/llama-server"), "-m", self.gguf(outtype),
             "--host", "127.0.0.1", "--port", str(port), "-np", str(slots), "-cb",
             "-c", str(slots * (400 + max_tokens)), "-t", str(os.cpu_count() or 1),
             "--no-webui", "--log-disable"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return url + "/v1"
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited with {self.proc.returncode}")
            time.sleep(0.2)
        raise SystemExit("llama-server did not start in 120 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None

    def close(self) -> None:
        """Stop the server and remove the converted models (hundreds of MB each)."""
        import shutil

        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


#: ``LOOP@LAYOUT``: how the linear layers multiply (``siked.engines.hf.set_linear_kernel``).
LAYOUTS = {"row": "torch", "col": "column-major"}
#: ``openvino@PRECISION``: the openvino engine's ``dtype`` (plain ``openvino``: its default)
OV_DTYPES = {"auto": "auto", "f32": "float32", "bf16": "bfloat16"}


def _engine(
    model_and_tok: Any,
    loop: str,
    batch: int,
    server: str | None = None,
    model: str | None = None,
    tokens: int | None = None,
) -> Any:
    from siked.config import EngineConfig
    from siked.engines.hf import HFEngine

    if loop.startswith("openvino"):
        from siked.engines.openvino import OpenVINOEngine

        dtype = OV_DTYPES[loop.partition("@")[2] or "auto"]
        budget = {} if tokens is None else {"max_num_batched_tokens": tokens}
        cfg = EngineConfig(engine="openvino", batch_size=batch, dtype=dtype, **budget)
        return OpenVINOEngine(cfg, model)

    if loop == "vllm":
        import tempfile

        from siked.engines.vllm import VLLMEngine

        vcfg = EngineConfig(
            engine="vllm", dtype="bfloat16", max_num_seqs=batch, startup_timeout=1800,
            extra_args=["--max-model-len", "2048", "--enforce-eager"],
        )  # fmt: skip
        return VLLMEngine(vcfg, model, run_dir=tempfile.mkdtemp(prefix="siked-vllm-"), cache=False)

    if loop.startswith("llama-server"):
        from siked.engines.openai import OpenAIEngine

        ocfg = EngineConfig(
            engine="openai", model="student", base_url=server, api="completions",
            concurrency=batch, n_mode="separate", request_timeout=600,
        )  # fmt: skip
        return OpenAIEngine(ocfg, cache=False)
    loop, _, layout = loop.partition("@")
    cfg = EngineConfig(engine="hf", batch_size=batch)
    kernel = LAYOUTS[layout] if layout else None  # None: the engine's default
    return HFEngine(cfg, model_and_tokenizer=model_and_tok, linear_kernel=kernel)


def run(
    model_and_tok: Any,
    configs: list[tuple[str, int, int | None]],
    prompts: list[str],
    stops: list[str],
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    repeats: int,
    llama: LlamaServer | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ref: list[list[str]] | None = None
    kw = {"n": n, "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
    _engine(model_and_tok, "static", 4).generate(prompts[:2], max_tokens=8)  # warm-up
    times: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    outs: dict[int, Any] = {}
    engine_tokens: dict[int, int] = {}
    for _ in range(repeats):  # rounds over all configurations: drift hits them alike
        for i, (loop, batch, budget) in enumerate(configs):
            server = None
            if loop.startswith("llama-server"):  # fresh: no prompt cached from the last repeat
                if llama is None:
                    raise SystemExit("llama-server configurations need --llama-cpp DIR")
                server = llama.start(loop.partition("@")[2] or "bf16", batch, max_tokens)
                _engine(model_and_tok, loop, batch, server).generate(["Hello"], max_tokens=8)
            e = _engine(model_and_tok, loop, batch, server, model, budget)
            if loop.startswith(("openvino", "vllm")):  # afresh per repeat: nothing cached
                e.generate(["Hello"], max_tokens=8)
            counted = e.stats.completion_tokens
            t0 = time.perf_counter()
            outs[i] = e.generate(prompts, stop=stops, seed=1234, **kw)
            times[i].append(time.perf_counter() - t0)
            # a server answering n samples in one request counts their tokens together only
            engine_tokens[i] = e.stats.completion_tokens - counted
            name = f"{loop}:{batch}" + (f":{budget}" if budget else "")
            print(f"  {name} {times[i][-1]:.2f} s", file=sys.stderr, flush=True)
            if server is not None and llama is not None:
                llama.stop()
            if loop == "vllm":
                e.close()  # stops its server
    for i, (loop, batch, budget) in enumerate(configs):
        out = outs.get(i)
        assert out is not None
        texts = [[c.text for c in r] for r in out]
        tokens = max(sum(c.completion_tokens or 0 for r in out for c in r), engine_tokens[i])
        secs = statistics.median(times[i])
        same = None
        if ref is None:
            ref = texts
        else:
            same = sum(
                a == b
                for ra, rb in zip(ref, texts, strict=True)
                for a, b in zip(ra, rb, strict=False)
            )
        rows.append(
            {
                "loop": loop,
                "batch": batch,
                "max_num_batched_tokens": budget,
                "completions": sum(len(r) for r in out),
                "tokens": tokens,
                "seconds": round(secs, 2),
                "seconds_all": [round(t, 2) for t in times[i]],
                "tok_s": round(tokens / secs, 1),
                # per round: the first configuration's seconds / this one's (same round)
                "speedup_rounds": [
                    round(t0 / t, 2) for t0, t in zip(times[0], times[i], strict=True)
                ],
                "same_as_first": same,
                "finish": _count(c.finish_reason for r in out for c in r),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["tok_s"]
    for r in rows:
        r["speedup"] = round(r["tok_s"] / base, 2)
        r["speedup_median_of_rounds"] = statistics.median(r["speedup_rounds"])
    return rows


def _diffs(ref: list[list[Any]], got: list[list[Any]]) -> list[dict[str, Any]]:
    """The questions whose greedy texts differ, with the first differing character."""
    diffs = []
    for i, (a, b) in enumerate(zip(ref, got, strict=True)):
        if a[0].text != b[0].text:
            k = next(
                (j for j, (x, y) in enumerate(zip(a[0].text, b[0].text, strict=False)) if x != y),
                None,
            )
            k = k if k is not None else min(len(a[0].text), len(b[0].text))
            diffs.append({"question": i, "first_diff_char": k, "ref": a[0].text, "got": b[0].text})
    return diffs


def check_greedy(
    model_and_tok: Any,
    prompts: list[str],
    stops: list[str],
    max_tokens: int,
    batch: int,
    openvino: tuple[str, int, str] | None = None,
) -> dict[str, Any]:
    """The hf engine's greedy outputs at ``batch`` (its default linear kernel) vs transformers
    ``generate`` at batch 1 with torch's own linear layers, token for token; and, as the
    yardstick of float noise, ``generate`` at batch 16 vs batch 1. ``openvino`` (model,
    batch, precision): the openvino engine's greedy outputs against the same reference."""
    kw: dict[str, Any] = {"max_tokens": max_tokens, "stop": stops}
    ref = _engine(model_and_tok, "static@row", 1).generate(prompts, **kw)
    got = _engine(model_and_tok, "static", batch).generate(prompts, **kw)
    padded = _engine(model_and_tok, "static@row", 16).generate(prompts, **kw)
    diffs = _diffs(ref, got)
    out: dict[str, Any] = {
        "questions": len(prompts),
        "equal": len(prompts) - len(diffs),
        "generate_batch16_equal_batch1": sum(
            a[0].text == b[0].text for a, b in zip(ref, padded, strict=True)
        ),
        "diffs": diffs,
    }
    if openvino is not None:
        loop = f"openvino@{openvino[2]}"
        ov = _engine(model_and_tok, loop, openvino[1], model=openvino[0])
        ov_diffs = _diffs(ref, ov.generate(prompts, **kw))
        out["openvino"] = {"equal": len(prompts) - len(ov_diffs), "diffs": ov_diffs}
    return out


#: Functions whose cumulative time the profile reports (name as cProfile shows it).
PROFILED = {
    "model forward": ("modeling_llama.py", "forward", "LlamaForCausalLM"),
    "sampling (sample_rows)": ("hf.py", "sample_rows", None),
    "stop-string checks": ("hf.py", "__call__", "StopOnStrings"),
}


def profile(
    model_and_tok: Any, loop: str, batch: int, prompts: list[str], stops: list[str], **kw: Any
) -> dict[str, Any]:
    """Where the time of one ``generate`` call goes (cProfile, cumulative seconds), and for the
    static loop the share of row-steps spent on rows that had already finished."""
    import cProfile
    import pstats

    e = _engine(model_and_tok, loop, batch)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    out = e.generate(prompts, stop=stops, seed=1234, **kw)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    parts: dict[str, float] = {}
    llama_forward = 0.0
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        for name, (f, fn, _cls) in PROFILED.items():
            if file.endswith(f) and func == fn:
                if name == "model forward":  # the outermost forward: the causal LM's
                    llama_forward = max(llama_forward, ct)
                else:
                    parts[name] = parts.get(name, 0.0) + ct
    parts["model forward"] = llama_forward
    tokens = [c.completion_tokens or 0 for r in out for c in r]
    res: dict[str, Any] = {
        "loop": loop,
        "batch": batch,
        "wall": round(wall, 2),
        "tokens": sum(tokens),
        "seconds": {k: round(v, 2) for k, v in parts.items() if v},
    }
    if loop == "static":  # rows of a batch decode until the batch's longest one ends
        lengths = sorted(
            (
                (len(e.encode(prompts[i])), i, j)
                for i in range(len(prompts))
                for j in range(len(out[i]))
            ),
            key=lambda r: (-r[0], r[1], r[2]),
        )
        steps = 0
        for b in range(0, len(lengths), batch):
            rows = lengths[b : b + batch]
            steps += len(rows) * max(out[i][j].completion_tokens or 0 for _, i, j in rows)
        res["row_steps"] = steps
        res["useful_share"] = round(sum(tokens) / max(steps, 1), 3)
    return res


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[str(x)] = out.get(str(x), 0) + 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument("--dtype", default="auto", help="auto | bfloat16 | float32")
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--offset", type=int, default=0, help="first GSM8K test question")
    ap.add_argument("--k", type=int, default=4, help="samples per question (sample mode)")
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--modes", default="sample,greedy")
    ap.add_argument("--configs", default="static:16,static:32")
    ap.add_argument("--greedy-questions", type=int, default=None, help="default: --questions")
    ap.add_argument("--check-greedy", type=int, default=0, help="questions for the check")
    ap.add_argument("--check-dtypes", default=None, help="dtypes for the check (default --dtype)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", default=None, help="LOOP:BATCH,...: profile these (sample mode)")
    ap.add_argument("--llama-cpp", default=None, help="llama.cpp directory (llama-server loop)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from siked.config import EngineConfig
    from siked.machine import machine_info
    from siked.models import load_model, load_tokenizer

    configs = []
    for c in a.configs.split(","):
        loop, batch, *budget = c.split(":")
        base, _, layout = loop.partition("@")
        hf_loop = base == "static" and (not layout or layout in LAYOUTS)
        ov_loop = base == "openvino" and (not layout or layout in OV_DTYPES)
        if not hf_loop and not ov_loop and base not in ("llama-server", "vllm"):
            raise SystemExit(
                f"unknown loop {loop!r}: static[@LAYOUT] (LAYOUT: "
                f"{', '.join(LAYOUTS)}), openvino[@f32|@bf16], vllm or llama-server[@TYPE]"
            )
        if budget and (not ov_loop or len(budget) > 1):
            raise SystemExit(f"{c}: LOOP:BATCH, or openvino[@...]:SEQS:TOKENS (tokens per step)")
        default = EngineConfig.model_fields["max_num_batched_tokens"].default
        tokens = int(budget[0]) if budget else default if ov_loop else None  # recorded as run
        configs.append((loop, int(batch), tokens))
    tok = load_tokenizer(a.model)
    model = load_model(a.model, dtype=a.dtype, device="cpu")
    mt = (model, tok)
    result: dict[str, Any] = {
        "model": a.model,
        "dtype": str(next(model.parameters()).dtype),
        "machine": {**machine_info(), "threads": torch.get_num_threads()},
        "settings": vars(a),
    }
    prompts, stops = _prompts(tok, a.questions, a.offset)
    llama = None
    if any(loop.startswith("llama-server") for loop, _, _ in configs):
        if not a.llama_cpp:
            raise SystemExit("llama-server configurations need --llama-cpp DIR")
        llama = LlamaServer(a.llama_cpp, a.model)
        result["llama_cpp_convert_seconds"] = llama.convert_seconds
    ov_batch = next((b for loop, b, _ in configs if loop.startswith("openvino")), None)
    if ov_batch is not None:  # converted once, outside the timings (as in a run, per iteration)
        from siked.engines.openvino import export_dir, export_openvino
        from siked.models import resolve_model

        local = resolve_model(a.model)
        cached = (export_dir(Path(local)) / "openvino_model.xml").is_file()
        t0 = time.perf_counter()
        export_openvino(local)
        result["openvino_convert"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "cached": cached,
        }
    common: dict[str, Any] = {
        "max_tokens": a.max_tokens, "repeats": a.repeats, "llama": llama, "model": a.model,
    }  # fmt: skip
    if "sample" in a.modes:
        print(f"== sample: {len(prompts)} questions x k={a.k}", flush=True)
        result["sample"] = run(
            mt, configs, prompts, stops, n=a.k, temperature=0.7, top_p=0.95, **common
        )
    if "greedy" in a.modes:
        gp, _ = _prompts(tok, a.greedy_questions or a.questions, a.offset)
        print(f"== greedy: {len(gp)} questions", flush=True)
        result["greedy"] = run(mt, configs, gp, stops, n=1, temperature=0.0, top_p=1.0, **common)
    if a.profile:
        result["profile"] = []
        for c in a.profile.split(","):
            loop, batch = c.split(":")
            print(f"== profile {loop}:{batch}", flush=True)
            got = profile(
                mt, loop, int(batch), prompts, stops,
                n=a.k, temperature=0.7, top_p=0.95, max_tokens=a.max_tokens,
            )  # fmt: skip
            print(json.dumps(got), flush=True)
            result["profile"].append(got)
    if a.check_greedy:
        checks = {}
        cp, _ = _prompts(tok, a.check_greedy, a.offset)
        for dtype in (a.check_dtypes or a.dtype).split(","):
            m = model if dtype == a.dtype else load_model(a.model, dtype=dtype, device="cpu")
            print(f"== greedy check ({dtype}): {len(cp)} questions", flush=True)
            batch = max((b for loop, b, _ in configs if loop == "static"), default=32)
            precision = {v: k for k, v in OV_DTYPES.items() if k != "auto"}.get(dtype)
            ov = (a.model, ov_batch, precision) if ov_batch and precision else None
            checks[dtype] = c = check_greedy((m, tok), cp, stops, a.max_tokens, batch, ov)
            print(
                f"   hf static:{batch} == generate(batch 1): {c['equal']}/{len(cp)}; "
                f"generate(batch 16) == generate(batch 1): {c['generate_batch16_equal_batch1']}",
                flush=True,
            )
            if "openvino" in c:
                print(f"   openvino == generate(batch 1): {c['openvino']['equal']}/{len(cp)}")
        result["check_greedy"] = checks
    if llama is not None:
        llama.close()
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
