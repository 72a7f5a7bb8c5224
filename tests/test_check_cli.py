"""``siked check``: one JSON verdict, exit 0 whatever the verdict, 2 on siked errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from siked import verify
from siked.cli import main

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"strategy", "answer", "correct", "rule", "status", "error", "fallback", "gold"}


def _run(
    capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str | None = None
) -> tuple[int, dict[str, Any] | None, str]:
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        rc = main(["check", *argv])
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out.strip() else None), err


def test_file_correct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "out.txt"
    f.write_text("48 + 24 = 72.\nThe answer is 72.\n\nQuestion: next? The answer is 5.")
    rc, out, _ = _run(capsys, ["--gold", "72", str(f)])
    assert rc == 0 and out is not None
    assert set(out) == KEYS
    assert out == {
        "strategy": "cot", "answer": "72", "correct": True, "rule": "marker",
        "status": "ok", "error": None, "fallback": False, "gold": "72",
    }  # fmt: skip


def test_stdin_wrong_answer_still_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, ["--gold", "1,200", "-"], stdin="The answer is $1,100.")
    assert rc == 0 and out is not None
    assert (out["answer"], out["correct"], out["gold"]) == ("1100", False, "1200")


def test_stdin_default_when_no_file(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, ["--gold", "3"], stdin="I have 3 apples.")
    assert rc == 0 and out is not None
    assert (out["rule"], out["fallback"], out["correct"]) == ("last_number", True, True)


def test_no_answer(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, ["--gold", "3"], stdin="")
    assert rc == 0 and out is not None
    assert (out["answer"], out["status"], out["rule"]) == (None, "no_answer", "none")


def test_tag_picks_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, ["--gold", "7"], stdin="[l2m]: What is 3 + 4? 7. The answer is 7.")
    assert rc == 0 and out is not None
    assert (out["strategy"], out["correct"]) == ("l2m", True)


@dataclass
class _Result:
    status: str = "ok"
    answer: str | None = "18.0"
    error: str | None = None
    seconds: float = 0.0
    rule: str | None = "answer"


class _Sandbox:
    def __init__(self) -> None:
        self.codes: list[str] = []

    def run(self, code: str) -> _Result:
        self.codes.append(code)
        return _Result()


def test_pot_tag_and_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = _Sandbox()
    monkeypatch.setattr(verify, "_default_sandbox", lambda: sb)
    rc, out, _ = _run(capsys, ["--gold", "18"], stdin="[pot]: answer = 9 * 2")
    assert rc == 0 and out is not None
    assert (out["strategy"], out["answer"], out["rule"], out["correct"]) == (
        "pot",
        "18",
        "program",
        True,
    )
    assert sb.codes == ["answer = 9 * 2"]
    # --strategy wins over the tag, and the tag is still removed
    rc, out, _ = _run(capsys, ["--gold", "18", "--strategy", "pot"], stdin="[cot]: answer = 18")
    assert out is not None and out["strategy"] == "pot"
    assert sb.codes[-1] == "answer = 18"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gold", "seventy"], "not a number"),
        (["--gold", "1", "--strategy", "nope"], "unknown strategy"),
        (["--gold", "1", "/no/such/file.txt"], "no such file"),
    ],
)
def test_siked_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    rc, out, err = _run(capsys, argv, stdin="The answer is 1.")
    assert rc == 2 and out is None
    assert message in err and err.startswith("siked check: error:")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("math_verify") is None, reason="math-verify missing"
)
def test_math_verify_flag(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, ["--gold", "72", "--math-verify"], stdin="The answer is 72.")
    assert rc == 0 and out is not None
    assert out["math_verify"] is True


def test_module_entry_point(tmp_path: Path) -> None:
    f = tmp_path / "o.txt"
    f.write_text("The answer is \u22123.", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "siked", "check", "--gold", "-3", str(f)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["correct"] is True
