"""Re-judge saved predictions with this checkout's verifier and with an older one; count changes.

    python scripts/rescore_predictions.py --base <commit> [--strategies cot,l2m,pot] \
        [--json out.json] [--examples 10] results/cpu-table/untrained/**/predictions.jsonl

Each row's ``output`` (the full response), ``forced`` and ``gold`` go through
:func:`siked.student.judge`, as at evaluation; the ``--base`` commit's siked (``git archive`` into
a temporary folder) judges the same rows in a child process. The report counts verdicts that
flip (wrong -> right, right -> wrong) and answers or rules that change, with examples.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def load_rows(paths: list[str]) -> list[dict[str, Any]]:
    rows = []
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def judge_rows(paths: list[str], strategies: list[str]) -> list[dict[str, Any]]:
    """This interpreter's siked judges every row: ``{correct, answer, rule}``."""
    from fractions import Fraction

    from siked.student import judge
    from siked.verify import parse_gold

    rows = load_rows(paths)
    items: list[tuple[str, str | None, Fraction]] = [
        (r["output"], r.get("forced"), parse_gold(r["gold"])) for r in rows
    ]
    return [
        {"correct": o.correct, "answer": o.answer, "rule": o.rule} for o in judge(items, strategies)
    ]


def export(rev: str, into: Path) -> Path:
    """The ``siked`` package of commit ``rev`` under ``into`` (``git archive``)."""
    archive = into / "src.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "siked"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def judge_at(rev: str, paths: list[str], strategies: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        src = export(rev, Path(tmp))
        env = dict(os.environ, PYTHONPATH=str(src))
        cmd = [sys.executable, __file__, "--emit", "--strategies", ",".join(strategies), *paths]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def compare(
    rows: list[dict[str, Any]], old: list[dict[str, Any]], new: list[dict[str, Any]], n: int
) -> dict[str, Any]:
    flips: dict[str, list[dict[str, Any]]] = {"wrong_to_right": [], "right_to_wrong": []}
    answer_changed = rule_changed = 0
    for row, a, b in zip(rows, old, new, strict=True):
        answer_changed += a["answer"] != b["answer"]
        rule_changed += a["rule"] != b["rule"]
        if a["correct"] != b["correct"]:
            key = "wrong_to_right" if b["correct"] else "right_to_wrong"
            flips[key].append(
                {"qid": row.get("qid"), "gold": row["gold"], "old": a, "new": b,
                 "tail": row["output"][-300:]}
            )  # fmt: skip
    return {
        "rows": len(rows),
        "correct_old": sum(a["correct"] for a in old),
        "correct_new": sum(b["correct"] for b in new),
        "wrong_to_right": len(flips["wrong_to_right"]),
        "right_to_wrong": len(flips["right_to_wrong"]),
        "answer_changed": answer_changed,
        "rule_changed": rule_changed,
        "examples": {k: v[:n] for k, v in flips.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="predictions.jsonl files")
    ap.add_argument("--base", help="the commit whose verifier gives the old verdicts")
    ap.add_argument("--strategies", default="cot,l2m,pot")
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    strategies = args.strategies.split(",")
    if args.emit:
        for v in judge_rows(args.paths, strategies):
            print(json.dumps(v))
        return 0
    if not args.base:
        ap.error("--base is required")
    rows = load_rows(args.paths)
    new = judge_rows(args.paths, strategies)
    old = judge_at(args.base, args.paths, strategies)
    report = compare(rows, old, new, args.examples)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
