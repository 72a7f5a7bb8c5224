"""The SIKeD loop: teacher once, then per iteration mix -> train -> evaluate -> sample.

Iteration 0 trains on the teacher data alone (plain multi-strategy distillation). Iteration
``i >= 1`` trains on the mix of the student's own correct samples from iteration ``i - 1``
(D_self) with teacher data (D_LLM), continuing from iteration ``i - 1``'s merged model
(``init_from: previous``) or from the base student (``init_from: base``).

The stopping rule looks at validation accuracy only: the validation questions are held out
from the GSM8K training split (never a test set). The run stops when validation accuracy has
not improved for ``loop.patience`` iterations; the final student is the best one on validation.
A teacher that keeps no rationale at all (D_LLM empty: a weak or misconfigured teacher) ends the
run right after the teacher stage, with the reason in ``summary.json`` (:func:`no_teacher_data`);
a few rationales are enough to go on.

Every stage is recorded in ``manifest.json`` (see :mod:`siked.manifest`); rerunning the same
command after a kill continues where it stopped, and a finished stage is not recomputed.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from siked.config import SikedConfig, to_yaml
from siked.errors import SikedError
from siked.io import (
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_jsonl,
    sha256_json,
    write_jsonl,
)
from siked.manifest import Manifest, hash_path

log = logging.getLogger("siked.loop")


class RunConfigMismatch(SikedError):
    """The run directory holds a run made with a different configuration."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def iteration(self, i: int) -> Path:
        return self.root / f"iter_{i:02d}"


# --------------------------------------------------------------------------- config checks


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts.

    >>> config_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})
    ['b.c: 2 -> 3']
    >>> config_diff({"a": 1}, {"a": 1, "z": 0})
    ['z: <absent> -> 0']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}{k}"
            if k not in old:
                out.append(f"{key}: <absent> -> {new[k]!r}")
            elif k not in new:
                out.append(f"{key}: {old[k]!r} -> <absent>")
            else:
                out.extend(config_diff(old[k], new[k], key + "."))
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
    return []


def prepare_run_dir(cfg: SikedConfig, force: bool) -> RunPaths:
    """Create the run directory or check that an existing one was made with this config."""
    paths = RunPaths(cfg.run_dir)
    new = cfg.model_dump(mode="json")
    if paths.config.exists():
        old = yaml.safe_load(paths.config.read_text(encoding="utf-8")) or {}
        diffs = config_diff(old, new)
        if diffs and not force:
            shown = "\n  ".join(diffs[:20]) + ("\n  ..." if len(diffs) > 20 else "")
            raise RunConfigMismatch(
                f"{paths.root} holds a run with a different config:\n  {shown}\n"
                "Rerun with the same config to resume it, choose another `name`/`output_dir`, "
                "or pass --force to continue with the new config (stages whose inputs changed "
                "are recomputed)."
            )
        if diffs:
            log.warning("config changed (--force): %s", "; ".join(diffs))
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.config, to_yaml(cfg))
    return paths


# --------------------------------------------------------------------------- data


def split_train_validation(cfg: SikedConfig) -> tuple[list[Any], list[Any]]:
    """Training and validation questions, disjoint, both from the training split.

    All questions of ``data.train`` are shuffled with the run seed (when ``data.shuffle``);
    the first ``validation_size`` are the validation set, the training questions follow
    (after ``offset``), ``data.train.limit`` of them.
    """
    from siked.data import load_problems

    spec = cfg.data.train
    problems = list(load_problems(spec.name, spec.split, data_dir=cfg.data.dir))
    if cfg.data.shuffle:
        random.Random(cfg.seed).shuffle(problems)
    n_val = cfg.data.validation_size
    validation = problems[:n_val]
    rest = problems[n_val + cfg.data.offset :]
    train = rest[: spec.limit] if spec.limit else rest
    if not train:
        raise SikedError(
            f"no training questions left: {len(problems)} in {spec.name}:{spec.split}, "
            f"validation_size={n_val}, offset={cfg.data.offset}"
        )
    return train, validation


def _qids_hash(problems: list[Any]) -> str:
    return sha256_json([p.id for p in problems])


# --------------------------------------------------------------------------- stages


