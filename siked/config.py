"""Typed configuration for a SIKeD run, loaded from YAML with ``key.path=value`` overrides.

Every section is a pydantic model with ``extra="forbid"``: an unknown key or a bad value is an
error that names the dotted key (``train.lora_r: Input should be greater than 0``). The same
models are used by the stage commands (``siked train --set lr=1e-4`` edits ``TrainConfig``).
See ``docs/configuration.md`` for every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from siked.engine_names import ENGINES
from siked.errors import SikedError


class ConfigError(SikedError, ValueError):
    """A config file or override is invalid; the message names the offending key(s)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetSpec(_Section):
    """One dataset slice: ``name`` (gsm8k, svamp, asdiv, asdiv-a, multiarith), ``split``, ``limit``.

    ``multiarith:test`` (the default split) is the authors' 180-problem ChilleD test split,
    ``multiarith:all`` all 600 problems.
    """

    name: str
    split: str = "test"
    limit: int | None = Field(default=None, gt=0)

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | DatasetSpec) -> DatasetSpec:
        """Accept ``"gsm8k:test:200"``, ``"svamp:100"``, ``"svamp"`` or a mapping.

        >>> DatasetSpec.parse("gsm8k:test:200")
        DatasetSpec(name='gsm8k', split='test', limit=200)
        >>> DatasetSpec.parse("svamp:100")
        DatasetSpec(name='svamp', split='test', limit=100)
        """
        if isinstance(spec, DatasetSpec):
            return spec
        if isinstance(spec, dict):
            return cls(**spec)
        parts = str(spec).split(":")
        if len(parts) == 1:
            return cls(name=parts[0])
        if len(parts) == 2:
            if parts[1].isdigit():
                return cls(name=parts[0], limit=int(parts[1]))
            return cls(name=parts[0], split=parts[1])
        if len(parts) == 3:
            return cls(name=parts[0], split=parts[1], limit=int(parts[2]) if parts[2] else None)
        raise ValueError(f"bad dataset spec {spec!r}: expected NAME[:SPLIT][:LIMIT]")

    def __str__(self) -> str:
        return f"{self.name}:{self.split}" + (f":{self.limit}" if self.limit else "")


class DataConfig(_Section):
    dir: str | None = None  # data directory; None -> $SIKED_DATA_DIR -> default (see siked.data)
    train: DatasetSpec = DatasetSpec(name="gsm8k", split="train")
    offset: int = Field(default=0, ge=0)  # skip the first N training questions (after shuffling)
    shuffle: bool = True  # shuffle training questions with the run seed before slicing
    validation_size: int = Field(default=100, ge=0)  # held out from the training questions
    eval: list[DatasetSpec] = Field(
        default_factory=lambda: [
            DatasetSpec.parse(s) for s in ("gsm8k:test", "svamp", "asdiv", "multiarith:test")
        ]
    )

    @field_validator("train", mode="before")
    @classmethod
    def _train(cls, v: Any) -> Any:
        return DatasetSpec.parse(v) if isinstance(v, str) else v

    @field_validator("eval", mode="before")
    @classmethod
    def _eval(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s]
        return [DatasetSpec.parse(s) if isinstance(s, str) else s for s in v]


#: built-in engines are gold, hf, openai, openvino, vllm (siked.engine_names); plug-ins join via
#: siked.engines.register_engine
EngineName = str

#: request fields the openai engine sets itself (``extra_body`` may not override them)
STANDARD_REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "prompt",
        "n",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "stream",
    }
)


