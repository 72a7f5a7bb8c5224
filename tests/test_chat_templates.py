"""Chat templates without a system role (Gemma) or without any template (base models).

Training, sampling and evaluation must build the same prompt: the instruction opens the user
turn where the template rejects a system message, and a base model gets siked's documented
default template, saved with the trained model.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from test_train import student_tokenizer, tiny_cfg, tiny_model, write_records

from siked import chat
from siked.config import SampleConfig
from siked.errors import SikedError
from siked.train import load_examples, prepare_tokenizer, train

__all__ = ["tiny_model"]  # the fixture, shared with test_train

#: google/gemma-*-it's chat template (the base Gemma checkpoints ship it too)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
#: a template that ignores system messages without an error
SILENT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] != 'system' %}"
    "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
QUESTION = "What is 2 + 3?"
GEMMA_TOKENS = ("<start_of_turn>", "<end_of_turn>")


@pytest.fixture(scope="module")
def base_tokenizer():
    return student_tokenizer()


def with_template(tokenizer, template):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    return tok


def model_with_template(
    src: str, dst: Path, template: str | None, special_tokens: tuple[str, ...] = ()
) -> str:
    """A copy of the tiny model whose tokenizer has ``template`` (None: no template at all) and
    the added ``special_tokens`` (embeddings resized)."""
    shutil.copytree(src, dst)
    if special_tokens:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(dst)
        tok.add_special_tokens({"additional_special_tokens": list(special_tokens)})
        tok.save_pretrained(dst)
        model = AutoModelForCausalLM.from_pretrained(dst)
        model.resize_token_embeddings(len(tok))
        model.save_pretrained(dst)
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    tcfg = json.loads((dst / "tokenizer_config.json").read_text())
    tcfg.pop("chat_template", None)
    if template is not None:
        (dst / "chat_template.jinja").write_text(template)
    (dst / "tokenizer_config.json").write_text(json.dumps(tcfg))
    return str(dst)


def test_system_role_detection(base_tokenizer):
    assert chat.supports_system_role(base_tokenizer)  # SmolLM2's ChatML
    assert not chat.supports_system_role(with_template(base_tokenizer, GEMMA_TEMPLATE))
    assert not chat.supports_system_role(with_template(base_tokenizer, SILENT_TEMPLATE))
    assert chat.supports_system_role(with_template(base_tokenizer, None))  # the default


def test_gemma_prompt_folds_the_instruction_into_the_user_turn(base_tokenizer):
    tok = with_template(base_tokenizer, GEMMA_TEMPLATE)
    prompt = chat.student_prompt(tok, QUESTION)
    user = f"<start_of_turn>user\n{chat.instruction()}\n\n{QUESTION}<end_of_turn>\n"
    assert prompt == f"{tok.bos_token}{user}<start_of_turn>model\n"
    forced = chat.student_prompt(tok, QUESTION, forced="pot", prefill_tag=True)
    assert forced.endswith("<start_of_turn>model\n[pot]:") and chat.instruction("pot") in forced


def test_default_template_for_a_base_model(base_tokenizer):
    tok = with_template(base_tokenizer, None)
    assert chat.ensure_chat_template(tok) and tok.chat_template == chat.DEFAULT_CHAT_TEMPLATE
    assert not chat.ensure_chat_template(tok)  # a template is never replaced
    ex = chat.training_example(QUESTION, "cot", "2 + 3 = 5.\nThe answer is 5.")
    prompt = tok.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)
    assert prompt == (
        f"{tok.bos_token}{chat.instruction()}\n\n### Question\n{QUESTION}\n\n### Answer\n"
    )
    # the prompt is a prefix of the trained text, whose response ends with EOS (stop learned)
    assert full == prompt + "[cot]: 2 + 3 = 5.\nThe answer is 5." + tok.eos_token
    # sampling from a tokenizer without a template renders the same prompt
    assert chat.student_prompt(with_template(base_tokenizer, None), QUESTION) == prompt


def test_turn_end_token(base_tokenizer):
    assert chat.turn_end_token(base_tokenizer) == "<|im_end|>"  # ChatML
    gemma = with_template(base_tokenizer, GEMMA_TEMPLATE)
    assert chat.turn_end_token(gemma) is None  # SmolLM2's vocabulary has no <end_of_turn>
    gemma.add_special_tokens({"additional_special_tokens": GEMMA_TOKENS})
    assert chat.turn_end_token(gemma) == "<end_of_turn>"
    bare = with_template(base_tokenizer, None)
    assert chat.turn_end_token(bare) == bare.eos_token  # the default template ends with EOS
    assert chat.turn_end_token(with_template(base_tokenizer, SILENT_TEMPLATE)) is None


def test_stop_at_turn_end_extends_eos(base_tokenizer):
    from transformers import GenerationConfig

    from siked.train import stop_at_turn_end

    gemma = with_template(base_tokenizer, GEMMA_TEMPLATE)
    gemma.add_special_tokens({"additional_special_tokens": GEMMA_TOKENS})
    end = gemma.convert_tokens_to_ids("<end_of_turn>")
    for eos, expected in [(1, [1, end]), ([1, 5], [1, 5, end]), (None, end), ([end], [end])]:
        gen = GenerationConfig(eos_token_id=eos)
        stop_at_turn_end(gen, gemma)
        assert gen.eos_token_id == expected, eos
    gen = GenerationConfig(eos_token_id=2)
    stop_at_turn_end(gen, base_tokenizer)  # ChatML: <|im_end|> is already EOS (id 2)
    assert gen.eos_token_id == 2


def test_training_folds_for_gemma_and_saves_its_template(tmp_path, tiny_model):
    model = model_with_template(tiny_model, tmp_path / "gemma", GEMMA_TEMPLATE, GEMMA_TOKENS)
    data = write_records(tmp_path / "d.jsonl")
    assert load_examples(data, system=False)[0]["prompt"] == [
        {"role": "user", "content": f"{chat.instruction()}\n\nWhat is 2 + 3?"}
    ]
    res = train(data, model, tmp_path / "run", tiny_cfg(), progress=False)
    assert res.metrics["chat_system_role"] is False and res.metrics["chat_template"] == "model"
    from siked.models import load_tokenizer

    merged = load_tokenizer(str(res.merged_dir))
    assert merged.chat_template == GEMMA_TEMPLATE
    # generation stops where the trained turn ends, not only at the base model's EOS
    from transformers import GenerationConfig

    eos = GenerationConfig.from_pretrained(res.merged_dir).eos_token_id
    assert merged.convert_tokens_to_ids("<end_of_turn>") in eos and merged.eos_token_id in eos
    # sampling and evaluation build the prompt training used
    trained = prepare_tokenizer(model).apply_chat_template(
        load_examples(data, system=False)[0]["prompt"], tokenize=False, add_generation_prompt=True
    )
    assert chat.student_prompt(merged, "What is 2 + 3?") == trained


def test_training_a_base_model_without_template(tmp_path, tiny_model):
    model = model_with_template(tiny_model, tmp_path / "base", None)
    from transformers import AutoTokenizer

    assert not AutoTokenizer.from_pretrained(model).chat_template  # really a bare tokenizer
    data = write_records(tmp_path / "d.jsonl")
    res = train(data, model, tmp_path / "run", tiny_cfg(), progress=False)
    assert res.metrics["chat_template"] == "siked-default"
    saved = (res.merged_dir / "chat_template.jinja").read_text()
    assert saved == chat.DEFAULT_CHAT_TEMPLATE


def test_chat_api_students_fold_like_training(tmp_path, tiny_model):
    """Over a chat API the server applies the model's template: siked sends the messages that
    training used, and refuses a model that has no template."""
    from siked.engines.base import Engine
    from siked.student import Student, chat_api_system_role

    gemma = model_with_template(tiny_model, tmp_path / "gemma", GEMMA_TEMPLATE)
    bare = model_with_template(tiny_model, tmp_path / "bare", None)
    assert chat_api_system_role(tiny_model) is True
    assert chat_api_system_role(gemma) is False
    assert chat_api_system_role("served-name-only") is True  # no tokenizer to look at
    with pytest.raises(SikedError, match=r"no chat template.*api: completions"):
        chat_api_system_role(bare)

    class ChatServer(Engine):  # what Student needs of an openai/vllm engine: no tokenizer
        name = "openai"

        def _generate(self, *a, **kw):  # pragma: no cover - not called
            raise AssertionError

    cfg = SampleConfig(engine="openai", api="chat")
    student = Student.for_engine(ChatServer(), cfg, gemma, ["cot", "pot"])
    assert student.prompt(QUESTION, None) == chat.student_messages(QUESTION, system=False)
    student = Student.for_engine(ChatServer(), cfg, tiny_model, ["cot", "pot"])
    assert student.prompt(QUESTION, None) == chat.student_messages(QUESTION)
