"""scripts/experiment_budget.py: an arm's hours from `siked plan`'s numbers and measured rates."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from load_script import load_script

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "results" / "premise-probe" / "easy400-pot-full-e2"


def budget() -> ModuleType:
    return load_script("experiment_budget")


def test_rates_come_from_the_reference_run_evidence() -> None:
    r = budget().rates(PROBE)
    log = json.loads((PROBE / "iter_00" / "model" / "train_log.json").read_text())
    sample = json.loads((PROBE / "iter_00" / "sample_stats.json").read_text())
    assert r["train_tokens_per_s"] == log["tokens_per_second"]
    assert r["s_per_sample"] == pytest.approx(sample["seconds"] / sample["generated"])
    assert 0 < r["s_per_eval"] < 10  # the validation stage over the 100 questions it answered


def test_arm_hours_known_answer() -> None:
    rates = {"train_tokens_per_s": 100.0, "s_per_sample": 0.5, "s_per_eval": 1.0}
    numbers = {
        "iterations": [
            {"examples_max": 100, "tokens_per_example": 180.0, "samples": 7200},
            {"examples_max": 200, "tokens_per_example": 180.0, "samples": 0},
        ],
        "eval_generations": 3600,
    }
    h = budget().arm_hours(numbers, 2.0, rates)
    # (100 + 200) x 180 tokens x 2 epochs at 100 tokens/s = 0.3 h; 7200 x 0.5 s = 1 h; 1 h
    assert h["train_tokens"] == 108_000
    assert (h["train_h"], h["sample_h"], h["eval_h"]) == pytest.approx((0.3, 1.0, 1.0))
    assert h["total_h"] == pytest.approx(2.3)
