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
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from siked.config import REMOVED_ENGINE_KEYS, EngineConfig, SikedConfig, to_yaml
from siked.console import format_duration, run_console, say
from siked.errors import SikedError
from siked.io import (
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_jsonl,
    sha256_json,
)
from siked.lock import LOCK_NAME, busy_below, output_lock
from siked.manifest import Manifest, hash_path, precision_change
from siked.mix import format_kl
from siked.rundir import RunPaths, best_iteration, iteration_summary, untagged_total
from siked.styles import DEFAULT_STYLE
from siked.text import collapse_whitespace

if TYPE_CHECKING:
    from siked.engines.base import Engine

log = logging.getLogger("siked.loop")

#: engine settings about starting a server, not about what it generates: not stage inputs
_HOW_TO_START = frozenset({"vllm_executable", "startup_timeout"})
#: removed engine keys at the value earlier runs had: part of the stage inputs as they were
_REMOVED = {key: value for key, (value, _) in REMOVED_ENGINE_KEYS.items()}


def _without_removed_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    """A stored config (its sections) without the engine keys siked no longer has.

    >>> _without_removed_keys({"seed": 1, "eval": {"engine": "hf", "continuous_batching": True}})
    {'seed': 1, 'eval': {'engine': 'hf'}}
    """
    return {
        k: {kk: vv for kk, vv in v.items() if kk not in _REMOVED} if isinstance(v, dict) else v
        for k, v in cfg.items()
    }


class RunConfigMismatch(SikedError):
    """The run directory holds a run made with a different configuration."""


# --------------------------------------------------------------------------- config checks


def default_config_dump() -> dict[str, Any]:
    """Every config key at its default (JSON types): what a key siked gained since a run was
    made counts as in that run (:func:`config_diff`, :func:`siked.manifest.same_inputs`)."""
    return SikedConfig().model_dump(mode="json")


def config_diff(old: Any, new: Any, prefix: str = "", defaults: Any = None) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts. A key ``old`` lacks
    whose new value is its value in ``defaults`` is no difference (a run made before siked
    had the key ran as its default does).

    >>> config_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})
    ['b.c: 2 -> 3']
    >>> config_diff({"a": 1}, {"a": 1, "z": 0})
    ['z: <absent> -> 0']
    >>> config_diff({"a": 1}, {"a": 1, "z": 0}, defaults={"z": 0})
    []
    """
    if isinstance(old, dict) and isinstance(new, dict):
        d = defaults if isinstance(defaults, dict) else {}
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}{k}"
            if k not in old:
                if k not in d or d[k] != new[k]:
                    out.append(f"{key}: <absent> -> {new[k]!r}")
            elif k not in new:
                out.append(f"{key}: {old[k]!r} -> <absent>")
            else:
                out.extend(config_diff(old[k], new[k], key + ".", d.get(k)))
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
        diffs = config_diff(_without_removed_keys(old), new, defaults=default_config_dump())
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
    (after ``offset``), ``data.train.limit`` of them. Questions the teacher sees as exemplars
    in ``teacher.prompt_style`` (:func:`siked.strategies.exemplar_questions`: the authors'
    style shows eight GSM8K training problems) are left out after shuffling (the others keep
    their order; with the default style nothing is left out).
    """
    from siked.data import load_problems
    from siked.strategies import exemplar_questions

    spec = cfg.data.train
    problems = list(load_problems(spec.name, spec.split, data_dir=cfg.data.dir))
    if cfg.data.shuffle:
        random.Random(cfg.seed).shuffle(problems)
    shown = exemplar_questions(cfg.teacher.prompt_style, list(cfg.strategies))
    problems = [p for p in problems if collapse_whitespace(p.question) not in shown]
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


def _prelude_input(cfg: SikedConfig) -> dict[str, str]:
    """The sandbox prelude as an input of the stages that run PoT programs (absent for
    ``none``, so runs made before the prelude existed stay done)."""
    prelude = cfg.sandbox.prelude
    return {} if prelude == "none" else {"prelude": prelude}


