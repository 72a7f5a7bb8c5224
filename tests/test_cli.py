"""The `siked` command: every subcommand is listed with a one-line description."""

from __future__ import annotations

import subprocess
import sys

import pytest

from siked.cli import COMMANDS, build_parser, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, _ in COMMANDS:
        assert f"\n    {name}" in out, f"{name} missing from siked --help"


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: siked " + name)


def test_help_does_not_import_torch() -> None:
    code = "import sys; from siked.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out
    assert build_parser().prog == "siked"


def test_output_closed_early_is_not_an_error() -> None:
    """`siked data show ... | head -1` must not end in a BrokenPipeError traceback."""
    proc = subprocess.run(  # ~4 MB of output, far more than a pipe buffer
        f"{sys.executable} -m siked data show gsm8k --split train | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in proc.stderr
