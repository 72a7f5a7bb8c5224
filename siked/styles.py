"""Prompt styles: how the teacher is prompted, and how text rationales are written in it.

The teacher's rationales are the student's training text, so the style the teacher is shown is
the style the student learns (``teacher.prompt_style``). A style is data, registered by name:

* ``siked`` (the default): ``Question:`` / ``Answer:`` blocks (chat turns with ``api: chat``),
  L2M as ``Q1:`` / ``A1:`` pairs, the final line ``The answer is N.``, no calculator
  annotations, programs in a code fence in text prompts;
* ``authors``: the layout of the SIKeD authors' teacher prompts (``dataset_creation/PROMPTS/``
  in github.com/shivam0109/SIKeD): an Alpaca preamble, ``Instruction:``, then ``Input:`` /
  ``Response:`` blocks over eight GSM8K training problems; CoT and L2M steps keep GSM8K's
  ``<<48/2=24>>`` calculator annotations, L2M is ``Sub-question k:`` / ``Answer to
  Sub-question k:`` pairs, the final line ``Final Answer: N``; programs are plain Python.

The final-answer markers are :mod:`siked.verify`'s (it reads every one of them); the
strategies' validators accept the forms of every registered style, so a student trained in one
style is judged by the same rules as its teacher. :mod:`siked.strategies` lays out the prompts
(:meth:`~siked.strategies.Strategy.teacher_prompt`), :mod:`siked.gsm8k_rationales` writes the
gold teacher's rationales in the style of the prompt it answers.

>>> get_style("authors").final_line("72")
'Final Answer: 72'
>>> get_style("siked").l2m_lines([("How many?", "3.")])
['Q1: How many?', 'A1: 3.']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from siked import verify
from siked.errors import UnknownNameError
from siked.registry import Registry


class UnknownStyleError(UnknownNameError):
    """A prompt style that is not registered."""


@dataclass(frozen=True)
class PromptStyle:
    """A teacher prompt layout and the form of the text rationales written in it."""

    name: str
    #: ``qa``: ``Question:``/``Answer:`` blocks (chat: user/assistant turns); ``alpaca``: the
    #: preamble, ``Instruction:``, ``Input:``/``Response:`` blocks (chat: one user turn)
    layout: Literal["qa", "alpaca"]
    #: the final-answer marker of text rationales (one of :data:`verify.FINAL_ANSWER_MARKERS`)
    marker: str
    l2m_question: str  # one sub-question line, ``{k}`` its number, ``{text}`` the question
    l2m_answer: str  # its answer line
    #: text rationales keep calculator annotations ``<<48/2=24>>`` (GSM8K's, the authors' form)
    annotations: bool
    #: programs are shown in a code fence in text prompts (the reply then closes it)
    fence_programs: bool

    def final_line(self, value: str) -> str:
        """The last line of a CoT or L2M rationale (:func:`verify.marker_line`)."""
        return verify.marker_line(value, self.marker)

    def l2m_lines(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """Numbered sub-question / answer lines, from 1."""
        out: list[str] = []
        for k, (q, a) in enumerate(pairs, 1):
            out += [self.l2m_question.format(k=k, text=q), self.l2m_answer.format(k=k, text=a)]
        return out


#: Alpaca's preamble with an input (github.com/tatsu-lab/stanford_alpaca), which the authors'
#: teacher prompts open with.
ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request."
)

_STYLES: Registry[PromptStyle] = Registry("prompt style", UnknownStyleError)

#: the default style
DEFAULT_STYLE = "siked"


def register_style(style: PromptStyle, replace: bool = False) -> PromptStyle:
    """Add ``style`` to the registry (``teacher.prompt_style`` names it)."""
    if style.marker not in verify.FINAL_ANSWER_MARKERS:
        raise ValueError(f"{style.marker!r} is not a marker siked.verify reads")
    return _STYLES.register(style.name, style, replace=replace)


def get_style(name: str) -> PromptStyle:
    """The registered style ``name``; :class:`UnknownStyleError` names the choices."""
    return _STYLES.get(name)


def style_names() -> list[str]:
    """Registered style names, in registration order."""
    return _STYLES.names()


def all_styles() -> list[PromptStyle]:
    return _STYLES.values()


def _line_regex(template: str) -> re.Pattern[str]:
    """``Q{k}: {text}`` -> a regex with the number and the text as groups."""
    head = template.split("{k}")[0].strip()
    return re.compile(rf"^\s*{re.escape(head)}\s*(\d+)\s*:\s*(.*)$")


def l2m_question_match(line: str) -> re.Match[str] | None:
    """``(k, text)`` groups when ``line`` is a sub-question line of any registered style.

    >>> l2m_question_match("Sub-question 2: How many?").groups()
    ('2', 'How many?')
    >>> l2m_question_match("Answer to Sub-question 2: 4") is None
    True
    """
    for s in _STYLES.values():
        if m := _line_regex(s.l2m_question).match(line):
            return m
    return None


def l2m_answer_match(line: str) -> re.Match[str] | None:
    """``(k, text)`` groups when ``line`` is a sub-answer line of any registered style.

    >>> l2m_answer_match("A3: 5 * 2 = 10.").groups()
    ('3', '5 * 2 = 10.')
    """
    for s in _STYLES.values():
        if m := _line_regex(s.l2m_answer).match(line):
            return m
    return None


SIKED = register_style(
    PromptStyle(
        name="siked",
        layout="qa",
        marker=verify.FINAL_ANSWER_MARKER,
        l2m_question="Q{k}: {text}",
        l2m_answer="A{k}: {text}",
        annotations=False,
        fence_programs=True,
    )
)

AUTHORS = register_style(
    PromptStyle(
        name="authors",
        layout="alpaca",
        marker=verify.AUTHORS_ANSWER_MARKER,
        l2m_question="Sub-question {k}: {text}",
        l2m_answer="Answer to Sub-question {k}: {text}",
        annotations=True,
        fence_programs=False,
    )
)
