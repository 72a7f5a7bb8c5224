"""Arguments shared by the subcommands, defined once: the run config and its ``--set``
overrides (one dialect everywhere, :func:`siked.config.scoped_overrides`) and the flags of the
stages that generate (teach, sample, eval)."""

from __future__ import annotations

import argparse
from typing import Any

#: an override of each section for the example in ``--set``'s help
_EXAMPLE = {
    "teacher": "n=4",
    "train": "epochs=1",
    "sample": "k=4",
    "mix": "variant=adaptive",
    "eval": "max_tokens=256",
}


def set_help(section: str | None) -> str:
    """The ``--set`` help: the one dialect, with an example for the command.

    >>> set_help("train")  # doctest: +ELLIPSIS
    '...keys of the train section may drop the prefix, e.g. --set train.epochs=1 or --set epochs=1...'
    """
    if section is None:
        return (
            "override a config key: a dotted path of the run config, the value read as YAML, "
            "e.g. --set train.epochs=1 (repeatable)"
        )
    example = _EXAMPLE[section]
    return (
        "override a config key: a dotted path of the run config, the value read as YAML; keys "
        f"of the {section} section may drop the prefix, e.g. --set {section}.{example} or "
        f"--set {example} (repeatable)"
    )


def add_config_arguments(
    p: argparse.ArgumentParser, section: str | None = None, positional: bool = False
) -> None:
    """The run config (a positional ``CONFIG`` for ``run``/``plan``, else ``--config``) and
    ``--set KEY=VALUE``; ``section`` is the command's own section (bare keys are its keys)."""
    if positional:
        p.add_argument("config", help="YAML config (see configs/ and docs/configuration.md)")
    else:
        p.add_argument(
            "--config", default=None, help="a run config (YAML) for the defaults (else built-in)"
        )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=set_help(section),
    )
    p.set_defaults(_config_section=section)


def add_generation_arguments(p: argparse.ArgumentParser, *, chunk: str = "questions") -> None:
    """Flags of the stages that generate: strategies, seed, data directory, chunk, quiet."""
    p.add_argument(
        "--strategies",
        "--strategy",
        dest="strategies",
        default=None,
        help="comma-separated strategies (default: the config's, cot,l2m,pot)",
    )
    p.add_argument("--seed", type=int, default=None, help="base seed (default: the config's, 42)")
    p.add_argument("--data-dir", default=None, help="data directory (default: $SIKED_DATA_DIR)")
    p.add_argument("--chunk-size", type=int, default=None, help=f"{chunk} per resumable chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def load_command_config(args: argparse.Namespace, flags: dict[str, Any] | None = None) -> Any:
    """The run config of a command: ``--config`` (or the positional one), then ``--set``, then
    the command's own flags (``{"sample.k": 2}``; None values are left out)."""
    from siked.config import ConfigError, load_config

    overrides = list(args.overrides)
    for key, value in (flags or {}).items():
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "chunk_size", None) is not None and args.chunk_size < 1:
        raise ConfigError("--chunk-size must be >= 1")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1")
    cfg = load_config(args.config, overrides, section=getattr(args, "_config_section", None))
    from siked.sandbox import set_default_prelude

    set_default_prelude(cfg.sandbox.prelude)  # every sandbox the command builds runs it
    return cfg


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``.

    >>> split_list("gsm8k:test:200, svamp:100")
    ['gsm8k:test:200', 'svamp:100']
    """
    return [s.strip() for s in value.split(",") if s.strip()]
