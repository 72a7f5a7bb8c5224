"""``siked train``: fine-tune a student on a JSONL file of rationales (LoRA or full SFT)."""

from __future__ import annotations

import argparse
import json

HELP = "fine-tune a student on rationales (TRL SFT + LoRA), then merge"
DESCRIPTION = """\
Fine-tune a student on a JSON-lines file of rationale records (question, strategy, text, ...).
Writes OUT/adapter (LoRA), OUT/merged (a plain Hugging Face model), OUT/train_log.json and a model
card. A killed run resumes from its last checkpoint when the same command is run again; a finished
run is not retrained. TrainConfig keys are set with --set (e.g. --set epochs=1 --set lora_r=8).
Multi-GPU / multi-process: accelerate launch --config_file configs/accelerate/ddp.yaml -m siked train ...
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="training records (JSONL)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--model",
        default=None,
        help="student: hub id, local directory or bundled:smollm2-135m-instruct "
        "(default: the config's student.model, else the bundled SmolLM2)",
    )
    parser.add_argument("--eval-data", default=None, help="validation records (JSONL)")
    parser.add_argument(
        "--config", default=None, help="a run config (YAML): its train section is the base"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a TrainConfig key (repeatable), e.g. --set max_steps=10",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from siked.config import TrainConfig, apply_overrides, build, load_config
    from siked.models import BUNDLED_STUDENT

    if args.config:
        run_cfg = load_config(args.config)
        base = run_cfg.train.model_dump()
        model = args.model or run_cfg.student.model
    else:
        base = {}
        model = args.model or BUNDLED_STUDENT
    cfg = build(TrainConfig, apply_overrides(base, args.overrides), prefix="train.")

    from siked.train import is_main_process, train

    result = train(
        args.data,
        model,
        args.out,
        cfg,
        eval_data=args.eval_data,
        progress=not args.no_progress,
    )
    if is_main_process():
        m = result.metrics
        summary = {
            "adapter": str(result.adapter_dir) if result.adapter_dir else None,
            "merged": str(result.merged_dir) if result.merged_dir else None,
            "train_loss": m.get("train_loss"),
            "eval_loss": m.get("eval_loss"),
            "tokens_per_second": m.get("tokens_per_second"),
            "seconds": m.get("seconds"),
        }
        print(json.dumps(summary, indent=2))
    return 0
