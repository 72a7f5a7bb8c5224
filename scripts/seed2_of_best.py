"""The second training seed of the best SIKeD arm, chosen on validation (issue 30).

Once every SIKeD arm named has finished, the one whose final student (its best iteration)
has the highest validation accuracy gets a config ``CONFIG_DIR/ARM-seed2.yaml``: the same arm
with ``train.seed: 2``, as ``distill-combined-seed2`` is for combined distillation, so that the
seed noise of SIKeD is measured as well. A tie goes to the arm named first. Test sets are never
read. Prints the new arm's name (nothing while an arm is unfinished, saying which on stderr).

    python scripts/seed2_of_best.py RUNS CONFIG_DIR ARM...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SEED = 2


def final_validation(summary: dict[str, Any]) -> float | None:
    """Validation accuracy of a finished run's final (best-on-validation) student, else None.

    >>> final_validation({"stopped": "done", "best_iteration": 1, "iterations": [
    ...     {"iteration": 0, "validation_accuracy": 0.2},
    ...     {"iteration": 1, "validation_accuracy": 0.25}]})
    0.25
    >>> final_validation({"stopped": None, "best_iteration": 0, "iterations": []}) is None
    True
    """
    best = summary.get("best_iteration")
    if not summary.get("stopped") or best is None:
        return None
    for row in summary.get("iterations") or []:
        if row.get("iteration") == best:
            acc = row.get("validation_accuracy")
            return float(acc) if acc is not None else None
    return None


def pick_best(validation: dict[str, float]) -> str:
    """The arm with the highest validation accuracy; the first named wins a tie.

    >>> pick_best({"siked-all-pot": 0.2, "siked-all-none": 0.24, "siked-self-none": 0.24})
    'siked-all-none'
    """
    return max(validation, key=lambda arm: (validation[arm], -list(validation).index(arm)))


def seed2_config(best: str, validation: dict[str, float]) -> str:
    """The YAML of ``best`` with another training seed, saying why it was chosen."""
    lines = [
        f"# {best} with another training seed (batch order; with LoRA also the adapter's",
        "# initialisation), to measure the best SIKeD arm's seed noise. Written by",
        "# scripts/seed2_of_best.py: the SIKeD arm whose final student had the highest",
        "# validation accuracy (test sets not looked at):",
        *(f"#   {arm}: {100 * acc:.1f} %" for arm, acc in validation.items()),
        f"extends: {best}.yaml",
        f"name: {best}-seed{SEED}",
        "train:",
        f"  seed: {SEED}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    runs, configs, arms = Path(argv[0]), Path(argv[1]), argv[2:]
    validation: dict[str, float] = {}
    for arm in arms:
        path = runs / arm / "summary.json"
        acc = final_validation(json.loads(path.read_text())) if path.exists() else None
        if acc is None:
            print(f"seed2_of_best: {arm} has not finished; no second seed yet", file=sys.stderr)
            return 0
        validation[arm] = acc
    best = pick_best(validation)
    out = configs / f"{best}-seed{SEED}.yaml"
    text = seed2_config(best, validation)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    print(out.stem)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
