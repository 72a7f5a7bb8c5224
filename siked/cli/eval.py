"""``siked eval``: greedy evaluation of any model (accuracy, CI, strategy mix)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = (
    "evaluate a model greedily: accuracy with 95% CI, strategy distribution, per-strategy accuracy"
)
DESCRIPTION = (
    "Evaluate a model (a siked student, a local directory, a hub id, or the bundled default "
    "student as a baseline) with greedy decoding on dataset slices such as gsm8k:test:200 or "
    "svamp:100 (a limit takes a seeded random subset: the same one on every run with the same "
    "--seed). Writes OUT/eval.json and OUT/predictions.jsonl (every prediction) and prints a "
    "table. --mode free lets the student choose its strategy by its tag; forced pre-fills the "
    "tag of each --strategy in turn (one strategy for single-strategy baselines); all forces "
    "every strategy and adds the oracle accuracy. Rerunning the same command resumes. "
    "--set key=value edits the eval config (engine, max_tokens, batch_size, base_url, ...)."
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model directory or hub id (default: the config's student, "
        "bundled:smollm2-135m-instruct)",
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated NAME[:SPLIT][:LIMIT] (default: the config's data.eval)",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--mode", choices=["free", "forced", "all"], default=None, help="default: free")
    p.add_argument(
        "--strategy",
        "--strategies",
        dest="strategies",
        default=None,
        help="comma-separated strategies (default: the config's, cot,l2m,pot)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="eval config override, e.g. max_tokens=256 (repeatable)",
    )
    p.add_argument("--max-tokens", type=int, default=None, help="new tokens per answer")
    p.add_argument("--seed", type=int, default=None, help="subset seed (default: the config's, 42)")
    p.add_argument("--config", type=Path, default=None, help="run config for the defaults")
    p.add_argument("--data-dir", default=None, help="data directory (default: $SIKED_DATA_DIR)")
    p.add_argument("--chunk-size", type=int, default=None, help="prompts per resumable chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``.

    >>> split_list("gsm8k:test:200, svamp:100")
    ['gsm8k:test:200', 'svamp:100']
    """
    return [s.strip() for s in value.split(",") if s.strip()]


def run(args: argparse.Namespace) -> int:
    from siked.config import (
        ConfigError,
        DatasetSpec,
        EvalConfig,
        apply_overrides,
        build,
        load_config,
    )
    from siked.evaluate import evaluate, format_table

    base = load_config(args.config) if args.config else load_config(None)
    data: dict[str, Any] = base.eval.model_dump()
    data = apply_overrides(data, list(args.overrides))
    if args.mode is not None:
        data["mode"] = args.mode
    if args.max_tokens is not None:
        data["max_tokens"] = args.max_tokens
    cfg: EvalConfig = build(EvalConfig, data)
    strategies = split_list(args.strategies) if args.strategies else list(base.strategies)
    if args.datasets:
        try:
            datasets = [DatasetSpec.parse(s) for s in split_list(args.datasets)]
        except ValueError as e:
            raise ConfigError(f"--datasets: {e}") from None
    else:
        datasets = list(base.data.eval)
    if not datasets:
        raise ConfigError("--datasets: no dataset given")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError("--chunk-size must be >= 1")
    model = args.model or base.student.model
    seed = args.seed if args.seed is not None else base.seed
    result = evaluate(
        model,
        datasets,
        cfg,
        args.out,
        strategies,
        seed=seed,
        data_dir=args.data_dir or base.data.dir,
        progress=not args.quiet,
        chunk_size=args.chunk_size,
    )
    print(format_table(result))
    print(f"-> {args.out / 'eval.json'}, {args.out / 'predictions.jsonl'}")
    return 0
