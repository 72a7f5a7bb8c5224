"""Each arm's cost before it runs (issue 30): `siked plan`'s upper bounds turned into hours with
the rates a reference run measured on this machine.

    python scripts/experiment_budget.py REFERENCE_RUN CONFIG [CONFIG ...] > budget.md

REFERENCE_RUN is a run directory (or its committed evidence) that trained and sampled iteration
0, e.g. the premise probe's regime in results/premise-probe/; its rates: training tokens per
second (``train_log.json``), seconds per self-generated sample (``sample_stats.json``) and per
evaluation generation (the manifest's ``iter_00/eval`` stage over the questions it answered).
The hours are upper bounds (every question solved by every strategy, no early stop) at those
rates; generation lengths change as the student trains, so they are estimates, not promises.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from siked.config import load_config
from siked.plan import make_plan


def rates(run: Path) -> dict[str, float]:
    train_log = json.loads((run / "iter_00" / "model" / "train_log.json").read_text())
    sample = json.loads((run / "iter_00" / "sample_stats.json").read_text())
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    ev = json.loads((run / "iter_00" / "eval" / "eval.json").read_text())["datasets"]
    answered = sum(int(d.get("n") or 0) for d in ev.values() if isinstance(d, dict))
    return {
        "train_tokens_per_s": float(train_log["tokens_per_second"]),
        "s_per_sample": float(sample["seconds"]) / int(sample["generated"]),
        "s_per_eval": float(stages["iter_00/eval"]["seconds"]) / answered,
    }


def arm_hours(numbers: dict[str, Any], epochs: float, r: dict[str, float]) -> dict[str, float]:
    its = numbers["iterations"]
    tokens = sum(i["examples_max"] * i["tokens_per_example"] * epochs for i in its)
    samples = sum(i["samples"] for i in its)
    evals = numbers["eval_generations"]
    train_h = tokens / r["train_tokens_per_s"] / 3600
    sample_h = samples * r["s_per_sample"] / 3600
    eval_h = evals * r["s_per_eval"] / 3600
    return {
        "train_tokens": tokens,
        "samples": samples,
        "eval_generations": evals,
        "train_h": train_h,
        "sample_h": sample_h,
        "eval_h": eval_h,
        "total_h": train_h + sample_h + eval_h,
    }


def main(argv: list[str]) -> int:
    ref, configs = Path(argv[0]), [Path(a) for a in argv[1:]]
    r = rates(ref)
    print(
        f"Upper-bound cost of each arm (`siked plan` numbers) at the rates of `{ref}` on this "
        f"machine: training {r['train_tokens_per_s']:.0f} tokens/s, "
        f"{r['s_per_sample']:.3f} s per self-generated sample, "
        f"{r['s_per_eval']:.3f} s per evaluation answer.\n"
    )
    print("| arm | iterations | training tokens | samples | eval answers | train h | sample h "
          "| eval h | total h |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    total = 0.0
    for path in configs:
        cfg = load_config(path)
        n = make_plan(cfg).numbers
        h = arm_hours(n, cfg.train.epochs, r)
        total += h["total_h"]
        print(
            f"| {cfg.name} | {len(n['iterations'])} | {h['train_tokens']:,.0f} | "
            f"{h['samples']:,} | {h['eval_generations']:,} | {h['train_h']:.1f} | "
            f"{h['sample_h']:.1f} | {h['eval_h']:.1f} | **{h['total_h']:.1f}** |"
        )
    print(
        f"\nAll arms: at most {total:.1f} h. Each arm counts its own stages; run by "
        "scripts/run_arms.sh, an arm copies what an earlier arm made with the same inputs "
        "(`siked run --reuse`: the teacher, and iteration 0's student, which the SIKeD arms "
        "share with combined distillation or another variant of their bias), so it costs less."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
