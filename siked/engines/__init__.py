"""Text generation behind one interface (see :mod:`siked.engines.base`).

Engines are registered by name as ``"module:Class"`` (:func:`register_engine`) and imported
only when used, so a missing optional dependency fails only for the engine that needs it, with
the pip command to fix it. Stages build every engine the same way, :func:`make_engine`, which
calls the class's :meth:`~siked.engines.base.Engine.from_config` with the stage's
:class:`~siked.engines.base.EngineContext` (request cache, run directory, data directory): each
engine takes from it what it needs, so a registered plug-in engine gets the same as the
built-in ones. The config accepts exactly the registered names (``teacher.engine``...).

The names and their classes are kept in :mod:`siked.engine_names` (re-exported here), below
both this package and the config, which validates names there: the config imports no engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from siked.engine_names import ENGINES, INSTALL_HINTS, register_engine
from siked.engines.base import (
    Completion,
    Engine,
    EngineContext,
    EngineError,
    EngineStats,
    Prompt,
    derive_seed,
    prompt_seeds,
    sample_seed,
    truncate_at_stop,
)
from siked.errors import SikedError

if TYPE_CHECKING:
    from siked.config import EngineConfig

__all__ = [
    "ENGINES",
    "Completion",
    "Engine",
    "EngineContext",
    "EngineError",
    "EngineStats",
    "Prompt",
    "auto_dtype_of",
    "derive_seed",
    "engine_class",
    "make_engine",
    "prompt_seeds",
    "register_engine",
    "sample_seed",
    "truncate_at_stop",
]


def auto_dtype_of(cfg: EngineConfig) -> str | None:
    """What ``cfg.dtype: auto`` resolves to for ``cfg.engine`` on this machine
    (:meth:`Engine.auto_dtype`); None for an explicit dtype or an engine that does not decide
    it here."""
    return engine_class(cfg.engine).auto_dtype(cfg) if cfg.dtype == "auto" else None


def engine_class(name: str) -> type[Engine]:
    """Import and return the engine class registered as ``name``."""
    module_name, cls_name = ENGINES.get(name).split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (e.name == module_name or module_name.startswith(e.name + ".")):
            raise SikedError(
                f"engine {name!r} is not available: module {module_name} is missing"
            ) from None
        hint = INSTALL_HINTS.get(name, f"pip install {e.name}")
        raise SikedError(
            f"engine {name!r} needs the Python package {e.name!r}, which is not installed: {hint}"
        ) from e
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise SikedError(f"engine {name!r}: {module_name} has no class {cls_name}")
    return cls  # type: ignore[no-any-return]


def make_engine(
    cfg: EngineConfig,
    model: str | None = None,
    context: EngineContext | None = None,
    **kw: Any,
) -> Engine:
    """Build the engine ``cfg.engine`` for ``model`` (default ``cfg.model``).

    ``context`` tells the engine where the stage runs (:class:`EngineContext`); each engine's
    :meth:`~siked.engines.base.Engine.from_config` takes what it needs from it. Extra keyword
    arguments go to the constructor (e.g. ``cache_dir=`` for openai, ``model_and_tokenizer=``
    for hf, ``run_dir=`` / ``lora_modules=`` for vllm).
    """
    cls = engine_class(cfg.engine)
    return cls.from_config(cfg, model=model, context=context or EngineContext(), **kw)
