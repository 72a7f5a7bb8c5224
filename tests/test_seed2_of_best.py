"""scripts/seed2_of_best.py: the best SIKeD arm on validation gets a second training seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from load_script import load_script

from siked.config import load_config

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["siked-all-pot", "siked-all-none", "siked-self-none"]


def script() -> ModuleType:
    return load_script("seed2_of_best")


def finished(runs: Path, arm: str, accs: list[float], best: int, test: float = 0.0) -> None:
    rows = [
        {"iteration": i, "validation_accuracy": a, "eval": {"gsm8k:test:300": test}}
        for i, a in enumerate(accs)
    ]
    summary = {"name": arm, "iterations": rows, "best_iteration": best, "stopped": "done"}
    (runs / arm).mkdir(parents=True)
    (runs / arm / "summary.json").write_text(json.dumps(summary))


def test_the_best_on_validation_gets_a_loadable_seed2_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs" / "cpu" / "experiment"
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    runs = tmp_path / "runs"
    finished(runs, "siked-all-pot", [0.20, 0.22], best=1, test=0.9)  # test sets never count
    finished(runs, "siked-all-none", [0.21, 0.25, 0.24], best=1)
    finished(runs, "siked-self-none", [0.25], best=0)  # a tie: the arm named first wins
    assert script().main([str(runs), str(configs), *ARMS]) == 0
    assert capsys.readouterr().out == "siked-all-none-seed2\n"
    text = (configs / "siked-all-none-seed2.yaml").read_text()
    assert "#   siked-all-none: 25.0 %" in text
    cfg = load_config(configs / "siked-all-none-seed2.yaml")
    assert (cfg.name, cfg.train.seed, cfg.mix.variant, cfg.mix.bias) == (
        "siked-all-none-seed2",
        2,
        "all",
        "none",
    )
    assert cfg.train.method == "full" and cfg.data.validation_size == 300


def test_nothing_is_chosen_while_an_arm_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    finished(runs, "siked-all-pot", [0.2], best=0)
    running = {"name": "siked-all-none", "iterations": [{"iteration": 0, "validation_accuracy": 0.9}],
               "best_iteration": 0}  # fmt: skip
    (runs / "siked-all-none").mkdir()
    (runs / "siked-all-none" / "summary.json").write_text(json.dumps(running))
    assert script().main([str(runs), str(tmp_path), *ARMS[:2]]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "siked-all-none has not finished" in out.err
    assert not list(tmp_path.glob("*.yaml"))
