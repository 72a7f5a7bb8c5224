"""``siked check``: judge one model output against a gold answer and print the verdict as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from siked.errors import SikedError

HELP = "judge one model output against a gold answer (prints a JSON verdict)"
DESCRIPTION = (
    "Read a model output from FILE (or stdin), extract its final answer the way every siked "
    "stage does, and print one JSON object: strategy, answer, correct, rule, status, error, "
    "fallback, gold. The strategy is --strategy, else the output's leading tag ([cot]: ...), "
    "else cot. PoT programs run in the sandbox. The exit status is 0 whatever the verdict."
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gold", required=True, help="gold answer, e.g. 72, -3, 7/2, 1200.5")
    parser.add_argument(
        "--strategy",
        default=None,
        help="a registered strategy: cot, l2m, pot (default: the output's leading tag, else cot)",
    )
    parser.add_argument(
        "--math-verify",
        action="store_true",
        help="add Math-Verify's opinion as 'math_verify' (needs: pip install math-verify)",
    )
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="model output; '-' or none: stdin"
    )


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        raise SikedError(f"no such file: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SikedError(f"cannot read {p}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from siked import verify
    from siked.strategies import get_strategy
    from siked.text import format_number, parse_tag

    gold = verify.parse_gold(args.gold)
    text = _read(args.file)
    tag, rest = parse_tag(text)
    strategy = get_strategy(args.strategy or tag or "cot")  # an unknown one names the choices
    if tag is not None:  # a tag is never part of the rationale
        text = rest
    verdict = strategy.extract(text, gold)
    out = verdict.to_dict()
    out["gold"] = format_number(gold)
    if args.math_verify:
        pred = (verdict.answer or "") if strategy.program else text
        out["math_verify"] = verify.second_opinion(pred, gold) if pred.strip() else False
    print(json.dumps(out, ensure_ascii=False))
    return 0
