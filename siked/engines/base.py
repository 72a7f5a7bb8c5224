"""The one text-generation interface every engine implements.

An engine turns prompts into completions::

    with make_engine(cfg) as engine:
        rows = engine.generate(prompts, n=4, temperature=0.7, top_p=0.95, stop=["Question:"], seed=42)
    # rows[i][j] is sample j of prompt i

A prompt is either raw text (the caller already applied any chat template) or a list of chat
messages (``[{"role": "user", "content": "..."}]``), which the engine formats itself.

**Seeds.** ``seed`` is either one int (a base seed) or one seed per prompt. Sample ``j`` of prompt
``i`` depends only on ``(seed_i, j)`` (and the prompt), never on batching, ordering or on the other
prompts in the call: with a base seed ``s``, ``seed_i = derive_seed(s, prompt_key(prompt_i))``;
sample ``j`` uses ``derive_seed(seed_i, j)``. Stages derive per-question seeds the same way
(``derive_seed(seed, iteration, qid)``).

**Stop strings** are applied by every engine: the text is cut at the first occurrence of any stop
string (the stop string itself is not kept), also when a server ignores them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from siked.errors import SikedError

if TYPE_CHECKING:
    from siked.config import EngineConfig

Prompt: TypeAlias = str | list[dict[str, str]]
Seed: TypeAlias = int | Sequence[int] | None

_E = TypeVar("_E", bound="Engine")

#: Seeds are kept in [0, 2**31) so every backend accepts them (servers that use int32 seeds,
#: numpy, torch, vLLM, llama.cpp).
SEED_BITS = 31


class EngineError(SikedError):
    """Generation failed (server unreachable after all retries, bad request, model crash)."""


@dataclass
class Completion:
    """One generated sample."""

    text: str
    finish_reason: str | None  # "stop" (EOS or stop string), "length" (max_tokens), ...
    prompt_tokens: int | None
    completion_tokens: int | None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EngineStats:
    """Counters an engine keeps over its lifetime (thread-safe through :meth:`add`)."""

    requests: int = 0  # requests actually sent (HTTP requests, or forward batches for hf)
    retries: int = 0  # re-sent requests after a retryable failure
    cache_hits: int = 0  # requests answered from the persistent cache
    errors: int = 0  # failed attempts (each retry follows one error)
    prompts: int = 0  # prompts handled by generate()
    completions: int = 0  # completions returned
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # servers: per server URL, {"requests": attempts sent, "served": usable replies, "errors"}
    servers: dict[str, dict[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def add_server(self, url: str, **counts: int) -> None:
        """Count work of one server (``requests``, ``served``, ``errors``)."""
        with self._lock:
            d = self.servers.setdefault(url, {"requests": 0, "served": 0, "errors": 0})
            for k, v in counts.items():
                d[k] = d.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {}
            for f in fields(self):
                if f.name[0] == "_":
                    continue
                v = getattr(self, f.name)
                out[f.name] = {k: dict(d) for k, d in v.items()} if isinstance(v, dict) else v
            return out


def derive_seed(*parts: object) -> int:
    """A stable seed in [0, 2**31) from any JSON-serialisable parts (same parts -> same seed).

    Uses sha256, so it is identical across processes, machines and Python versions (unlike
    ``hash()``).

    >>> derive_seed(42, 0, "gsm8k-17", 3) == derive_seed(42, 0, "gsm8k-17", 3)
    True
    >>> derive_seed(1, 0) != derive_seed(1, 1)
    True
    """
    blob = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(blob.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def prompt_key(prompt: Prompt) -> str:
    """Canonical text of a prompt (used for per-prompt seeds and cache keys)."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prompt_seeds(prompts: Sequence[Prompt], seed: Seed) -> list[int | None]:
    """One seed per prompt: ``None`` stays ``None``, a base int is combined with each prompt."""
    if seed is None:
        return [None] * len(prompts)
    if isinstance(seed, int):
        return [derive_seed(seed, prompt_key(p)) for p in prompts]
    seeds: list[int | None] = [int(s) for s in seed]
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    return seeds


def sample_seed(prompt_seed: int | None, j: int) -> int | None:
    """The seed of sample ``j`` of a prompt whose seed is ``prompt_seed``."""
    return None if prompt_seed is None else derive_seed(prompt_seed, j)


def seed_or_fresh(seed: int | None) -> int:
    """``seed``, or a fresh random one for an unseeded sample (an engine that needs a number)."""
    return seed if seed is not None else secrets.randbits(31)


