"""The student on a CPU through OpenVINO GenAI: continuous batching with prefix caching.

The merged student is converted once to OpenVINO IR (float32 weights, nothing quantized) by
``optimum-cli export openvino`` and cached beside it (``MODEL.openvino/``, rebuilt when the
model's files change). optimum-intel pins an older transformers than siked needs, so the
converter runs from its own environment, found like vLLM's command: engine
``openvino_export``, else ``$SIKED_OPTIMUM_CLI``, else ``optimum-cli`` on PATH, else the
project's ``.venv-openvino/`` (``make openvino``). Generation needs only ``openvino-genai`` in
siked's own environment (``pip install 'siked[openvino]'``). Each SIKeD iteration retrains the
same architecture, so a conversion keeps its graph and where each weight lies in its weights file
(:mod:`siked.engines.openvino_weights`); the next model of that architecture gets the same graph
and its own weights written in a second, byte for byte what a conversion would write.

What is computed is the hf engine's computation in the same precision (``dtype``,
:func:`plugin_config`: ``auto`` is bf16 on a CPU with native bf16, else float32, as for the hf
engine): prompts are encoded with the model's own transformers tokenizer
(:func:`siked.engines.hf.encode_prompt`), the KV cache and the matrix products are computed in
that precision (``KV_CACHE_PRECISION`` / ``INFERENCE_PRECISION_HINT``; OpenVINO's CPU default
keeps the cache in u8), and completions are decoded with the same tokenizer and cut at the first
stop string. Every sample is its own request seeded with
:func:`~siked.engines.base.sample_seed`, so sample ``j`` of a prompt depends only on its seed,
never on batching (OpenVINO keeps one generator per request). The first request runs one step
alone so that the prompts' shared prefix (system instruction) is in the prefix cache before the
others are scheduled: the shared tokens are computed once, as in the hf engine's loop.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.engines import openvino_weights as ovw
from siked.engines.base import (
    Completion,
    Engine,
    EngineError,
    GenerateRequest,
    Prompt,
    find_command,
    generate_progress,
    merge_eos_ids,
    seed_or_fresh,
    token_completion,
)

if TYPE_CHECKING:
    from siked.config import EngineConfig

log = logging.getLogger("siked.engines.openvino")

EXPORT_ENV = "SIKED_OPTIMUM_CLI"
INSTALL_HINT = "pip install 'siked[openvino]'"
GENAI_MISSING = f"the openvino engine needs openvino-genai: {INSTALL_HINT}"
#: the converter's environment, built by ``make openvino`` (scripts/openvino_env.sh)
EXPORT_VENV = ".venv-openvino"
#: the file an export writes last: what it was converted from
MARKER = "siked-openvino.json"
#: optimum-cli's flags after ``export openvino -m MODEL`` (part of a kept graph's key)
EXPORT_FLAGS = ("--task", "text-generation-with-past", "--weight-format", "fp32")
#: a kept graph's map of where each weight lies in its .bin (siked.engines.openvino_weights)
LAYOUT = "siked-layout.json"
#: CPU plugin settings that keep the computation float32
FLOAT32 = {"KV_CACHE_PRECISION": "f32", "INFERENCE_PRECISION_HINT": "f32"}
#: ... and bfloat16 (matrix products and KV cache), for CPUs with native bf16
BFLOAT16 = {"KV_CACHE_PRECISION": "bf16", "INFERENCE_PRECISION_HINT": "bf16"}


def plugin_config(dtype: str) -> dict[str, str]:
    """OpenVINO CPU settings for the engine's ``dtype``, chosen as the hf engine chooses
    (:func:`siked.models.pick_dtype`): ``auto`` is bf16 on a CPU with native bf16 (AVX512-BF16
    or AMX) and float32 elsewhere; ``float32`` computes in float32 (transformers' float32 greedy
    outputs, token for token); ``bfloat16`` computes the matrix products and the KV cache in bf16
    (on a CPU with native bf16, 1.7x faster greedy evaluation than float32, with outputs that
    differ from transformers' by bf16 rounding, as the hf engine's in bf16 do). ``bfloat16`` on
    a CPU without native bf16 is an error: OpenVINO would ignore the hint and compute float32.

    >>> plugin_config("float32")["INFERENCE_PRECISION_HINT"]
    'f32'
    >>> plugin_config("float32")["KV_CACHE_PRECISION"]
    'f32'
    """
    if dtype == "auto":
        dtype = _auto_dtype()
    if dtype == "float32":
        return dict(FLOAT32)
    if dtype == "bfloat16":
        if not openvino_computes_bf16():
            raise EngineError(
                "dtype bfloat16: this CPU has no native bf16 (AVX512-BF16 or AMX), where OpenVINO "
                "ignores the bf16 hint and computes float32; set dtype to float32 (or auto) to "
                "say so, or run on a CPU with native bf16"
            )
        return dict(BFLOAT16)
    raise EngineError(
        f"the openvino engine computes in float32 or bfloat16, not {dtype}: set dtype to "
        "auto (bf16 where the CPU computes it natively, else float32), float32 or bfloat16"
    )


def _auto_dtype() -> str:
    """``dtype: auto``: bf16 where the CPU computes it natively, as the hf engine chooses."""
    from siked.models import cpu_supports_bf16

    return "bfloat16" if cpu_supports_bf16() else "float32"


def openvino_computes_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes in bf16 here (``BF16`` among its optimization
    capabilities: AVX512-BF16 or AMX). Where it does not, a bf16 precision hint is ignored and
    the model computes in float32 (tests/test_engine_openvino.py checks this on the real
    plugin)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def scheduler_config(sched: Any, cfg: EngineConfig) -> Any:
    """OpenVINO GenAI's ``SchedulerConfig`` set for the engine: prefix caching on (the prompts'
    shared system instruction is computed once), ``batch_size`` sequences at once, and
    ``max_num_batched_tokens`` tokens per step.

    >>> from types import SimpleNamespace
    >>> from siked.config import EngineConfig
    >>> s = scheduler_config(SimpleNamespace(), EngineConfig(engine="openvino", batch_size=64))
    >>> (s.enable_prefix_caching, s.max_num_seqs, s.max_num_batched_tokens)
    (True, 64, 2048)
    """
    sched.enable_prefix_caching = True
    sched.max_num_seqs = cfg.batch_size
    sched.max_num_batched_tokens = cfg.max_num_batched_tokens
    return sched


def genai_installed() -> bool:
    """Whether openvino-genai, which generates, is importable here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("openvino_genai") is not None


