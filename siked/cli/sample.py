"""``siked sample``: let a student sample k solutions per question and judge them (D_self)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "sample k solutions per question from a student and judge them (D_self)"
DESCRIPTION = (
    "The student samples --k solutions per question of a dataset split (T=0.7, top_p=0.95 by "
    "default); every sample is parsed (strategy tag), validated and verified (PoT programs in "
    "the sandbox) and written as a record to --out (JSON lines); correct, valid ones are D_self. "
    "--mode free lets the student choose the strategy by its tag (SIKeD); forced pre-fills each "
    "strategy's tag in turn, k samples per strategy. --limit N takes the first N questions. "
    "Yield statistics go to sample_stats.json beside --out (or --stats). Rerunning the same "
    "command resumes; --set key=value edits the sample config (engine, temperature, ...)."
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="student directory or hub id (default: the config's student)",
    )
    p.add_argument("--dataset", default="gsm8k", help="dataset name (default: gsm8k)")
    p.add_argument("--split", default="train", help="split (default: train)")
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    p.add_argument("--out", required=True, type=Path, help="output file (samples.jsonl)")
    p.add_argument("--stats", type=Path, default=None, help="stats file (default: beside --out)")
    p.add_argument("--k", type=int, default=None, help="samples per question (default 10)")
    p.add_argument("--mode", choices=["free", "forced"], default=None, help="default: free")
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
        help="sample config override, e.g. temperature=0.8 (repeatable)",
    )
    p.add_argument("--iteration", type=int, default=0, help="SIKeD iteration (default 0)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: the config's, 42)")
    p.add_argument("--config", type=Path, default=None, help="run config for the defaults")
    p.add_argument("--data-dir", default=None, help="data directory (default: $SIKED_DATA_DIR)")
    p.add_argument("--chunk-size", type=int, default=None, help="questions per resumable chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from siked.cli.eval import split_list
    from siked.config import ConfigError, SampleConfig, apply_overrides, build, load_config
    from siked.data import load_problems
    from siked.sample import format_stats, sample

    base = load_config(args.config) if args.config else load_config(None)
    data: dict[str, Any] = base.sample.model_dump()
    data = apply_overrides(data, list(args.overrides))
    if args.k is not None:
        data["k"] = args.k
    if args.mode is not None:
        data["mode"] = args.mode
    cfg: SampleConfig = build(SampleConfig, data)
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError("--chunk-size must be >= 1")
    if args.iteration < 0:
        raise ConfigError("--iteration must be >= 0")
    strategies = split_list(args.strategies) if args.strategies else list(base.strategies)
    problems = load_problems(
        args.dataset, args.split, limit=args.limit, data_dir=args.data_dir or base.data.dir
    )
    stats = sample(
        problems,
        args.model or base.student.model,
        cfg,
        args.out,
        iteration=args.iteration,
        seed=args.seed if args.seed is not None else base.seed,
        strategies=strategies,
        progress=not args.quiet,
        chunk_size=args.chunk_size,
        stats_path=args.stats,
    )
    print(format_stats(stats))
    stats_path = args.stats or args.out.with_name("sample_stats.json")
    print(f"-> {args.out} ({stats['correct']} correct of {stats['samples']}), {stats_path}")
    return 0
