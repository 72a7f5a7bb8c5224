"""`siked plan` / `siked run --dry-run`: what each stage will make and need, without running."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from siked.cli import main
from siked.config import TrainConfig, load_config
from siked.plan import format_plan, make_plan, optimizer_steps

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ROOT / "configs" / "quickstart.yaml",
    *sorted((ROOT / "configs" / "paper").glob("*.yaml")),
]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_plan_runs_offline_on_every_preset(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    import siked.models

    def no_weights(*a: object, **kw: object) -> None:
        raise AssertionError("siked plan loaded a model's weights")

    # a plan reads configs, data and at most a tokenizer (its speed: benchmarks/speed_claims.py)
    monkeypatch.setattr(siked.models, "load_model", no_weights)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    for heading in ("data", "teacher", "iteration 0", "needs", "totals"):
        assert f"\n{heading}" in out, heading
    for label in ("training questions", "samples", "training examples", "tokens",
                  "optimizer steps", "evaluation", "student", "chat template", "GPU"):  # fmt: skip
        assert f"  {label}" in out, label
    cfg = load_config(path)
    if "paper" in path.parts:
        assert cfg.student.model in out and "vLLM" in out
        # the students are not downloaded on the test machine: reported, not a crash
        assert "not in local cache" in out or "huggingface" in out
        # 7473 GSM8K training questions minus the 8 exemplars of the authors' prompt style
        # (teacher.prompt_style: authors) and 500 for validation
        assert "6,965" in out


def test_plan_numbers_of_the_quickstart() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    plan = make_plan(cfg)
    n = plan.numbers
    assert plan.ok
    assert (n["train_questions"], n["validation_questions"]) == (32, 24)
    assert n["eval_questions"] == {"gsm8k:test-easy:12": 12, "svamp:test:12": 12,
                                   "multiarith:test:12": 12}  # fmt: skip
    assert n["teacher_samples"] == 32 * 3 and n["d_llm_max"] == 96
    it0, it1, it2 = n["iterations"]
    # iteration 0 is PoT-biased (the authors'): one example per question
    assert it0["examples_max"] == 32 and it0["steps"] == 2 * 8  # 2 epochs of 32 / (4 x 1)
    assert it0["tokens_per_example"] == pytest.approx(n["tokens_per_example"]["pot"], abs=0.1)
    assert it0["samples"] == 32 * 4 and it2["samples"] == 0  # no sampling after the last
    assert it1["examples_max"] == 32
    # unbiased: all of D_LLM at iteration 0; D_self + D_LLM later, one self row per (q, s)
    plan = make_plan(load_config(ROOT / "configs" / "quickstart.yaml", ["mix.bias=none"]))
    it0, it1, _ = plan.numbers["iterations"]
    assert it0["examples_max"] == 96 and it1["examples_max"] == 96 + 96


def test_plan_evaluates_test_sets_once_unless_every_iteration() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", ["loop.test_every_iteration=false"])
    n = make_plan(cfg).numbers
    # validation (24) after every iteration, the three 12-question test sets once at the end
    assert [i["eval_generations"] for i in n["iterations"]] == [24, 24, 24]
    assert n["final_test_generations"] == 36
    assert n["eval_generations"] == 3 * 24 + 36
    every = make_plan(
        load_config(ROOT / "configs" / "quickstart.yaml", ["loop.test_every_iteration=true"])
    ).numbers
    assert [i["eval_generations"] for i in every["iterations"]] == [60, 60, 60]
    assert every["final_test_generations"] == 0 and every["eval_generations"] == 3 * 60


def test_plan_measures_the_gold_rationales_of_an_easy_split() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", ["data.train=gsm8k:train-easy:32"])
    lengths = make_plan(cfg).numbers["tokens_per_example"]
    assert set(lengths) == {"cot", "l2m", "pot"} and all(v > 50 for v in lengths.values())


def test_plan_of_the_untrained_student_has_no_teacher_and_no_training() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", ["method=base", "loop.iterations=0"])
    plan = make_plan(cfg)
    n = plan.numbers
    assert n["teacher_samples"] == 0 and n["d_llm_max"] == 0
    (it0,) = n["iterations"]
    assert it0["examples_max"] == 0 and it0["steps"] == 0 and it0["samples"] == 0
    assert n["eval_generations"] == 24 + 36  # validation and the test sets, once
    text = format_plan(plan)
    assert "teacher (none" in text and "training examples" not in text


def test_optimizer_steps_and_tokens_per_step() -> None:
    cfg = TrainConfig(per_device_batch_size=2, gradient_accumulation_steps=4, epochs=3)
    s = optimizer_steps(6973, 250.0, cfg)
    assert (s["steps_per_epoch"], s["steps"], s["tokens_per_step"]) == (872, 2616, 2000)
    # packed into 1024-token rows (the authors' packing=True): ~4 examples per row
    p = optimizer_steps(6973, 250.0, cfg.model_copy(update={"packing": True}))
    assert p["packing"] and p["examples_per_step"] == pytest.approx(8 * 1024 / 250, abs=0.1)
    assert p["tokens_per_step"] == 8 * 1024 and p["steps"] == 3 * 213
    assert optimizer_steps(10, 250.0, cfg.model_copy(update={"max_steps": 7}))["steps"] == 7


def test_plan_reports_a_student_without_chat_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_models import tiny_model_dir

    base = tiny_model_dir(tmp_path / "base", None)
    args = ["plan", str(ROOT / "configs" / "quickstart.yaml"), "--set", f"student.model={base}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"chat template\s+no\s+a base checkpoint: siked's default template", out)


def test_run_dry_run_prints_config_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", str(ROOT / "configs" / "quickstart.yaml"), "--dry-run"]
    assert main([*args, "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("name: quickstart") and "plan of run quickstart" in out
    assert not any(tmp_path.iterdir())  # nothing run, nothing written


def test_format_plan_lists_problems() -> None:
    plan = make_plan(load_config(ROOT / "configs" / "quickstart.yaml"))
    plan.problems.append("something is wrong")
    text = format_plan(plan)
    assert text.rstrip().endswith("- something is wrong") and not plan.ok


def test_plan_finds_vllm_where_the_engine_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM in its own environment (sample.vllm_executable): found, not judged by what is
    importable in siked's environment."""
    import sys

    exe = tmp_path / "vllm-env" / "bin" / "vllm"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.delenv("SIKED_VLLM", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "env" / ".venv"))
    quick = ROOT / "configs" / "quickstart.yaml"
    cfg = load_config(quick, ["sample.engine=vllm", f"sample.vllm_executable={exe}"])
    text = format_plan(make_plan(cfg))
    assert re.search(r"vLLM +needed, found +engines: sample: " + re.escape(str(exe)), text)
    missing = load_config(quick, ["sample.engine=vllm"])
    assert re.search(r"vLLM +needed, NOT found here", format_plan(make_plan(missing)))