def find_optimum_cli(executable: str | None = None) -> str:
    """Path of the ``optimum-cli`` command that converts the student: ``executable``, else
    ``$SIKED_OPTIMUM_CLI``, else on PATH, else ``.venv-openvino/bin/optimum-cli`` beside this
    Python's environment (the project's layout)."""
    return find_command(
        "optimum-cli",
        executable,
        EXPORT_ENV,
        "openvino_export",
        [Path(sys.prefix).parent / EXPORT_VENV / "bin" / "optimum-cli"],
        "the openvino engine converts the student with optimum-intel's `optimum-cli`, which "
        f"was not found: run `make openvino` (builds {EXPORT_VENV}/) or point "
        f"${EXPORT_ENV} at an optimum-cli of an environment with optimum-intel",
    )


def model_fingerprint(model_dir: Path) -> dict[str, list[int]]:
    """Name -> [size, mtime_ns] of the files of a model directory: a retrained model (written
    anew, :func:`siked.train.merge_adapter`) gets a new fingerprint."""
    out: dict[str, list[int]] = {}
    for p in sorted(model_dir.iterdir()):
        if p.is_file():
            st = p.stat()
            out[p.name] = [st.st_size, st.st_mtime_ns]
    return out


def export_dir(model_dir: Path) -> Path:
    """Where the OpenVINO copy of ``model_dir`` is cached: beside it, ``NAME.openvino``."""
    return model_dir.with_name(model_dir.name + ".openvino")


def layout_cache() -> Path:
    """Where the weight layouts of converted architectures are kept (``$SIKED_CACHE_DIR``)."""
    from siked.models import cache_root

    return cache_root() / "openvino"


