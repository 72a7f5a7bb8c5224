"""Text generation behind one interface (see :mod:`siked.engines.base`).

Engines are registered by name as ``"module:Class"`` and imported only when used, so a missing
optional dependency fails only for the engine that needs it, with the pip command to fix it.
Every engine class is constructed as ``Class(cfg, model=model, **kw)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from siked.config import EngineConfig
from siked.engines.base import (
    Completion,
    Engine,
    EngineError,
    EngineStats,
    Prompt,
    derive_seed,
    prompt_seeds,
    sample_seed,
    truncate_at_stop,
)
from siked.errors import SikedError

__all__ = [
    "ENGINES",
    "Completion",
    "Engine",
    "EngineError",
    "EngineStats",
    "Prompt",
    "derive_seed",
    "engine_class",
    "make_engine",
    "prompt_seeds",
    "register_engine",
    "sample_seed",
    "truncate_at_stop",
]

#: engine name -> "module:Class"
ENGINES: dict[str, str] = {
    "hf": "siked.engines.hf:HFEngine",
    "openai": "siked.engines.openai:OpenAIEngine",
    "vllm": "siked.engines.vllm:VLLMEngine",
    "gold": "siked.engines.gold:GoldEngine",
}

#: how to install what an engine needs, when its import fails
_INSTALL_HINTS: dict[str, str] = {
    "hf": "pip install siked  (needs torch and transformers)",
    "openai": "pip install siked  (needs the openai client)",
    "vllm": "pip install 'siked[vllm]'",
}


def register_engine(name: str, target: str) -> None:
    """Register an engine class as ``"package.module:Class"`` under ``name``."""
    if ":" not in target:
        raise ValueError(f"engine target must look like 'module:Class', got {target!r}")
    ENGINES[name] = target


def engine_class(name: str) -> type[Engine]:
    """Import and return the engine class registered as ``name``."""
    try:
        target = ENGINES[name]
    except KeyError:
        raise SikedError(
            f"unknown engine {name!r}; choose one of: {', '.join(sorted(ENGINES))}"
        ) from None
    module_name, cls_name = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (e.name == module_name or module_name.startswith(e.name + ".")):
            raise SikedError(
                f"engine {name!r} is not available: module {module_name} is missing"
            ) from None
        hint = _INSTALL_HINTS.get(name, f"pip install {e.name}")
        raise SikedError(
            f"engine {name!r} needs the Python package {e.name!r}, which is not installed: {hint}"
        ) from e
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise SikedError(f"engine {name!r}: {module_name} has no class {cls_name}")
    return cls  # type: ignore[no-any-return]


def make_engine(cfg: EngineConfig, model: str | None = None, **kw: Any) -> Engine:
    """Build the engine ``cfg.engine`` for ``model`` (default ``cfg.model``).

    Extra keyword arguments go to the engine's constructor (e.g. ``cache_dir=`` for openai,
    ``model_and_tokenizer=`` for hf, ``run_dir=`` / ``lora_modules=`` for vllm).
    """
    cls = engine_class(cfg.engine)
    return cls(cfg, model=model, **kw)  # type: ignore[call-arg]
