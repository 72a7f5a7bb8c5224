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
Settings come from the teacher section of --config, then --set teacher.KEY=VALUE, then the
flags. The gold engine answers from GSM8K's human solutions (offline)."""


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--engine", default=None, help="gold, hf, openai or vllm (default: gold)")
    p.add_argument("--model", default=None, help="teacher model (hub id, path or served name)")
    p.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://host:8000/v1")
    p.add_argument("--dataset", default=None, help="dataset (default: the config's, gsm8k)")
    p.add_argument("--split", default=None, help="split (default: the config's, train)")
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    p.add_argument(
        "--strategies",
        "--strategy",
        dest="strategies",
        default=None,
        help="comma-separated strategies (default: the config's, cot,l2m,pot)",
    )
    p.add_argument("--n", type=int, default=None, help="samples per question and strategy")
    p.add_argument("--chunk-size", type=int, default=None, help="questions per resumable chunk")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: the config's, 42)")
    p.add_argument("--config", type=Path, default=None, help="run config (YAML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. teacher.temperature=0.7 (a bare key means teacher.KEY)",
    )
    p.add_argument("--data-dir", default=None, help="data directory (default: $SIKED_DATA_DIR)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def teacher_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items (bare keys prefixed with ``teacher.``) followed by the flags.

    >>> ns = argparse.Namespace(overrides=["n=2", "teacher.top_p=0.9", "seed=1"], engine="gold",
    ...     model=None, base_url=None, n=None, chunk_size=5)
    >>> teacher_overrides(ns)
    ['teacher.n=2', 'teacher.top_p=0.9', 'seed=1', 'teacher.engine=gold', 'teacher.chunk_size=5']
    """
    from siked.config import SikedConfig

    top = set(SikedConfig.model_fields)
    out = []
    for item in args.overrides:
        key = item.split("=", 1)[0].strip()
        out.append(item if key.split(".")[0] in top else f"teacher.{item}")
    flags = {
        "engine": args.engine,
        "model": args.model,
        "base_url": args.base_url,
        "n": args.n,
        "chunk_size": args.chunk_size,
    }
    out += [f"teacher.{k}={v}" for k, v in flags.items() if v is not None]
    return out


def run(args: argparse.Namespace) -> int:
    from siked.config import ConfigError, load_config
    from siked.data import load_problems
    from siked.strategies import get_strategies
    from siked.teach import format_stats, teach

    cfg = load_config(args.config, teacher_overrides(args))
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1")
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