def _clear_if_changed(man: Manifest, key: str, inputs: dict[str, Any], *stale: Path) -> None:
    """Remove a stage's old outputs when its inputs changed (``--force`` after a config change).

    The stages resume from partial outputs, which is right after a kill but wrong when the
    inputs are different: a retrained model at the same path must not reuse old samples.
    """
    if not man.changed(key, inputs):
        return
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    log.info("%s: inputs changed, recomputing", key)


#: never copied from another run: trainer checkpoints (removed when training is done), lock
#: files, and OpenVINO copies of a model (made again beside the copy when an engine needs one)
_NOT_REUSED = shutil.ignore_patterns("checkpoints", LOCK_NAME, "*.openvino")


def check_reuse(donors: Sequence[Path]) -> list[Path]:
    """The run directories of ``--reuse``, each checked to hold a run (a ``manifest.json``)."""
    for d in donors:
        if not RunPaths(Path(d)).manifest.is_file():
            raise SikedError(f"--reuse {d}: no run there (no {RunPaths(Path(d)).manifest.name})")
    return [Path(d) for d in donors]


def reuse_stage(
    man: Manifest,
    paths: RunPaths,
    key: str,
    inputs: dict[str, Any],
    donors: Sequence[Path],
    directory: Path,
    outputs: Mapping[str, tuple[Path, ...]],
) -> Path | None:
    """Copy stage ``key`` from the first of ``donors`` (other runs' directories) that finished
    it with the same inputs, instead of computing it; the donor whose run it was, or None.

    ``directory`` (inside this run) holds everything the stage makes; it is copied from the
    same place in the donor (:data:`_NOT_REUSED` left out) into a temporary sibling, checked
    against the hashes the donor recorded for the stage's ``outputs`` (name -> the paths in
    ``directory`` that output may be: one must hash as recorded) and only then renamed into
    place, so a donor whose files changed since, or a kill during the copy, leaves nothing
    half reused (the next attempt of the stage removes what a killed copy left).
    """
    tmp = directory.with_name(directory.name + ".reused")
    shutil.rmtree(tmp, ignore_errors=True)
    for donor in donors:
        other = RunPaths(donor)
        if other.root.resolve() == paths.root.resolve():
            continue
        record = man.done_in(other.manifest, key, inputs)
        source = other.root / directory.relative_to(paths.root)
        if record is None or not source.exists():
            continue
        t0 = time.perf_counter()
        shutil.copytree(source, tmp, ignore=_NOT_REUSED)
        recorded = record.get("outputs") or {}
        if set(recorded) != set(outputs) or any(
            all(hash_path(tmp / p.relative_to(directory)) != h for p in outputs[name])
            for name, h in recorded.items()
        ):
            shutil.rmtree(tmp)
            log.warning(
                "%s: %s's files changed since it recorded the stage; not reused", key, donor
            )
            continue
        if directory.exists():
            shutil.rmtree(directory)  # what a killed attempt of this stage left
        tmp.rename(directory)
        man.adopt(key, record, str(donor), time.perf_counter() - t0)
        return donor
    return None


def _say(msg: str) -> None:
    say(msg)


def teacher_inputs(cfg: SikedConfig, train: list[Any]) -> dict[str, Any]:
    """What the teacher stage's outputs depend on (the manifest's key for it). The default
    ``prompt_style`` is left out, as before the key existed, so earlier runs stay done."""
    teacher_cfg = (
        cfg.teacher.model_dump(
            mode="json",
            exclude={"cache_dir", "concurrency", "chunk_size", "batch_size", *_HOW_TO_START},
        )
        | _REMOVED
    )
    if teacher_cfg.get("prompt_style") == DEFAULT_STYLE:
        del teacher_cfg["prompt_style"]
    return {
        "teacher": teacher_cfg,
        "strategies": cfg.strategies,
        "questions": _qids_hash(train),
        "seed": cfg.seed,
        **_prelude_input(cfg),
    }


