"""Reading a run directory for the report: whatever is there, never raising on a missing piece.

:func:`load_run` reads the files :class:`siked.rundir.RunPaths` names into a :class:`RunData`;
what is absent is listed in ``missing``, what is unreadable in ``problems``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from siked.errors import SikedError
from siked.io import read_json
from siked.lock import LOCK_NAME, Holder, holder_of
from siked.rundir import RunPaths, iteration_name


class ReportError(SikedError):
    """The run directory cannot be reported on (it does not exist)."""


@dataclass
class IterationData:
    iteration: int
    path: Path
    stats: dict[str, Any] | None = None  # iter_NN/stats.json (the mix)
    eval: dict[str, Any] | None = None  # iter_NN/eval/eval.json
    sample_stats: dict[str, Any] | None = None  # iter_NN/sample_stats.json
    has_samples: bool = False  # iter_NN/samples.jsonl exists


@dataclass
class RunData:
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    teacher_stats: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    iterations: list[IterationData] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # expected files that are absent
    problems: list[str] = field(default_factory=list)  # files present but unreadable, etc.
    writer: Holder | None = None  # the process holding the run directory's lock, if any
    has_lock_file: bool = False  # written by a siked that locks (else the state is guessed)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.path)

    @property
    def in_progress(self) -> bool:
        """A process is writing the run (the run's own process is done once it has stopped)."""
        if self.writer is None:
            return False
        return not (self.writer.is_this_process and (self.summary or {}).get("stopped"))

    @property
    def name(self) -> str:
        for src in (self.manifest, self.summary, self.config):
            if src and src.get("name"):
                return str(src["name"])
        return self.path.name

    @property
    def method(self) -> str:
        for src in (self.config, self.summary):
            if src and src.get("method"):
                return str(src["method"])
        return "siked" if any(it.iteration > 0 for it in self.iterations) else "unknown"

    @property
    def strategies(self) -> list[str]:
        s = self.config.get("strategies")
        if isinstance(s, list) and s:
            return [str(x) for x in s]
        for it in self.iterations:
            if it.stats and isinstance(it.stats.get("p_llm"), dict):
                return list(it.stats["p_llm"])
        from siked.strategies import strategy_names

        return strategy_names()

    @property
    def mix_config(self) -> dict[str, Any]:
        m = self.config.get("mix")
        return m if isinstance(m, dict) else {}

    def iteration(self, n: int) -> IterationData | None:
        for it in self.iterations:
            if it.iteration == n:
                return it
        return None


def _read_optional(
    run: RunData, path: Path, rel: str, expected: bool = True
) -> dict[str, Any] | None:
    if not path.is_file():
        if expected:
            run.missing.append(rel)
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        run.problems.append(f"{rel}: unreadable ({e.__class__.__name__}: {e})")
        return None
    if not isinstance(data, dict):
        run.problems.append(f"{rel}: not a JSON object")
        return None
    return data


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read everything the report needs from a run directory; never raises on missing pieces
    (they are listed in ``missing`` / ``problems``), only on a directory that does not exist."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ReportError(f"run directory not found: {path}")
    paths = RunPaths(path)
    run = RunData(path=path, writer=holder_of(path), has_lock_file=(path / LOCK_NAME).exists())

    def read(file: Path, expected: bool = True) -> dict[str, Any] | None:
        return _read_optional(run, file, file.relative_to(path).as_posix(), expected)

    if paths.config.is_file():
        try:
            loaded = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
            run.config = loaded if isinstance(loaded, dict) else {}
        except (OSError, yaml.YAMLError) as e:
            run.problems.append(f"{paths.config.name}: unreadable ({e.__class__.__name__})")
    else:
        run.missing.append(paths.config.name)
    run.manifest = read(paths.manifest)
    run.teacher_stats = read(paths.teacher_stats)
    if not paths.teacher_kept.is_file():
        run.missing.append(paths.teacher_kept.relative_to(path).as_posix())
    run.summary = read(paths.summary)

    numbers = paths.iterations()
    if not numbers:
        run.missing.append(f"{iteration_name(0)}/ (no iteration yet)")
    for n in numbers:
        later = any(m > n for m in numbers)
        it = IterationData(iteration=n, path=paths.iteration(n))
        it.stats = read(paths.mix_stats(n))
        it.eval = read(paths.eval_json(n))
        it.has_samples = paths.samples(n).is_file()
        # sampling only has to have happened when a later iteration exists
        it.sample_stats = read(paths.sample_stats(n), expected=later)
        if later and not it.has_samples and it.sample_stats is None:
            run.missing.append(paths.samples(n).relative_to(path).as_posix())
        run.iterations.append(it)
    return run
