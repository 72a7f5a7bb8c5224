"""The student's chat format: instruction, tags, prompt and prefill."""

from __future__ import annotations

import os

import pytest

from siked import chat

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _ChatMLTokenizer:
    """Stand-in for a tokenizer: ChatML template, as SmolLM2/Qwen use."""

    chat_template = "chatml"  # what student_prompt checks for; rendering is below

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def test_response_text_and_split_roundtrip():
    for s in ("cot", "l2m", "pot"):
        r = chat.response_text(s, "  x = 1\nanswer = x  ")
        assert r == f"[{s}]: x = 1\nanswer = x"
        assert chat.split_response(r) == (s, "x = 1\nanswer = x")


@pytest.mark.parametrize(
    "response,expected",
    [
        ("[cot]: The answer is 3.", ("cot", "The answer is 3.")),
        ("  [pot]:answer = 2", ("pot", "answer = 2")),
        ("[l2m]:\nQ1: ...", ("l2m", "Q1: ...")),
        ("[my_strat2]: hi", ("my_strat2", "hi")),
        ("The answer is 3.", (None, "The answer is 3.")),
        ("[COT]: upper case is not a tag", (None, "[COT]: upper case is not a tag")),
        ("text [cot]: later", (None, "text [cot]: later")),
        ("[cot] missing colon", (None, "[cot] missing colon")),
    ],
)
def test_split_response(response, expected):
    assert chat.split_response(response) == expected


def test_prefill_plus_completion_parses():
    full = chat.prefill_text("pot") + " answer = 4"
    assert chat.split_response(full) == ("pot", "answer = 4")


def test_student_messages_free_and_forced():
    free = chat.student_messages("  What is 2+3?\n")
    assert [m["role"] for m in free] == ["system", "user"]
    assert free[0]["content"] == chat.STUDENT_INSTRUCTION
    assert free[1]["content"] == "What is 2+3?"
    for tag in ("[cot]", "[l2m]", "[pot]"):
        assert tag in chat.STUDENT_INSTRUCTION
    forced = chat.student_messages("q", forced="pot")
    assert forced[0]["content"] != chat.STUDENT_INSTRUCTION
    assert '"[pot]: "' in forced[0]["content"]
    assert "Python program" in forced[0]["content"]
    assert "[cot]" not in forced[0]["content"]
    # an unregistered strategy still gets a sensible instruction
    assert '"[eq]: "' in chat.student_messages("q", forced="eq")[0]["content"]
    with pytest.raises(ValueError):
        chat.student_messages("q", forced="Bad Tag")


def test_student_prompt_generation_prompt_and_prefill():
    tok = _ChatMLTokenizer()
    p = chat.student_prompt(tok, "What is 2+3?")
    assert p.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is 2+3?<|im_end|>" in p
    pf = chat.student_prompt(tok, "What is 2+3?", forced="cot", prefill_tag=True)
    assert pf.endswith("<|im_start|>assistant\n[cot]:")
    with pytest.raises(ValueError):
        chat.student_prompt(tok, "q", prefill_tag=True)


def test_training_example_is_conversational_prompt_completion():
    ex = chat.training_example("What is 2+3?", "cot", "2+3=5. The answer is 5.")
    assert ex["prompt"] == chat.student_messages("What is 2+3?")
    assert ex["completion"] == [{"role": "assistant", "content": "[cot]: 2+3=5. The answer is 5."}]


@pytest.mark.integration
def test_real_tokenizer_template_and_tag_tokens():
    from siked.models import BUNDLED_STUDENT, load_tokenizer

    tok = load_tokenizer(BUNDLED_STUDENT)
    p = chat.student_prompt(tok, "What is 2+3?")
    assert p.startswith("<|im_start|>system\n" + chat.STUDENT_INSTRUCTION + "<|im_end|>\n")
    assert p.endswith("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    # the prefill is a token prefix of the trained response (no dangling space token)
    full = tok(p + chat.response_text("cot", "Let us add."), add_special_tokens=False).input_ids
    pre = tok(p + chat.prefill_text("cot"), add_special_tokens=False).input_ids
    assert full[: len(pre)] == pre