def stage_teacher(
    cfg: SikedConfig,
    paths: RunPaths,
    man: Manifest,
    train: list[Any],
    reuse: Sequence[Path] = (),
) -> list[dict]:
    from siked.teach import teach

    inputs = teacher_inputs(cfg, train)
    kept = paths.teacher_kept
    took = ""
    outputs = {"kept": (kept,), "samples": (paths.teacher_samples,)}
    done = man.is_done("teacher", inputs)
    if not done and (
        donor := reuse_stage(man, paths, "teacher", inputs, reuse, paths.teacher, outputs)
    ):
        took = f", reused from {donor}"
    elif not done:
        t0 = time.perf_counter()
        with man.running("teacher", inputs, seed=cfg.seed) as st:
            stats = teach(
                train,
                cfg.teacher,
                paths.teacher,
                cfg.strategies,
                seed=cfg.seed,
                data_dir=cfg.data.dir,
            )
            st["outputs"] = {"kept": kept, "samples": paths.teacher_samples}
            st["info"] = {"kept": stats.get("kept"), "yield": stats.get("yield")}
        took = f" in {format_duration(time.perf_counter() - t0)}"
    rows = read_jsonl(kept)
    _say(
        f"teacher: {cfg.teacher.engine} kept {len(rows)} rationales for {len(train)} questions "
        f"({_teacher_yield(paths.teacher_stats)}){took}"
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


def stage_mix(cfg: SikedConfig, paths: RunPaths, man: Manifest, it: int) -> Path:
    from siked.mix import mix_files

    out, stats_path = paths.train_data(it), paths.mix_stats(it)
    student_path = paths.samples(it - 1) if it > 0 else None
    inputs = {
        "mix": cfg.mix.model_dump(mode="json"),
        "teacher": hash_path(paths.teacher_kept),
        "student": hash_path(student_path) if student_path else None,
        "iterations": cfg.loop.iterations,
        "strategies": cfg.strategies,
        "seed": cfg.seed,
    }
    key = paths.stage_key(it, "mix")
    if man.is_done(key, inputs) and out.exists():
        return out
    with man.running(key, inputs, seed=cfg.seed) as st:
        result = mix_files(
            paths.teacher_kept,
            student_path,
            paths.iteration(it),
            cfg.mix,
            iteration=it,
            iterations=cfg.loop.iterations,
            strategies=cfg.strategies,
            seed=cfg.seed,
        )
        st["outputs"] = {"train": out, "stats": stats_path}
        st["info"] = {"rows": len(result.rows), "alpha": result.stats.get("alpha")}
    s = result.stats
    alpha, kl = s.get("alpha"), s.get("kl")
    _say(
        f"iter {it:02d} mix: {len(result.rows)} rows"
        + (f", alpha={alpha:.2f}" if alpha is not None else "")
        + (f", KL={format_kl(kl, s.get('kl_support'))}" if kl is not None else "")
        + f", p_train={_fmt_dist(s.get('p_train') or {})}"
    )
    return out


def own_samples_line(stats: dict[str, Any]) -> str:
    """How many of its own samples the student solved (the share SIKeD's premise rests on), by
    the strategy it chose, and how many questions it solved at least once.

    >>> own_samples_line({"generated": 80, "correct": 10, "questions": 20, "questions_solved": 7,
    ...     "per_strategy": {"cot": {"samples": 20, "correct": 1},
    ...                      "l2m": {"samples": 0, "correct": 0},
    ...                      "pot": {"samples": 60, "correct": 9}}})
    '10 correct (12.5%; cot 1/20, pot 9/60), 7 of 20 questions solved'
    """
    n, correct = stats.get("generated") or 0, stats.get("correct") or 0
    per = [
        f"{s} {v.get('correct', 0)}/{v['samples']}"
        for s, v in (stats.get("per_strategy") or {}).items()
        if v.get("samples")
    ]
    share = f"{100 * correct / n:.1f}%" if n else "—"
    line = f"{correct} correct ({'; '.join([share, ', '.join(per)]) if per else share})"
    if stats.get("questions"):
        line += f", {stats.get('questions_solved', 0)} of {stats['questions']} questions solved"
    return line


def train_in_child(setting: str | bool) -> bool:
    """Whether the train stage runs in a child process (``loop.train_subprocess``).

    ``auto`` does so when a CUDA GPU is visible: the process that trained holds GPU memory
    until it ends, and the vLLM server started next needs it. On CPU training stays in this
    process (no second start-up of torch).
    """
    if setting != "auto":
        return bool(setting)
    import torch

    return bool(torch.cuda.is_available())


def stage_train(
    cfg: SikedConfig,
    paths: RunPaths,
    man: Manifest,
    it: int,
    data: Path,
    reuse: Sequence[Path] = (),
) -> Path:
    from siked.train import train

    if it == 0 or cfg.loop.init_from == "base":
        base = cfg.student.model
    else:
        base = str(paths.merged(it - 1))
    train_cfg = cfg.train.model_copy(update={"save_merged": True, "seed": cfg.train.seed})
    inputs = {
        # ddp_timeout changes no weight (and runs made before the key existed stay done)
        "train": train_cfg.model_dump(mode="json", exclude={"ddp_timeout"}),
        "data": hash_path(data),
        "base": base,
        "base_hash": hash_path(Path(base)) if Path(base).exists() else None,
    }
    key = paths.stage_key(it, "train")
    merged = paths.merged(it)
    if man.is_done(key, inputs) and merged.exists():
        return merged
    model_dir = paths.model(it)
    outputs = {"model": (model_dir / "adapter", merged)}  # LoRA's adapter, or the full model
    donor = reuse_stage(man, paths, key, inputs, reuse, model_dir, outputs)
    if donor is not None:
        seconds = man.stage(key).get("donor_seconds")
        _say(
            f"iter {it:02d} train: reused from {donor}"
            + (f" (trained there in {format_duration(float(seconds))})" if seconds else "")
        )
        return merged
    _clear_if_changed(man, key, inputs, model_dir)
    t0 = time.perf_counter()
    with man.running(key, inputs, seed=train_cfg.seed) as st:
        forced = cfg.strategies[0] if len(cfg.strategies) == 1 else None
        args = (data, base, paths.model(it), train_cfg)
        if train_in_child(cfg.loop.train_subprocess):
            import torch

            from siked.child import call_in_child
            from siked.train import one_gpu_env

            env = one_gpu_env(torch.cuda.device_count(), os.environ)
            result = call_in_child(train, *args, what="training", env=env, forced=forced)
        else:
            result = train(*args, forced=forced)
        st["outputs"] = {"model": result.adapter_dir or result.merged_dir}
        st["info"] = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str)}
    m = result.metrics
    loss = m.get("train_loss")
    _say(
        f"iter {it:02d} train: {m.get('train_examples')} examples, {m.get('global_steps')} steps"
        + (f", loss {loss:.3f}" if isinstance(loss, float) else "")
        + f", {float(m.get('tokens_per_second') or 0):.0f} tok/s, "
        f"{format_duration(time.perf_counter() - t0)} (from {'base' if base == cfg.student.model else base})"
    )
    return Path(result.merged_dir) if result.merged_dir else merged


