"""Tabulate the premise probe (issue 30): per regime, the share of its own samples the student
solves after iteration 0, by strategy, from each run's evidence.

    python scripts/premise_probe.py runs/probe results/premise-probe REGIME [REGIME ...]

Copies each regime's evidence (config, manifest, log, teacher and iteration-0 stats, training
log, validation predictions, the judged samples) from RUNS/REGIME to OUT/REGIME, then writes
OUT/table.md and OUT/table.json from the copies alone (so the table can be rebuilt from what is
committed: ``python scripts/premise_probe.py OUT OUT REGIME...``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

EVIDENCE = [
    "config.yaml",
    "manifest.json",
    "siked.log",
    "teacher/stats.json",
    "iter_00/stats.json",
    "iter_00/sample_stats.json",
    "iter_00/samples.jsonl",
    "iter_00/model/train_log.json",
    "iter_00/eval/eval.json",
    "iter_00/eval/predictions.jsonl",
]
STRATEGIES = ("cot", "l2m", "pot")


def copy_evidence(src: Path, dst: Path) -> None:
    if src.resolve() == dst.resolve():
        return
    for rel in EVIDENCE:
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def row(run: Path) -> dict[str, Any] | None:
    stats_path = run / "iter_00" / "sample_stats.json"
    if not stats_path.is_file():
        return None
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    stats = json.loads(stats_path.read_text())
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    ev = json.loads((run / "iter_00" / "eval" / "eval.json").read_text())["datasets"]
    val = ev.get("validation", {})
    train_log = json.loads((run / "iter_00" / "model" / "train_log.json").read_text())
    per = stats["per_strategy"]
    return {
        "regime": run.name,
        "train": cfg["data"]["train"]
        if isinstance(cfg["data"]["train"], str)
        else "{name}:{split}:{limit}".format(**cfg["data"]["train"]),
        "epochs": cfg["train"]["epochs"],
        "bias": cfg["mix"]["bias"],
        "train_examples": train_log.get("train_examples"),
        "train_strategy_counts": train_log.get("strategy_counts"),
        "train_seconds": round(stages["iter_00/train"]["seconds"]),
        "validation_accuracy": val.get("accuracy"),
        "validation_n": val.get("n"),
        "validation_strategy_distribution": val.get("strategy_distribution"),
        "samples": stats["generated"],
        "k": stats["k"],
        "correct_share": stats["correct"] / stats["generated"] if stats["generated"] else None,
        "questions": stats["questions"],
        "questions_solved_share": stats["questions_solved"] / stats["questions"],
        "by_strategy": {
            s: {"samples": per[s]["samples"], "correct": per[s]["correct"]}
            for s in STRATEGIES
            if s in per
        },
        "sample_seconds": round(stages["iter_00/sample"]["seconds"]),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| regime | training questions | epochs | bias | train rows | train | validation acc. "
        "| own samples correct | questions solved >= 1 of k | cot | l2m | pot |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        cells = []
        for s in STRATEGIES:
            b = r["by_strategy"].get(s, {"samples": 0, "correct": 0})
            share = b["correct"] / b["samples"] if b["samples"] else None
            cells.append(f"{b['correct']}/{b['samples']} ({pct(share)})")
        lines.append(
            f"| {r['regime']} | {r['train']} | {r['epochs']} | {r['bias']} | {r['train_examples']} "
            f"| {r['train_seconds'] // 60} min | {pct(r['validation_accuracy'])} "
            f"(n {r['validation_n']}) | **{pct(r['correct_share'])}** ({r['samples']}) "
            f"| {pct(r['questions_solved_share'])} ({r['questions']}) | " + " | ".join(cells) + " |"
        )
    note = (
        "\nAfter iteration 0 (multi-strategy distillation on the gold teacher's rationales), the "
        "student samples k = 4 solutions per training question (T 0.7, top_p 0.95, free choice of "
        "strategy); own samples correct = share of all samples whose answer equals the gold "
        "answer; cot / l2m / pot = correct / samples of the student's chosen strategy (%). "
        "Validation: greedy, held out from the same split. Times are stage times in each run's "
        "manifest (2-vCPU VM, shared with other work while these ran).\n"
    )
    return head + "\n".join(lines) + "\n" + note


def main(argv: list[str]) -> int:
    runs, out, regimes = Path(argv[0]), Path(argv[1]), argv[2:]
    rows = []
    for name in regimes:
        copy_evidence(runs / name, out / name)
        r = row(out / name)
        if r is None:
            print(f"{name}: no iteration-0 samples yet", file=sys.stderr)
            continue
        rows.append(r)
    if not rows:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    (out / "table.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
