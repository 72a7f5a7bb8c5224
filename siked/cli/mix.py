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
    "from --config (a run's config.yaml) when given, else from the built-in defaults; --set "
    "edits any key, e.g. --set mix.adaptive_scope=question (or --set adaptive_scope=question)."
)


def register(p: argparse.ArgumentParser) -> None:
    from siked.cli._common import add_config_arguments

    p.add_argument("--teacher", required=True, type=Path, help="D_LLM: teacher/kept.jsonl")
    p.add_argument(
        "--student",
        type=Path,
        default=None,
        help="student samples (iter_NN/samples.jsonl of the previous model); omit for iteration 0",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory (an iter_NN/)")
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
    add_config_arguments(p, section="mix")


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
    from siked.cli._common import load_command_config, split_list
    from siked.mix import MixError, mix_files

    alpha = None
    if args.alpha is not None:
        try:
            alpha = json.dumps(parse_alpha(args.alpha))  # JSON is YAML: the --set value
        except ValueError:
            raise MixError(
                f"--alpha {args.alpha!r}: expected auto, a number or START:END"
            ) from None
    flags = {"variant": args.variant, "bias": args.bias, "alpha": alpha}
    flags["kl_epsilon"] = args.kl_epsilon
    cfg = load_command_config(args, {f"mix.{k}": v for k, v in flags.items()})
    strategies = split_list(args.strategies) if args.strategies else list(cfg.strategies)
    iteration = args.iteration if args.iteration is not None else (1 if args.student else 0)
    iterations = args.iterations if args.iterations is not None else max(cfg.loop.iterations, 1)
    seed = args.seed if args.seed is not None else cfg.seed
    result = mix_files(
        args.teacher, args.student, args.out, cfg.mix, iteration, iterations, strategies, seed
    )
    st = result.stats
    print(
        f"{st['rows']} rows -> {args.out / 'train.jsonl'} (alpha {st['alpha']}, "
        f"target {st['alpha_target']}, kl {st['kl']})"
    )
    print(json.dumps({"p_train": st["p_train"], "counts": st["counts"]}, sort_keys=True))
    return 0
