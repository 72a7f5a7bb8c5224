"""The student's chat format: instruction, tags, prompt and prefill."""

from __future__ import annotations

import os

import pytest

from siked import chat
from siked.strategies import UnknownStrategyError, parse_tagged

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _ChatMLTokenizer:
    """Stand-in for a tokenizer: ChatML template, as SmolLM2/Qwen use."""

    chat_template = "chatml"  # what student_prompt checks for; rendering is below

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


#: the instructions as the built-in strategies render them; shortened on purpose (59 SmolLM2
#: tokens), so any change to these bytes is a change of every prompt and must be deliberate
FREE = (
    "Solve the math word problem with one strategy: [cot] chain of thought, [l2m] "
    "least-to-most sub-questions, or [pot] a Python program that stores the result in "
    '`answer`. Begin with the tag, e.g. "[cot]: ".'
)
FORCED = {
    "cot": 'Solve the math word problem with [cot] chain of thought. Begin with "[cot]: ".',
    "l2m": (
        'Solve the math word problem with [l2m] least-to-most sub-questions. Begin with "[l2m]: ".'
    ),
    "pot": (
        "Solve the math word problem with [pot] a Python program that stores the result in "
        '`answer`. Begin with "[pot]: ".'
    ),
}


def test_instructions_are_byte_identical_for_the_built_in_strategies():
    assert chat.instruction() == FREE
    for name, text in FORCED.items():
        assert chat.instruction(name) == text


def test_response_text_and_parse_roundtrip():
    for s in ("cot", "l2m", "pot"):
        r = chat.response_text(s, "  x = 1\nanswer = x  ")
        assert r == f"[{s}]: x = 1\nanswer = x"
        assert parse_tagged(r) == (s, "x = 1\nanswer = x")


def test_prefill_plus_completion_parses():
    full = chat.prefill_text("pot") + " answer = 4"
    assert parse_tagged(full) == ("pot", "answer = 4")


def test_student_messages_free_and_forced():
    free = chat.student_messages("  What is 2+3?\n")
    assert [m["role"] for m in free] == ["system", "user"]
    assert free[0]["content"] == chat.instruction()
    assert free[1]["content"] == "What is 2+3?"
    forced = chat.student_messages("q", forced="pot")
    assert forced[0]["content"] == FORCED["pot"]
    assert "[cot]" not in forced[0]["content"]
    # a forced strategy must be registered; the error names the choices
    with pytest.raises(UnknownStrategyError, match="choose one of: cot, l2m, pot"):
        chat.student_messages("q", forced="eq")
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
    assert p.startswith("<|im_start|>system\n" + chat.instruction() + "<|im_end|>\n")
    assert p.endswith("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    # the prefill is a token prefix of the trained response (no dangling space token)
    full = tok(p + chat.response_text("cot", "Let us add."), add_special_tokens=False).input_ids
    pre = tok(p + chat.prefill_text("cot"), add_special_tokens=False).input_ids
    assert full[: len(pre)] == pre
