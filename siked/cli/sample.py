"""``siked sample``: let a student sample k solutions per question and judge them (D_self)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "sample k solutions per question from a student and judge them (D_self)"
DESCRIPTION = (
    "The student samples --k solutions per question of a dataset split (T=0.7, top_p=0.95 by "
    "default); every sample is parsed (strategy tag), validated and verified (PoT programs in "
    "the sandbox) and written as a record to --out (JSON lines); correct, valid ones are D_self. "
    "--mode free lets the student choose the strategy by its tag (SIKeD); forced pre-fills each "
    "strategy's tag in turn, k samples per strategy. --limit N takes the first N questions. "
    "Yield statistics go to sample_stats.json beside --out (or --stats). Rerunning the same "
    "command resumes; --set edits the run config, e.g. --set sample.temperature=0.8 (or "
    "--set temperature=0.8: keys of the sample section may drop the prefix)."
)


def register(p: argparse.ArgumentParser) -> None:
    from siked.cli._common import add_config_arguments, add_generation_arguments

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
    p.add_argument("--iteration", type=int, default=0, help="SIKeD iteration (default 0)")
    add_generation_arguments(p)
    add_config_arguments(p, section="sample")


def run(args: argparse.Namespace) -> int:
    from siked.cli._common import load_command_config, split_list
    from siked.config import ConfigError
    from siked.data import load_problems
    from siked.sample import format_stats, sample

    cfg = load_command_config(args, {"sample.k": args.k, "sample.mode": args.mode})
    if args.iteration < 0:
        raise ConfigError("--iteration must be >= 0")
    strategies = split_list(args.strategies) if args.strategies else list(cfg.strategies)
    problems = load_problems(
        args.dataset, args.split, limit=args.limit, data_dir=args.data_dir or cfg.data.dir
    )
    stats = sample(
        problems,
        args.model or cfg.student.model,
        cfg.sample,
        args.out,
        iteration=args.iteration,
        seed=args.seed if args.seed is not None else cfg.seed,
        strategies=strategies,
        progress=not args.quiet,
        chunk_size=args.chunk_size,
        stats_path=args.stats,
    )
    print(format_stats(stats))
    stats_path = args.stats or args.out.with_name("sample_stats.json")
    print(f"-> {args.out} ({stats['correct']} correct of {stats['samples']}), {stats_path}")
    return 0