def _clear_if_changed(man: Manifest, key: str, inputs: dict[str, Any], *stale: Path) -> None:
    """Remove a stage's old outputs when its inputs changed (``--force`` after a config change).

    The stages resume from partial outputs, which is right after a kill but wrong when the
    inputs are different: a retrained model at the same path must not reuse old samples.
    """
    if not man.changed(key, sha256_json(inputs)):
        return
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    log.info("%s: inputs changed, recomputing", key)


def _say(msg: str) -> None:
    print(f"[siked] {msg}", flush=True)


def _fmt_s(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def stage_teacher(cfg: SikedConfig, paths: RunPaths, man: Manifest, train: list[Any]) -> list[dict]:
    from siked.teach import teach

    teacher_cfg = cfg.teacher.model_dump(
        mode="json", exclude={"cache_dir", "concurrency", "chunk_size", "batch_size"}
    )
    inputs = {
        "teacher": teacher_cfg,
        "strategies": cfg.strategies,
        "questions": _qids_hash(train),
        "seed": cfg.seed,
    }
    kept = paths.teacher / "kept.jsonl"
    if not man.is_done("teacher", sha256_json(inputs)):
        _say(
            f"teacher: {cfg.teacher.engine} on {len(train)} questions x {len(cfg.strategies)} strategies"
        )
        with man.running("teacher", inputs, seed=cfg.seed) as st:
            stats = teach(
                train,
                cfg.teacher,
                paths.teacher,
                cfg.strategies,
                seed=cfg.seed,
                data_dir=cfg.data.dir,
            )
            st["outputs"] = {"kept": kept, "samples": paths.teacher / "samples.jsonl"}
            st["info"] = {"kept": stats.get("kept"), "yield": stats.get("yield")}
    rows = read_jsonl(kept)
    _say(
        f"teacher: kept {len(rows)} rationales for {len(train)} questions "
        f"({_teacher_yield(paths.teacher / 'stats.json')})"
    )
    return rows


def _teacher_yield(stats_path: Path) -> str:
    try:
        yields = read_json(stats_path).get("yield") or {}
    except (OSError, ValueError):
        return "yield unknown"
    return "yield " + ", ".join(
        f"{s} {100 * y:.0f}%" if y is not None else f"{s} -" for s, y in yields.items()
    )


def no_teacher_data(
    samples: list[dict[str, Any]], n_questions: int, strategies: list[str], cfg: SikedConfig
) -> str:
    """Why a run stops when the teacher kept no rationale, and what to change (pure).

    >>> rows = [{"status": "ok", "finish_reason": "stop"}, {"status": "invalid", "finish_reason": "length"}]
    >>> print(no_teacher_data(rows, 1, ["cot", "pot"], SikedConfig(name="x")))  # doctest: +NORMALIZE_WHITESPACE
    the teacher kept no rationale: none of its 2 samples (1 questions x 2 strategies) was correct
    and valid (1 wrong answer, 1 invalid; 1 cut at teacher.max_tokens=512), so there is nothing to
    train the student on. Use a stronger teacher (teacher.model), more questions (data.train),
    more samples (teacher.n) or more tokens (teacher.max_tokens); the samples are in
    runs/x/teacher/samples.jsonl
    """
    counts: dict[str, int] = {}
    for r in samples:
        status = str(r.get("status"))
        reason = "wrong answer" if status == "ok" else status.replace("_", " ")
        counts[reason] = counts.get(reason, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    cut = sum(r.get("finish_reason") == "length" for r in samples)
    if cut:
        detail += f"; {cut} cut at teacher.max_tokens={cfg.teacher.max_tokens}"
    return (
        f"the teacher kept no rationale: none of its {len(samples)} samples ({n_questions} "
        f"questions x {len(strategies)} strategies) was correct and valid"
        + (f" ({detail})" if detail else "")
        + ", so there is nothing to train the student on. Use a stronger teacher "
        "(teacher.model), more questions (data.train), more samples (teacher.n) or more tokens "
        f"(teacher.max_tokens); the samples are in {cfg.run_dir / 'teacher' / 'samples.jsonl'}"
    )


def stage_mix(
    cfg: SikedConfig, paths: RunPaths, man: Manifest, it: int, teacher_rows: list[dict]
) -> Path:
    from siked.mix import mix

    d = paths.iteration(it)
    out = d / "train.jsonl"
    student_path = paths.iteration(it - 1) / "samples.jsonl" if it > 0 else None
    inputs = {
        "mix": cfg.mix.model_dump(mode="json"),
        "teacher": hash_path(paths.teacher / "kept.jsonl"),
        "student": hash_path(student_path) if student_path else None,
        "iterations": cfg.loop.iterations,
        "strategies": cfg.strategies,
        "seed": cfg.seed,
    }
    key = f"iter_{it:02d}/mix"
    if man.is_done(key, sha256_json(inputs)) and out.exists():
        return out
    student_rows = read_jsonl(student_path) if student_path else []
    with man.running(key, inputs, seed=cfg.seed) as st:
        result = mix(
            teacher_rows,
            student_rows,
            cfg.mix,
            iteration=it,
            iterations=cfg.loop.iterations,
            strategies=cfg.strategies,
            seed=cfg.seed,
        )
        if not result.rows:
            raise SikedError(
                f"iteration {it}: the mix is empty (variant {cfg.mix.variant}); nothing to train on"
            )
        write_jsonl(out, result.rows)
        atomic_write_json(d / "stats.json", result.stats)
        st["outputs"] = {"train": out, "stats": d / "stats.json"}
        st["info"] = {"rows": len(result.rows), "alpha": result.stats.get("alpha")}
    s = result.stats
    alpha, kl = s.get("alpha"), s.get("kl")
    _say(
        f"iter {it:02d} mix: {len(result.rows)} rows"
        + (f", alpha={alpha:.2f}" if alpha is not None else "")
        + (f", KL={kl:.3f}" if kl is not None else "")
        + f", p_train={_fmt_dist(s.get('p_train') or {})}"
    )
    return out


def stage_train(cfg: SikedConfig, paths: RunPaths, man: Manifest, it: int, data: Path) -> Path:
    from siked.train import train

    d = paths.iteration(it)
    if it == 0 or cfg.loop.init_from == "base":
        base = cfg.student.model
    else:
        base = str(paths.iteration(it - 1) / "model" / "merged")
    train_cfg = cfg.train.model_copy(update={"save_merged": True, "seed": cfg.train.seed})
    inputs = {
        "train": train_cfg.model_dump(mode="json"),
        "data": hash_path(data),
        "base": base,
        "base_hash": hash_path(Path(base)) if Path(base).exists() else None,
    }
    key = f"iter_{it:02d}/train"
    merged = d / "model" / "merged"
    if man.is_done(key, sha256_json(inputs)) and merged.exists():
        return merged
    _clear_if_changed(man, key, inputs, d / "model")
    n_rows = len(read_jsonl(data))
    _say(f"iter {it:02d} train: {n_rows} rows from {base}")
    with man.running(key, inputs, seed=train_cfg.seed) as st:
        forced = cfg.strategies[0] if len(cfg.strategies) == 1 else None
        result = train(data, base, d / "model", train_cfg, forced=forced)
        st["outputs"] = {"model": result.adapter_dir or result.merged_dir}
        st["info"] = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str)}
    return Path(result.merged_dir) if result.merged_dir else merged


