"""The `siked` command: every subcommand is listed with a one-line description."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from siked.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


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
    out = capsys.readouterr().out
    assert out.startswith("usage: siked " + name)
    assert "%%" not in out  # a literal percent sign prints once ("95% interval")


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


# -- one --set dialect ---------------------------------------------------------------------------


def config_of(argv: list[str]):
    from siked.cli._common import load_command_config

    return load_command_config(build_parser().parse_args(argv))


def test_set_is_one_dialect_in_every_command(tmp_path) -> None:
    """A dotted key of the run config works everywhere; a stage command also takes its own
    section's keys without the prefix (``seed`` in ``train`` is ``train.seed``)."""
    out = str(tmp_path / "o")
    quickstart = str(ROOT / "configs" / "quickstart.yaml")
    cfg = config_of(["run", quickstart, "--set", "train.epochs=1", "--set", "name=x"])
    assert (cfg.train.epochs, cfg.name) == (1, "x")
    cfg = config_of(["train", "--data", "d", "--out", out, "--set", "epochs=2", "--set", "seed=3"])
    assert (cfg.train.epochs, cfg.train.seed, cfg.seed) == (2, 3, 42)
    cfg = config_of(["train", "--data", "d", "--out", out, "--set", "train.epochs=4"])
    assert cfg.train.epochs == 4
    argv = ["sample", "--out", out, "--set", "temperature=0.9", "--set", "sample.top_p=0.5"]
    cfg = config_of([*argv, "--set", "seed=3", "--set", "data.dir=/d"])
    assert (cfg.sample.temperature, cfg.sample.top_p, cfg.seed, cfg.data.dir) == (0.9, 0.5, 3, "/d")
    cfg = config_of(["eval", "--out", out, "--set", "max_tokens=20"])
    assert cfg.eval.max_tokens == 20
    args = build_parser().parse_args(["eval", "--out", out, "--set", "max_tokens=20"])
    from siked.cli._common import load_command_config

    cfg = load_command_config(args, {"eval.max_tokens": 30, "eval.mode": None})
    assert (cfg.eval.max_tokens, cfg.eval.mode) == (30, "free")  # flags after --set; None: unset
    cfg = config_of(["teach", "--out", out, "--set", "n=2", "--set", "teacher.top_p=0.9"])
    assert (cfg.teacher.n, cfg.teacher.top_p) == (2, 0.9)
    argv = ["mix", "--teacher", "t", "--out", out, "--set", "alpha={start: 0.9, end: 0.2}"]
    cfg = config_of([*argv, "--set", "variant=adaptive"])
    assert cfg.mix.variant == "adaptive" and (cfg.mix.alpha.start, cfg.mix.alpha.end) == (0.9, 0.2)


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["train", "--data", "d", "--out", "o", "--set", "lora_rr=3"], "train.lora_rr"),
        (["sample", "--out", "o", "--set", "kk=3"], "sample.kk"),
        (["mix", "--teacher", "t", "--out", "o", "--set", "mix.varient=all"], "mix.varient"),
        (["run", str(ROOT / "configs" / "quickstart.yaml"), "--set", "trian.epochs=1"], "trian"),
    ],
)
def test_set_errors_name_the_full_key(argv: list[str], key: str) -> None:
    from siked.config import ConfigError

    with pytest.raises(ConfigError, match=f"{key}: unknown key"):
        config_of(argv)


@pytest.mark.parametrize("name", ["run", "plan", "teach", "train", "sample", "mix", "eval"])
def test_set_help_shows_the_dialect(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--set KEY=VALUE" in out and "dotted path of the run config" in out
    assert "e.g. --set " in out