def merge_eos_ids(*candidates: Any) -> list[int]:
    """A model's end tokens: the ids each candidate names (an id, a list of ids or None: the
    generation config's ``eos_token_id``, the tokenizer's), once each, in order.

    >>> merge_eos_ids([2, 7], 2, None)
    [2, 7]
    """
    ids: list[int] = []
    for e in candidates:
        if e is None:
            continue
        for i in e if isinstance(e, list | tuple) else [e]:
            if int(i) not in ids:
                ids.append(int(i))
    return ids


def token_completion(
    generated: Sequence[int],
    decode: Callable[[list[int]], str],
    eos_ids: Sequence[int],
    stops: Sequence[str],
    prompt_tokens: int,
    end_reason: str = "length",
    stopped_at: int | None = None,
) -> Completion:
    """The completion of a local engine's generated token ids: cut at the first end token (or at
    ``stopped_at``, where a stop string ended the row), decoded, cut at the first stop string;
    ``finish_reason`` "stop" when cut, else ``end_reason``."""
    eos = set(eos_ids)
    n_tokens = next((k for k, t in enumerate(generated) if t in eos), len(generated))
    finish = "stop" if n_tokens < len(generated) else end_reason
    if stopped_at is not None and stopped_at <= n_tokens:
        n_tokens, finish = stopped_at, "stop"
    text, cut = truncate_at_stop(decode(list(generated[:n_tokens])), stops)
    return Completion(text, "stop" if cut else finish, prompt_tokens, n_tokens)


def generate_progress(progress: bool | str, total: int, unit: str = "sample") -> Any:
    """The progress bar of one ``generate`` call (None when ``progress`` is off; a str names it)."""
    if not progress:
        return None
    from siked.console import progress_bar

    return progress_bar(
        total, progress if isinstance(progress, str) else "generate", True, unit=unit
    )


def normalize_stop(stop: str | Sequence[str] | None) -> list[str]:
    """Stop strings as a list without empty strings or duplicates (order kept)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    return list(dict.fromkeys(s for s in stop if s))


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest occurrence of any stop string (exclusive).

    Returns the text and whether it was cut.

    >>> truncate_at_stop("x = 1\\nQuestion: y", ["Question:"])
    ('x = 1\\n', True)
    """
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


def find_command(
    command: str,
    executable: str | None,
    env_var: str,
    setting: str,
    beside: Sequence[Path],
    missing: str,
) -> str:
    """Path of an external command an engine runs: ``executable`` (the engine's ``setting``),
    else ``$env_var``, else ``command`` on PATH, else the first executable file of ``beside``;
    :class:`EngineError` with ``missing`` when there is none (with the name given and not found
    when one was named)."""
    executable = executable or os.environ.get(env_var) or None
    if executable:
        found = shutil.which(os.path.expanduser(executable))
        if not found:
            raise EngineError(
                f"{command} not found or not executable: {executable} "
                f"(engine {setting} / ${env_var})"
            )
        return found
    found = shutil.which(command)
    if found:
        return found
    for path in beside:
        if path.exists() and os.access(path, os.X_OK):
            return str(path)
    raise EngineError(missing)


def check_messages(prompt: Prompt) -> None:
    """Raise ``ValueError`` unless ``prompt`` is a str or a list of {role, content} dicts."""
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise ValueError(f"a prompt must be a str or a non-empty list of messages: {prompt!r:.200}")
    for m in prompt:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"a chat message needs 'role' and 'content': {m!r:.200}")


@dataclass(frozen=True)
class EngineContext:
    """Where a stage runs, as far as an engine may care; each engine takes what it needs
    (:meth:`Engine.from_config`)."""

    cache_dir: Path | None = None  # a persistent request cache (openai, vllm)
    run_dir: Path | None = None  # the stage's output directory (vllm: its server log)
    data_dir: str | None = None  # the dataset directory (gold)


