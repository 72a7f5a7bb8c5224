"""How far two prediction logs of the same questions agree, output by output: what changes when
only the machine (its precision) changes, not the method.

    python scripts/prediction_agreement.py A/predictions.jsonl B/predictions.jsonl [--name A B]

Prints one markdown row per dataset the two logs share: the questions both answered, how many
outputs are identical token for token, how many answers are the same, how many questions each
solved and how many both solved. Greedy decoding of one model in bf16 and in float32 gives
other outputs wherever rounding changes the argmax of one token, and every token after it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

Key = tuple[str, str, Any]


def load(path: Path) -> dict[Key, dict[str, Any]]:
    """Rows of a ``predictions.jsonl`` by (dataset, question id, forced strategy)."""
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(r["dataset"], str(r["qid"]), r.get("forced")): r for r in rows}


def agreement(a: dict[Key, dict[str, Any]], b: dict[Key, dict[str, Any]]) -> list[list[str]]:
    """Per shared dataset: [dataset, n, identical outputs, same answer, A solved, B solved,
    both solved].

    >>> row = {"dataset": "d", "qid": "1", "output": "x", "answer": "2", "correct": True}
    >>> other = {**row, "output": "y"}
    >>> agreement({("d", "1", None): row}, {("d", "1", None): other})
    [['d', '1', '0', '1', '1', '1', '1']]
    """
    out = []
    for dataset in sorted({k[0] for k in a} & {k[0] for k in b}):
        keys = sorted((k for k in a.keys() & b.keys() if k[0] == dataset), key=str)
        pairs = [(a[k], b[k]) for k in keys]
        counts = [
            sum(x["output"] == y["output"] for x, y in pairs),
            sum(x.get("answer") == y.get("answer") for x, y in pairs),
            sum(bool(x["correct"]) for x, _ in pairs),
            sum(bool(y["correct"]) for _, y in pairs),
            sum(bool(x["correct"]) and bool(y["correct"]) for x, y in pairs),
        ]
        out.append([dataset, str(len(pairs)), *map(str, counts)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--name", nargs=2, default=["A", "B"], metavar=("A", "B"))
    args = parser.parse_args(argv)
    a_name, b_name = args.name
    header = [
        "dataset",
        "n",
        "identical outputs",
        "same answer",
        f"{a_name} solved",
        f"{b_name} solved",
        "both solved",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in agreement(load(args.a), load(args.b))]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