def export_openvino(
    model_dir: str | os.PathLike[str],
    optimum_cli: str | None = None,
    layouts: Path | None = None,
) -> Path:
    """The OpenVINO IR of a local transformers model directory, converted on first use.

    Reused while the marker records the model's current fingerprint. Otherwise, when a model of
    the same architecture was converted before (the same config, tokenizer, tensor shapes and
    converter: :func:`~siked.engines.openvino_weights.architecture_key`), its graph is reused
    and only the weights file is written anew from this model's weights, in seconds; else
    optimum-cli converts it, and its graph and the layout of its weights are kept in ``layouts``
    (default :func:`layout_cache`) for the next iteration. Either way the IR is built in a
    temporary directory that replaces the old one when complete, so a killed conversion leaves
    nothing half-written behind. Concurrent callers wait on a file lock.
    """
    from filelock import FileLock

    src = Path(model_dir)
    if not (src / "config.json").is_file():
        raise EngineError(
            f"{src}: not a local transformers model directory (no config.json); the openvino "
            "engine converts a local copy: download a hub model first "
            "(`hf download ID --local-dir DIR`) and give DIR"
        )
    out = export_dir(src)
    want = {"source": str(src.resolve()), "files": model_fingerprint(src), "weights": "fp32"}
    with FileLock(str(out) + ".lock"):
        if _marker(out) == want:
            return out
        cli = find_optimum_cli(optimum_cli)
        saved = (layouts or layout_cache()) / ovw.architecture_key(src, cli, EXPORT_FLAGS)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        try:
            written = _from_layout(saved, src, tmp)
            why = _check_written(tmp, src) if written else None
            if why:  # the written IR does not compute what the model does: convert it
                log.warning(
                    "openvino: %s written into %s differs (%s); converting", src, saved, why
                )
                for p in tmp.iterdir():
                    p.unlink()
            if not written or why:
                _convert(cli, src, tmp)
                _keep_layout(tmp, src, saved)
            (tmp / MARKER).write_text(json.dumps(want, indent=1), encoding="utf-8")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


#: greedy tokens of the check of written weights (:func:`greedy_mismatch`), and its prompt
CHECK_TOKENS = 8
CHECK_PROMPT = "Question: Tom has 12 apples and buys 7 more. How many apples does he have?\nAnswer:"


def greedy_mismatch(ir: Path, src: Path, tokens: int = CHECK_TOKENS) -> str | None:
    """None when the OpenVINO IR in ``ir`` continues :data:`CHECK_PROMPT` with the same greedy
    tokens as the transformers model in ``src`` (both float32, up to an end token), else what
    differs. Run after weights were written into a kept graph (:func:`_from_layout`): a layout
    that placed a tensor wrong shows here, before any stage reads the model."""
    import numpy as np
    import openvino as ov
    import openvino_genai as og
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(src))
    ids = list(tokenizer(CHECK_PROMPT)["input_ids"])
    eos = set(_eos_ids(src, tokenizer))
    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=tokens,
            do_sample=False,
            eos_token_id=sorted(eos) or None,
            pad_token_id=next(iter(sorted(eos)), 0),
        )
    want = _until_eos(out[0, len(ids) :].tolist(), eos)
    del model
    pipe = og.LLMPipeline(str(ir), "CPU", **FLOAT32)
    config = og.GenerationConfig()
    config.max_new_tokens = tokens
    config.stop_token_ids = eos
    got = _until_eos(
        list(pipe.generate(ov.Tensor(np.asarray([ids], dtype=np.int64)), config).tokens[0]), eos
    )
    n = min(len(want), len(got))
    if n == 0 or want[:n] != got[:n]:
        return f"greedy tokens {got} where the model gives {want}"
    return None


def _check_written(ir: Path, src: Path) -> str | None:
    try:
        return greedy_mismatch(ir, src)
    except Exception as e:  # a check that cannot run is no proof: convert
        return f"the check could not run: {e}"


def _until_eos(tokens: list[int], eos: set[int]) -> list[int]:
    """``tokens`` up to and with the first end token."""
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[: i + 1]
    return tokens


