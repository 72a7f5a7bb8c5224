"""The SIKeD loop's orchestration: stage order, manifest, resume, config changes, stopping.

The model stages (train, evaluate, sample) are replaced by small deterministic fakes so these
tests take seconds; tests/test_loop_integration.py runs the real student and real kills.
The teacher (gold) and mix stages are the real ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from siked import loop
from siked.config import SikedConfig, TrainConfig, load_config
from siked.errors import DataError, SikedError
from siked.io import JsonlAppender, atomic_write_json, read_json, read_jsonl
from siked.lock import locks_outputs


class Boom(Exception):
    """Simulates a crash inside a stage."""


class FakeStages:
    """Deterministic stand-ins for train / evaluate / sample that record their calls."""

    def __init__(self, val_accs: list[float] | None = None) -> None:
        self.calls: list[str] = []
        self.crash_at: str | None = None
        self.val_accs = val_accs or [0.1, 0.2, 0.3, 0.4]

    def _maybe_crash(self, name: str) -> None:
        self.calls.append(name)
        if self.crash_at == name:
            self.crash_at = None
            raise Boom(name)

    def train(self, data: Any, model: str, out_dir: Any, cfg: Any, **kw: Any) -> Any:
        out = Path(out_dir)
        self._maybe_crash(f"train:{out.parent.name}")
        self.forced = kw.get("forced")
        base = Path(model).parent.parent.name if "/" in model else model  # run-dir independent
        digest = hashlib.sha256(Path(data).read_bytes() + base.encode()).hexdigest()
        merged = out / "merged"
        merged.mkdir(parents=True, exist_ok=True)
        (merged / "model.safetensors").write_text(digest)
        (out / "adapter").mkdir(exist_ok=True)
        (out / "adapter" / "adapter.bin").write_text(digest)

        return SimpleNamespace(
            adapter_dir=str(out / "adapter"), merged_dir=str(merged), metrics={"train_loss": 1.0}
        )

    def evaluate(
        self, model: str, datasets: list[Any], cfg: Any, out_dir: Any, *a: Any, **kw: Any
    ) -> dict:
        out = Path(out_dir)
        it = int(out.parent.name.split("_")[1])
        self._maybe_crash(f"eval:{out.parent.name}")
        acc = self.val_accs[min(it, len(self.val_accs) - 1)]
        names = [d[0] if isinstance(d, tuple) else str(d) for d in datasets]
        res = {
            "model": model,
            "datasets": {
                n: {
                    "n": 10,
                    "accuracy": acc if n == "validation" else acc / 2,
                    "strategy_distribution": {"cot": 0.5, "pot": 0.5},
                }
                for n in names
            },
        }
        atomic_write_json(out / "eval.json", res)
        return res

    def sample(
        self,
        problems: list[Any],
        model: str,
        cfg: Any,
        out_path: Any,
        iteration: int,
        seed: int,
        strategies: list[str],
        **kw: Any,
    ) -> dict:
        self._maybe_crash(f"sample:iter_{iteration:02d}")
        done = {r["qid"] for r in read_jsonl(out_path)}
        with JsonlAppender(out_path) as app:
            for i, p in enumerate(problems):
                if p.id in done:
                    continue
                if self.crash_at == f"sample-mid:iter_{iteration:02d}" and i == len(problems) // 2:
                    self.crash_at = None
                    raise Boom("mid-sample")
                strat = strategies[(i + iteration) % len(strategies)]
                ok = i % 2 == 0
                app.write(
                    {
                        "qid": p.id,
                        "question": p.question,
                        "gold": str(p.answer),
                        "strategy": strat,
                        "text": f"{strat} solution of {p.id} by {Path(model).parent.parent.name}",
                        "answer": str(p.answer) if ok else "0",
                        "correct": ok,
                        "rule": "marker",
                        "status": "ok",
                        "source": "student",
                        "iteration": iteration,
                        "sample": 0,
                    }
                )
        return {"samples": len(problems)}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeStages:
    import siked.evaluate
    import siked.sample
    import siked.train

    f = FakeStages()
    monkeypatch.setattr(siked.train, "train", f.train)
    monkeypatch.setattr(siked.evaluate, "evaluate", f.evaluate)
    monkeypatch.setattr(siked.sample, "sample", f.sample)
    monkeypatch.setattr(loop, "_write_report", lambda paths: None)
    return f  # monkeypatch restores the real stages, also those a test replaced by hand


def tiny_config(tmp_path: Path, name: str = "t", **over: Any) -> SikedConfig:
    overrides = [
        f"name={name}",
        f"output_dir={tmp_path}",
        "data.train=gsm8k:train:12",
        "data.validation_size=4",
        "data.eval=[svamp:3]",
        "loop.iterations=2",
        "loop.patience=5",
    ] + [f"{k}={v}" for k, v in over.items()]
    return load_config(None, overrides)


def data_files(run_dir: Path) -> dict[str, str]:
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if not p.is_file() or (rel.parts[0] == "teacher" and p.suffix != ".jsonl"):
            continue  # teacher/stats.json holds timings
        if p.suffix == ".jsonl" or p.name in ("stats.json", "model.safetensors"):
            out[str(rel)] = p.read_text()
    return out


def test_later_iterations_as_the_authors_build_them(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Iterations >= 2 (docs/architecture.md, "Where we differ"): the student samples the same
    training questions every iteration, the held-out questions stay the same and are never
    sampled or trained on, and iteration N's mix takes the samples of iteration N - 1 only
    (the authors' create-mixed-data-configs/*/iterationN.yaml read that iteration's samples and
    all of D_LLM; the previous iteration's self data is not kept)."""
    import siked.evaluate
    import siked.sample

    sampled: dict[int, list[str]] = {}
    validated: list[list[str]] = []
    real_sample, real_evaluate = fakes.sample, fakes.evaluate

    def sample(problems: list[Any], *a: Any, **kw: Any) -> dict:
        sampled[kw["iteration"]] = [p.id for p in problems]
        return real_sample(problems, *a, **kw)

    def evaluate(model: str, datasets: list[Any], *a: Any, **kw: Any) -> dict:
        validated.extend([p.id for p in d[1]] for d in datasets if isinstance(d, tuple))
        return real_evaluate(model, datasets, *a, **kw)

    monkeypatch.setattr(siked.sample, "sample", sample)
    monkeypatch.setattr(siked.evaluate, "evaluate", evaluate)
    cfg = tiny_config(tmp_path, **{"loop.iterations": 3, "mix.bias": "none"})  # every row stays
    loop.run(cfg)
    root = tmp_path / "t"
    train_qs, val_qs = loop.split_train_validation(cfg)
    assert sorted(sampled) == [0, 1, 2]
    assert all(ids == [p.id for p in train_qs] for ids in sampled.values())
    assert validated == [[p.id for p in val_qs]] * 4  # the same held-out questions each time
    held_out = {p.id for p in val_qs}
    for it in (1, 2, 3):
        rows = read_jsonl(root / f"iter_{it:02d}" / "train.jsonl")
        own = [r for r in rows if r["source"] == "student"]
        assert own and {r["iteration"] for r in own} == {it - 1}, it
        assert not {r["qid"] for r in rows} & held_out


