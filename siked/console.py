"""What a run prints, and where everything else goes.

The terminal of ``siked run`` is for a person: one ``[siked]`` line per stage with its result
(:func:`say`) and one progress bar at a time (siked's own: sampling, evaluation, training steps).
Everything else -- siked's and the libraries' log records, Python warnings (transformers'
FutureWarnings), the trainer's per-step metrics -- goes to the run's log file
(``runs/NAME/siked.log``), and the libraries' own progress bars ("Loading weights",
"Tokenizing train dataset", GGUF conversion) are switched off. On the terminal stay siked's own
warnings and any error. ``--verbose`` shows it all on the terminal too (the log file gets it
either way).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("siked")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _NotForConsole(logging.Filter):
    """Drops records already printed by :func:`say`; unless verbose, also the libraries'
    warnings and Python ``warnings`` (siked's own warnings and every error still show)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "siked_said", False):
            return False
        if self.verbose or record.levelno >= logging.ERROR or getattr(record, "console", False):
            return True
        own = record.name == "siked" or record.name.startswith("siked.")
        return own and record.levelno >= logging.WARNING


class _ConsoleFormat(logging.Formatter):
    """``LEVEL logger: message``; records logged with ``extra={"console": True}`` (a one-time
    step a person should know about, e.g. converting the bundled student) read like
    :func:`say` lines."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "console", False) and record.levelno < logging.WARNING:
            return f"[siked] {record.getMessage()}"
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def say(msg: str) -> None:
    """A line for the person at the terminal (stdout), also written to the log file."""
    print(f"[siked] {msg}", flush=True)
    log.info(msg, extra={"siked_said": True})


def format_duration(seconds: float | None) -> str:
    """Seconds, compactly, for the terminal and the report.

    >>> format_duration(12.34), format_duration(75), format_duration(3725), format_duration(None)
    ('12.3s', '1m15s', '1h02m', '—')
    """
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def progress_bar(
    total: int, desc: str, enabled: bool, *, unit: str = "q", initial: int = 0, **kw: Any
) -> Any:
    """siked's progress bar (tqdm): one per long stage, hidden unless ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        dynamic_ncols=True,
        **kw,
    )


@dataclass(frozen=True)
class ConsoleSettings:
    """The arguments of the :func:`run_console` in force (a child process enters the same)."""

    log_file: str | None
    verbose: bool


_ACTIVE: list[ConsoleSettings] = []


def console_settings() -> ConsoleSettings | None:
    """The innermost :func:`run_console` in force in this process, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def run_console(log_file: str | Path | None, verbose: bool = False) -> Iterator[None]:
    """Route logs and warnings to ``log_file`` (appended), keep the terminal for :func:`say`
    lines, warnings-level records and siked's progress bars; ``verbose`` shows everything.

    The previous logging, warnings and progress-bar settings are restored on exit.
    """
    root = logging.getLogger()
    old_level = root.level
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)  # what shows is decided by _NotForConsole
    console.setFormatter(_ConsoleFormat())
    console.addFilter(_NotForConsole(verbose))
    handlers.append(console)
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(path, encoding="utf-8")
        file.setLevel(logging.INFO)
        file.setFormatter(logging.Formatter(_FORMAT))
        handlers.append(file)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(logging.INFO)
    restore_libs = _libraries_to_root(quiet=not verbose)
    logging.captureWarnings(True)
    _ACTIVE.append(ConsoleSettings(None if log_file is None else str(log_file), verbose))
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each distinct warning once, to the log
        try:
            yield
        finally:
            _ACTIVE.pop()
            logging.captureWarnings(False)
            restore_libs()
            for h in handlers:
                root.removeHandler(h)
                h.close()
            root.setLevel(old_level)


def _libraries_to_root(quiet: bool) -> Any:
    """Send transformers' / datasets' records to the root logger (so to the log file) and,
    when ``quiet``, switch their progress bars off. Returns a function that undoes it."""
    undo: list[Any] = []
    try:
        from transformers.utils import logging as tf_logging

        tf_logging.disable_default_handler()
        tf_logging.enable_propagation()
        undo += [tf_logging.enable_default_handler, tf_logging.disable_propagation]
        if quiet and tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            undo.append(tf_logging.enable_progress_bar)
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        import datasets

        if quiet and datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            undo.append(datasets.enable_progress_bars)
    except (ImportError, AttributeError):  # pragma: no cover - datasets is a dependency
        pass
    try:
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )

        if quiet and not are_progress_bars_disabled():
            disable_progress_bars()
            undo.append(enable_progress_bars)
    except ImportError:  # pragma: no cover
        pass

    def restore() -> None:
        for fn in reversed(undo):
            fn()

    return restore
