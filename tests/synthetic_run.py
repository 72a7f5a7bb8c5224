"""A complete, plausible run directory without any model, for report/compare/loop tests.

:func:`make_synthetic_run` writes every file of the run-directory contract
(``docs/architecture.md``): ``config.yaml``, ``manifest.json``, ``teacher/``, ``iter_NN/``
(``train.jsonl`` and ``stats.json`` built by the real :func:`siked.mix.mix`, ``eval/eval.json``,
``eval/predictions.jsonl``, ``samples.jsonl``, ``sample_stats.json``, ``model/train_log.json``)
and ``summary.json``. The simulated student starts collapsed onto CoT and spreads over the
strategies as the iterations go, with accuracy rising, as in the paper.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from siked.config import SikedConfig, to_yaml
from siked.io import atomic_write_json, atomic_write_text, sha256_text, write_jsonl
from siked.mix import mix
from siked.sample import sample_stats
from siked.stats import wilson_interval

STRATEGIES = ["cot", "l2m", "pot"]
TEACHER_ACCURACY = {"cot": 0.85, "l2m": 0.7, "pot": 0.9}
EVAL_DATASETS = {"validation": 40, "gsm8k:test:60": 60, "svamp:40": 40, "asdiv:40": 40}


def student_preference(iteration: int) -> dict[str, float]:
    """The simulated student's strategy choice: collapsed onto CoT first, then spreading."""
    shift = min(iteration, 4) * 0.12
    return {"cot": 0.75 - shift, "l2m": 0.1 + shift / 3, "pot": 0.1 + 2 * shift / 3, "none": 0.05}


def student_accuracy(iteration: int) -> dict[str, float]:
    gain = 0.06 * min(iteration, 4)
    return {"cot": 0.25 + gain, "l2m": 0.15 + gain, "pot": 0.3 + gain, "none": 0.0}


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _rationale(strategy: str, qid: str, answer: int, salt: str) -> str:
    if strategy == "pot":
        return f"# {qid} {salt}\nx = {answer - 1}\nanswer = x + 1"
    if strategy == "l2m":
        return f"How much is it? ({salt}) It is {answer}. The answer is {answer}."
    return f"We compute step by step ({salt}): {answer - 1} + 1 = {answer}. The answer is {answer}."


def _row(
    q: dict[str, Any],
    strategy: str,
    correct: bool,
    source: str,
    iteration: int,
    sample: int,
    salt: str,
) -> dict[str, Any]:
    gold = int(q["gold"])
    answer = gold if correct else gold + 1
    status = "ok" if strategy in STRATEGIES else "no_answer"
    return {
        "qid": q["qid"],
        "question": q["question"],
        "gold": q["gold"],
        "strategy": strategy,
        "text": _rationale(strategy, q["qid"], answer, salt),
        "answer": str(answer) if status == "ok" else None,
        "correct": bool(correct and status == "ok"),
        "rule": "program" if strategy == "pot" else ("marker" if status == "ok" else "none"),
        "status": status,
        "source": source,
        "iteration": iteration,
        "sample": sample,
    }


def _evaluate(rng: random.Random, iteration: int, model: str, seed: int) -> dict[str, Any]:
    pref, acc = student_preference(iteration), student_accuracy(iteration)
    datasets: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    for name, n in EVAL_DATASETS.items():
        counts = dict.fromkeys([*STRATEGIES, "none"], 0)
        right = dict.fromkeys([*STRATEGIES, "none"], 0)
        for i in range(n):
            s = _pick(rng, pref)
            ok = rng.random() < acc[s] + (0.05 if name.startswith("svamp") else 0.0)
            counts[s] += 1
            right[s] += int(ok)
            predictions.append(
                {
                    "dataset": name,
                    "qid": f"{name}-{i}",
                    "question": f"question {i}",
                    "gold": "1",
                    "output": f"[{s}]: ...",
                    "strategy": s,
                    "answer": "1" if ok else "2",
                    "rule": "marker",
                    "status": "ok" if s != "none" else "no_answer",
                    "correct": ok,
                }
            )
        correct = sum(right.values())
        tagged = sum(counts[s] for s in STRATEGIES)
        datasets[name] = {
            "n": n,
            "correct": correct,
            "accuracy": correct / n,
            "ci95": list(wilson_interval(correct, n)),
            "no_answer": counts["none"],
            "strategy_counts": counts,
            "strategy_distribution": {s: counts[s] / tagged if tagged else 0.0 for s in STRATEGIES},
            "per_strategy_accuracy": {
                s: (right[s] / counts[s] if counts[s] else None) for s in STRATEGIES
            },
            "oracle_accuracy": None,
        }
    return {
        "model": model,
        "mode": "free",
        "seed": seed,
        "datasets": datasets,
        "_predictions": predictions,
    }