def test_full_run_writes_the_run_directory(tmp_path: Path, fakes: FakeStages) -> None:
    # the student's row wins every tie, so iteration 1 mixes both sources (alpha in (0, 1));
    # with the seeded coin, 8 questions may all go to the teacher
    cfg = tiny_config(tmp_path, **{"mix.tie_break": "student"})
    summary = loop.run(cfg)
    root = tmp_path / "t"
    for rel in ["config.yaml", "manifest.json", "summary.json", "teacher/kept.jsonl"]:
        assert (root / rel).exists(), rel
    for it in range(3):
        d = root / f"iter_{it:02d}"
        assert (d / "train.jsonl").exists() and (d / "stats.json").exists()
        assert (d / "eval" / "eval.json").exists()
    # no sampling after the last iteration
    assert (root / "iter_01" / "samples.jsonl").exists()
    assert not (root / "iter_02" / "samples.jsonl").exists()
    assert fakes.calls == [
        "train:iter_00", "eval:iter_00", "sample:iter_00",
        "train:iter_01", "eval:iter_01", "sample:iter_01",
        "train:iter_02", "eval:iter_02",
    ]  # fmt: skip
    man = read_json(root / "manifest.json")
    assert all(st["status"] == "done" for st in man["stages"].values())
    assert man["versions"]["torch"]
    assert summary["best_iteration"] == 2 and len(summary["iterations"]) == 3
    stats1 = read_json(root / "iter_01" / "stats.json")
    assert 0 < stats1["alpha"] < 1 and stats1["kl"] is not None
    # iteration 1 continues from iteration 0's merged model
    assert man["stages"]["iter_01/train"]["inputs"]["base"].endswith("iter_00/model/merged")