def stage_eval(
    cfg: SikedConfig, paths: RunPaths, man: Manifest, it: int, model: Path, validation: list[Any]
) -> dict[str, Any]:
    from siked.evaluate import evaluate

    d = paths.iteration(it) / "eval"
    datasets: list[Any] = []
    if validation:
        datasets.append(("validation", validation))
    datasets.extend(cfg.data.eval)
    eval_cfg = cfg.eval
    if len(cfg.strategies) == 1 and eval_cfg.mode == "free":
        eval_cfg = eval_cfg.model_copy(update={"mode": "forced"})
    inputs = {
        "eval": eval_cfg.model_dump(mode="json"),
        "model": hash_path(model / "model.safetensors") or str(model),
        "validation": _qids_hash(validation),
        "datasets": [str(s) for s in cfg.data.eval],
        "strategies": cfg.strategies,
        "seed": cfg.seed,
    }
    key = f"iter_{it:02d}/eval"
    out = d / "eval.json"
    if not (man.is_done(key, sha256_json(inputs)) and out.exists()):
        _clear_if_changed(man, key, inputs, d)
        names = ["validation"] if validation else []
        names += [str(s) for s in cfg.data.eval]
        _say(f"iter {it:02d} eval: {', '.join(names)}")
        with man.running(key, inputs, seed=cfg.seed) as st:
            evaluate(
                str(model),
                datasets,
                eval_cfg,
                d,
                cfg.strategies,
                seed=cfg.seed,
                data_dir=cfg.data.dir,
            )
            st["outputs"] = {"eval": out}
    result: dict[str, Any] = read_json(out)
    return result


