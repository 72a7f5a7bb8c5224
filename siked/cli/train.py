"""``siked train``: fine-tune a student on a JSONL file of rationales (LoRA or full SFT)."""

from __future__ import annotations

import argparse
import json

HELP = "fine-tune a student on rationales (TRL SFT + LoRA), then merge"
DESCRIPTION = """\
Fine-tune a student on a JSON-lines file of rationale records (question, strategy, text, ...).
Writes OUT/adapter (LoRA), OUT/merged (a plain Hugging Face model), OUT/train_log.json and a model
card. A killed run resumes from its last checkpoint when the same command is run again; a finished
run is not retrained. Keys are set with --set (e.g. --set train.epochs=1, or --set epochs=1: keys
of the train section may drop the prefix).
Multi-GPU / multi-process: accelerate launch --config_file configs/accelerate/ddp.yaml -m siked train ...
"""


def register(parser: argparse.ArgumentParser) -> None:
    from siked.cli._common import add_config_arguments

    parser.add_argument("--data", required=True, help="training records (JSONL)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--model",
        default=None,
        help="student: hub id, local directory or bundled:smollm2-135m-instruct "
        "(default: the config's student.model, else the bundled SmolLM2)",
    )
    parser.add_argument("--eval-data", default=None, help="validation records (JSONL)")
    add_config_arguments(parser, section="train")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from siked.cli._common import load_command_config

    cfg = load_command_config(args)
    from siked.train import is_main_process, train

    result = train(
        args.data,
        args.model or cfg.student.model,
        args.out,
        cfg.train,
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
