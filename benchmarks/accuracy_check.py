"""Does an engine evaluate the same model to the same result? Accuracy and strategy mix side by side.

The check the CPU-speed issue asks of an engine whose greedy outputs are not those of
transformers token for token (bf16, quantized): the same model evaluated by ``siked eval`` with
each engine on the same questions; per dataset, the candidate's accuracy must lie within the
Wilson 95 % interval of the reference's, and its strategy distribution within ``--max-pp``
percentage points of the reference's for every strategy. Also shown: how many predictions have
the same answer and the same text as the reference's.

Engines are ``hf`` (transformers; ``hf@bf16`` / ``hf@f32`` for a dtype, plain ``hf`` its
``auto``) and ``openvino[@f32|@bf16]``; the first is the reference. Each evaluation writes
``OUT/ENGINE/eval.json`` and ``predictions.jsonl`` and is resumed when rerun::

    .venv/bin/python benchmarks/accuracy_check.py --model runs/quickstart/iter_02/model/merged \\
        --datasets gsm8k:test:200,svamp:200 --engines hf,openvino@f32,openvino@bf16 \\
        --out results/accuracy-check [--json out.json]

Exit status 1 when a candidate fails the check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from siked.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"": "auto", "f32": "float32", "bf16": "bfloat16"}


def settings(engine: str) -> list[str]:
    """``siked eval --set`` arguments of an engine spec such as ``openvino@bf16``."""
    name, _, precision = engine.partition("@")
    if name not in ("hf", "openvino") or precision not in DTYPES:
        raise SystemExit(f"unknown engine {engine!r}: hf[@f32|@bf16] or openvino[@f32|@bf16]")
    return ["--set", f"engine={name}", "--set", f"dtype={DTYPES[precision]}"]


def compare(ref: dict[str, Any], got: dict[str, Any], max_pp: float) -> dict[str, Any]:
    """One dataset's ``eval.json`` entries, reference and candidate (pure).

    >>> ref = {"n": 100, "correct": 20, "accuracy": 0.2, "ci95": [0.13, 0.29],
    ...        "strategy_distribution": {"cot": 0.5, "pot": 0.5}}
    >>> got = dict(ref, correct=25, accuracy=0.25,
    ...            strategy_distribution={"cot": 0.47, "pot": 0.53})
    >>> c = compare(ref, got, max_pp=5.0)
    >>> c["accuracy_within_ci"], c["strategy_max_pp"], c["passed"]
    (True, 3.0, True)
    >>> compare(ref, dict(got, accuracy=0.3), max_pp=5.0)["passed"]
    False
    """
    lo, hi = ref["ci95"]
    keys = set(ref["strategy_distribution"]) | set(got["strategy_distribution"])
    pp = max(
        abs(ref["strategy_distribution"].get(k, 0.0) - got["strategy_distribution"].get(k, 0.0))
        for k in keys
    )
    within = lo <= got["accuracy"] <= hi
    pp = round(100 * pp, 1)
    return {
        "reference_accuracy": ref["accuracy"],
        "reference_ci95": [lo, hi],
        "accuracy": got["accuracy"],
        "accuracy_within_ci": within,
        "reference_strategies": ref["strategy_distribution"],
        "strategies": got["strategy_distribution"],
        "strategy_max_pp": pp,
        "passed": within and pp <= max_pp,
    }


def agreement(ref_dir: Path, got_dir: Path) -> dict[str, dict[str, int]]:
    """Per dataset: predictions with the reference's answer, and with its very text."""

    def rows(d: Path) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        with open(d / "predictions.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                out[(r["dataset"], str(r["qid"]))] = r
        return out

    ref, got = rows(ref_dir), rows(got_dir)
    counts: dict[str, dict[str, int]] = {}
    for key, r in ref.items():
        g = got.get(key)
        c = counts.setdefault(key[0], {"n": 0, "same_answer": 0, "same_text": 0})
        c["n"] += 1
        if g is not None:
            c["same_answer"] += int(g.get("answer") == r.get("answer"))
            c["same_text"] += int(g.get("output") == r.get("output"))
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--datasets", default="gsm8k:test:200,svamp:200")
    ap.add_argument("--engines", default="hf,openvino@f32,openvino@bf16")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-pp", type=float, default=5.0, help="strategy distribution tolerance")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    siked = str(Path(sys.executable).with_name("siked"))
    seconds = {}
    for engine in engines:
        out = a.out / engine
        cmd = [siked, "eval", "--model", a.model, "--datasets", a.datasets, "--out", str(out)]
        cmd += ["--quiet", "--max-tokens", str(a.max_tokens), "--set", f"batch_size={a.batch_size}"]
        t0 = time.perf_counter()
        subprocess.run(cmd + settings(engine), check=True, stdout=subprocess.DEVNULL)
        seconds[engine] = round(time.perf_counter() - t0, 1)
        print(f"{engine}: evaluated in {seconds[engine]} s (0 when resumed)", flush=True)
    evals = {e: json.loads((a.out / e / "eval.json").read_text()) for e in engines}
    ref = engines[0]
    result: dict[str, Any] = {
        "model": a.model,
        "reference": ref,
        "seconds": seconds,
        "machine": machine_info(),
        "checks": {},
    }
    failed = False
    print(f"\nreference {ref}; pass: accuracy within its 95% CI, strategies within {a.max_pp} pp")
    print("| engine | dataset | accuracy | reference (95% CI) | strategies | max pp | same answer "
          "| same text | passed |")  # fmt: skip
    print("|---|---|---:|---|---|---:|---:|---:|---|")
    for engine in engines[1:]:
        agree = agreement(a.out / ref, a.out / engine)
        for name, entry in evals[ref]["datasets"].items():
            c = compare(entry, evals[engine]["datasets"][name], a.max_pp)
            c.update(agree.get(name, {}))
            result["checks"].setdefault(engine, {})[name] = c
            failed |= not c["passed"]
            lo, hi = c["reference_ci95"]
            mix = " ".join(f"{k} {100 * v:.0f}%" for k, v in c["strategies"].items())
            print(
                f"| {engine} | {name} | {100 * c['accuracy']:.1f}% | "
                f"{100 * c['reference_accuracy']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f}) | {mix} | "
                f"{c['strategy_max_pp']} | {c.get('same_answer')}/{c.get('n')} | "
                f"{c.get('same_text')}/{c.get('n')} | {c['passed']} |"
            )
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