def test_rerun_of_a_finished_run_recomputes_nothing(tmp_path: Path, fakes: FakeStages) -> None:
    cfg = tiny_config(tmp_path)
    loop.run(cfg)
    fakes.calls.clear()
    loop.run(cfg)
    assert fakes.calls == []


def test_ddp_timeout_is_no_training_input(tmp_path: Path, fakes: FakeStages) -> None:
    """How long ranks wait at a collective changes no weight: a run resumed with another
    train.ddp_timeout (or made before the key existed) retrains nothing."""
    from siked.train import _inputs_fingerprint

    loop.run(tiny_config(tmp_path))
    fakes.calls.clear()
    loop.run(tiny_config(tmp_path, **{"train.ddp_timeout": 7200}), force=True)
    assert fakes.calls == []
    data = tmp_path / "t" / "iter_00" / "train.jsonl"
    a, b = (TrainConfig(ddp_timeout=t) for t in (1800, 7200))
    assert _inputs_fingerprint(data, None, "m", a) == _inputs_fingerprint(data, None, "m", b)


@pytest.mark.parametrize(
    "crash_at",
    ["train:iter_00", "eval:iter_01", "sample:iter_00", "sample-mid:iter_01", "train:iter_02"],
)
def test_crash_then_resume_equals_uninterrupted(
    tmp_path: Path, fakes: FakeStages, crash_at: str
) -> None:
    ref = tiny_config(tmp_path / "ref")
    loop.run(ref)
    expected = data_files(tmp_path / "ref" / "t")

    cfg = tiny_config(tmp_path / "crash")
    fakes.crash_at = crash_at
    with pytest.raises(Boom):
        loop.run(cfg)
    fakes.calls.clear()
    loop.run(cfg)
    assert data_files(tmp_path / "crash" / "t") == expected
    # stages finished before the crash are not redone
    if crash_at == "train:iter_02":
        assert fakes.calls == ["train:iter_02", "eval:iter_02"]