def _convert(cli: str, src: Path, tmp: Path) -> None:
    cmd = [cli, "export", "openvino", "-m", str(src), *EXPORT_FLAGS, str(tmp)]
    log.info("openvino: converting %s (%s)", src, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.debug("optimum-cli output:\n%s%s", proc.stdout, proc.stderr)
    if proc.returncode != 0 or not (tmp / "openvino_model.xml").is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise EngineError(
            f"optimum-cli could not convert {src} to OpenVINO (exit {proc.returncode}):\n{tail}"
        )


def _from_layout(saved: Path, src: Path, tmp: Path) -> bool:
    """Build the IR of ``src`` in ``tmp`` from a kept graph and layout; False if none fits."""
    try:
        layout = json.loads((saved / LAYOUT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    try:
        ovw.write_weights(layout, ovw.float32_tensors(src), tmp / "openvino_model.bin")
    except Exception as e:  # any misfit means: convert
        log.info("openvino: the kept layout %s does not fit %s (%s); converting", saved, src, e)
        return False
    try:
        for p in saved.iterdir():
            if p.name != LAYOUT:
                shutil.copy2(p, tmp / p.name)
    except OSError as e:  # replaced by another process meanwhile: convert
        log.info("openvino: could not copy the kept graph %s (%s); converting", saved, e)
        for p in tmp.iterdir():
            p.unlink()
        return False
    log.info("openvino: %s written into the graph of %s (no conversion)", src, saved)
    return True


def _keep_layout(ir: Path, src: Path, saved: Path) -> None:
    """After a conversion: keep its graph and the layout of its weights for the next model."""
    try:
        with (
            open(ir / "openvino_model.bin", "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as weights,
        ):
            layout = ovw.find_layout(
                (ir / "openvino_model.xml").read_text(encoding="utf-8"),
                memoryview(weights),
                ovw.float32_tensors(src),
            )
    except Exception as e:  # a layout saves time, never fails a run
        layout = f"could not read the conversion or the weights ({e})"
    if isinstance(layout, str):
        log.info("openvino: every model of %s will be converted: %s", src, layout)
        return
    part = Path(tempfile.mkdtemp(dir=_mkdir(saved.parent), prefix=f".{saved.name}.tmp-"))
    try:
        for p in ir.iterdir():
            if p.is_file() and p.name not in ("openvino_model.bin", MARKER):
                shutil.copy2(p, part / p.name)
        (part / LAYOUT).write_text(json.dumps(layout), encoding="utf-8")
        if saved.exists():
            shutil.rmtree(saved)
        os.replace(part, saved)
    except OSError as e:  # a cache that cannot be written costs a conversion, nothing else
        log.warning("openvino: could not keep the layout in %s: %s", saved, e)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _marker(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def finish_of(reason: Any) -> str:
    """siked's ``finish_reason`` for OpenVINO's (``GenerationFinishReason.STOP`` -> ``"stop"``).

    >>> from types import SimpleNamespace
    >>> finish_of(SimpleNamespace(name="LENGTH"))
    'length'
    """
    return str(getattr(reason, "name", reason)).lower()


class OpenVINOEngine(Engine):
    """A local student on OpenVINO's CPU runtime (see the module docstring)."""

    name = "openvino"

    def __init__(
        self,
        cfg: EngineConfig,
        model: str | None = None,
        *,
        pipeline: Any = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        from siked.models import BUNDLED_STUDENT, load_tokenizer, resolve_model

        self.model_name = model or cfg.model or BUNDLED_STUDENT
        self.batch_size = cfg.batch_size
        local = Path(resolve_model(self.model_name))
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(str(local))
        self.eos_ids = _eos_ids(local, self.tokenizer)
        self.plugin = plugin_config(cfg.dtype)
        if pipeline is None:
            try:
                import openvino_genai as og
            except ImportError as e:
                raise EngineError(GENAI_MISSING) from e
            ir = export_openvino(local, cfg.openvino_export)
            sched = scheduler_config(og.SchedulerConfig(), cfg)
            pipeline = og.ContinuousBatchingPipeline(str(ir), sched, "CPU", self.plugin)
        self.pipeline = pipeline
        self._next_id = 0

    @classmethod
    def check_ready(cls, cfg: EngineConfig) -> None:
        """openvino-genai is importable and an optimum-cli is found (:func:`find_optimum_cli`)."""
        if not genai_installed():
            raise EngineError(GENAI_MISSING)
        plugin_config(cfg.dtype)  # a dtype it cannot compute fails here
        find_optimum_cli(cfg.openvino_export)

    @classmethod
    def auto_dtype(cls, cfg: EngineConfig) -> str | None:
        return _auto_dtype()

    def __repr__(self) -> str:
        precision = self.plugin["INFERENCE_PRECISION_HINT"]
        return f"OpenVINOEngine(model={self.model_name!r}, precision={precision})"

    @property
    def chunk_generations(self) -> int:
        return 8 * self.batch_size

    def close(self) -> None:
        self.pipeline = None

    def encode(self, prompt: Prompt) -> list[int]:
        from siked.engines.hf import encode_prompt

        return encode_prompt(self.tokenizer, prompt, self.model_name)

    def _config(self, request: GenerateRequest, seed: int) -> Any:
        import openvino_genai as og

        c = og.GenerationConfig()  # not the model's generation_config.json: neutral defaults
        c.repetition_penalty, c.presence_penalty, c.frequency_penalty = 1.0, 0.0, 0.0
        c.max_new_tokens = request.max_tokens
        c.apply_chat_template = False
        c.stop_token_ids = set(self.eos_ids)
        if request.stops:
            c.stop_strings = set(request.stops)
            c.include_stop_str_in_output = True  # cut here, with the tokenizer that encoded
        if request.temperature > 0:
            c.do_sample = True
            c.temperature = request.temperature
            c.top_p = request.top_p
            c.rng_seed = seed
        return c

    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        if self.pipeline is None:
            raise EngineError("the openvino engine is closed")
        import numpy as np
        import openvino as ov

        encoded = [self.encode(p) for p in prompts]
        samples = request.samples
        jobs = [(i, j) for i in range(len(prompts)) for j in range(samples)]
        handles: dict[tuple[int, int], Any] = {}
        bar = generate_progress(request.progress, len(jobs), unit="seq")
        try:
            for k, (i, j) in enumerate(jobs):
                cfg = self._config(request, seed_or_fresh(request.seed(i, j)))
                ids = ov.Tensor(np.asarray([encoded[i]], dtype=np.int64))
                handles[(i, j)] = self.pipeline.add_request(self._next_id, ids, cfg)
                self._next_id += 1
                if k == 0 and len(jobs) > 1:
                    self.pipeline.step()  # the shared prefix enters the prefix cache
                    self.stats.add(requests=1)
            pending = set(handles)
            while self.pipeline.has_non_finished_requests():
                self.pipeline.step()
                self.stats.add(requests=1)
                if bar is not None:
                    done = {key for key in pending if handles[key].get_status().name != "RUNNING"}
                    pending -= done
                    bar.update(len(done))
        except BaseException:
            self._drop(handles.values())
            raise
        finally:
            if bar is not None:
                bar.close()
        results = {
            key: self._completion(h, len(encoded[key[0]]), request.stops)
            for key, h in handles.items()
        }
        return [
            [results[(i, 0 if samples == 1 else j)] for j in range(request.n)]
            for i in range(len(prompts))
        ]

    def _drop(self, handles: Any) -> None:
        """Cancel the requests of a failed or interrupted call, so the next call starts clean."""
        try:
            for h in handles:
                h.cancel()
            while self.pipeline.has_non_finished_requests():
                self.pipeline.step()
        except Exception:  # the original error matters more
            log.warning("openvino: could not cancel the requests of an interrupted call")

    def _completion(self, handle: Any, prompt_tokens: int, stops: Sequence[str]) -> Completion:
        status = handle.get_status().name
        if status != "FINISHED":
            raise EngineError(f"OpenVINO request ended {status.lower()}")
        out = handle.read_all()[0]
        gen = [int(t) for t in out.generated_ids]
        decode = self.tokenizer.decode
        c = token_completion(
            gen,
            lambda ids: str(decode(ids, skip_special_tokens=True)),
            self.eos_ids,
            stops,
            prompt_tokens,
            end_reason=finish_of(out.finish_reason),
        )
        self.stats.add(prompt_tokens=prompt_tokens, completion_tokens=c.completion_tokens or 0)
        return c


def _eos_ids(model_dir: Path, tokenizer: Any) -> list[int]:
    """The model's end tokens: generation_config.json's ``eos_token_id`` and the tokenizer's."""
    try:
        gen = json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        gen = {}
    return merge_eos_ids(gen.get("eos_token_id"), getattr(tokenizer, "eos_token_id", None))
