"""The student's prompt and response format (shared by training, sampling and evaluation).

The student sees a system message with the instruction and a user message with the question;
its response starts with a strategy tag::

    [cot]: Natalia sold 48/2 = 24 clips in May. ... The answer is 72.
    [pot]: clips_april = 48\\nanswer = clips_april + clips_april / 2

In SIKeD the free prompt names no strategy: the student *chooses* by writing the tag. For the
single-strategy baselines (and forced sampling/evaluation) the instruction names the strategy,
and :func:`student_prompt` can pre-fill the tag so the model has to continue in that strategy.

This module deliberately does not import :mod:`siked.strategies`; strategy descriptions used in
forced instructions live in :data:`STRATEGY_DESCRIPTIONS` (extendable by registering code).
"""

from __future__ import annotations

import re
from typing import Any

#: Free-choice instruction (the SIKeD student format). Every training, sampling and evaluation
#: prompt carries it, so it is kept short (59 SmolLM2 tokens; the first version's 90 cost ~13%
#: of a typical training example, see benchmarks/README.md).
STUDENT_INSTRUCTION = (
    "Solve the math word problem with one strategy: [cot] chain of thought, [l2m] "
    "least-to-most sub-questions, or [pot] a Python program that stores the result in "
    '`answer`. Begin with the tag, e.g. "[cot]: ".'
)

#: Instruction that fixes the strategy (single-strategy baselines and forced sampling).
FORCED_INSTRUCTION = 'Solve the math word problem with {description}. Begin with "[{tag}]: ".'

#: How a forced instruction names each strategy; unknown tags fall back to the tag itself.
STRATEGY_DESCRIPTIONS: dict[str, str] = {
    "cot": "[cot] chain of thought",
    "l2m": "[l2m] least-to-most sub-questions",
    "pot": "[pot] a Python program that stores the result in `answer`",
}

#: A response starts with ``[tag]:``; the tag is lower-case letters, digits or ``_``.
TAG_RE = re.compile(r"^\s*\[([a-z0-9_]+)\]:\s*")
_TAG_NAME_RE = re.compile(r"^[a-z0-9_]+$")


def _check_tag(strategy: str) -> str:
    if not _TAG_NAME_RE.match(strategy):
        raise ValueError(f"bad strategy tag {strategy!r}: use lower-case letters, digits and _")
    return strategy


def instruction(forced: str | None = None) -> str:
    """The system instruction: free choice, or the one that names ``forced``."""
    if forced is None:
        return STUDENT_INSTRUCTION
    tag = _check_tag(forced)
    desc = STRATEGY_DESCRIPTIONS.get(tag, f"[{tag}] the {tag} strategy")
    return FORCED_INSTRUCTION.format(description=desc, tag=tag)


def student_messages(question: str, forced: str | None = None) -> list[dict[str, str]]:
    """System + user chat messages for ``question`` (``forced`` names a fixed strategy)."""
    return [
        {"role": "system", "content": instruction(forced)},
        {"role": "user", "content": question.strip()},
    ]


def tag_prefix(strategy: str) -> str:
    """The tag as it begins a response: ``"[cot]: "``."""
    return f"[{_check_tag(strategy)}]: "


def prefill_text(strategy: str) -> str:
    """What :func:`student_prompt` appends when pre-filling: ``"[cot]:"``.

    The trailing space of the tag is left to the model: BPE tokenizers (SmolLM2, Llama, Qwen,
    Gemma) encode ``"[cot]: Let"`` as ``[ "]:", " Let" ]``, so a pre-fill ending in a bare
    ``" "`` token would put the model on a token boundary it never saw in training. The full
    response is ``prefill_text(s) + completion``, which :func:`split_response` parses.
    """
    return f"[{_check_tag(strategy)}]:"


def response_text(strategy: str, text: str) -> str:
    """The assistant response the student is trained on: ``"[cot]: <rationale>"``."""
    return tag_prefix(strategy) + text.strip()


def split_response(response: str) -> tuple[str | None, str]:
    """``"[pot]: x = 1"`` -> ``("pot", "x = 1")``; no tag -> ``(None, response.strip())``."""
    m = TAG_RE.match(response)
    if m is None:
        return None, response.strip()
    return m.group(1), response[m.end() :].strip()


def student_prompt(
    tokenizer: Any, question: str, forced: str | None = None, prefill_tag: bool = False
) -> str:
    """The generation prompt: the chat template applied with ``add_generation_prompt=True``.

    With ``prefill_tag`` (needs ``forced``) the assistant turn is pre-filled with
    :func:`prefill_text` so that sampling is forced into that strategy.
    """
    if prefill_tag and forced is None:
        raise ValueError("prefill_tag needs a forced strategy")
    if hasattr(tokenizer, "chat_template") and not tokenizer.chat_template:  # HF tokenizers
        from siked.models import require_chat_template

        require_chat_template(tokenizer, str(getattr(tokenizer, "name_or_path", "") or "model"))
    prompt = tokenizer.apply_chat_template(
        student_messages(question, forced), tokenize=False, add_generation_prompt=True
    )
    if not isinstance(prompt, str):  # pragma: no cover - tokenize=False returns text
        raise TypeError("the chat template did not return text")
    if prefill_tag and forced is not None:
        prompt += prefill_text(forced)
    return prompt


def training_example(
    question: str, strategy: str, text: str, forced: str | None = None
) -> dict[str, list[dict[str, str]]]:
    """One conversational prompt/completion example for TRL's SFTTrainer."""
    return {
        "prompt": student_messages(question, forced),
        "completion": [{"role": "assistant", "content": response_text(strategy, text)}],
    }
