"""``siked run CONFIG``: the whole SIKeD loop from one YAML file, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run (or resume) a full SIKeD experiment from a YAML config"
DESCRIPTION = """\
Run SIKeD end to end: teacher rationales (once), then per iteration mix -> train ->
evaluate -> self-generate, until loop.iterations are done or validation accuracy stops
improving for loop.patience iterations. Everything lands in OUTPUT_DIR/NAME (config.yaml,
manifest.json, teacher/, iter_NN/, summary.json, report/).

The terminal shows one line per stage with its result and one progress bar at a time; the
libraries' logs, warnings and the trainer's per-step metrics go to OUTPUT_DIR/NAME/siked.log
(--verbose shows them too).

`--dry-run` prints the resolved config and the plan of `siked plan` (what each stage will
make and what the run needs) and runs nothing. Rerunning the same command resumes a stopped
or killed run; finished stages are not recomputed. A changed config for an existing run is
refused with the keys that differ, unless --force is given. `--reuse RUN_DIR` copies the
stages another run finished with the same inputs (its teacher's rationales, a student it
trained) instead of computing them again. The run directory is locked while
the run works: a second `siked run` on it (or a stage command writing inside it) exits with
status 75 naming the holder; `siked report` and `siked compare` still work on it.

Every config key is documented in docs/configuration.md; override any of them with
--set KEY=VALUE (a dotted path, the value read as YAML; repeatable), the same dialect as in
every siked command, e.g.
  siked run configs/quickstart.yaml --set loop.iterations=1 --set train.epochs=1
"""


def register(p: argparse.ArgumentParser) -> None:
    from siked.cli._common import add_config_arguments

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(p, positional=True)
    p.add_argument("--name", help="run name (shorthand for --set name=...)")
    p.add_argument("--output-dir", help="where runs are kept (shorthand for --set output_dir=...)")
    p.add_argument(
        "--force",
        action="store_true",
        help="continue an existing run whose config differs (changed stages are recomputed)",
    )
    p.add_argument(
        "--reuse",
        action="append",
        default=[],
        type=Path,
        metavar="RUN_DIR",
        help="copy finished stages (the teacher's rationales, a trained student) from another "
        "run's directory where it made them with the same inputs, instead of computing them "
        "(repeatable; e.g. SIKeD's ablations share iteration 0 with combined distillation); "
        "the run's results are the same either way",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, print the resolved config and the plan (as `siked plan`), run nothing",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show library logs, warnings and progress bars (always in NAME/siked.log)",
    )


def run(args: argparse.Namespace) -> int:
    from siked.cli._common import load_command_config
    from siked.config import to_yaml

    cfg = load_command_config(args, {"name": args.name, "output_dir": args.output_dir})
    if args.dry_run:
        from siked.plan import format_plan, make_plan

        print(to_yaml(cfg), end="")
        plan = make_plan(cfg)
        print("\n" + format_plan(plan))
        return 0 if plan.ok else 1
    from siked.loop import run as run_loop

    run_loop(cfg, force=args.force, verbose=args.verbose, reuse=args.reuse)
    return 0