def stage_eval(
    cfg: SikedConfig,
    paths: RunPaths,
    man: Manifest,
    it: int,
    model: Path,
    validation: list[Any],
    *,
    test: bool = True,
    key: str = "eval",
    engine: Callable[[], Engine | None] | None = None,
) -> dict[str, Any]:
    """Evaluate iteration ``it``'s student on the validation split and (``test``) the
    ``data.eval`` sets into ``iter_NN/eval``; ``key`` names the manifest stage (``test``: the
    final student's test sets added to an evaluation that had only validation); ``engine``
    gives the engine to use if the stage runs (None: evaluate opens its own)."""
    from siked.evaluate import evaluate

    d = paths.eval_dir(it)
    datasets: list[Any] = []
    if validation:
        datasets.append(("validation", validation))
    test_sets = list(cfg.data.eval) if test else []
    datasets.extend(test_sets)
    eval_cfg = cfg.eval
    if len(cfg.strategies) == 1 and eval_cfg.mode == "free":
        eval_cfg = eval_cfg.model_copy(update={"mode": "forced"})
    inputs = {
        "eval": eval_cfg.model_dump(mode="json", exclude=set(_HOW_TO_START)) | _REMOVED,
        "model": hash_path(model / "model.safetensors") or str(model),
        "validation": _qids_hash(validation),
        "datasets": [str(s) for s in test_sets],
        "strategies": cfg.strategies,
        "seed": cfg.seed,
        **_prelude_input(cfg),
    }
    key = paths.stage_key(it, key)
    out = paths.eval_json(it)
    if not (man.is_done(key, inputs) and out.exists()):
        if not key.endswith("/test"):  # the test stage adds to the evaluation, never clears it
            _clear_if_changed(man, key, inputs, d)
        t0 = time.perf_counter()
        with man.running(key, inputs, seed=cfg.seed) as st:
            evaluate(
                str(model),
                datasets,
                eval_cfg,
                d,
                cfg.strategies,
                seed=cfg.seed,
                data_dir=cfg.data.dir,
                engine=engine() if engine else None,
            )
            st["outputs"] = {"eval": out}
        results = read_json(out).get("datasets") or {}
        order = [d[0] if isinstance(d, tuple) else str(d) for d in datasets]  # as configured
        accs = [
            f"{name} {100 * r['accuracy']:.1f}% ({r.get('correct')}/{r.get('n')})"
            for name in [*order, *sorted(set(results) - set(order))]
            if (r := results.get(name)) and r.get("accuracy") is not None
        ]
        what = key.rsplit("/", 1)[1]
        _say(
            f"iter {it:02d} {what}: {', '.join(accs)} in {format_duration(time.perf_counter() - t0)}"
        )
    result: dict[str, Any] = read_json(out)
    return result


