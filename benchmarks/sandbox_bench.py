"""Throughput of PoT program execution: siked's sandbox against two reference points.

1. ``Sandbox.run_many`` (every limit on, cache off), warm workers;
2. a fresh ``python -I -c`` subprocess per program (the usual way to isolate), run with the same
   parallelism;
3. in-process ``exec`` (no isolation at all: the unsafe upper bound), one thread.

All three run the same synthetic GSM8K-style programs (3-6 lines of arithmetic assigning
``answer``) in one invocation; each is repeated and the median is reported. A fourth row shows
the sandbox on programs that import sympy (served by the "full" workers), and, under the
``authors`` prelude (``sandbox.prelude``, the default), a fifth row programs in the authors' style
that use the prelude's ``Symbol``, ``Eq`` and ``solve_it`` without importing anything.

    python benchmarks/sandbox_bench.py [--n 300] [--repeats 3] [--workers N] \
        [--prelude authors|none] [--json out.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from siked.machine import machine_info
from siked.sandbox import Limits, Sandbox

NAMES = ["apples", "pens", "books", "cookies", "cars", "miles", "hours", "dollars", "eggs", "cups"]


def gsm8k_program(rng: random.Random, sympy: bool = False) -> str:
    """A typical GSM8K PoT program: a few named quantities, arithmetic, ``answer``."""
    a, b, c = rng.sample(NAMES, 3)
    lines = [
        f"{a} = {rng.randint(2, 500)}",
        f"{b} = {rng.randint(2, 60)}",
        f"price_per_{c} = {rng.choice([0.25, 0.5, 1.5, 2, 3, 4.75, 12])}",
    ]
    steps = [
        f"total_{a} = {a} * {b}",
        f"remaining = total_{a} - {rng.randint(1, 99)}",
        f"cost = remaining * price_per_{c}",
        f"share = cost / {rng.randint(2, 9)}",
    ]
    lines += steps[: rng.randint(1, 3)]
    last = lines[-1].split(" = ")[0]
    if sympy:
        lines = ["import sympy", *lines, f"answer = sympy.nsimplify({last})"]
    else:
        lines.append(f"answer = {last}")
    return "\n".join(lines) + "\n"


def authors_program(rng: random.Random) -> str:
    """A PoT program in the authors' style: one equation solved with the prelude's names."""
    a, b = rng.randint(2, 12), rng.randint(1, 50)
    x = rng.randint(1, 40)
    name = rng.choice(NAMES)
    return (
        f"{name} = Symbol('{name}')\n"
        f"equation = Eq({a} * {name} + {b}, {a * x + b})\n"
        f"solution = solve_it(equation, {name})\n"
        f"answer = solution[{name}] * sqrt({rng.randint(1, 9) ** 2})\n"
    )


def make_programs(n: int, seed: int = 0, sympy: bool = False) -> list[str]:
    rng = random.Random(seed)
    return [gsm8k_program(rng, sympy) + f"# program {i}\n" for i in range(n)]


def reference_answer(code: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["answer"]


def run_sandbox(sandbox: Sandbox, codes: list[str]) -> list[str | None]:
    return [r.answer for r in sandbox.run_many(codes)]


def run_subprocesses(codes: list[str], workers: int) -> list[str | None]:
    def one(code: str) -> str | None:
        done = subprocess.run(
            [sys.executable, "-I", "-c", code + "print(answer)\n"],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": os.defpath},
        )
        return done.stdout.strip() or None

    with concurrent.futures.ThreadPoolExecutor(workers) as executor:
        return list(executor.map(one, codes))


def run_in_process(codes: list[str]) -> list[Any]:
    return [reference_answer(code) for code in codes]


def measure(fn: Callable[[], Any], n: int, repeats: int) -> tuple[float, Any]:
    rates, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="programs per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--prelude", choices=("authors", "none"), default="authors")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    codes = make_programs(args.n)
    expected = run_in_process(codes)
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    sandbox = Sandbox(Limits(), workers=args.workers, cache_size=0, prelude=args.prelude)
    sandbox.start(full=True)
    startup = time.perf_counter() - start
    with sandbox:
        sb_rate, sb_answers = measure(lambda: run_sandbox(sandbox, codes), args.n, args.repeats)
        sympy_codes = make_programs(max(1, args.n // 3), seed=1, sympy=True)
        sympy_rate, sympy_answers = measure(
            lambda: run_sandbox(sandbox, sympy_codes), len(sympy_codes), args.repeats
        )
        authors_rate, bad_authors = None, None
        if args.prelude == "authors":
            rng = random.Random(2)
            authors_codes = [
                authors_program(rng) + f"# program {i}\n" for i in range(max(1, args.n // 3))
            ]
            authors_rate, authors_answers = measure(
                lambda: run_sandbox(sandbox, authors_codes), len(authors_codes), args.repeats
            )
            bad_authors = sum(1 for a in authors_answers if a is None)
        limits = sandbox.limits.to_dict()
        isolation = sandbox.isolation
    sub_rate, sub_answers = measure(
        lambda: run_subprocesses(codes, args.workers), args.n, args.repeats
    )
    exec_rate, _ = measure(lambda: run_in_process(codes), args.n, max(args.repeats, 5))

    mismatches = sum(
        1
        for got_sb, got_sub, want in zip(sb_answers, sub_answers, expected, strict=True)
        if got_sb is None or got_sub is None or float(got_sb) != float(want) != float(got_sub)
    )
    bad_sympy = sum(1 for a in sympy_answers if a is None)
    report = {
        "machine": {**machine_info(), "load_average_before": round(load_before, 2)},
        "programs": args.n,
        "repeats": args.repeats,
        "workers": args.workers,
        "prelude": args.prelude,
        "limits": limits,
        "isolation": isolation,
        "sandbox_startup_s": round(startup, 2),
        "programs_per_s": {
            "sandbox": round(sb_rate, 1),
            "subprocess_per_program": round(sub_rate, 1),
            "in_process_exec": round(exec_rate, 1),
            "sandbox_sympy_programs": round(sympy_rate, 1),
            "sandbox_solve_it_programs": None if authors_rate is None else round(authors_rate, 1),
        },
        "ratios": {
            "sandbox_vs_subprocess": round(sb_rate / sub_rate, 2),
            "in_process_vs_sandbox": round(exec_rate / sb_rate, 1),
        },
        "answer_mismatches": mismatches,
        "sympy_programs_without_answer": bad_sympy,
        "solve_it_programs_without_answer": bad_authors,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
