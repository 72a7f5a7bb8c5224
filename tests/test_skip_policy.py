"""The CI skip policy (tests/skip_policy.py) fails a CI run on a skip it does not allow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from skip_policy import ALLOWED_SKIPS, parse_allow_list, unallowed

HERE = Path(__file__).resolve().parent


def test_allow_list_needs_a_reason_per_line() -> None:
    assert parse_allow_list("# head\n\ntests/a.py::t*  # flaky host\n") == ["tests/a.py::t*"]
    with pytest.raises(ValueError, match="line 1"):
        parse_allow_list("tests/a.py::t\n")
    assert unallowed([("tests/a.py::t1", "x"), ("tests/b.py::t", "y")], ["tests/a.py::t*"]) == [
        ("tests/b.py::t", "y")
    ]


def test_the_committed_allow_list_is_short_and_reasoned() -> None:
    assert len(parse_allow_list(ALLOWED_SKIPS.read_text())) <= 5


def _pytest(tmp_path: Path, ci: str, allowed: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_skipped():\n    pytest.skip('no engine')\n"
    )
    (tmp_path / "module_skip").mkdir(exist_ok=True)
    (tmp_path / "module_skip" / "test_y.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_here')\n"
    )
    (tmp_path / "allowed.txt").write_text(allowed)
    env = {
        **os.environ,
        "CI": ci,
        "SIKED_ALLOWED_SKIPS": str(tmp_path / "allowed.txt"),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "skip_policy", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip


def test_a_skip_fails_a_ci_run_unless_allowed(tmp_path: Path) -> None:
    local = _pytest(tmp_path, "", "")
    assert local.returncode == 0, local.stdout
    ci = _pytest(tmp_path, "true", "")
    assert ci.returncode == 1, ci.stdout
    assert "test_x.py::test_skipped: " in ci.stdout and "module_skip/test_y.py" in ci.stdout
    allowed = _pytest(tmp_path, "true", "test_x.py::test_skipped  # r\nmodule_skip/*  # r\n")
    assert allowed.returncode == 0, allowed.stdout