def stage_sample(
    cfg: SikedConfig,
    paths: RunPaths,
    man: Manifest,
    it: int,
    model: Path,
    train: list[Any],
    engine: Callable[[], Engine | None] | None = None,
) -> Path:
    from siked.sample import meta_path, sample

    out, stats_path = paths.samples(it), paths.sample_stats(it)
    inputs = {
        "sample": cfg.sample.model_dump(
            mode="json", exclude={"workers", "batch_size", *_HOW_TO_START}
        )
        | _REMOVED,
        "model": hash_path(model / "model.safetensors") or str(model),
        "questions": _qids_hash(train),
        "strategies": cfg.strategies,
        "seed": cfg.seed,
        **_prelude_input(cfg),
    }
    key = paths.stage_key(it, "sample")
    if man.is_done(key, inputs) and out.exists():
        return out
    _clear_if_changed(man, key, inputs, out, meta_path(out), stats_path)
    t0 = time.perf_counter()
    with man.running(key, inputs, seed=cfg.seed) as st:
        stats = sample(
            train,
            str(model),
            cfg.sample,
            out,
            iteration=it,
            seed=cfg.seed,
            strategies=cfg.strategies,
            engine=engine() if engine else None,
        )
        if not stats_path.exists():
            atomic_write_json(stats_path, stats)
        st["outputs"] = {"samples": out}
        st["info"] = {k: v for k, v in stats.items() if isinstance(v, int | float)}
    _say(
        f"iter {it:02d} sample: {stats.get('samples')} samples (k={cfg.sample.k}, "
        f"{cfg.sample.mode}) of {len(train)} questions: {own_samples_line(stats)}, "
        f"{float(stats.get('tokens_per_second') or 0):.0f} tok/s, "
        f"{format_duration(time.perf_counter() - t0)}"
    )
    return out