def make_synthetic_run(
    path: str | Path,
    name: str = "demo",
    iterations: int = 2,
    method: str = "siked",
    seed: int = 0,
    questions: int = 40,
    k: int = 4,
    mix_overrides: dict[str, Any] | None = None,
) -> Path:
    """Write a complete run directory ``path/name`` and return it.

    ``method="distill"`` writes iteration 0 only (like ``siked run`` with ``method: distill``).
    ``mix_overrides`` edits the ``mix`` section (e.g. ``{"variant": "adaptive"}``).
    """
    rng = random.Random(seed)
    cfg = SikedConfig.model_validate(
        {
            "name": name,
            "output_dir": str(path),
            "method": method,
            "seed": seed,
            "loop": {"iterations": iterations},
            "mix": dict(mix_overrides or {}),
        }
    )
    n_iter = cfg.loop.iterations  # 0 for distill
    run = Path(path) / name
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "config.yaml", to_yaml(cfg))

    qs = [
        {"qid": f"gsm8k-train-{i:04d}", "question": f"Synthetic question {i}?", "gold": str(10 + i)}
        for i in range(questions)
    ]
    t = 1_700_000_000

    def stage(key: str, seconds: float, info: dict[str, Any] | None = None) -> dict[str, Any]:
        nonlocal t
        from datetime import datetime, timezone

        started = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")
        t += int(seconds) + 1
        finished = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")
        return {
            "status": "done",
            "started": started,
            "finished": finished,
            "seconds": seconds,
            "seed": seed,
            "inputs": {},
            "outputs": {},
            "info": info or {},
        }

    stages: dict[str, Any] = {}

    # ---- teacher
    teacher_samples = [
        _row(q, s, rng.random() < TEACHER_ACCURACY[s], "teacher", -1, 0, "teacher")
        for q in qs
        for s in STRATEGIES
    ]
    kept = [r for r in teacher_samples if r["correct"]]
    write_jsonl(run / "teacher" / "samples.jsonl", teacher_samples)
    write_jsonl(run / "teacher" / "kept.jsonl", kept)
    per_strategy = {}
    for s in STRATEGIES:
        n_s = sum(1 for r in teacher_samples if r["strategy"] == s)
        k_s = sum(1 for r in kept if r["strategy"] == s)
        per_strategy[s] = {"samples": n_s, "kept": k_s, "yield": k_s / n_s if n_s else 0.0}
    atomic_write_json(
        run / "teacher" / "stats.json",
        {
            "engine": "gold",
            "questions": len(qs),
            "samples": len(teacher_samples),
            "kept": len(kept),
            "yield": len(kept) / len(teacher_samples),
            "questions_covered": len({r["qid"] for r in kept}),
            "per_strategy": per_strategy,
        },
    )
    stages["teacher"] = stage("teacher", 12.5, {"kept": len(kept)})

    summary_rows: list[dict[str, Any]] = []
    prev_samples: list[dict[str, Any]] = []
    best, best_acc = 0, -1.0
    for it in range(n_iter + 1):
        d = run / f"iter_{it:02d}"
        if it > 0:
            stages[f"iter_{it:02d}/mix"] = stage("mix", 0.4)
        res = mix(kept, prev_samples, cfg.mix, it, max(n_iter, 1), cfg.strategies, seed)
        write_jsonl(d / "train.jsonl", res.rows)
        atomic_write_json(d / "stats.json", res.stats)
        atomic_write_json(
            d / "model" / "train_log.json",
            {"train_loss": round(1.2 / (it + 1), 4), "steps": 30, "rows": len(res.rows)},
        )
        stages[f"iter_{it:02d}/train"] = stage("train", 95.0 + 10 * it, {"rows": len(res.rows)})

        ev = _evaluate(rng, it, str(d / "model" / "merged"), seed)
        predictions = ev.pop("_predictions")
        atomic_write_json(d / "eval" / "eval.json", ev)
        write_jsonl(d / "eval" / "predictions.jsonl", predictions)
        stages[f"iter_{it:02d}/eval"] = stage("eval", 40.0)
        val = ev["datasets"]["validation"]["accuracy"]
        if val > best_acc:
            best, best_acc = it, val

        if it < n_iter:  # the samples feed the next iteration
            pref, acc = student_preference(it), student_accuracy(it)
            samples = []
            for q in qs:
                for j in range(k):
                    s = _pick(rng, pref)
                    samples.append(
                        _row(q, s, rng.random() < acc[s] * 1.6, "student", it, j, f"s{it}.{j}")
                    )
            write_jsonl(d / "samples.jsonl", samples)
            atomic_write_json(
                d / "sample_stats.json",
                {"iteration": it, "k": k, **sample_stats(samples, cfg.strategies, "free")},
            )
            stages[f"iter_{it:02d}/sample"] = stage("sample", 60.0)
            prev_samples = samples

        summary_rows.append(
            {
                "iteration": it,
                "alpha": res.stats["alpha"],
                "kl": res.stats["kl"],
                "p_train": res.stats["p_train"],
                "rows": res.stats["rows"],
                "validation_accuracy": val,
                "eval": {
                    ds: v["accuracy"] for ds, v in ev["datasets"].items() if ds != "validation"
                },
                "strategy_distribution": {
                    ds: v["strategy_distribution"]
                    for ds, v in ev["datasets"].items()
                    if ds != "validation"
                },
                "seconds": 200.0,
            }
        )

    stopped = "max_iterations" if method == "siked" else "distill"
    atomic_write_json(
        run / "summary.json",
        {
            "name": name,
            "method": method,
            "best_iteration": best,
            "stopped": stopped,
            "iterations": summary_rows,
        },
    )
    atomic_write_json(
        run / "manifest.json",
        {
            "name": name,
            "created": "2023-11-14T22:13:20+00:00",
            "config_hash": sha256_text(to_yaml(cfg)),
            "versions": {"python": "3.11.2", "siked": "0.1.0", "torch": "2.4.0"},
            "stages": stages,
            "best_iteration": best,
            "stopped": stopped,
        },
    )
    return run