def stage_sample(
    cfg: SikedConfig, paths: RunPaths, man: Manifest, it: int, model: Path, train: list[Any]
) -> Path:
    from siked.sample import sample

    d = paths.iteration(it)
    out = d / "samples.jsonl"
    inputs = {
        "sample": cfg.sample.model_dump(mode="json", exclude={"workers", "batch_size"}),
        "model": hash_path(model / "model.safetensors") or str(model),
        "questions": _qids_hash(train),
        "strategies": cfg.strategies,
        "seed": cfg.seed,
    }
    key = f"iter_{it:02d}/sample"
    if man.is_done(key, sha256_json(inputs)) and out.exists():
        return out
    _clear_if_changed(man, key, inputs, out, d / "samples.meta.json", d / "sample_stats.json")
    _say(f"iter {it:02d} sample: k={cfg.sample.k} on {len(train)} questions ({cfg.sample.mode})")
    with man.running(key, inputs, seed=cfg.seed) as st:
        stats = sample(
            train,
            str(model),
            cfg.sample,
            out,
            iteration=it,
            seed=cfg.seed,
            strategies=cfg.strategies,
        )
        if not (d / "sample_stats.json").exists():
            atomic_write_json(d / "sample_stats.json", stats)
        st["outputs"] = {"samples": out}
        st["info"] = {k: v for k, v in stats.items() if isinstance(v, int | float)}
    return out


# --------------------------------------------------------------------------- summary


def _fmt_dist(p: dict[str, float]) -> str:
    return " ".join(f"{k} {100 * v:.0f}%" for k, v in p.items() if v)


