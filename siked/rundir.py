"""The run directory: every path of a run, and which iteration is the run's result.

A run lives in ``output_dir/name`` and is the contract between the loop (which writes it), the
stages, the report and ``siked compare`` (which read it); the layout is documented in
``docs/architecture.md``. :class:`RunPaths` is the one place that spells it out: nothing else
joins ``iter_NN`` or file names of a run.

**The best iteration** (:func:`best_iteration`) is the run's final student, one definition for
the loop (which stops on it and names ``final_model``), the report and ``compare``: the
earliest iteration with the highest validation accuracy; when no iteration has a validation
accuracy (``data.validation_size: 0``), the last evaluated iteration; ``None`` before any
evaluation.

>>> paths = RunPaths(Path("runs/demo"))
>>> paths.merged(1).as_posix(), paths.stage_key(1, "train")
('runs/demo/iter_01/model/merged', 'iter_01/train')
>>> iteration_number("iter_07"), iteration_number("teacher") is None
(7, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: run-level files and directories
CONFIG = "config.yaml"
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
LOG_FILE = "siked.log"
TEACHER = "teacher"
REPORT = "report"
#: files of the teacher directory (written by :mod:`siked.teach`)
TEACHER_SAMPLES = "samples.jsonl"
TEACHER_KEPT = "kept.jsonl"
TEACHER_STATS = "stats.json"
#: files of an iteration directory
TRAIN_DATA = "train.jsonl"
MIX_STATS = "stats.json"
MODEL = "model"
MERGED = "merged"
SAMPLES = "samples.jsonl"
SAMPLE_STATS = "sample_stats.json"
EVAL = "eval"
EVAL_JSON = "eval.json"
PREDICTIONS = "predictions.jsonl"
#: the dataset name of the held-out validation split in ``eval.json``
VALIDATION = "validation"

_ITERATION = re.compile(r"^iter_(\d+)$")


def iteration_name(i: int) -> str:
    """``iter_07``: the directory (and manifest key prefix) of iteration ``i``."""
    return f"iter_{i:02d}"


def iteration_number(name: str) -> int | None:
    """The iteration of a directory name ``iter_NN``, else None."""
    m = _ITERATION.match(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class RunPaths:
    """Every path of the run directory ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def teacher(self) -> Path:
        return self.root / TEACHER

    @property
    def teacher_kept(self) -> Path:
        return self.teacher / TEACHER_KEPT

    @property
    def teacher_samples(self) -> Path:
        return self.teacher / TEACHER_SAMPLES

    @property
    def teacher_stats(self) -> Path:
        return self.teacher / TEACHER_STATS

    @property
    def report(self) -> Path:
        return self.root / REPORT

    def iteration(self, i: int) -> Path:
        return self.root / iteration_name(i)

    def train_data(self, i: int) -> Path:
        return self.iteration(i) / TRAIN_DATA

    def mix_stats(self, i: int) -> Path:
        return self.iteration(i) / MIX_STATS

    def model(self, i: int) -> Path:
        return self.iteration(i) / MODEL

    def merged(self, i: int) -> Path:
        """The merged student of iteration ``i``: what evaluation, sampling and ``i + 1`` use."""
        return self.model(i) / MERGED

    def samples(self, i: int) -> Path:
        return self.iteration(i) / SAMPLES

    def sample_stats(self, i: int) -> Path:
        return self.iteration(i) / SAMPLE_STATS

    def eval_dir(self, i: int) -> Path:
        return self.iteration(i) / EVAL

    def eval_json(self, i: int) -> Path:
        return self.eval_dir(i) / EVAL_JSON

    def predictions(self, i: int) -> Path:
        return self.eval_dir(i) / PREDICTIONS

    def iterations(self) -> list[int]:
        """The iterations that have a directory, in order."""
        if not self.root.is_dir():
            return []
        found = (iteration_number(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted(n for n in found if n is not None)

    @staticmethod
    def stage_key(i: int, stage: str) -> str:
        """The manifest key of a stage of iteration ``i``: ``iter_01/train``."""
        return f"{iteration_name(i)}/{stage}"

    @staticmethod
    def is_stage_of(key: str, i: int) -> bool:
        """Whether manifest key ``key`` belongs to iteration ``i``."""
        return key.startswith(f"{iteration_name(i)}/")


# --------------------------------------------------------------------------------------------
# the result of a run


def accuracy_of(result: Mapping[str, Any] | None) -> float | None:
    """Accuracy of one dataset result of ``eval.json`` (``accuracy``, else ``correct / n``).

    >>> accuracy_of({"n": 20, "correct": 5}), accuracy_of({"accuracy": 0.3}), accuracy_of(None)
    (0.25, 0.3, None)
    """
    if not result:
        return None
    acc = result.get("accuracy")
    if isinstance(acc, int | float):
        return float(acc)
    n, c = result.get("n"), result.get("correct")
    if isinstance(n, int) and isinstance(c, int) and n > 0:
        return c / n
    return None


def iteration_summary(
    iteration: int,
    mix_stats: Mapping[str, Any] | None,
    eval_result: Mapping[str, Any] | None,
    seconds: float | None,
) -> dict[str, Any]:
    """One row of ``summary.json`` from an iteration's files (the loop writes these rows; the
    report reads them back the same way).

    >>> r = iteration_summary(1, {"alpha": 0.5, "rows": 10}, {"datasets": {
    ...     "validation": {"accuracy": 0.25}, "gsm8k:test": {"n": 4, "correct": 1}}}, 12.34)
    >>> r["alpha"], r["validation_accuracy"], r["eval"], r["seconds"]
    (0.5, 0.25, {'gsm8k:test': 0.25}, 12.3)
    >>> r["untagged"]  # answers without a strategy tag, per dataset (None: not recorded)
    {'validation': None, 'gsm8k:test': None}
    """
    stats = mix_stats or {}
    found = (eval_result or {}).get("datasets")
    # a hand-edited or broken eval.json: only dataset entries that are objects count
    datasets = (
        {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}
    )
    return {
        "iteration": iteration,
        "alpha": stats.get("alpha"),
        "kl": stats.get("kl"),
        "kl_support": stats.get("kl_support"),
        "kl_all": stats.get("kl_all"),
        "p_train": stats.get("p_train"),
        "rows": stats.get("rows"),
        "validation_accuracy": accuracy_of(datasets.get(VALIDATION)),
        "eval": {k: accuracy_of(v) for k, v in datasets.items() if k != VALIDATION},
        "strategy_distribution": {k: v.get("strategy_distribution") for k, v in datasets.items()},
        "untagged": {k: v.get("untagged") for k, v in datasets.items()},
        "seconds": round(seconds, 1) if seconds is not None else None,
    }


def untagged_total(counts: Mapping[str, Any] | None) -> int | None:
    """Answers without a strategy tag over the evaluated sets of a ``summary.json`` row's
    ``untagged`` (None when no set recorded it).

    >>> untagged_total({"validation": 3, "gsm8k:test": 10}), untagged_total({"svamp": None})
    (13, None)
    """
    known = [int(v) for v in (counts or {}).values() if isinstance(v, int)]
    return sum(known) if known else None


def best_iteration(rows: Iterable[Mapping[str, Any]]) -> int | None:
    """The run's final student among summary rows (``iteration``, ``validation_accuracy``,
    ``eval``): the earliest iteration with the highest validation accuracy; without any
    validation accuracy, the last iteration with an evaluation result; else None.

    >>> best_iteration([{"iteration": 0, "validation_accuracy": 0.2},
    ...                 {"iteration": 1, "validation_accuracy": 0.3},
    ...                 {"iteration": 2, "validation_accuracy": 0.3}])
    1
    >>> best_iteration([{"iteration": 0, "eval": {"svamp": 0.1}},
    ...                 {"iteration": 1, "eval": {"svamp": 0.2}}, {"iteration": 2, "eval": {}}])
    1
    >>> best_iteration([]) is None
    True
    """
    best: tuple[float, int] | None = None
    evaluated: int | None = None
    for r in rows:
        acc = r.get("validation_accuracy")
        acc = float(acc) if isinstance(acc, int | float) else None
        if acc is not None and (best is None or acc > best[0]):
            best = (acc, int(r["iteration"]))
        if acc is not None or any(v is not None for v in (r.get("eval") or {}).values()):
            evaluated = int(r["iteration"])
    return best[1] if best is not None else evaluated
