"""The names of the engines: what the config accepts (``teacher.engine``...) and where each
engine's class lives, as ``"module:Class"`` (imported only when used, by
:func:`siked.engines.engine_class`).

Below both the config and the engines: the config validates names here, and the engines
(which read the config) are imported by name, so neither imports the other's package.
"""

from __future__ import annotations

from siked.registry import Registry

#: engine name -> "module:Class"
ENGINES: Registry[str] = Registry("engine")

#: how to install what an engine needs, when its import fails
INSTALL_HINTS: dict[str, str] = {}


def register_engine(
    name: str, target: str, *, install_hint: str | None = None, replace: bool = False
) -> None:
    """Register an engine class as ``"package.module:Class"`` under ``name``.

    ``install_hint`` is shown when importing the module fails for a missing package
    (default: ``pip install PACKAGE``).
    """
    if ":" not in target:
        raise ValueError(f"engine target must look like 'module:Class', got {target!r}")
    ENGINES.register(name, target, replace=replace)
    if install_hint is not None:
        INSTALL_HINTS[name] = install_hint


register_engine(
    "hf",
    "siked.engines.hf:HFEngine",
    install_hint="pip install siked  (needs torch and transformers)",
)
register_engine(
    "openai",
    "siked.engines.openai:OpenAIEngine",
    install_hint="pip install siked  (needs the openai client)",
)
register_engine("vllm", "siked.engines.vllm:VLLMEngine", install_hint="pip install 'siked[vllm]'")
register_engine(
    "openvino",
    "siked.engines.openvino:OpenVINOEngine",
    install_hint="pip install 'siked[openvino]'  (and `make openvino` for the converter)",
)
register_engine("gold", "siked.engines.gold:GoldEngine")
