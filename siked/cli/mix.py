"""``siked mix``: build one iteration's training set from D_LLM and the student's samples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "mix the student's correct samples (D_self) with teacher data (D_LLM) into a training set"
DESCRIPTION = (
    "Mix D_self (correct student samples) with D_LLM (kept teacher rationales) into "
    "OUT/train.jsonl and OUT/stats.json. Variants: all = D_self + all of D_LLM; adaptive = "
    "D_self + D_LLM for questions the student did not solve; self = D_self only. --bias keeps "
    "one rationale per question (pot: pot > cot > l2m; cot: cot > pot > l2m; l2m: l2m > pot > "
    "cot; none: keep all). --alpha is the teacher share: auto (what the variant yields), a "
    "number in [0, 1], or START:END for a linear schedule over the iterations. Defaults come "
    "from --config (a run's config.yaml) when given, else from the built-in defaults."
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, type=Path, help="D_LLM: teacher/kept.jsonl")
    p.add_argument(
        "--student",
        type=Path,
        default=None,
        help="student samples (iter_NN/samples.jsonl of the previous model); omit for iteration 0",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory (an iter_NN/)")
    p.add_argument("--config", type=Path, default=None, help="run config for the defaults")
    p.add_argument(
        "--variant", choices=["all", "adaptive", "self"], default=None, help="default: all"
    )
    p.add_argument(
        "--bias",
        choices=["pot", "cot", "l2m", "none"],
        default=None,
        help="one rationale per question by strategy priority (default: pot)",
    )
    p.add_argument("--alpha", default=None, help="auto | NUMBER | START:END (default: auto)")
    p.add_argument("--kl-epsilon", type=float, default=None, help="KL smoothing (default 1e-6)")
    p.add_argument(
        "--iteration",
        type=int,
        default=None,
        help="the iteration being built (default: 1 with --student, else 0)",
    )
    p.add_argument(
        "--iterations", type=int, default=None, help="SIKeD iterations in all (for schedules)"
    )
    p.add_argument("--strategies", default=None, help="comma-separated (default: cot,l2m,pot)")
    p.add_argument("--seed", type=int, default=None, help="subsampling seed (default 42)")


def parse_alpha(value: str) -> Any:
    """``auto``, a number, or ``START:END`` -> the ``MixConfig.alpha`` value.

    >>> parse_alpha("auto"), parse_alpha("0.5"), parse_alpha("0.9:0.2")
    ('auto', 0.5, {'start': 0.9, 'end': 0.2})
    """
    v = value.strip()
    if v == "auto":
        return v
    for sep in (":", ","):
        if sep in v:
            start, end = v.split(sep, 1)
            return {"start": float(start), "end": float(end)}
    return float(v)


def run(args: argparse.Namespace) -> int:
    from siked.config import MixConfig, build, load_config
    from siked.io import atomic_write_json, read_jsonl, write_jsonl
    from siked.lock import output_lock
    from siked.mix import MixError, mix

    base = load_config(args.config) if args.config else load_config(None)
    data: dict[str, Any] = base.mix.model_dump()
    if args.variant is not None:
        data["variant"] = args.variant
    if args.bias is not None:
        data["bias"] = args.bias
    if args.alpha is not None:
        try:
            data["alpha"] = parse_alpha(args.alpha)
        except ValueError:
            raise MixError(
                f"--alpha {args.alpha!r}: expected auto, a number or START:END"
            ) from None
    if args.kl_epsilon is not None:
        data["kl_epsilon"] = args.kl_epsilon
    cfg: MixConfig = build(MixConfig, data, prefix="mix.")
    strategies = (
        [s.strip() for s in args.strategies.split(",") if s.strip()]
        if args.strategies
        else list(base.strategies)
    )
    iteration = args.iteration if args.iteration is not None else (1 if args.student else 0)
    iterations = args.iterations if args.iterations is not None else max(base.loop.iterations, 1)
    seed = args.seed if args.seed is not None else base.seed

    if not args.teacher.is_file():
        raise MixError(f"teacher file not found: {args.teacher}")
    if args.student is not None and not args.student.is_file():
        raise MixError(f"student samples file not found: {args.student}")
    with output_lock(args.out, "mix"):
        teacher = read_jsonl(args.teacher)
        student = read_jsonl(args.student) if args.student is not None else []
        result = mix(teacher, student, cfg, iteration, iterations, strategies, seed)
        if not result.rows:
            raise MixError(
                f"the mix is empty (variant {cfg.variant}, {len(teacher)} teacher rows, "
                f"{len(student)} student rows): nothing to train on"
            )
        write_jsonl(args.out / "train.jsonl", result.rows)
        atomic_write_json(args.out / "stats.json", result.stats)
    st = result.stats
    print(
        f"{st['rows']} rows -> {args.out / 'train.jsonl'} (alpha {st['alpha']}, "
        f"target {st['alpha_target']}, kl {st['kl']})"
    )
    print(json.dumps({"p_train": st["p_train"], "counts": st["counts"]}, sort_keys=True))
    return 0
