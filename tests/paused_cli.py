"""Run ``siked`` with a pause, for tests that start several processes on one directory.

    python tests/paused_cli.py PAUSED GO [--fake-stages] -- SIKED_ARGS...

The process's first ``JsonlAppender.write_many`` call (a stage appending its first rows, its
output lock held) creates the file ``PAUSED`` and then waits until the file ``GO`` exists, so a
test knows the process is mid-write while it starts another one. With ``GO`` already present
nothing waits. ``--fake-stages`` replaces train / evaluate / sample and the report by the loop
tests' fakes (``tests/test_loop.py``), so that ``siked run`` needs no model. Exits with the
status of ``siked.cli.main``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

PAUSE_TIMEOUT_S = 300.0


def pause_first_write(paused: Path, go: Path) -> None:
    from siked.io import JsonlAppender

    original = JsonlAppender.write_many
    calls = 0

    def write_many(self: JsonlAppender, rows: Any) -> None:
        nonlocal calls
        original(self, rows)
        calls += 1
        if calls > 1:
            return
        paused.touch()
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while not go.exists():
            if time.monotonic() > deadline:
                sys.exit(f"paused_cli: {go} did not appear within {PAUSE_TIMEOUT_S:.0f}s")
            time.sleep(0.02)

    JsonlAppender.write_many = write_many  # type: ignore[method-assign]


def install_fake_stages() -> None:
    from test_loop import FakeStages

    import siked.evaluate
    import siked.loop
    import siked.sample
    import siked.train

    fakes = FakeStages()
    siked.train.train = fakes.train  # type: ignore[assignment]
    siked.evaluate.evaluate = fakes.evaluate  # type: ignore[assignment]
    siked.sample.sample = fakes.sample  # type: ignore[assignment]
    siked.loop._write_report = lambda paths: None


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    options, siked_args = argv[:sep], argv[sep + 1 :]
    paused, go = Path(options[0]), Path(options[1])
    pause_first_write(paused, go)
    if "--fake-stages" in options[2:]:
        install_fake_stages()
    from siked.cli import main as siked_main

    return siked_main(siked_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
