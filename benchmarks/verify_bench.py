"""Speed of answer checking (extraction + parsing + grading, no sandbox) per response.

Two case sets: the verifier's case tables (``tests/golden/verify_table.jsonl`` and the text
cases of ``verify_cases.jsonl``: short, LaTeX- and Markdown-heavy answers) and real responses
(the ``output`` of saved ``predictions.jsonl`` rows, judged with the generic cascade; default:
the untrained arm of results/cpu-table). Each set is checked ``--loops`` times per repeat; the
median over ``--repeats`` is reported in microseconds per response.

    python benchmarks/verify_bench.py [--repeats 5] [--loops 3] [--predictions FILE ...]
        [--base COMMIT] [--json out.json]

With ``--base`` the same cases are also timed with that commit's siked (``git archive`` into a
temporary folder), alternating old and new in separate processes, and the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
DEFAULT_PREDICTIONS = ROOT / "results/cpu-table/untrained/iter_00/eval/predictions.jsonl"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(s) for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]


def case_sets(predictions: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``{set name: [(text, gold)]}``."""
    tables = [(c["text"], str(c["gold"])) for c in _jsonl(GOLDEN / "verify_table.jsonl")]
    tables += [
        (c["text"], str(c["gold"]))
        for c in _jsonl(GOLDEN / "verify_cases.jsonl")
        if c["strategy"] != "pot"
    ]
    sets = {"case_tables": tables}
    real = [(r["output"], str(r["gold"])) for p in predictions for r in _jsonl(Path(p))]
    if real:
        sets["predictions"] = real
    return sets


def time_sets(sets: dict[str, list[tuple[str, str]]], loops: int) -> dict[str, float]:
    """Microseconds per response for each set (this interpreter's siked)."""
    from siked.verify import TEXT_ANSWER, check

    out = {}
    for name, cases in sets.items():
        for text, gold in cases[:50]:  # warm caches (compiled regexes)
            check(text, gold, TEXT_ANSWER)
        t = time.perf_counter()
        for _ in range(loops):
            for text, gold in cases:
                check(text, gold, TEXT_ANSWER)
        out[name] = (time.perf_counter() - t) / (loops * len(cases)) * 1e6
    return out


def _child(pythonpath: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--inner", "--loops", str(args.loops)]
    for p in args.predictions:
        cmd += ["--predictions", p]
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--predictions", action="append", default=None)
    ap.add_argument("--base", help="also time this commit's verifier")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.predictions is None:
        args.predictions = [str(DEFAULT_PREDICTIONS)] if DEFAULT_PREDICTIONS.exists() else []
    if args.inner:
        print(json.dumps(time_sets(case_sets(args.predictions), args.loops)))
        return 0
    sizes = {k: len(v) for k, v in case_sets(args.predictions).items()}
    runs: dict[str, list[dict[str, float]]] = {"new": [], "base": []}
    with tempfile.TemporaryDirectory() as tmp:
        base_src = None
        if args.base:
            archive = Path(tmp) / "src.tar"
            with archive.open("wb") as f:
                subprocess.run(
                    ["git", "-C", str(ROOT), "archive", args.base, "siked"], stdout=f, check=True
                )
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            base_src = tmp
        for _ in range(args.repeats):
            runs["new"].append(_child(str(ROOT), args))
            if base_src:
                runs["base"].append(_child(base_src, args))
    from siked.machine import machine_info

    report: dict[str, Any] = {"cases": sizes, "machine": machine_info()}
    print(
        f"{'set':<14}{'n':>7}{'new us/resp':>14}"
        + (f"{'base us/resp':>15}{'ratio':>8}" if args.base else "")
    )
    for name, n in sizes.items():
        new = statistics.median(r[name] for r in runs["new"])
        row: dict[str, Any] = {"n": n, "new_us": round(new, 1)}
        line = f"{name:<14}{n:>7}{new:>14.1f}"
        if args.base:
            base = statistics.median(r[name] for r in runs["base"])
            row.update(base_us=round(base, 1), ratio=round(new / base, 3))
            line += f"{base:>15.1f}{new / base:>8.2f}"
        report[name] = row
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