@dataclass(frozen=True)
class GenerateRequest:
    """The settings of one :meth:`Engine.generate` call, checked and prepared."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stops: tuple[str, ...]  # no empty strings, no duplicates (:func:`normalize_stop`)
    seeds: tuple[int | None, ...]  # one per prompt (:func:`prompt_seeds`)
    progress: bool | str = False

    @property
    def samples(self) -> int:
        """Samples to generate per prompt: greedy decoding makes one and repeats it ``n`` times."""
        return 1 if self.temperature == 0 else self.n

    def seed(self, prompt: int, sample: int) -> int | None:
        """The seed of sample ``sample`` of prompt ``prompt`` (:func:`sample_seed`)."""
        return sample_seed(self.seeds[prompt], sample)


#: the context of a stage that tells an engine nothing
NO_CONTEXT = EngineContext()

#: generations per call a stage aims at by default (servers batch well; requests are cached)
DEFAULT_CHUNK_GENERATIONS = 2048


class Engine(ABC):
    """Base class of every engine; use as a context manager so resources are released."""

    name: str = "engine"

    def __init__(self) -> None:
        self.stats = EngineStats()

    @classmethod
    def from_config(
        cls: type[_E],
        cfg: EngineConfig,
        model: str | None = None,
        context: EngineContext = NO_CONTEXT,
        **kw: Any,
    ) -> _E:
        """Build the engine for a stage (:func:`siked.engines.make_engine`): the constructor
        gets ``cfg``, ``model``, what :meth:`context_kwargs` takes from ``context`` and ``kw``
        (which wins)."""
        return cls(cfg, model=model, **{**cls.context_kwargs(context), **kw})  # type: ignore[call-arg]

    @classmethod
    def context_kwargs(cls, context: EngineContext) -> dict[str, Any]:
        """The constructor's keyword arguments taken from a stage's context: an engine that keeps
        a request cache, a server log or reads data names them here. Default: none."""
        return {}

    @classmethod
    def check_ready(cls, cfg: EngineConfig) -> None:
        """Raise :class:`EngineError` now if this engine cannot run here (a package or a
        command it needs is missing), so that a run fails before its first stage rather than
        after a training. Default: nothing to check."""
        return None

    @classmethod
    def auto_dtype(cls, cfg: EngineConfig) -> str | None:
        """What ``dtype: auto`` computes in on this machine, where the engine decides it here
        (a local model): part of a stage's resume fingerprint, so that rows made in one
        precision are not continued in another. None: decided elsewhere (a server) or not at
        all. Default: None."""
        return None

    @property
    def chunk_generations(self) -> int:
        """Generations one call should carry to keep this engine busy: what a stage's automatic
        chunk size aims at (:func:`siked.student.auto_chunk_size`)."""
        return DEFAULT_CHUNK_GENERATIONS

    def generate(
        self,
        prompts: Sequence[Prompt],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        seed: int | Sequence[int] | None = None,
        progress: bool | str = False,
    ) -> list[list[Completion]]:
        """Return ``n`` completions for each prompt, in prompt order.

        ``temperature == 0`` is greedy decoding. ``progress`` shows a progress bar (a str is
        used as its description). The arguments are checked and the stop strings and per-prompt
        seeds prepared here, once (:func:`prepare_generate`); the engine generates in
        :meth:`_generate`; the call is counted in :attr:`stats` (``prompts``, ``completions``).
        """
        stops, seeds = prepare_generate(prompts, n, temperature, top_p, max_tokens, stop, seed)
        request = GenerateRequest(
            n, temperature, top_p, max_tokens, tuple(stops), tuple(seeds), progress
        )
        rows = self._generate(list(prompts), request)
        if len(rows) != len(prompts) or any(len(r) != n for r in rows):
            raise EngineError(
                f"{self.name}: {[len(r) for r in rows]} completions for {len(prompts)} "
                f"prompts x {n}"
            )
        self.stats.add(prompts=len(prompts), completions=len(prompts) * n)
        return rows

    @abstractmethod
    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        """``request.n`` completions for each of ``prompts`` (checked), in prompt order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (model memory, server process, connections)."""

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def prepare_generate(
    prompts: Sequence[Prompt],
    n: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    stop: str | Sequence[str] | None,
    seed: Seed,
) -> tuple[list[str], list[int | None]]:
    """What every engine's ``generate`` does first: check its arguments, then the stop strings
    (:func:`normalize_stop`) and one seed per prompt (:func:`prompt_seeds`)."""
    check_generate_args(prompts, n, temperature, top_p, max_tokens)
    return normalize_stop(stop), prompt_seeds(prompts, seed)


def check_generate_args(
    prompts: Sequence[Prompt], n: int, temperature: float, top_p: float, max_tokens: int
) -> None:
    """Validate the common ``generate`` arguments, raising ``ValueError`` with a clear message."""
    if isinstance(prompts, str):
        raise ValueError("prompts must be a sequence of prompts, not a single str")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    for p in prompts:
        check_messages(p)