def summary_row(paths: RunPaths, it: int, man: Manifest) -> dict[str, Any]:
    d = paths.iteration(it)
    stats = read_json(d / "stats.json") if (d / "stats.json").exists() else {}
    ev = read_json(d / "eval" / "eval.json") if (d / "eval" / "eval.json").exists() else {}
    dsets = ev.get("datasets", {})
    seconds = sum(
        float(v.get("seconds") or 0)
        for k, v in man.data["stages"].items()
        if k.startswith(f"iter_{it:02d}/")
    )
    return {
        "iteration": it,
        "alpha": stats.get("alpha"),
        "kl": stats.get("kl"),
        "p_train": stats.get("p_train"),
        "rows": stats.get("rows"),
        "validation_accuracy": (dsets.get("validation") or {}).get("accuracy"),
        "eval": {k: v.get("accuracy") for k, v in dsets.items() if k != "validation"},
        "strategy_distribution": {k: v.get("strategy_distribution") for k, v in dsets.items()},
        "seconds": round(seconds, 1),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run table: iteration, alpha, KL, strategy mix, validation and eval accuracy."""
    rows = summary["iterations"]
    datasets: list[str] = []
    for r in rows:
        for k in r["eval"]:
            if k not in datasets:
                datasets.append(k)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    header = ["iter", "alpha", "KL", "train mix", "val acc", *datasets]
    table = [header]
    for r in rows:
        best = "*" if r["iteration"] == summary.get("best_iteration") else ""
        table.append(
            [
                f"{r['iteration']}{best}",
                "-" if r["alpha"] is None else f"{r['alpha']:.2f}",
                "-" if r["kl"] is None else f"{r['kl']:.3f}",
                _fmt_dist(r["p_train"] or {}) or "-",
                pct(r["validation_accuracy"]),
                *[pct(r["eval"].get(k)) for k in datasets],
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("(accuracy in %; * = best on validation, the final student)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the loop


def best_iteration(rows: list[dict[str, Any]]) -> int | None:
    """Index of the best validation accuracy; ties go to the earlier iteration.

    >>> best_iteration([{"iteration": 0, "validation_accuracy": 0.2},
    ...                 {"iteration": 1, "validation_accuracy": 0.3},
    ...                 {"iteration": 2, "validation_accuracy": 0.3}])
    1
    """
    best: tuple[float, int] | None = None
    for r in rows:
        acc = r.get("validation_accuracy")
        if acc is None:
            continue
        if best is None or acc > best[0]:
            best = (acc, r["iteration"])
    return None if best is None else best[1]


def should_stop(rows: list[dict[str, Any]], patience: int) -> bool:
    """True when validation accuracy has not improved for ``patience`` iterations.

    >>> rows = [{"iteration": i, "validation_accuracy": a} for i, a in enumerate([.2, .3, .3])]
    >>> should_stop(rows, 1), should_stop(rows, 2)
    (True, False)
    """
    b = best_iteration(rows)
    if b is None:
        return False
    return rows[-1]["iteration"] - b >= patience


def run(cfg: SikedConfig, *, force: bool = False) -> dict[str, Any]:
    """Run (or resume) SIKeD as configured; return the summary (also in ``summary.json``)."""
    t0 = time.monotonic()
    paths = prepare_run_dir(cfg, force)
    man = Manifest(paths.manifest, cfg.name, sha256_json(cfg.model_dump(mode="json")))
    _say(f"run {cfg.name} in {paths.root} ({cfg.method}, strategies {','.join(cfg.strategies)})")

    train_qs, val_qs = split_train_validation(cfg)
    _say(f"data: {len(train_qs)} training and {len(val_qs)} validation questions")
    teacher_rows = stage_teacher(cfg, paths, man, train_qs)

    iterations = 0 if cfg.method == "distill" else cfg.loop.iterations
    summary: dict[str, Any] = {"name": cfg.name, "method": cfg.method, "iterations": []}
    stopped: str | None = None
    if not teacher_rows:  # nothing to train on: no iteration at all
        samples = read_jsonl(paths.teacher / "samples.jsonl")
        stopped = no_teacher_data(samples, len(train_qs), cfg.strategies, cfg)
    for it in range(iterations + 1) if teacher_rows else ():
        data = stage_mix(cfg, paths, man, it, teacher_rows)
        model = stage_train(cfg, paths, man, it, data)
        stage_eval(cfg, paths, man, it, model, val_qs)
        summary["iterations"].append(summary_row(paths, it, man))
        summary["best_iteration"] = best_iteration(summary["iterations"])
        atomic_write_json(paths.summary, summary)
        _write_report(paths)
        if it == iterations:
            stopped = "completed all iterations"
            break
        if should_stop(summary["iterations"], cfg.loop.patience):
            stopped = f"validation accuracy did not improve for {cfg.loop.patience} iteration(s)"
            break
        stage_sample(cfg, paths, man, it, model, train_qs)

    summary["stopped"] = stopped
    summary["seconds"] = round(time.monotonic() - t0, 1)
    best = summary.get("best_iteration")
    if best is not None:
        summary["final_model"] = str(paths.iteration(best) / "model" / "merged")
    elif not summary["iterations"]:
        summary["final_model"] = None  # no student was trained
    atomic_write_json(paths.summary, summary)
    man.set("best_iteration", best)
    man.set("stopped", stopped)
    _write_report(paths)
    if summary["iterations"]:
        _say(f"stopped: {stopped}; final student: iteration {best} ({summary.get('final_model')})")
        print(format_summary(summary), flush=True)
    else:
        _say(f"stopped: {stopped}")
    _say(f"done in {_fmt_s(summary['seconds'])}; report: {paths.root / 'report' / 'report.md'}")
    return summary


def _write_report(paths: RunPaths) -> None:
    try:
        from siked.report import write_report

        write_report(paths.root)
    except Exception as e:  # the report must never break a run
        log.warning("could not write the report: %s", e)
