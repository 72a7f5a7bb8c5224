"""In CI (``CI=true``) a skipped test fails the session unless ``tests/allowed_skips.txt``
allows it: a missing package, engine or data file must not turn into a green run.

``tests/conftest.py`` imports the hooks; ``pytest -p skip_policy`` loads them elsewhere. Each
line of the allow list is ``PATTERN  # reason`` (an fnmatch pattern of a test id); a line
without a reason is an error. ``$SIKED_ALLOWED_SKIPS`` names another list (tests of this file).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import pytest

ALLOWED_SKIPS = Path(__file__).resolve().parent / "allowed_skips.txt"

_skipped: list[tuple[str, str]] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def parse_allow_list(text: str) -> list[str]:
    """The patterns of an allow list; every one needs its reason after ``#``."""
    patterns = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        if not reason.strip():
            raise ValueError(f"allowed_skips line {n}: {line.strip()!r} gives no reason (# ...)")
        patterns.append(pattern.strip())
    return patterns


def unallowed(skipped: list[tuple[str, str]], patterns: list[str]) -> list[tuple[str, str]]:
    """The (test id, reason) of ``skipped`` that no pattern allows."""
    return [(t, r) for t, r in skipped if not any(fnmatch.fnmatch(t, p) for p in patterns)]


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a module skipped as a whole
        _skipped.append((report.nodeid, _reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not in_ci() or not _skipped:
        return
    allow = Path(os.environ.get("SIKED_ALLOWED_SKIPS", ALLOWED_SKIPS))
    bad = unallowed(_skipped, parse_allow_list(allow.read_text()))
    if bad:
        session.config.stash[_BAD] = bad
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BAD = pytest.StashKey[list[tuple[str, str]]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    bad = config.stash.get(_BAD, [])
    if bad:
        terminalreporter.section("skips not allowed in CI (tests/allowed_skips.txt)", red=True)
        for test, reason in bad:
            terminalreporter.line(f"{test}: {reason}")


def require(module: str, reason: str) -> Any:
    """Import ``module``; outside CI a missing one skips the calling test module, in CI it is
    an error (an engine the Makefile installs must be there)."""
    if in_ci():
        import importlib

        return importlib.import_module(module)
    return pytest.importorskip(module, reason=reason)