def parse_base_urls(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """Server URLs from one URL, a comma-separated string or a list (order kept, no duplicates).

    >>> parse_base_urls("http://a:8000/v1, http://b:8000/v1/")
    ['http://a:8000/v1', 'http://b:8000/v1']
    >>> parse_base_urls(["http://a/v1"])
    ['http://a/v1']
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    urls: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"a server URL must be a string, got {item!r}")
        url = item.strip().rstrip("/")
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ValueError("no server URL given")
    return urls


def _check_engine(name: str) -> str:
    try:
        ENGINES.get(name)
    except SikedError as e:  # pydantic names the key when the validator raises ValueError
        raise ValueError(str(e)) from None
    return name


#: engine keys siked no longer has: the value every run made before the removal had (the
#: default; :mod:`siked.loop` keeps it in the stage inputs so that such runs stay done and
#: resume) and why a config that still sets the key is refused
REMOVED_ENGINE_KEYS: dict[str, tuple[Any, str]] = {
    "continuous_batching": (
        True,
        "the hf engine's own continuous-batching loop is gone (it depended on transformers' "
        "cache internals); hf always decodes static batches with transformers' generate, and "
        "the openvino and vllm engines batch continuously. Delete the key.",
    ),
}


class EngineConfig(_Section):
    """How text is generated: shared by the teacher and the student sampler."""

    engine: EngineName = "hf"
    model: str | None = None  # hub id / local path; for openai: the served model name

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in sorted(REMOVED_ENGINE_KEYS.keys() & data.keys()):
                raise ValueError(f"{key} was removed: {REMOVED_ENGINE_KEYS[key][1]}")
        return data

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        return _check_engine(v)

    @field_validator("base_url", mode="before")
    @classmethod
    def _base_url(cls, v: Any) -> Any:
        if v is None:
            return None
        urls = parse_base_urls(v)
        return urls[0] if len(urls) == 1 else urls

    @field_validator("extra_body")
    @classmethod
    def _extra_body(cls, v: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(v) & STANDARD_REQUEST_FIELDS)
        if clash:
            raise ValueError(
                f"{', '.join(clash)} cannot be set here: siked sends it itself "
                "(use the engine's own key, e.g. temperature, max_tokens)"
            )
        return v

    # openai: server URL (e.g. http://localhost:8000/v1), or several replicas of one model
    # (a list, or one string with commas): requests go to the least busy one
    base_url: str | list[str] | None = None
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    api: Literal["chat", "completions"] = "chat"
    # openai/vllm: requests in flight at once (all servers); None: vllm: max_num_seqs (the
    # server's batch stays full), openai: 8
    concurrency: int | None = Field(default=None, gt=0)
    # openai/vllm: send each request a seed (reproducible samples without the cache; vLLM then
    # samples seeded requests one by one, ~20-30% slower); None: openai yes, vllm no
    seed_requests: bool | None = None
    # openai: seconds a failed server is avoided when there are others (doubled per failure
    # in a row, at most 10x)
    server_cooldown: float = Field(default=30.0, gt=0)
    # openai: extra JSON fields sent with every request (server-specific options, e.g. vLLM's
    # top_k, or transformers serve's generation_config); part of the request-cache key
    extra_body: dict[str, Any] = Field(default_factory=dict)
    max_retries: int = Field(default=6, ge=0)  # openai: retries per request (429/5xx/timeout)
    retry_backoff: float = Field(default=1.0, gt=0)  # openai: first backoff (s), doubled per retry
    retry_backoff_max: float = Field(default=60.0, gt=0)  # openai: cap of one backoff wait (s)
    request_timeout: float = Field(default=120.0, gt=0)
    # openai: how n samples are asked for: "n" = one request with the n parameter, "separate" =
    # n requests with n=1 (seed derived per sample), "auto" = "n", falling back to "separate"
    # if the server rejects n or returns fewer choices
    n_mode: Literal["auto", "n", "separate"] = "auto"
    cache_dir: str | None = None  # openai/vllm request cache (teacher default: teacher/cache)
    batch_size: int = Field(default=32, gt=0)  # hf: rows (prompt x sample) decoded together
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str | None = None  # hf: "cpu", "cuda", "cuda:1"; None = best available
    # vllm: server process options
    vllm_executable: str | None = None  # the vllm command; None: $SIKED_VLLM, PATH, beside python
    tensor_parallel_size: int = Field(default=1, gt=0)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    port: int = Field(default=8000, gt=0, lt=65536)  # taken -> a free port is used instead
    # vllm: sequences the server batches at once (--max-num-seqs; vLLM's own default depends
    # on the hardware, 128 on CPU to 1024 on an H100, and is not readable from the server)
    max_num_seqs: int = Field(default=256, gt=0)
    extra_args: list[str] = Field(default_factory=list)  # appended to `vllm serve MODEL`
    lora_modules: dict[str, str] = Field(default_factory=dict)  # LoRA name -> adapter path
    startup_timeout: float = Field(default=900.0, gt=0)  # seconds to wait for /health
    # openvino: the optimum-cli command that converts the student (an environment with
    # optimum-intel); None: $SIKED_OPTIMUM_CLI, PATH, .venv-openvino/ (make openvino)
    openvino_export: str | None = None
    # openvino: tokens one scheduler step computes, prompt chunks and one per running sequence
    # together (OpenVINO's own default, 256, left the matrix products small: benchmarks/README)
    max_num_batched_tokens: int = Field(default=2048, gt=0)


class TeacherConfig(EngineConfig):
    engine: EngineName = "gold"
    n: int = Field(default=1, gt=0)  # samples per question and strategy
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, gt=0)
    keep_per_strategy: int = Field(default=1, gt=0)
    # questions per generate call; their samples are verified and appended together, so a
    # killed run loses at most one chunk of work
    chunk_size: int = Field(default=64, gt=0)
    # > 0: also let the (LLM) teacher choose the strategy itself, this many samples per
    # question, to measure its real strategy choice (teacher/choice.jsonl; not trained on)
    free_choice_n: int = Field(default=0, ge=0)
    # how the teacher is prompted, and so the rationale format the student learns
    # (siked.styles): "siked" (Question/Answer blocks or chat turns, Q1/A1, "The answer is N.")
    # or "authors" (the authors' Instruction/Input/Response layout over eight GSM8K training
    # problems, Sub-question k, "Final Answer: N")
    prompt_style: str = "siked"

    @field_validator("prompt_style")
    @classmethod
    def _prompt_style(cls, v: str) -> str:
        from siked.styles import get_style

        try:
            get_style(v)
        except SikedError as e:  # pydantic names the key when the validator raises ValueError
            raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _free_choice(self) -> TeacherConfig:
        if self.free_choice_n and self.engine == "gold":
            raise ValueError(
                "free_choice_n: the gold teacher has no strategy choice of its own (it rewrites "
                "human solutions into every strategy); use an LLM teacher or 0"
            )
        return self


class StudentConfig(_Section):
    model: str = "bundled:smollm2-135m-instruct"


class TrainConfig(_Section):
    """LoRA / full SFT. Defaults are the authors' (``fine-tuning/iter1_configs/*/selsamp*.yaml``)
    for Gemma and SmolLM; the Qwen2 presets set lr 3e-4 with a cosine schedule."""

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler: str = "linear"
    warmup_steps: int = Field(default=5, ge=0)  # the authors' 5 warm-up steps
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)  # > 0: a share of the steps instead
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    per_device_batch_size: int = Field(default=8, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    max_length: int = Field(default=1024, gt=0)
    padding_free: bool = True  # flatten each batch into one sequence, attention per example
    # pack examples best-fit-decreasing into rows of max_length tokens; per_device_batch_size
    # then counts packed rows (the authors' setting; fewer optimizer steps per epoch)
    packing: bool = False
    gradient_checkpointing: bool = False
    weight_decay: float = Field(default=0.01, ge=0)  # the authors' 0.01
    seed: int = 42
    bf16: bool | None = None  # None = bf16 where the hardware supports it
    save_merged: bool = True  # also write the merged model (what the next iteration starts from)
    logging_steps: int = Field(default=5, gt=0)
    save_steps: int = Field(default=50, gt=0)  # checkpoint interval (for resume after a kill)
    report_to: list[str] | str = "none"
    # seconds a rank waits at a collective (e.g. while rank 0 merges the LoRA) under a launcher
    ddp_timeout: int = Field(default=1800, gt=0)
    eval_fraction: float = Field(default=0.0, ge=0, lt=1)  # held-out share for validation loss


class SampleConfig(EngineConfig):
    """Student self-generation (paper: k=10, T=0.7, top_p=0.95, 512 new tokens)."""

    k: int = Field(default=10, gt=0)
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=512, gt=0)
    mode: Literal["free", "forced"] = "free"
    # sandbox workers for PoT verification; None: the CPUs this process may run on
    workers: int | None = Field(default=None, gt=0)


class AlphaSchedule(_Section):
    """Linear schedule of the teacher share over SIKeD iterations 1..N."""

    start: float = Field(ge=0, le=1)
    end: float = Field(ge=0, le=1)

    def at(self, iteration: int, iterations: int) -> float:
        if iterations <= 1:
            return self.start
        t = (iteration - 1) / (iterations - 1)
        return self.start + (self.end - self.start) * min(max(t, 0.0), 1.0)


class MixConfig(_Section):
    """How D_self and D_LLM are mixed into the next training set (see ``siked.mix``)."""

    variant: Literal["all", "adaptive", "self"] = "all"
    bias: Literal["pot", "cot", "l2m", "none"] = "pot"
    alpha: Literal["auto"] | float | AlphaSchedule = "auto"
    kl_epsilon: float = Field(default=1e-6, gt=0)
    # apply `bias` to iteration 0's teacher-only set too (the authors' biased chain trains its
    # first model on the biased set); false = iteration 0 on all of D_LLM whatever the bias
    bias_iteration_0: bool = True
    # adaptive: add teacher rows of strategy s for questions the student did not solve with s
    # ("strategy", the authors') or only for questions it solved with no strategy ("question")
    adaptive_scope: Literal["strategy", "question"] = "strategy"
    # correct student samples kept per question and strategy before bias (the authors: 1);
    # null = all of them
    self_per_strategy: int | None = Field(default=1, gt=0)
    # under a bias, a student row and a teacher row of the same question and strategy tie (only
    # `all` keeps both): "seeded" = a seeded coin per question picks one (the authors' unstable
    # sort keeps either); "student" = the student's row always wins (then `all` selects the
    # same rows as `adaptive`)
    tie_break: Literal["seeded", "student"] = "seeded"

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: Any) -> Any:
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ValueError("alpha must be 'auto', a number in [0, 1], or {start, end}")
        return v


class LoopConfig(_Section):
    iterations: int = Field(default=3, ge=0)  # SIKeD iterations after iteration 0 (distillation)
    init_from: Literal["previous", "base"] = "previous"
    patience: int = Field(default=1, gt=0)
    # evaluate data.eval after every iteration; false: only the validation split per
    # iteration, and data.eval once, on the final (best-on-validation) student
    test_every_iteration: bool = True
    # train each iteration in a child process, which frees all GPU memory before vLLM starts:
    # auto = when a CUDA GPU is visible; true / false = always / never
    train_subprocess: Literal["auto"] | bool = "auto"


class EvalConfig(EngineConfig):
    max_tokens: int = Field(default=512, gt=0)
    mode: Literal["free", "forced", "all"] = "free"  # all = every strategy forced, plus oracle
    # a free-mode answer without a strategy tag: "extract" = read its answer with the generic
    # cascade (any model can be evaluated); "wrong" = count it wrong (the authors' scorer)
    untagged: Literal["extract", "wrong"] = "extract"


class SandboxConfig(_Section):
    # names defined before every PoT program: "authors" = the SIKeD authors' prefix (from math
    # import *, sympy's Symbol/Eq/simplify/solve, lcm, solve_it); "none" = an empty namespace
    prelude: Literal["authors", "none"] = "authors"


class SikedConfig(_Section):
    name: str = "siked"
    output_dir: str = "runs"  # the run directory is output_dir/name
    seed: int = 42
    # siked: iterative; distill: iteration 0 only; base: evaluate the student as it is (no
    # teacher, no training: the untrained row of a comparison)
    method: Literal["siked", "distill", "base"] = "siked"
    strategies: list[str] = Field(default_factory=lambda: ["cot", "l2m", "pot"])
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    train: TrainConfig = TrainConfig()
    sample: SampleConfig = SampleConfig()
    mix: MixConfig = MixConfig()
    loop: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()
    sandbox: SandboxConfig = SandboxConfig()

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategies(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if not v:
            raise ValueError("at least one strategy is needed")
        return v

    @model_validator(mode="after")
    def _check(self) -> SikedConfig:
        if self.method in ("distill", "base") and self.loop.iterations != 0:
            # distillation baselines are iteration 0 only; base has no training at all
            object.__setattr__(self.loop, "iterations", 0)
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def _format_error(e: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {err['msg']}")
    # pydantic reports each branch of a union; keep the messages unique and in order
    return "\n".join(dict.fromkeys(lines))


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (``3``, ``0.5``, ``[a, b]``, ``null``).

    >>> parse_override("train.lora_r=8")
    (['train', 'lora_r'], 8)
    >>> parse_override("strategies=[cot, pot]")
    (['strategies'], ['cot', 'pot'])
    """
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def scoped_overrides(overrides: list[str], section: str | None = None) -> list[str]:
    """The one ``--set`` dialect of every command: ``KEY`` is a dotted path of the run config
    (``train.epochs=1``). A stage command works on one ``section`` and also takes that section's
    keys without the prefix: a key is relative to the section unless its first part is a
    top-level key that the section does not have.

    >>> scoped_overrides(["epochs=1", "seed=3", "train.epochs=2", "data.dir=/d", "x=2"], "train")
    ['train.epochs=1', 'train.seed=3', 'train.epochs=2', 'data.dir=/d', 'train.x=2']
    >>> scoped_overrides(["n=2", "seed=1", "teacher.top_p=0.9"], "teacher")
    ['teacher.n=2', 'seed=1', 'teacher.top_p=0.9']
    >>> scoped_overrides(["loop.iterations=1"])
    ['loop.iterations=1']
    """
    if section is None:
        return list(overrides)
    fields = SikedConfig.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
    out = []
    for item in overrides:
        if "=" not in item:  # parse_override names the bad item as given
            out.append(item)
            continue
        first = item.split("=", 1)[0].strip().split(".")[0]
        top_level = first in SikedConfig.model_fields and first not in fields
        out.append(item if top_level else f"{section}.{item.strip()}")
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for p in path[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(path)}: {p!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def build(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> Any:
    """Validate ``data`` into ``model``, raising :class:`ConfigError` naming each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, prefix)) from None


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, recursively for nested mappings (lists are replaced).

    >>> deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]})
    {'a': {'b': 1, 'c': 3}, 'd': [2]}
    """
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml_config(path: str | os.PathLike[str], _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config; ``extends: other.yaml`` (relative to this file) is merged under it."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if p.resolve() in _seen:
        raise ConfigError(f"{p}: `extends` forms a cycle")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    parent = loaded.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError(f"{p}: extends: must be a path to another YAML config")
        base = read_yaml_config(p.parent / parent, (*_seen, p.resolve()))
        loaded = deep_merge(base, loaded)
    return loaded


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    section: str | None = None,
) -> SikedConfig:
    """Load a run config from YAML (or defaults when ``path`` is None) and apply ``--set``
    overrides (:func:`scoped_overrides`: ``section`` is the stage command's own section)."""
    data: dict[str, Any] = read_yaml_config(path) if path is not None else {}
    data = apply_overrides(data, scoped_overrides(overrides or [], section))
    return build(SikedConfig, data)


def to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