def shared_engine_config(cfg: SikedConfig) -> EngineConfig | None:
    """The engine settings evaluation and sampling of an iteration share one server with:
    both ``vllm`` with the same engine keys (sampling settings aside, which go with each
    request), else None (each stage starts its own engine)."""
    keys = set(EngineConfig.model_fields)
    ev, sa = cfg.eval.model_dump(include=keys), cfg.sample.model_dump(include=keys)
    if cfg.method != "siked" or ev["engine"] != "vllm" or ev != sa:
        return None
    return EngineConfig(**ev)


class IterationEngine:
    """The engine of one iteration's student, opened by the first stage that runs
    (:meth:`get`; None when ``cfg`` is None: each stage opens its own) and closed on leaving
    the ``with`` block."""

    def __init__(self, cfg: EngineConfig | None, model: Path) -> None:
        self.cfg, self.model = cfg, model
        self.engine: Engine | None = None

    def get(self) -> Engine | None:
        if self.cfg is not None and self.engine is None:
            from siked.student import open_student_engine

            self.engine = open_student_engine(self.cfg, str(self.model))
        return self.engine

    def __enter__(self) -> IterationEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


# --------------------------------------------------------------------------- summary


def _fmt_dist(p: dict[str, float]) -> str:
    return " ".join(f"{k} {100 * v:.0f}%" for k, v in p.items() if v)


