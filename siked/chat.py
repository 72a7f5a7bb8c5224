"""The student's prompt and response format (shared by training, sampling and evaluation).

The student sees a system message with the instruction and a user message with the question;
its response starts with a strategy tag::

    [cot]: Natalia sold 48/2 = 24 clips in May. ... The answer is 72.
    [pot]: clips_april = 48\\nanswer = clips_april + clips_april / 2

In SIKeD the free prompt names no strategy: the student *chooses* by writing the tag. For the
single-strategy baselines (and forced sampling/evaluation) the instruction names the strategy,
and :func:`student_prompt` can pre-fill the tag so the model has to continue in that strategy.

Chat templates differ. Some reject a system message (Gemma's raises "System role not
supported"): for those the instruction opens the user turn instead (:func:`supports_system_role`
decides by rendering a probe conversation), identically for training, sampling and evaluation,
because all three build their messages here. A tokenizer without any chat template (a base
model) gets :data:`DEFAULT_CHAT_TEMPLATE`; training saves it with the model, so later stages
and vLLM use the same one.

The instructions are built from the strategy registry (:mod:`siked.strategies`): the free one
offers every registered strategy by its :attr:`~siked.strategies.Strategy.student_label`, in
registration order, and the forced one names one strategy. A registered fourth strategy is
therefore offered to the student with no other edit.

>>> instruction()
'Solve the math word problem with one strategy: [cot] chain of thought, [l2m] least-to-most sub-questions, or [pot] a Python program that stores the result in `answer`. Begin with the tag, e.g. "[cot]: ".'
>>> instruction("l2m")
'Solve the math word problem with [l2m] least-to-most sub-questions. Begin with "[l2m]: ".'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from siked.strategies import get_strategies, get_strategy
from siked.text import check_tag_name, tag_prefix

log = logging.getLogger(__name__)

#: Free-choice instruction (the SIKeD student format), filled with the registered strategies.
#: Every training, sampling and evaluation prompt carries it, so it is kept short (59 SmolLM2
#: tokens with the built-in three; the first version's 90 cost ~13% of a typical training
#: example, see benchmarks/README.md).
FREE_INSTRUCTION = (
    "Solve the math word problem with one strategy: {choices}. "
    'Begin with the tag, e.g. "{example}".'
)

#: Instruction that fixes the strategy (single-strategy baselines and forced sampling).
FORCED_INSTRUCTION = 'Solve the math word problem with {label}. Begin with "{prefix}".'


def _or_list(items: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b, or c``.

    >>> _or_list(["x"]), _or_list(["x", "y"]), _or_list(["x", "y", "z"])
    ('x', 'x or y', 'x, y, or z')
    """
    if len(items) <= 2:
        return " or ".join(items)
    return f"{', '.join(items[:-1])}, or {items[-1]}"


def instruction(forced: str | None = None) -> str:
    """The system instruction: free choice among the registered strategies, or the one that
    names the registered strategy ``forced``."""
    if forced is None:
        strategies = get_strategies()
        return FREE_INSTRUCTION.format(
            choices=_or_list([s.student_label for s in strategies]),
            example=tag_prefix(strategies[0].name),
        )
    strategy = get_strategy(check_tag_name(forced))
    return FORCED_INSTRUCTION.format(label=strategy.student_label, prefix=tag_prefix(forced))


def student_messages(
    question: str, forced: str | None = None, system: bool = True
) -> list[dict[str, str]]:
    """System + user chat messages for ``question`` (``forced`` names a fixed strategy).

    ``system=False`` (a template without a system role) puts the instruction at the start of
    the user message, separated from the question by a blank line.

    >>> [m["role"] for m in student_messages("What is 2+3?", system=False)]
    ['user']
    """
    if not system:
        return [{"role": "user", "content": f"{instruction(forced)}\n\n{question.strip()}"}]
    return [
        {"role": "system", "content": instruction(forced)},
        {"role": "user", "content": question.strip()},
    ]


#: The chat template siked gives a student whose tokenizer has none (a base model). The
#: assistant turn ends with the EOS token, so the student learns to stop where generation stops.
#: Rendered: ``<bos>{instruction}\n\n### Question\n{question}\n\n### Answer\n[cot]: ...<eos>``.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Question\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '### Answer\\n' + message['content'] + (eos_token or '') }}"
    "{% if not loop.last %}{{ '\\n\\n' }}{% endif %}"
    "{% else %}{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Answer\\n' }}{% endif %}"
)

