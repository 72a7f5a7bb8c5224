"""``siked plan CONFIG``: check a config and print what each stage will make, without running."""

from __future__ import annotations

import argparse

HELP = "check a config and print per stage what it will make and need, without running"
DESCRIPTION = """\
Validate a run config and print, per stage, the questions, samples and training examples it
will make, the tokens and optimizer steps of each training iteration (upper bounds: every
question solved by every strategy; token lengths measured on the gold teacher's rationales),
and what the run needs: model ids and whether they resolve offline, whether the student's
tokenizer has a chat template, vLLM and GPUs. Loads the data files, never model weights;
works offline. Exit status 1 when a known problem would make the run fail.
"""


def register(p: argparse.ArgumentParser) -> None:
    from siked.cli.run import add_config_arguments

    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from siked.config import load_config
    from siked.plan import format_plan, make_plan

    cfg = load_config(args.config, list(args.overrides))
    plan = make_plan(cfg)
    print(format_plan(plan))
    return 0 if plan.ok else 1
