"""scripts/run_arms.sh collect: the tables hold every arm whose evidence is there.

Runs the real script and the real ``siked compare`` on the experiment's committed evidence,
in a copy of the scripts so that the repository's README is not touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "results" / "experiment"
BASH = shutil.which("bash") or "/bin/bash"
SIKED = Path(sys.executable).with_name("siked")


def collect(tmp_path: Path, *arms: str) -> str:
    (tmp_path / "scripts").mkdir()
    for script in ("run_arms.sh", "readme_blocks.py"):
        shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    (tmp_path / "README.md").write_text("<!-- BEGIN out/table.md -->\n<!-- END out/table.md -->\n")
    for arm in ("distill-combined", "distill-pot", "siked-all-pot"):
        shutil.copytree(EVIDENCE / arm, tmp_path / "out" / arm)
    env = {**os.environ, "SIKED": str(SIKED), "PY": sys.executable}
    done = subprocess.run(
        [BASH, "scripts/run_arms.sh", "collect", "configs", "runs", "out", *arms],
        cwd=tmp_path, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (tmp_path / "out" / "table.md").read_text()


def test_collecting_some_arms_keeps_the_others_evidence_in_the_tables(tmp_path: Path) -> None:
    # ARMS="distill-pot" bash scripts/experiment.sh ran one arm: the table still holds the rest
    table = collect(tmp_path, "distill-combined", "distill-pot")
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["distill-pot", "distill-combined", "siked-all-pot"]
    # and the README's block was refreshed from it
    assert "siked-all-pot" in (tmp_path / "README.md").read_text()
    paired = (tmp_path / "out" / "paired.md").read_text()
    assert "| siked-all-pot | distill-combined |" in paired


def test_running_a_few_arms_prints_their_budget_and_keeps_the_experiments(tmp_path: Path) -> None:
    # ARMS="untrained" bash scripts/experiment.sh budget: budget.md still prices every arm
    for script in ("experiment.sh", "experiment_budget.py"):
        (tmp_path / "scripts").mkdir(exist_ok=True)
        shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    probe = "results/premise-probe/easy400-pot-full-e2"
    shutil.copytree(ROOT / probe, tmp_path / probe)
    budget = tmp_path / "results" / "experiment" / "budget.md"
    budget.parent.mkdir(parents=True)
    shutil.copy(EVIDENCE / "budget.md", budget)
    env = {**os.environ, "PY": sys.executable, "ARMS": "untrained"}
    done = subprocess.run(
        [BASH, "scripts/experiment.sh", "budget"], cwd=tmp_path, capture_output=True, text=True,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| untrained |" in done.stdout and "| distill-pot |" not in done.stdout
    assert budget.read_text() == (EVIDENCE / "budget.md").read_text()