_PROBE = "siked probe: system instruction"
#: chat template text -> whether it renders a system message (rendering a probe is cheap, but
#: prompts are built for every question)
_SYSTEM_ROLE: dict[str, bool] = {}


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give ``tokenizer`` :data:`DEFAULT_CHAT_TEMPLATE` if it has no chat template.

    Returns True when it did (a base model); the caller saves the tokenizer with the model.
    """
    if getattr(tokenizer, "chat_template", None):
        return False
    log.warning(
        "%s has no chat template (a base model?); using siked's default student template "
        "(siked.chat.DEFAULT_CHAT_TEMPLATE)",
        getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
    )
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return True


def _template_kwargs(tokenizer: Any) -> dict[str, str]:
    """``chat_template=`` for ``apply_chat_template`` when the tokenizer has no template."""
    return (
        {}
        if getattr(tokenizer, "chat_template", None)
        else {"chat_template": DEFAULT_CHAT_TEMPLATE}
    )


def supports_system_role(tokenizer: Any) -> bool:
    """Whether the chat template renders a system message (Gemma's raises an error instead).

    Decided by rendering a probe conversation: the template must neither raise nor drop the
    system text. A tokenizer without a template is judged by :data:`DEFAULT_CHAT_TEMPLATE`,
    which :func:`ensure_chat_template` gives it.
    """
    template = getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
    key = template if isinstance(template, str) else repr(template)
    if key not in _SYSTEM_ROLE:
        probe = [{"role": "system", "content": _PROBE}, {"role": "user", "content": "1 + 1?"}]
        try:
            text = tokenizer.apply_chat_template(
                probe, tokenize=False, add_generation_prompt=True, **_template_kwargs(tokenizer)
            )
            ok = _PROBE in str(text)
        except Exception as e:  # jinja2's TemplateError from raise_exception(...), or others
            log.info("the chat template rejects a system message (%s); folding it", e)
            ok = False
        _SYSTEM_ROLE[key] = ok
    return _SYSTEM_ROLE[key]


def turn_end_token(tokenizer: Any) -> str | None:
    """The special token the chat template closes the student's turn with, or None.

    ChatML ends a turn with ``<|im_end|>``, Gemma with ``<end_of_turn>``: the student learns to
    write it after its answer, but a base checkpoint's EOS is another token (Qwen2 base:
    ``<|endoftext|>``), so generation would run on past the answer unless it also stops there.
    """
    sentinel = "siked-sentinel-response"
    messages = [
        *student_messages("1 + 1?", system=supports_system_role(tokenizer)),
        {"role": "assistant", "content": sentinel},
    ]
    try:
        text = str(
            tokenizer.apply_chat_template(messages, tokenize=False, **_template_kwargs(tokenizer))
        )
    except Exception:  # a template that cannot render the student's turn: nothing to add
        return None
    if sentinel not in text:
        return None
    after = text[text.rindex(sentinel) + len(sentinel) :].lstrip()
    specials = set(tokenizer.get_added_vocab()) | set(tokenizer.all_special_tokens)
    for token in sorted(specials, key=len, reverse=True):
        if token and after.startswith(token):
            return str(token)
    return None


def prefill_text(strategy: str) -> str:
    """What :func:`student_prompt` appends when pre-filling: ``"[cot]:"``.

    The trailing space of the tag is left to the model: BPE tokenizers (SmolLM2, Llama, Qwen,
    Gemma) encode ``"[cot]: Let"`` as ``[ "]:", " Let" ]``, so a pre-fill ending in a bare
    ``" "`` token would put the model on a token boundary it never saw in training. The full
    response is ``prefill_text(s) + completion``, which :func:`siked.strategies.parse_tagged`
    parses.
    """
    return tag_prefix(strategy).rstrip()


def response_text(strategy: str, text: str) -> str:
    """The assistant response the student is trained on: ``"[cot]: <rationale>"``."""
    return tag_prefix(strategy) + text.strip()


def student_prompt(
    tokenizer: Any, question: str, forced: str | None = None, prefill_tag: bool = False
) -> str:
    """The generation prompt: the chat template applied with ``add_generation_prompt=True``.

    The instruction is folded into the user turn when the template has no system role, and a
    tokenizer without a template uses :data:`DEFAULT_CHAT_TEMPLATE` (as training did).

    With ``prefill_tag`` (needs ``forced``) the assistant turn is pre-filled with
    :func:`prefill_text` so that sampling is forced into that strategy.
    """
    if prefill_tag and forced is None:
        raise ValueError("prefill_tag needs a forced strategy")
    prompt = tokenizer.apply_chat_template(
        student_messages(question, forced, system=supports_system_role(tokenizer)),
        tokenize=False,
        add_generation_prompt=True,
        **_template_kwargs(tokenizer),
    )
    if not isinstance(prompt, str):  # pragma: no cover - tokenize=False returns text
        raise TypeError("the chat template did not return text")
    if prefill_tag and forced is not None:
        prompt += prefill_text(forced)
    return prompt


def training_example(
    question: str, strategy: str, text: str, forced: str | None = None, system: bool = True
) -> dict[str, list[dict[str, str]]]:
    """One conversational prompt/completion example for TRL's SFTTrainer.

    ``system`` as in :func:`student_messages` (``supports_system_role`` of the student's
    tokenizer), so that training sees the prompt that sampling and evaluation send.
    """
    return {
        "prompt": student_messages(question, forced, system),
        "completion": [{"role": "assistant", "content": response_text(strategy, text)}],
    }
