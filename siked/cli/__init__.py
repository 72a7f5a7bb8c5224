"""The ``siked`` command. Thin: parses arguments and calls one stage.

Each subcommand lives in its own module ``siked/cli/<name>.py`` with ``HELP`` (one line),
``register(parser)`` and ``run(args) -> int``. Heavy imports (torch, transformers) happen
inside ``run`` so that ``siked --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from siked import __version__

#: (subcommand, module) in the order ``siked --help`` lists them.
COMMANDS: list[tuple[str, str]] = [
    ("run", "siked.cli.run"),
    ("plan", "siked.cli.plan"),
    ("data", "siked.cli.data"),
    ("check", "siked.cli.check"),
    ("exec", "siked.cli.exec"),
    ("teach", "siked.cli.teach"),
    ("train", "siked.cli.train"),
    ("sample", "siked.cli.sample"),
    ("mix", "siked.cli.mix"),
    ("eval", "siked.cli.eval"),
    ("report", "siked.cli.report"),
    ("compare", "siked.cli.compare"),
]


def _load(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:  # subcommand not built (yet)
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siked",
        description="SIKeD: self-guided iterative knowledge distillation for math reasoning.",
        epilog="Exit status: 0 done, 2 an error (bad input, disk full...), 75 the output "
        "directory is being written by another process (named in the message; each writing "
        "command locks its directory in DIR/.siked.lock, released when that process ends).",
    )
    parser.add_argument("--version", action="version", version=f"siked {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module in COMMANDS:
        mod = _load(module)
        if mod is None:
            continue
        # argparse %-formats help strings (escape literal percent signs: "95% CI"), but prints a
        # description as it is unless it names %(prog)
        p = sub.add_parser(
            name,
            help=mod.HELP.replace("%", "%%"),
            description=getattr(mod, "DESCRIPTION", mod.HELP),
        )
        mod.register(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:
        from siked.errors import SikedError

        if isinstance(e, SikedError):
            print(f"siked {args.command}: error: {e}", file=sys.stderr)
            return e.exit_code
        raise


if __name__ == "__main__":
    sys.exit(main())
