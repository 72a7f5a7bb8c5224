"""``siked eval``: greedy evaluation of any model (accuracy, CI, strategy mix)."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    "--set edits the run config, e.g. --set eval.batch_size=16 (or --set batch_size=16: keys "
    "of the eval section may drop the prefix)."
)


def register(p: argparse.ArgumentParser) -> None:
    from siked.cli._common import add_config_arguments, add_generation_arguments

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
    p.add_argument("--max-tokens", type=int, default=None, help="new tokens per answer")
    add_generation_arguments(p, chunk="prompts")
    add_config_arguments(p, section="eval")


def run(args: argparse.Namespace) -> int:
    from siked.cli._common import load_command_config, split_list
    from siked.config import ConfigError, DatasetSpec
    from siked.evaluate import evaluate, format_table

    cfg = load_command_config(args, {"eval.mode": args.mode, "eval.max_tokens": args.max_tokens})
    strategies = split_list(args.strategies) if args.strategies else list(cfg.strategies)
    if args.datasets:
        try:
            datasets = [DatasetSpec.parse(s) for s in split_list(args.datasets)]
        except ValueError as e:
            raise ConfigError(f"--datasets: {e}") from None
    else:
        datasets = list(cfg.data.eval)
    if not datasets:
        raise ConfigError("--datasets: no dataset given")
    result = evaluate(
        args.model or cfg.student.model,
        datasets,
        cfg.eval,
        args.out,
        strategies,
        seed=args.seed if args.seed is not None else cfg.seed,
        data_dir=args.data_dir or cfg.data.dir,
        progress=not args.quiet,
        chunk_size=args.chunk_size,
    )
    print(format_table(result))
    print(f"-> {args.out / 'eval.json'}, {args.out / 'predictions.jsonl'}")
    return 0
