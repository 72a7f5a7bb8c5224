"""``siked teach``: teacher rationales for every training question and strategy -> D_LLM."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write teacher rationales for every question and strategy, keep the correct ones (D_LLM)"
DESCRIPTION = """\
The teacher writes --n rationales per question and strategy (few-shot prompt of each strategy),
every one is validated and verified against the gold answer (PoT programs run in the sandbox),
and the correct, valid ones are kept (at most keep_per_strategy per question and strategy).

  siked teach --engine gold --dataset gsm8k --split train --out runs/teacher
  siked teach --engine openai --model meta-llama/Llama-3.1-70B-Instruct \\
      --base-url http://localhost:8000/v1 --limit 500 --out runs/teacher --set teacher.n=4

Writes samples.jsonl (every sample), kept.jsonl (D_LLM) and stats.json into --out. Rerunning
the same command resumes where a killed run stopped, without asking the engine again.
Settings come from the teacher section of --config, then --set (teacher.n=4, or n=4: the
keys of the teacher section may drop the prefix), then the flags. The gold engine answers from
GSM8K's human solutions (offline)."""


def register(p: argparse.ArgumentParser) -> None:
    from siked.cli._common import add_config_arguments, add_generation_arguments

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--engine", default=None, help="gold, hf, openai or vllm (default: gold)")
    p.add_argument("--model", default=None, help="teacher model (hub id, path or served name)")
    p.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://host:8000/v1")
    p.add_argument("--dataset", default=None, help="dataset (default: the config's, gsm8k)")
    p.add_argument("--split", default=None, help="split (default: the config's, train)")
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    p.add_argument("--n", type=int, default=None, help="samples per question and strategy")
    add_generation_arguments(p)
    add_config_arguments(p, section="teacher")


def run(args: argparse.Namespace) -> int:
    from siked.cli._common import load_command_config
    from siked.data import load_problems
    from siked.strategies import get_strategies
    from siked.teach import format_stats, teach

    flags = {"engine": args.engine, "model": args.model, "base_url": args.base_url, "n": args.n}
    flags["chunk_size"] = args.chunk_size
    cfg = load_command_config(args, {f"teacher.{k}": v for k, v in flags.items()})
    strategies = [s.name for s in get_strategies(args.strategies or list(cfg.strategies))]
    spec = cfg.data.train
    dataset = args.dataset or spec.name
    split = args.split or (spec.split if args.dataset in (None, spec.name) else "train")
    limit = args.limit if args.limit is not None else spec.limit
    data_dir = args.data_dir or cfg.data.dir
    problems = load_problems(dataset, split, limit=limit, data_dir=data_dir)
    stats = teach(
        problems,
        cfg.teacher,
        args.out,
        strategies,
        seed=args.seed if args.seed is not None else cfg.seed,
        progress=not args.quiet,
        data_dir=data_dir,
    )
    print(format_stats(stats))
    print(
        f"-> {args.out}/kept.jsonl ({stats['kept']} rationales), samples.jsonl, stats.json "
        f"[{stats['engine']}, {stats['seconds']:.1f}s]"
    )
    return 0
