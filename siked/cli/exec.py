"""``siked exec``: run one PoT program in the sandbox and print the outcome as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from siked.errors import SikedError

HELP = "run a PoT program in the sandbox and print the result as JSON"
DESCRIPTION = (
    "Run one Python program (PoT) in the sandbox, with the same isolation and limits as the "
    "pipeline, and print one JSON object: status (ok, timeout, error, rejected, no_answer, "
    "memory), answer, error, seconds, rule. Exits 0 whatever the program did; non-zero only "
    "when siked itself fails."
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="program file, or - for stdin"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="wall-clock and CPU limit (5)"
    )
    parser.add_argument(
        "--memory-mb", type=int, default=None, metavar="MB", help="address-space limit (1024)"
    )
    parser.add_argument(
        "--prelude",
        choices=("authors", "none"),
        default=None,
        help="names defined before the program: the authors' PoT prefix, or none (default: authors)",
    )
    parser.add_argument("--stdout", action="store_true", help="include the captured stdout")


def _read_program(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    path = Path(name)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SikedError(f"program file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SikedError(f"cannot read {path}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from siked.sandbox import Limits, Sandbox

    code = _read_program(args.file)
    limits = Limits()
    try:
        if args.timeout is not None:
            limits = replace(limits, timeout_s=args.timeout, cpu_s=args.timeout)
        if args.memory_mb is not None:
            limits = replace(limits, memory_mb=args.memory_mb)
    except ValueError as e:
        raise SikedError(str(e)) from None
    with Sandbox(limits, workers=1, cache_size=0, prelude=args.prelude) as sandbox:
        result = sandbox.run(code)
    out = {k: getattr(result, k) for k in ("status", "answer", "error", "seconds", "rule")}
    if args.stdout:
        out["stdout"] = result.stdout
    print(json.dumps(out, ensure_ascii=False))
    return 0
