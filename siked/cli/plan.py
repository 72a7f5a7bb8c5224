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
    from siked.cli._common import add_config_arguments

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(p, positional=True)


def run(args: argparse.Namespace) -> int:
    from siked.cli._common import load_command_config
    from siked.plan import format_plan, make_plan

    cfg = load_command_config(args)
    plan = make_plan(cfg)
    print(format_plan(plan))
    return 0 if plan.ok else 1
