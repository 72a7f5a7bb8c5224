"""Test defaults: never reach a model hub, and read the shared copy of the original data files."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("SIKED_DATA_DIR", str((_ROOT.parent / "shared" / "data").resolve()))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see siked/__init__.py

# in CI, a skip not on tests/allowed_skips.txt fails the session (tests/skip_policy.py)
from skip_policy import (  # noqa: E402
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

__all__ = [
    "pytest_collectreport",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
]
