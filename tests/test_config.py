"""Config loading: unknown keys and bad values name the key; overrides; presets validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from siked.config import (
    AlphaSchedule,
    ConfigError,
    DatasetSpec,
    SikedConfig,
    load_config,
    parse_override,
)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_are_the_paper_hyperparameters() -> None:
    cfg = SikedConfig()
    assert (cfg.train.lora_r, cfg.train.lora_alpha, cfg.train.learning_rate) == (16, 32, 2e-4)
    assert cfg.train.epochs == 3 and cfg.train.max_length == 1024
    assert (cfg.train.weight_decay, cfg.train.warmup_steps, cfg.train.warmup_ratio) == (0.01, 5, 0)
    assert (cfg.sample.k, cfg.sample.temperature, cfg.sample.top_p) == (10, 0.7, 0.95)
    assert cfg.mix.bias == "pot" and cfg.strategies == ["cot", "l2m", "pot"]
    # the authors' mixing: bias from iteration 0, adaptive per (question, strategy), one self
    # row per (question, strategy)
    assert cfg.mix.bias_iteration_0 is True and cfg.mix.adaptive_scope == "strategy"
    assert cfg.mix.self_per_strategy == 1
    assert "multiarith:test" in [str(s) for s in cfg.data.eval]


#: the authors' values per student (github.com/shivam0109/SIKeD,
#: fine-tuning/iter1_configs/<student>/selsamp-pot.yaml lines 12 and 37-43)
AUTHORS = {
    "gemma-2b": ("google/gemma-2b-it", 2e-4, "linear"),
    "gemma-7b": ("google/gemma-7b-it", 2e-4, "linear"),
    "qwen2-0.5b": ("Qwen/Qwen2-0.5B-Instruct", 3e-4, "cosine"),
    "qwen2-1.5b": ("Qwen/Qwen2-1.5B-Instruct", 3e-4, "cosine"),
    "smollm-1.7b": ("HuggingFaceTB/SmolLM-1.7B-Instruct", 2e-4, "linear"),
}


@pytest.mark.parametrize("student", sorted(AUTHORS))
def test_paper_presets_are_the_authors_settings(student: str) -> None:
    cfg = load_config(ROOT / "configs" / "paper" / f"{student}.yaml")
    model, lr, scheduler = AUTHORS[student]
    t = cfg.train
    assert cfg.student.model == model  # the instruct checkpoint, as the authors
    assert (t.learning_rate, t.lr_scheduler) == (lr, scheduler)
    assert (t.weight_decay, t.warmup_steps, t.epochs, t.max_length) == (0.01, 5, 3, 1024)
    assert (t.per_device_batch_size, t.gradient_accumulation_steps) == (2, 4)
    assert t.packing is True  # rows of max_length tokens, as the authors
    assert (t.lora_r, t.lora_alpha, t.lora_dropout) == (16, 32, 0.0)
    assert (cfg.teacher.n, cfg.teacher.keep_per_strategy, cfg.teacher.max_tokens) == (10, 1, 512)
    assert (cfg.sample.k, cfg.sample.temperature, cfg.sample.top_p, cfg.sample.max_tokens) == (
        10,
        0.7,
        0.95,
        512,
    )
    assert cfg.eval.max_tokens == 1024
    assert (cfg.mix.variant, cfg.mix.bias, cfg.mix.bias_iteration_0) == ("all", "pot", True)
    assert [str(s) for s in cfg.data.eval] == [
        "gsm8k:test",
        "svamp:test",
        "asdiv:test",
        "multiarith:test",
    ]


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "train:\n  lora_rank: 8\n")
    with pytest.raises(ConfigError, match=r"train\.lora_rank: unknown key"):
        load_config(p)


def test_a_removed_key_is_refused_with_what_to_do(tmp_path: Path) -> None:
    p = write(tmp_path, "sample:\n  engine: hf\n  continuous_batching: true\n")
    with pytest.raises(ConfigError, match=r"continuous_batching was removed.*Delete the key"):
        load_config(p)
    with pytest.raises(ConfigError, match="continuous_batching was removed"):
        load_config(None, ["eval.continuous_batching=false"])


def test_bad_value_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "train:\n  lora_r: -1\n")
    with pytest.raises(ConfigError, match=r"train\.lora_r"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"mix\.variant"):
        load_config(None, ["mix.variant=everything"])


def test_overrides_are_parsed_as_yaml() -> None:
    cfg = load_config(None, ["train.lora_r=8", "strategies=[cot, pot]", "mix.alpha=0.5"])
    assert cfg.train.lora_r == 8 and cfg.strategies == ["cot", "pot"] and cfg.mix.alpha == 0.5
    assert parse_override("data.eval=svamp:10") == (["data", "eval"], "svamp:10")
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load_config(None, ["train.lora_r"])


def test_alpha_forms() -> None:
    assert load_config(None, ["mix.alpha=auto"]).mix.alpha == "auto"
    sched = load_config(None, ["mix.alpha={start: 0.9, end: 0.2}"]).mix.alpha
    assert isinstance(sched, AlphaSchedule)
    assert sched.at(1, 3) == pytest.approx(0.9) and sched.at(3, 3) == pytest.approx(0.2)
    with pytest.raises(ConfigError, match=r"mix\.alpha"):
        load_config(None, ["mix.alpha=1.5"])


def test_dataset_specs() -> None:
    assert DatasetSpec.parse("gsm8k:test:200") == DatasetSpec(name="gsm8k", split="test", limit=200)
    assert str(DatasetSpec.parse("svamp:100")) == "svamp:test:100"
    cfg = load_config(None, ["data.eval=gsm8k:test:5,svamp:3"])
    assert [str(s) for s in cfg.data.eval] == ["gsm8k:test:5", "svamp:test:3"]


def test_extends_merges_and_detects_cycles(tmp_path: Path) -> None:
    write(tmp_path, "name: base\ntrain:\n  lora_r: 8\n  epochs: 1\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\ntrain:\n  epochs: 2\n")
    cfg = load_config(child)
    assert (cfg.name, cfg.train.lora_r, cfg.train.epochs) == ("child", 8, 2)
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_distill_means_iteration_zero_only() -> None:
    assert load_config(None, ["method=distill"]).loop.iterations == 0


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "configs").glob("*.yaml"))
    + sorted((ROOT / "configs" / "paper").glob("*.yaml"))
    + sorted((ROOT / "configs" / "baselines").glob("*.yaml")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name
    if "paper" in path.parts:
        assert cfg.train.lora_r == 16 and cfg.sample.k == 10 and cfg.train.epochs == 3
        assert cfg.teacher.engine in ("vllm", "openai")


EXPERIMENT_ARMS = [
    p for p in sorted((ROOT / "configs" / "cpu" / "experiment").glob("*.yaml")) if p.stem != "base"
]


@pytest.mark.parametrize("path", EXPERIMENT_ARMS, ids=lambda p: p.stem)
def test_the_experiments_arms_compute_in_one_precision(path: Path) -> None:
    """Issue 30's arms are compared question by question: each trains, samples and answers in
    bf16 (a CPU without native bf16 stops the run instead of computing in float32)."""
    cfg = load_config(path)
    assert (cfg.train.bf16, cfg.sample.dtype, cfg.eval.dtype) == (True, "bfloat16", "bfloat16")