def test_a_resumed_run_counts_the_time_of_both_invocations(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siked.manifest

    now = [0.0]
    monkeypatch.setattr(siked.manifest, "monotonic", lambda: now[0])
    real_train = fakes.train

    def slow_train(*a: Any, **kw: Any) -> Any:
        now[0] += 100.0  # every training takes 100 s
        return real_train(*a, **kw)

    monkeypatch.setattr(siked.train, "train", slow_train)
    cfg = tiny_config(tmp_path, **{"loop.iterations": 1})
    fakes.crash_at = "eval:iter_01"
    with pytest.raises(Boom):
        loop.run(cfg)
    summary = loop.run(cfg)
    assert summary["invocations"] == [200.0, 0.0]
    assert summary["seconds"] == 200.0 == read_json(tmp_path / "t" / "summary.json")["seconds"]


def test_changed_config_is_refused_with_the_keys(tmp_path: Path, fakes: FakeStages) -> None:
    loop.run(tiny_config(tmp_path))
    changed = tiny_config(tmp_path, **{"train.lora_r": 8, "mix.variant": "adaptive"})
    with pytest.raises(loop.RunConfigMismatch) as e:
        loop.run(changed)
    assert "train.lora_r: 16 -> 8" in str(e.value) and "mix.variant" in str(e.value)
    fakes.calls.clear()
    loop.run(changed, force=True)
    # the mix of iteration 1 changed, so everything downstream of it is recomputed
    assert "train:iter_00" in fakes.calls  # lora_r changed -> iteration 0 retrains too
    assert read_json(tmp_path / "t" / "iter_01" / "stats.json")["variant"] == "adaptive"


def test_a_run_made_before_a_key_was_removed_resumes_done(
    tmp_path: Path, fakes: FakeStages
) -> None:
    """``continuous_batching`` (an engine key until the hf engine's own loop was removed) in a
    stored config.yaml is no config change, and the teacher stage's key is the one it had."""
    import yaml

    from siked.io import sha256_json

    cfg = tiny_config(tmp_path)
    loop.run(cfg)
    stored = tmp_path / "t" / "config.yaml"
    old = yaml.safe_load(stored.read_text(encoding="utf-8"))
    for section in ("teacher", "sample", "eval"):
        old[section]["continuous_batching"] = True
    stored.write_text(yaml.safe_dump(old), encoding="utf-8")
    fakes.calls.clear()
    loop.run(cfg)
    assert fakes.calls == []
    # the default teacher stage's key, as computed before the removal
    before = "e8840b0693d5bc064460aa38872050214524e9c957edf761fbf0efbcc2e7d269"
    assert sha256_json(loop.teacher_inputs(load_config(), [])) == before


def _as_if_made_before(run: Path, section: str, key: str, stages: bool = True) -> None:
    """Edit a finished run's files as if ``section.key`` had not existed when it ran."""
    import yaml

    from siked.io import atomic_write_json, sha256_json

    stored = run / "config.yaml"
    old = yaml.safe_load(stored.read_text(encoding="utf-8"))
    del old[section][key]
    stored.write_text(yaml.safe_dump(old), encoding="utf-8")
    if not stages:
        return
    manifest = read_json(run / "manifest.json")
    touched = 0
    for st in manifest["stages"].values():
        inputs = st.get("inputs") or {}
        if isinstance(inputs.get(section), dict) and key in inputs[section]:
            del inputs[section][key]
            st["inputs_hash"] = sha256_json(inputs)
            touched += 1
    assert touched  # the key is an input of some stage
    atomic_write_json(run / "manifest.json", manifest)


def test_a_key_added_later_at_its_default_is_no_change(tmp_path: Path, fakes: FakeStages) -> None:
    """Upgrading siked adds config keys; a run made before, resumed with them at their
    defaults, is the same run: neither refused nor recomputed."""
    cfg = tiny_config(tmp_path)
    loop.run(cfg)
    _as_if_made_before(tmp_path / "t", "sample", "seed_requests")
    _as_if_made_before(tmp_path / "t", "eval", "max_num_seqs")
    fakes.calls.clear()
    loop.run(cfg)
    assert fakes.calls == []
    # the same key at another value than its default is a change: refused, then recomputed
    # (the resumed run rewrote config.yaml with the key; its stages' records still lack it)
    _as_if_made_before(tmp_path / "t", "sample", "seed_requests", stages=False)
    changed = tiny_config(tmp_path, **{"sample.seed_requests": "true"})
    with pytest.raises(loop.RunConfigMismatch, match=r"sample.seed_requests: <absent> -> True"):
        loop.run(changed)
    loop.run(changed, force=True)
    assert "sample:iter_00" in fakes.calls


def test_stopping_rule_keeps_the_best_on_validation(tmp_path: Path, fakes: FakeStages) -> None:
    fakes.val_accs = [0.3, 0.2, 0.25, 0.9]
    cfg = tiny_config(tmp_path, **{"loop.patience": 1, "loop.iterations": 3})
    summary = loop.run(cfg)
    assert [r["iteration"] for r in summary["iterations"]] == [0, 1]
    assert summary["best_iteration"] == 0
    assert summary["final_model"].endswith("iter_00/model/merged")
    assert "did not improve" in summary["stopped"]


def test_distill_runs_iteration_zero_only(tmp_path: Path, fakes: FakeStages) -> None:
    cfg = tiny_config(tmp_path, method="distill", strategies="[pot]")
    summary = loop.run(cfg)
    assert len(summary["iterations"]) == 1
    kept = read_jsonl(tmp_path / "t" / "teacher" / "kept.jsonl")
    assert {r["strategy"] for r in kept} == {"pot"}
    assert fakes.forced == "pot"  # the instruction names the single strategy


def test_validation_is_disjoint_from_training(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    train, val = loop.split_train_validation(cfg)
    assert len(train) == 12 and len(val) == 4
    assert not {p.id for p in train} & {p.id for p in val}
    again, _ = loop.split_train_validation(cfg)
    assert [p.id for p in again] == [p.id for p in train]


def test_summary_table_lists_every_iteration() -> None:
    summary = {
        "best_iteration": 1,
        "iterations": [
            {"iteration": 0, "alpha": 1.0, "kl": None, "p_train": {"cot": 0.5, "pot": 0.5},
             "validation_accuracy": 0.1, "eval": {"svamp:test:3": 0.0}},
            {"iteration": 1, "alpha": 0.6, "kl": 0.02, "p_train": {"cot": 0.4, "pot": 0.6},
             "validation_accuracy": 0.2, "eval": {"svamp:test:3": 1 / 3}},
        ],
    }  # fmt: skip
    table = loop.format_summary(summary)
    assert "1*" in table and "33.3" in table and "0.020" in table
    assert json.dumps(summary)  # serialisable


def test_empty_mix_is_an_error_and_not_marked_done(tmp_path: Path, fakes: FakeStages) -> None:
    import siked.sample

    def no_correct(problems: list[Any], model: str, cfg: Any, out_path: Any, **kw: Any) -> dict:
        Path(out_path).write_text("")
        return {"samples": 0}

    siked.sample.sample = no_correct  # type: ignore[assignment]  # undone by the fixture
    cfg = tiny_config(tmp_path, **{"mix.variant": "self"})
    with pytest.raises(SikedError, match="mix is empty"):
        loop.run(cfg)
    man = read_json(tmp_path / "t" / "manifest.json")
    assert man["stages"]["iter_01/mix"]["status"] == "running"
    assert not (tmp_path / "t" / "iter_01" / "train.jsonl").exists()


def test_full_finetuning_result_without_adapter(tmp_path: Path, fakes: FakeStages) -> None:
    real_train = fakes.train

    def full(*a: Any, **kw: Any) -> Any:
        r = real_train(*a, **kw)
        r.adapter_dir = None  # method: full has no adapter
        return r

    import siked.train

    siked.train.train = full  # type: ignore[assignment]
    summary = loop.run(tiny_config(tmp_path, **{"train.method": "full", "loop.iterations": 0}))
    assert summary["best_iteration"] == 0


def test_teacher_gets_the_configured_data_dir(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siked.teach

    seen: dict[str, Any] = {}
    real = siked.teach.teach

    def spy(*a: Any, **kw: Any) -> Any:
        seen.update(kw)
        return real(*a, **kw)

    monkeypatch.setattr(siked.teach, "teach", spy)
    data_dir = str(Path(__file__).resolve().parents[2] / "shared" / "data")
    loop.run(tiny_config(tmp_path, **{"data.dir": data_dir, "loop.iterations": 0}))
    assert seen["data_dir"] == data_dir


def test_test_sets_only_for_the_final_student(tmp_path: Path, fakes: FakeStages) -> None:
    seen: list[list[str]] = []
    real_eval = fakes.evaluate

    def evaluate(model: str, datasets: list[Any], *a: Any, **kw: Any) -> dict:
        seen.append([d[0] if isinstance(d, tuple) else str(d) for d in datasets])
        return real_eval(model, datasets, *a, **kw)

    fakes.evaluate = evaluate  # type: ignore[method-assign]
    import siked.evaluate

    siked.evaluate.evaluate = evaluate  # type: ignore[assignment]  # undone by the fixture
    fakes.val_accs = [0.2, 0.5, 0.4]  # iteration 1 is the best
    cfg = tiny_config(tmp_path, **{"loop.test_every_iteration": "false"})
    summary = loop.run(cfg)
    assert seen == [["validation"]] * 3 + [["validation", "svamp:test:3"]]
    assert summary["best_iteration"] == 1
    rows = summary["iterations"]
    assert [bool(r["eval"]) for r in rows] == [False, True, False]
    man = read_json(tmp_path / "t" / "manifest.json")
    assert man["stages"]["iter_01/test"]["status"] == "done"
    seen.clear()
    loop.run(cfg)  # a finished run recomputes nothing
    assert seen == []


def test_base_method_evaluates_the_untrained_student(tmp_path: Path, fakes: FakeStages) -> None:
    from test_models import tiny_model_dir

    student = tiny_model_dir(tmp_path / "student", "{{ messages[0]['content'] }}")
    cfg = tiny_config(tmp_path, method="base", **{"student.model": str(student)})
    assert cfg.loop.iterations == 0
    summary = loop.run(cfg)
    root = tmp_path / "t"
    assert fakes.calls == ["eval:iter_00"]  # no training, no sampling
    assert not (root / "teacher").exists() and not (root / "iter_00" / "train.jsonl").exists()
    assert summary["best_iteration"] == 0 and summary["iterations"][0]["eval"]
    assert summary["final_model"] == str(student.resolve())
    fakes.calls.clear()
    loop.run(cfg)
    assert fakes.calls == []


def test_unavailable_student_fails_before_the_run_directory(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siked.errors import ModelError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = tiny_config(tmp_path, **{"student.model": "nobody/not-cached-anywhere"})
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        loop.run(cfg)
    assert not (tmp_path / "t").exists() and fakes.calls == []


def test_server_settings_are_not_stage_inputs(tmp_path: Path, fakes: FakeStages) -> None:
    """Pointing at another vllm command or waiting longer for a server changes no result."""
    loop.run(tiny_config(tmp_path))
    fakes.calls.clear()
    changed = {
        f"{section}.{key}": value
        for section in ("teacher", "sample", "eval")
        for key, value in (("vllm_executable", "/opt/vllm-env/bin/vllm"), ("startup_timeout", 60))
    }
    loop.run(tiny_config(tmp_path, **changed), force=True)
    assert fakes.calls == []


@locks_outputs("train", lambda args: [args["out_dir"]])  # the real lock, as train takes it
def child_train(data: Any, model: str, out_dir: Any, cfg: Any, **kw: Any) -> Any:
    """A stand-in for siked.train.train that can run in a child process (module-level, so it
    pickles); it locks its output directory as the real one does, records the process it ran in
    and the GPUs it was given, and fails where $SIKED_TEST_FAIL_TRAIN says."""
    import os

    out = Path(out_dir)
    (out / "gpus").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "all"))
    if os.environ.get("SIKED_TEST_FAIL_TRAIN") == out.parent.name:
        raise DataError(f"{data}: injected failure")
    merged = out / "merged"
    merged.mkdir(parents=True, exist_ok=True)
    (merged / "model.safetensors").write_text(hashlib.sha256(Path(data).read_bytes()).hexdigest())
    (out / "pid").write_text(str(os.getpid()))
    return SimpleNamespace(adapter_dir=None, merged_dir=str(merged), metrics={"train_loss": 1.0})


def test_training_in_a_child_process_resumes(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import siked.train

    monkeypatch.setattr(siked.train, "train", child_train)
    cfg = tiny_config(tmp_path, **{"loop.train_subprocess": True, "loop.iterations": 1})
    monkeypatch.setenv("SIKED_TEST_FAIL_TRAIN", "iter_01")
    with pytest.raises(DataError, match="injected failure"):  # the child's error, as itself
        loop.run(cfg)
    stages = read_json(tmp_path / "t" / "manifest.json")["stages"]
    assert stages["iter_00/train"]["status"] == "done"
    assert stages["iter_01/train"]["status"] == "running"
    monkeypatch.delenv("SIKED_TEST_FAIL_TRAIN")
    summary = loop.run(cfg)
    assert [r["iteration"] for r in summary["iterations"]] == [0, 1]
    pids = {int((tmp_path / "t" / f"iter_{i:02d}" / "model" / "pid").read_text()) for i in (0, 1)}
    assert os.getpid() not in pids and len(pids) == 2  # a fresh process per training


def test_training_child_gets_one_of_several_gpus(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a launcher, a child seeing 4 GPUs would train with DataParallel: it gets one."""
    import torch

    import siked.train

    monkeypatch.setattr(siked.train, "train", child_train)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1,0,2")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    loop.run(tiny_config(tmp_path, **{"loop.train_subprocess": True, "loop.iterations": 0}))
    assert (tmp_path / "t" / "iter_00" / "model" / "gpus").read_text() == "3"


@pytest.mark.parametrize(
    "setting,cuda,expected",
    [("auto", True, True), ("auto", False, False), (True, False, True), (False, True, False)],
)
def test_train_in_child_by_default_only_with_a_gpu(
    monkeypatch: pytest.MonkeyPatch, setting: Any, cuda: bool, expected: bool
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert loop.train_in_child(setting) is expected


def _teacher_keeping(monkeypatch: pytest.MonkeyPatch, keep: int) -> None:
    """Replace the teacher by one whose samples are all wrong except the first ``keep``."""
    import siked.teach

    real = siked.teach.teach

    def weak(problems: list[Any], cfg: Any, out_dir: Any, strategies: Any, **kw: Any) -> dict:
        stats = real(problems, cfg, out_dir, strategies, **kw)
        out = Path(out_dir)
        rows = read_jsonl(out / "samples.jsonl")
        for i, r in enumerate(rows):
            if i >= keep:
                r.update(correct=False, answer="-1", finish_reason="length" if i % 2 else "stop")
        atomic_write_json(out / "stats.json", stats)
        (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {
            **stats,
            **siked.teach.finalize(out, problems, strategies, cfg.keep_per_strategy, 1),
        }

    monkeypatch.setattr(siked.teach, "teach", weak)


def test_empty_teacher_data_stops_the_run_cleanly_with_the_reason(
    tmp_path: Path,
    fakes: FakeStages,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _teacher_keeping(monkeypatch, 0)
    summary = loop.run(tiny_config(tmp_path))
    assert fakes.calls == []  # nothing to train on: no train, eval or sample
    stopped = summary["stopped"]
    assert stopped.startswith("the teacher kept no rationale")
    assert "36 samples" in stopped and "12 questions x 3 strategies" in stopped
    assert "cut at teacher.max_tokens" in stopped and "teacher/samples.jsonl" in stopped
    assert summary["iterations"] == [] and summary["final_model"] is None
    assert read_json(tmp_path / "t" / "summary.json")["stopped"] == stopped
    assert read_json(tmp_path / "t" / "manifest.json")["stopped"] == stopped
    out = capsys.readouterr().out
    assert "teacher: gold kept 0 rationales for 12 questions" in out and stopped in out
    # a rerun stops again at once, without asking the teacher again
    assert loop.run(tiny_config(tmp_path))["stopped"] == stopped
    assert fakes.calls == []


def test_near_empty_teacher_data_is_trained_on(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    _teacher_keeping(monkeypatch, 1)
    summary = loop.run(tiny_config(tmp_path, **{"loop.iterations": 1}))
    assert read_jsonl(tmp_path / "t" / "teacher" / "kept.jsonl").__len__() == 1
    assert fakes.calls[:2] == ["train:iter_00", "eval:iter_00"]
    assert summary["stopped"] == "completed all iterations" and summary["final_model"]


def test_preflight_names_what_would_stop_a_gpu_run_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the first stage: vLLM asked for more GPUs than are visible, a tracker whose
    package is missing; each is one line, and `siked plan` lists the same."""
    import torch

    from siked.plan import make_plan

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setitem(loop.TRACKER_PACKAGES, "fake_tracker", "no_such_package_for_siked")
    cfg = tiny_config(
        tmp_path,
        **{
            "sample.engine": "vllm",
            "sample.tensor_parallel_size": 4,
            "train.report_to": "[fake_tracker]",
        },
    )
    problems = loop.preflight_problems(cfg)
    assert problems == [
        "sample.tensor_parallel_size is 4 but 2 GPUs are visible (CUDA_VISIBLE_DEVICES)",
        "train.report_to names fake_tracker, but the no_such_package_for_siked package is not "
        "installed (pip install no_such_package_for_siked, or train.report_to: none)",
    ]
    assert all(p in make_plan(cfg).problems for p in problems)
    with pytest.raises(SikedError, match="cannot start here") as e:
        loop.check_engines(cfg.model_copy(update={"sample": cfg.eval}))  # engines themselves ok
    assert "train.report_to names fake_tracker" in str(e.value)
    assert not (tmp_path / "t").exists()  # nothing written
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert loop.preflight_problems(cfg) == problems[1:]


def test_one_vllm_server_evaluates_and_samples_an_iteration(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluation and sampling with the same vllm settings get one engine per iteration, opened
    for the iteration's student and closed before the next training; other settings, one each."""
    import siked.evaluate
    import siked.sample
    import siked.student

    events: list[tuple[str, Any]] = []

    class Server:
        def __init__(self, cfg: Any, model: str) -> None:
            self.model = model
            events.append(("open", Path(model).parent.parent.name))

        def close(self) -> None:
            events.append(("close", Path(self.model).parent.parent.name))

    def stage(name: str, real: Any) -> Any:
        def run(*a: Any, **kw: Any) -> Any:
            engine = kw.pop("engine", None)
            events.append((name, engine.model if engine else None))
            return real(*a, **kw)

        return run

    monkeypatch.setattr(siked.student, "open_student_engine", Server)
    monkeypatch.setattr(siked.evaluate, "evaluate", stage("eval", fakes.evaluate))
    monkeypatch.setattr(siked.sample, "sample", stage("sample", fakes.sample))
    monkeypatch.setattr(loop, "check_engines", lambda cfg: None)
    vllm = {"sample.engine": "vllm", "eval.engine": "vllm", "loop.iterations": 1}
    loop.run(tiny_config(tmp_path, **vllm))
    kinds = [e[0] for e in events]
    assert kinds == ["open", "eval", "sample", "close", "open", "eval", "close"]
    assert events[0][1] == "iter_00" and events[4][1] == "iter_01"
    assert events[1][1] == events[2][1] and str(events[1][1]).endswith("iter_00/model/merged")

    events.clear()
    other = {**vllm, "sample.seed_requests": True}  # another client setting: not shared
    loop.run(tiny_config(tmp_path, name="other", **other))
    assert "open" not in [e[0] for e in events]
    assert {e[1] for e in events} == {None}


# --------------------------------------------------------------------------- --reuse


def _strip_paths(files: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in files.items() if not k.startswith("report")}


def test_reuse_takes_a_donors_teacher_and_iteration_0_training(
    tmp_path: Path, fakes: FakeStages
) -> None:
    """SIKeD's ablations share iteration 0 with combined distillation: with --reuse the siked
    run copies the teacher's rationales and iteration 0's student from the distill run (same
    stage, same inputs) and trains only the later iterations; its data equal a run made without."""
    loop.run(tiny_config(tmp_path, "distill", method="distill"))
    fakes.calls.clear()
    loop.run(
        tiny_config(tmp_path, "siked", **{"mix.variant": "self"}), reuse=[tmp_path / "distill"]
    )
    assert "train:iter_00" not in fakes.calls
    assert fakes.calls[:3] == ["eval:iter_00", "sample:iter_00", "train:iter_01"]
    man = read_json(tmp_path / "siked" / "manifest.json")["stages"]
    for key in ("teacher", "iter_00/train"):
        assert man[key]["status"] == "done"
        assert man[key]["reused_from"] == str(tmp_path / "distill")
    assert "reused_from" not in man["iter_01/train"]
    assert not any((tmp_path / "siked" / "iter_00" / "model").rglob("checkpoints"))
    # reusing equals recomputing
    loop.run(tiny_config(tmp_path / "alone", "siked", **{"mix.variant": "self"}))
    assert data_files(tmp_path / "siked") == data_files(tmp_path / "alone" / "siked")
    # and the run it made resumes as done, with or without --reuse
    fakes.calls.clear()
    loop.run(tiny_config(tmp_path, "siked", **{"mix.variant": "self"}))
    assert fakes.calls == []


def test_reuse_needs_the_same_inputs_and_intact_files(tmp_path: Path, fakes: FakeStages) -> None:
    loop.run(tiny_config(tmp_path, "donor", method="distill"))
    fakes.calls.clear()
    killed_copy = tmp_path / "lr" / "iter_00" / "model.reused"  # a copy killed half-way
    killed_copy.mkdir(parents=True)
    (killed_copy / "part").write_text("x")
    # another learning rate: iteration 0's training is not the donor's (the teacher still is)
    loop.run(
        tiny_config(tmp_path, "lr", method="distill", **{"train.learning_rate": 1e-3}),
        reuse=[tmp_path / "donor"],
    )
    assert fakes.calls[0] == "train:iter_00"
    man = read_json(tmp_path / "lr" / "manifest.json")["stages"]
    assert "reused_from" in man["teacher"] and "reused_from" not in man["iter_00/train"]
    assert not killed_copy.exists()  # removed by the stage's next attempt, reused or not
    # a donor whose model (the output its manifest hashed) changed since is not copied
    adapter = Path("iter_00") / "model" / "adapter" / "adapter.bin"
    (tmp_path / "donor" / adapter).write_text("edited")
    fakes.calls.clear()
    loop.run(tiny_config(tmp_path, "edited", method="distill"), reuse=[tmp_path / "donor"])
    assert fakes.calls[0] == "train:iter_00"
    assert (tmp_path / "edited" / adapter).read_text() != "edited"
    assert not (tmp_path / "edited" / "iter_00" / "model.reused").exists()


def test_reuse_of_a_directory_without_a_run_is_an_error(tmp_path: Path, fakes: FakeStages) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SikedError, match="no run"):
        loop.run(tiny_config(tmp_path), reuse=[tmp_path / "empty"])
    assert not (tmp_path / "t").exists()


def test_a_run_resumed_on_a_cpu_of_the_other_precision_warns(
    tmp_path: Path, fakes: FakeStages, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    import siked.manifest

    machines = iter([["avx2", "avx512f", "avx512_bf16"], ["avx2"]])
    real = siked.manifest.machine_info
    monkeypatch.setattr(siked.manifest, "machine_info", lambda: {**real(), "isa": next(machines)})
    cfg = tiny_config(tmp_path, **{"loop.iterations": 1})
    fakes.crash_at = "eval:iter_01"
    with pytest.raises(Boom):
        loop.run(cfg)
    with caplog.at_level("WARNING", logger="siked"):
        loop.run(cfg)
    assert "started on a CPU with native bf16 and resumes on one without" in caplog.text