def summary_row(paths: RunPaths, it: int, man: Manifest) -> dict[str, Any]:
    """The ``summary.json`` row of iteration ``it`` (:func:`siked.rundir.iteration_summary`)."""
    stats, ev = paths.mix_stats(it), paths.eval_json(it)
    seconds = sum(
        float(v.get("seconds") or 0)
        for k, v in man.data["stages"].items()
        if RunPaths.is_stage_of(k, it)
    )
    return iteration_summary(
        it,
        read_json(stats) if stats.exists() else None,
        read_json(ev) if ev.exists() else None,
        seconds,
    )


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

    header = ["iter", "alpha", "KL", "KL(all)", "train mix", "untagged", "val acc", *datasets]
    table = [header]
    for r in rows:
        best = "*" if r["iteration"] == summary.get("best_iteration") else ""
        untagged = untagged_total(r.get("untagged"))
        table.append(
            [
                f"{r['iteration']}{best}",
                "-" if r["alpha"] is None else f"{r['alpha']:.2f}",
                format_kl(r["kl"], r.get("kl_support")),
                "-" if r.get("kl_all") is None else f"{r['kl_all']:.3f}",
                _fmt_dist(r["p_train"] or {}) or "-",
                "-" if untagged is None else str(untagged),
                pct(r["validation_accuracy"]),
                *[pct(r["eval"].get(k)) for k in datasets],
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        "(accuracy in %; * = best on validation, the final student; untagged = answers without "
        "a strategy tag, over all evaluated sets (eval.untagged decides if they can count); "
        "KL = KL(P_train || P_student), KL(all) against all the student's samples: siked's "
        "reading of Figure 2, not the paper's curve: under a bias it mostly measures the PoT "
        "share of the mix)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the loop


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


#: the package each experiment tracker of ``train.report_to`` needs
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def run_engines(cfg: SikedConfig) -> dict[str, EngineConfig]:
    """The engine sections the run will use, by section name."""
    used: dict[str, EngineConfig] = {} if cfg.method == "base" else {"teacher": cfg.teacher}
    if cfg.method == "siked":
        used["sample"] = cfg.sample
    used["eval"] = cfg.eval
    return used


def preflight_problems(cfg: SikedConfig, gpus: int | None = None) -> list[str]:
    """What would stop the run after it started, found before its first stage: GPUs a vLLM
    engine asks for that are not visible (``gpus``: the visible CUDA devices, counted here when
    None) and experiment trackers whose package is missing. The engines' own checks
    (:meth:`Engine.check_ready`) are made by :func:`check_engines`.

    >>> from siked.config import load_config
    >>> cfg = load_config(overrides=["teacher.engine=vllm", "teacher.tensor_parallel_size=4",
    ...                              "train.report_to=[no_such_tracker]"])
    >>> for line in preflight_problems(cfg, gpus=2): print(line)
    teacher.tensor_parallel_size is 4 but 2 GPUs are visible (CUDA_VISIBLE_DEVICES)
    """
    import importlib.util

    problems = []
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    for name, ecfg in run_engines(cfg).items():
        tp = ecfg.tensor_parallel_size
        if ecfg.engine == "vllm" and gpus and tp > gpus:
            problems.append(
                f"{name}.tensor_parallel_size is {tp} but {gpus} GPU{'s are' if gpus > 1 else ' is'}"
                " visible (CUDA_VISIBLE_DEVICES)"
            )
    report = cfg.train.report_to
    for tracker in [report] if isinstance(report, str) else report:
        package = TRACKER_PACKAGES.get(tracker)
        if package and importlib.util.find_spec(package) is None:
            problems.append(
                f"train.report_to names {tracker}, but the {package} package is not installed "
                f"(pip install {package}, or train.report_to: none)"
            )
    return problems


def check_engines(cfg: SikedConfig) -> None:
    """Each engine the run will build can run here (:meth:`Engine.check_ready`), and nothing
    :func:`preflight_problems` finds is in the way, or fail now, naming every problem."""
    from siked.engines import engine_class

    for ecfg in run_engines(cfg).values():
        engine_class(ecfg.engine).check_ready(ecfg)
    problems = preflight_problems(cfg)
    if problems:
        raise SikedError("this run cannot start here:\n  " + "\n  ".join(problems))


def run(
    cfg: SikedConfig,
    *,
    force: bool = False,
    verbose: bool = False,
    reuse: Sequence[Path] = (),
) -> dict[str, Any]:
    """Run (or resume) SIKeD as configured; return the summary (also in ``summary.json``).

    ``reuse``: other runs' directories whose finished stages (the teacher's rationales, a
    trained student) are copied instead of computed where they were made with the same
    inputs (:func:`reuse_stage`); what the run makes is the same either way.

    Holds the run directory's lock (:mod:`siked.lock`) throughout; the stages inside find
    their sub-directories covered by it. Refused at once when another process writes the run
    directory, a directory above it, or a stage directory inside it (``report/`` excepted).
    A student that is not available fails first.

    The terminal gets one line per stage and siked's progress bars; everything else (library
    logs and warnings, the trainer's per-step metrics) goes to ``siked.log`` in the run
    directory (:mod:`siked.console`); ``verbose`` also shows it on the terminal.
    """
    from siked.models import check_student
    from siked.sandbox import set_default_prelude

    set_default_prelude(cfg.sandbox.prelude)  # the sandboxes of teach, sample and eval
    check_student(cfg.student.model)  # not available: fail now, not in training
    check_engines(cfg)
    donors = check_reuse(reuse)
    with output_lock(cfg.run_dir, "run"):
        busy_below(cfg.run_dir, depth=2, skip=("report",))
        paths = prepare_run_dir(cfg, force)
        with run_console(paths.log, verbose=verbose):
            return _run(cfg, paths, donors)


def _run(cfg: SikedConfig, paths: RunPaths, reuse: Sequence[Path] = ()) -> dict[str, Any]:
    man = Manifest(
        paths.manifest,
        cfg.name,
        sha256_json(cfg.model_dump(mode="json")),
        defaults=default_config_dump(),
    )
    _say(f"run {cfg.name} in {paths.root} ({cfg.method}, strategies {','.join(cfg.strategies)})")
    auto = cfg.train.bf16 is None or "auto" in (cfg.sample.dtype, cfg.eval.dtype)
    change = precision_change(man.data["invocations"], auto)
    if change:
        log.warning(change)

    train_qs, val_qs = split_train_validation(cfg)
    _say(f"data: {len(train_qs)} training and {len(val_qs)} validation questions")
    if cfg.method == "base":
        return _run_base(cfg, paths, man, val_qs)
    teacher_rows = stage_teacher(cfg, paths, man, train_qs, reuse)

    iterations = 0 if cfg.method == "distill" else cfg.loop.iterations
    summary: dict[str, Any] = {"name": cfg.name, "method": cfg.method, "iterations": []}
    stopped: str | None = None
    if not teacher_rows:  # nothing to train on: no iteration at all
        samples = read_jsonl(paths.teacher_samples)
        stopped = no_teacher_data(samples, len(train_qs), cfg.strategies, cfg)
    for it in range(iterations + 1) if teacher_rows else ():
        data = stage_mix(cfg, paths, man, it)
        model = stage_train(cfg, paths, man, it, data, reuse)
        # one server evaluates and samples the iteration's student, stopped before training
        with IterationEngine(shared_engine_config(cfg), model) as shared:
            test = cfg.loop.test_every_iteration
            stage_eval(cfg, paths, man, it, model, val_qs, test=test, engine=shared.get)
            summary["iterations"].append(summary_row(paths, it, man))
            summary["best_iteration"] = best_iteration(summary["iterations"])
            atomic_write_json(paths.summary, summary)
            _write_report(paths)
            if it == iterations:
                stopped = "completed all iterations"
                break
            if should_stop(summary["iterations"], cfg.loop.patience):
                stopped = (
                    f"validation accuracy did not improve for {cfg.loop.patience} iteration(s)"
                )
                break
            stage_sample(cfg, paths, man, it, model, train_qs, engine=shared.get)

    best = summary.get("best_iteration")
    if summary["iterations"] and not cfg.loop.test_every_iteration and cfg.data.eval:
        final = best if best is not None else summary["iterations"][-1]["iteration"]
        merged = paths.merged(final)
        stage_eval(cfg, paths, man, final, merged, val_qs, key="test")
        summary["iterations"][final] = summary_row(paths, final, man)
    summary["stopped"] = stopped
    summary.update(man.timing())  # every invocation of the run, a resumed one included
    if best is not None:
        summary["final_model"] = str(paths.merged(best))
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
    _say(f"done in {format_duration(summary['seconds'])}; report: {paths.report / 'report.md'}")
    return summary


def _run_base(
    cfg: SikedConfig, paths: RunPaths, man: Manifest, val_qs: list[Any]
) -> dict[str, Any]:
    """``method: base``: the student as it is, evaluated as iteration 0 (no teacher, no mix,
    no training), so that it sits in ``siked compare`` like any other run."""
    from siked.models import resolve_model

    model = Path(resolve_model(cfg.student.model))
    stage_eval(cfg, paths, man, 0, model, val_qs)
    summary: dict[str, Any] = {
        "name": cfg.name,
        "method": cfg.method,
        "iterations": [summary_row(paths, 0, man)],
        "best_iteration": 0,
        "stopped": "base student evaluated (method: base)",
        "final_model": str(model),
        **man.timing(),
    }
    atomic_write_json(paths.summary, summary)
    man.set("best_iteration", 0)
    man.set("stopped", summary["stopped"])
    _write_report(paths)
    print(format_summary(summary), flush=True)
    _say(f"done in {format_duration(summary['seconds'])}; report: {paths.report / 'report.md'}")
    return summary


def _write_report(paths: RunPaths) -> None:
    try:
        from siked.report import write_report

        write_report(paths.root)
    except Exception as e:  # the report must never break a run
        log.warning("could not write the report: %s", e)
