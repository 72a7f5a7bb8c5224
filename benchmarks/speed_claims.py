"""The speed claims the tests used to assert with wall clocks, measured here instead.

Tests assert behaviour (``siked plan`` loads no weights, one Math-Verify process per batch, a
finished training is not redone...); how fast each piece is belongs to a quiet machine. Each
claim is timed (median of ``--repeats``) and printed with the budget the tests once held it to:

    .venv/bin/python benchmarks/speed_claims.py [--only plan,report,verify,hostile,load]
        [--repeats 3] [--json FILE]

``plan``: ``siked plan`` on every preset (budget 60 s each); ``report``: ``write_report`` of a
synthetic 3-iteration run, CPU seconds (5 s); ``verify``: 200 checks of a 1.6 k-character CoT
answer (5 s); ``hostile``: extraction of adversarial texts (2 s each); ``load``: the bundled
student's tokenizer and model from its converted checkpoint (20 s).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from siked.machine import machine_info  # noqa: E402

HOSTILE = [
    "The answer is 1e999999999.",
    "The answer is " + "9" * 5000 + ".",
    "x " * 50000,
    "[" * 10000,
]


def timed(fn: Callable[[], Any], repeats: int, clock: Callable[[], float]) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` on ``clock``."""
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def claims(repeats: int) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    def plan() -> list[dict[str, Any]]:
        from siked.cli import main

        rows = []
        for path in [ROOT / "configs" / "quickstart.yaml", *sorted(ROOT.glob("configs/*/*.yaml"))]:

            def run(path: Path = path) -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    assert main(["plan", str(path)]) == 0

            s = timed(run, repeats, time.perf_counter)
            rows.append({"claim": f"plan {path.relative_to(ROOT)}", "seconds": s, "budget": 60})
        return rows

    def report() -> list[dict[str, Any]]:
        from synthetic_run import make_synthetic_run

        from siked.report import write_report

        with tempfile.TemporaryDirectory() as tmp:
            run = make_synthetic_run(Path(tmp), "demo", iterations=3, seed=0)
            s = timed(lambda: write_report(run), repeats, time.process_time)
        return [{"claim": "report of a 3-iteration run (CPU s)", "seconds": s, "budget": 5}]

    def verify() -> list[dict[str, Any]]:
        from siked.strategies import get_strategy
        from siked.verify import check

        fmt = get_strategy("cot").answer_format
        text = (
            "Natalia sold 48/2 = 24 clips in May. She sold 48 + 24 = 72 clips altogether. " * 20
            + "The answer is 72.\n\nQuestion: Weng earns $12 an hour. The answer is 10."
        )

        def run() -> None:
            for _ in range(200):
                assert check(text, "72", fmt).correct

        return [{"claim": "200 checks of a CoT answer", "seconds": timed(run, repeats, time.perf_counter), "budget": 5}]  # fmt: skip

    def hostile() -> list[dict[str, Any]]:
        from siked.text import parse_number
        from siked.verify import extract

        rows = []
        for i, text in enumerate(HOSTILE):

            def run(text: str = text) -> None:
                extract(text)
                parse_number(text)

            s = timed(run, repeats, time.perf_counter)
            rows.append(
                {"claim": f"hostile text {i} ({len(text)} chars)", "seconds": s, "budget": 2}
            )
        return rows

    def load() -> list[dict[str, Any]]:
        from siked import models

        models.resolve_model(models.BUNDLED_STUDENT)  # converted once, outside the timing

        def run() -> None:
            models.load_tokenizer(models.BUNDLED_STUDENT)
            models.load_model(models.BUNDLED_STUDENT, device="cpu")

        s = timed(run, repeats, time.perf_counter)
        return [{"claim": "bundled student: tokenizer + model", "seconds": s, "budget": 20}]

    return {"plan": plan, "report": report, "verify": verify, "hostile": hostile, "load": load}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated claims (default: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    table = claims(a.repeats)
    names = a.only.split(",") if a.only else list(table)
    rows = [row for name in names for row in table[name]()]
    print("| claim | seconds (median) | budget | within |\n|---|---:|---:|---|")
    for r in rows:
        r["seconds"] = round(r["seconds"], 3)
        print(f"| {r['claim']} | {r['seconds']} | {r['budget']} | {r['seconds'] <= r['budget']} |")
    if a.json:
        result = {"machine": machine_info(), "repeats": a.repeats, "claims": rows}
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(r["seconds"] <= r["budget"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
