"""Reasoning strategies (CoT, L2M, PoT) as declarative, registered units.

A :class:`Strategy` is data: a name (its tag is ``[name]``), a one-line description and a short
label (how the student's instructions name it), the teacher's instruction, few-shot exemplars,
stop strings, a tuple of validity checks and its answer format (a marker line, or a program).
The registry (:func:`register`) is the one source: everything a stage needs comes from it:

* :meth:`Strategy.teacher_prompt` -- the few-shot prompt for a teacher (text or chat turns);
  :func:`parse_teacher_prompt` is its inverse (the gold teacher reads prompts with it);
* :attr:`Strategy.student_label` -- the strategy in the student's free and forced instructions
  (:mod:`siked.chat` builds them from the registry);
* :attr:`Strategy.answer_format` -- what :mod:`siked.verify` needs to read its answer;
* :meth:`Strategy.clean` -- raw model output -> the stored rationale;
* :meth:`Strategy.validate` -- ``None`` if the rationale has the strategy's format, else why not;
* :meth:`Strategy.extract` -- the answer and whether it is correct (through :func:`verify.check`;
  programs run in the sandbox).

Formats (stored rationales, without the ``[tag]: `` prefix):

* **cot**: sentences, then the marker line ``The answer is N.`` (:func:`verify.marker_line`);
* **l2m**: numbered sub-question/answer pairs ``Q1: ...?`` / ``A1: ...``, then the marker line;
* **pot**: plain Python (no code fence) that assigns the result to ``answer``.

Those are the forms of the default prompt style; the teacher's prompt style
(``teacher.prompt_style``, :mod:`siked.styles`) decides the prompt's layout, its instruction and
exemplars (:meth:`Strategy.form`; the ``authors`` style's are in :mod:`siked.authors_prompts`)
and so the forms the teacher writes in: ``authors`` keeps ``<<48/2=24>>`` annotations, writes
``Sub-question 1: ...`` / ``Answer to Sub-question 1: ...`` and ends with ``Final Answer: N``.
The validators accept the forms of every registered style.

Adding a strategy is one :func:`register` call (see ``docs/strategies.md``).

>>> strategy_names()
['cot', 'l2m', 'pot']
>>> format_tagged("pot", "answer = 2 + 3")
'[pot]: answer = 2 + 3'
>>> parse_tagged("[l2m]: Q1: How many? A1: 3.")
('l2m', 'Q1: How many? A1: 3.')
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from siked import authors_prompts, verify
from siked.errors import UnknownNameError
from siked.registry import Registry
from siked.styles import (
    ALPACA_PREAMBLE,
    AUTHORS,
    DEFAULT_STYLE,
    SIKED,
    PromptStyle,
    all_styles,
    get_style,
    l2m_answer_match,
    l2m_question_match,
)
from siked.text import check_tag_name, collapse_whitespace, format_tag, parse_tag, tag_prefix

#: A validity check: ``None`` when the rationale passes, else the reason it fails.
Validator = Callable[[str], "str | None"]
#: A custom answer extractor ``(text, gold, sandbox) -> verify.Verdict``.
Extractor = Callable[[str, Fraction, "verify.SandboxLike | None"], "verify.Verdict"]

#: Stop strings shared by every strategy: the model must not start the next example (the same
#: line starts where :func:`verify.truncate` cuts).
COMMON_STOP: tuple[str, ...] = tuple(verify.stop_sequences())


#: The strategy of a response without the tag of a (run) strategy; never a registered name.
NO_STRATEGY = "none"


class UnknownStrategyError(UnknownNameError):
    """A strategy name that is not registered."""


@dataclass(frozen=True)
class Exemplar:
    """One worked example: a question, its exact answer and the rationale in stored format."""

    question: str
    answer: Fraction
    rationale: str


@dataclass(frozen=True)
class Form:
    """A strategy's teacher instruction and exemplars in one prompt style."""

    instruction: str
    exemplars: tuple[Exemplar, ...]


@dataclass(frozen=True)
class Strategy:
    """A reasoning strategy. Frozen: register a new instance rather than mutating one.

    The registry is the one source of what a strategy is: the student's instructions
    (:mod:`siked.chat`) name it by ``label``, the verifier reads its answer by ``marker`` or
    runs it (``program``) through :attr:`answer_format`, the teacher prompts it with
    ``instruction`` and ``exemplars``.
    """

    name: str
    description: str  # one line: what the strategy does (the teacher's free-choice prompt)
    instruction: str  # the teacher's instruction, placed before the exemplars
    exemplars: tuple[Exemplar, ...]
    validators: tuple[Validator, ...] = ()
    stop: tuple[str, ...] = (*COMMON_STOP, "\n\n\n")
    #: rationales are programs: fenced in prompts, run in the sandbox when checked
    program: bool = False
    language: str = "python"  # code-fence language of program strategies
    #: custom extraction, replacing ``verify.check`` (e.g. solving equations)
    extractor: Extractor | None = field(default=None, compare=False)
    #: how the student's instructions name the strategy after its tag (default: description)
    label: str | None = None
    #: the final-answer marker of a text strategy (programs store ``answer`` instead)
    marker: str = verify.FINAL_ANSWER_MARKER
    #: instruction and exemplars in other prompt styles (:mod:`siked.styles`) by style name;
    #: ``instruction`` and ``exemplars`` above are the default style's (and any style's not here)
    forms: dict[str, Form] = field(default_factory=dict, compare=False)

    @property
    def tag(self) -> str:
        """``[name]``, the prefix of a tagged response."""
        return format_tag(self.name)

    @property
    def student_label(self) -> str:
        """``[cot] chain of thought``: the strategy as the student's instructions name it."""
        return f"{self.tag} {self.label or self.description}"

    @property
    def answer_format(self) -> verify.AnswerFormat:
        """How a rationale of this strategy states its answer (what :mod:`siked.verify` reads)."""
        return verify.AnswerFormat(self.name, self.marker, self.program)

    # -- prompts -------------------------------------------------------------------------------

    def form(self, style: str = DEFAULT_STYLE) -> Form:
        """The instruction and exemplars shown to the teacher in prompt style ``style``."""
        return self.forms.get(style) or Form(self.instruction, self.exemplars)

    def render(self, rationale: str, style: str = DEFAULT_STYLE) -> str:
        """A stored rationale as it appears in prompts (programs inside a code fence, in the
        styles that fence them)."""
        if self.program and get_style(style).fence_programs:
            return f"```{self.language}\n{rationale.strip()}\n```"
        return rationale.strip()

    def _prompt_frame(self, chat: bool, style: str) -> tuple[list[dict[str, str]], str, str]:
        """What surrounds the question in a teacher prompt: the earlier chat turns (none in
        text), the text before the question and the text after it."""
        form = self.form(style)
        if get_style(style).layout == "alpaca":
            shots = [(ex.question, self.render(ex.rationale, style)) for ex in form.exemplars]
            return alpaca_frame(form.instruction, shots)
        if chat:
            turns: list[dict[str, str]] = []
            for i, ex in enumerate(form.exemplars):
                head = f"{form.instruction}\n\n" if i == 0 else ""
                turns.append({"role": "user", "content": f"{head}Question: {ex.question}"})
                turns.append({"role": "assistant", "content": self.render(ex.rationale, style)})
            head = "" if form.exemplars else f"{form.instruction}\n\n"
            return turns, f"{head}Question: ", ""
        sep = "\n" if self.program else " "
        blocks = [form.instruction] + [
            f"Question: {ex.question}\nAnswer:{sep}{self.render(ex.rationale, style)}"
            for ex in form.exemplars
        ]
        opener = f"\n```{self.language}\n" if self.program else ""
        return [], "\n\n".join(blocks) + "\n\nQuestion: ", f"\nAnswer:{opener}"

    def teacher_prompt(
        self, question: str, chat: bool = False, style: str = DEFAULT_STYLE
    ) -> str | list[dict[str, str]]:
        """The few-shot teacher prompt for ``question`` in prompt style ``style``.

        ``siked`` style, ``chat=False``: one text, the instruction then ``Question: ...\\nAnswer:
        ...`` blocks, ending with ``Answer:`` (for programs: an opened code fence) for the model
        to continue. ``chat=True``: user/assistant turns; the instruction opens the first user
        turn (some chat templates reject a system role). ``authors`` style: the text of
        :func:`alpaca_frame`, ending with ``Response:``; with ``chat=True`` that text is the one
        user turn. :meth:`question_of` is the inverse.
        """
        turns, before, after = self._prompt_frame(chat, style)
        text = f"{before}{question.strip()}{after}"
        return [*turns, {"role": "user", "content": text}] if chat else text

    def question_of(
        self, prompt: str | list[dict[str, str]], style: str = DEFAULT_STYLE
    ) -> str | None:
        """The question of a teacher prompt of this strategy in ``style``, or None when
        ``prompt`` is not one (the inverse of :meth:`teacher_prompt`, text or chat).

        >>> cot = get_strategy("cot")
        >>> cot.question_of(cot.teacher_prompt("How many?")), cot.question_of("How many?")
        ('How many?', None)
        >>> get_strategy("pot").question_of(cot.teacher_prompt("How many?", chat=True)) is None
        True
        >>> cot.question_of(cot.teacher_prompt("How many?", style="authors"), "authors")
        'How many?'
        """
        chat = not isinstance(prompt, str)
        turns, before, after = self._prompt_frame(chat, style)
        if isinstance(prompt, str):
            text = prompt
        elif len(prompt) == len(turns) + 1 and list(prompt[:-1]) == turns:
            if prompt[-1].get("role") != "user":
                return None
            text = prompt[-1].get("content", "")
        else:
            return None
        if len(text) < len(before) + len(after) or not text.startswith(before):
            return None
        if not text.endswith(after):
            return None
        return text[len(before) : len(text) - len(after)]

    def stop_strings(self, chat: bool = False, style: str = DEFAULT_STYLE) -> list[str]:
        """Stop strings for generation. A text prompt for a program opened the code fence (in
        the styles that fence programs), so the closing fence ends the program; in chat the
        model writes both fences itself."""
        fenced = self.program and not chat and get_style(style).fence_programs
        extra = ["```"] if fenced else []
        return list(dict.fromkeys([*self.stop, *extra]))

    # -- outputs -------------------------------------------------------------------------------

    def clean(self, text: str) -> str:
        """Raw model output -> stored rationale: cut where the model starts a new example
        (:func:`verify.truncate`), take the code out of a fence for programs, strip whitespace.

        >>> get_strategy("pot").clean("```python\\nanswer = 1\\n```\\nDone.")
        'answer = 1'
        >>> get_strategy("cot").clean(" 2 + 2 = 4.\\nThe answer is 4.\\nQuestion: next")
        '2 + 2 = 4.\\nThe answer is 4.'
        """
        if self.program:
            return verify.extract_program(text).strip()
        return verify.truncate(text).strip()

    def validate(self, text: str) -> str | None:
        """``None`` if ``text`` (a stored rationale) has this strategy's format, else the reason.

        >>> get_strategy("cot").validate("3 + 4 = 7.")
        "missing the final answer line ('The answer is N.' or 'Final Answer: N')"
        >>> get_strategy("pot").validate("x = 3 + 4") is not None
        True
        """
        if not text.strip():
            return "empty rationale"
        for check in self.validators:
            reason = check(text)
            if reason is not None:
                return reason
        return None

    def extract(
        self, text: str, gold: Fraction, sandbox: verify.SandboxLike | None = None
    ) -> verify.Verdict:
        """The answer of ``text`` and whether it equals ``gold`` (programs run in ``sandbox``)."""
        if self.extractor is not None:
            return self.extractor(text, gold, sandbox)
        return verify.check(text, gold, self.answer_format, sandbox=sandbox)

    def extract_many(
        self, items: Sequence[tuple[str, Fraction]], sandbox: verify.SandboxLike | None = None
    ) -> list[verify.Verdict]:
        """:meth:`extract` for many ``(text, gold)`` pairs; programs run in parallel
        (:func:`verify.check_many` hands them to ``sandbox.run_many`` together)."""
        if self.extractor is not None:
            return [self.extractor(text, gold, sandbox) for text, gold in items]
        fmt = self.answer_format
        return verify.check_many([(text, gold, fmt) for text, gold in items], sandbox)


# ---------------------------------------------------------------------------------------------
# validity checks (pure; each returns None or the reason)


def _or_forms(forms: Iterable[str]) -> str:
    """``a or b``: the distinct forms of the registered styles (for messages)."""
    return " or ".join(dict.fromkeys(forms))


def _final_lines() -> str:
    return _or_forms(f"'{s.final_line('N')}'" for s in all_styles())


def _l2m_forms() -> str:
    return _or_forms(
        f"'{s.l2m_question.format(k=1, text='...?')}' then '{s.l2m_answer.format(k=1, text='...')}'"
        for s in all_styles()
    )


def has_marker(text: str) -> str | None:
    """The rationale states its final answer with a marker line (``The answer is N.``, or
    ``Final Answer: N`` in the authors' style: :data:`verify.FINAL_ANSWER_MARKERS`).

    >>> has_marker("So 3 apples.\\nThe answer is 3.") is None
    True
    >>> has_marker("3+4=<<3+4=7>>7\\nFinal Answer: 7") is None
    True
    """
    lower = text.lower()
    if not any(m.lower() in lower for m in verify.FINAL_ANSWER_MARKERS):
        return f"missing the final answer line ({_final_lines()})"
    return None


def l2m_pairs(text: str) -> list[tuple[str, str]]:
    """The ``(sub-question, answer)`` pairs of an L2M rationale, in order.

    A pair is a sub-question line (``Qk: ...``, or ``Sub-question k: ...`` in the authors'
    style) followed by its answer line (``Ak: ...`` / ``Answer to Sub-question k: ...``) with
    the same k; answer lines may continue on following lines (until the next sub-question or
    answer line, or the marker line).

    >>> l2m_pairs("Q1: How many pens?\\nA1: 2 + 3 = 5 pens.\\nQ2: Cost?\\nA2: 5 * 2 = 10.\\nThe answer is 10.")
    [('How many pens?', '2 + 3 = 5 pens.'), ('Cost?', '5 * 2 = 10.')]
    >>> l2m_pairs("Sub-question 1: How many?\\nAnswer to Sub-question 1: 2+3=<<2+3=5>>5\\nFinal Answer: 5")
    [('How many?', '2+3=<<2+3=5>>5')]
    """
    pairs: list[tuple[str, str]] = []
    question: tuple[str, str] | None = None  # (k, text) awaiting its answer
    answer_open = False
    for line in text.splitlines():
        if m := l2m_question_match(line):
            question, answer_open = (m.group(1), m.group(2).strip()), False
        elif (m := l2m_answer_match(line)) and question is not None and m.group(1) == question[0]:
            pairs.append((question[1], m.group(2).strip()))
            question, answer_open = None, True
        elif answer_open and line.strip() and has_marker(line) is not None:
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {line.strip()}".strip())
        else:
            answer_open = False
    return pairs


def has_subquestions(text: str) -> str | None:
    """An L2M rationale: at least one ``Qk: ...?`` line answered by a non-empty ``Ak:`` line,
    and no sub-question left without an answer.

    >>> has_subquestions("Q1: How many?\\nA1: 3.") is None
    True
    >>> has_subquestions("First 3 + 4 = 7.")
    "no sub-question/answer pairs ('Q1: ...?' then 'A1: ...' or 'Sub-question 1: ...?' then 'Answer to Sub-question 1: ...')"
    """
    pairs = l2m_pairs(text)
    if not any("?" in q and a for q, a in pairs):
        return f"no sub-question/answer pairs ({_l2m_forms()})"
    n_questions = sum(1 for line in text.splitlines() if l2m_question_match(line))
    if n_questions > len(pairs):
        return f"{n_questions - len(pairs)} sub-question(s) without an answer line"
    if any(not a for _, a in pairs):
        return "an empty sub-answer"
    return None


def parses_as_python(text: str) -> str | None:
    """The rationale is Python source.

    >>> parses_as_python("answer = (3 + 4") is not None
    True
    """
    try:
        ast.parse(text)
    except (SyntaxError, ValueError) as e:
        return f"not valid Python: {type(e).__name__}: {e}"
    return None


def assigns_answer(text: str) -> str | None:
    """The program assigns a variable named ``answer`` (``answer = ...``, ``answer += ...``,
    ``answer: float = ...``, or a ``for``/``with`` target).

    >>> assigns_answer("x = 2\\nanswer = x * 3") is None
    True
    >>> assigns_answer("print(6)")
    "the program never assigns 'answer'"
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return "not valid Python"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "answer" and isinstance(node.ctx, ast.Store):
            return None
    return "the program never assigns 'answer'"


# ---------------------------------------------------------------------------------------------
# the registry

_REGISTRY: Registry[Strategy] = Registry("strategy", UnknownStrategyError)


def register(strategy: Strategy, replace: bool = False) -> Strategy:
    """Add ``strategy`` to the registry (``replace=True`` overrides one of the same name).

    Everything else reads the registry: the student's instructions (:mod:`siked.chat`), the
    verifier (through :attr:`Strategy.answer_format`), teach, mix, sample and evaluate.
    """
    if check_tag_name(strategy.name) == NO_STRATEGY:
        raise ValueError(f"{NO_STRATEGY!r} is reserved for responses without a strategy tag")
    return _REGISTRY.register(strategy.name, strategy, replace=replace)


def unregister(name: str) -> None:
    """Remove a strategy (tests and plug-ins that add a temporary one)."""
    _REGISTRY.unregister(name)


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; :class:`UnknownStrategyError` names the choices."""
    return _REGISTRY.get(name)


def strategy_names() -> list[str]:
    """Registered strategy names, in registration order."""
    return _REGISTRY.names()


def get_strategies(names: Sequence[str] | str | None = None) -> list[Strategy]:
    """Strategies by name (a list or ``"cot,pot"``); all registered ones for ``None``."""
    if names is None:
        return _REGISTRY.values()
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    if not names:
        raise UnknownStrategyError("no strategy given")
    return [get_strategy(n) for n in dict.fromkeys(names)]


class TeacherPrompt(NamedTuple):
    """What :func:`parse_teacher_prompt` reads back from a teacher prompt."""

    strategy: Strategy
    question: str
    style: str  # the prompt style (:mod:`siked.styles`)


def parse_teacher_prompt(prompt: str | list[dict[str, str]]) -> TeacherPrompt | None:
    """``(strategy, question, style)`` of a teacher prompt of a registered strategy in a
    registered style, else None.

    >>> s, q, style = parse_teacher_prompt(get_strategy("l2m").teacher_prompt("Why?", chat=True))
    >>> s.name, q, style
    ('l2m', 'Why?', 'siked')
    """
    for style in all_styles():
        for strategy in _REGISTRY.values():
            question = strategy.question_of(prompt, style.name)
            if question is not None:
                return TeacherPrompt(strategy, question, style.name)
    return None


def alpaca_frame(instruction: str, shots: Sequence[tuple[str, str]]) -> tuple[list[Any], str, str]:
    """The authors' layout (:data:`siked.styles.ALPACA_PREAMBLE`, ``Instruction:``, then
    ``Input:`` / ``Response:`` blocks) around a question: ``([], before, after)`` as
    :meth:`Strategy.teacher_prompt` uses it. The authors' prompt files are laid out so
    (``dataset_creation/PROMPTS/COT-prompt.txt``); the model's reply ends where it starts the
    next ``Input:`` (:func:`verify.truncate`, and a stop string).

    >>> _, before, after = alpaca_frame("Add.", [("1+1?", "2")])
    >>> print(before + "2+2?" + after)  # doctest: +ELLIPSIS
    Below is an instruction ... completes the request.
    <BLANKLINE>
    Instruction:
    Add.
    <BLANKLINE>
    Input:
    1+1?
    <BLANKLINE>
    Response:
    2
    <BLANKLINE>
    Input:
    2+2?
    <BLANKLINE>
    Response:
    <BLANKLINE>
    """
    blocks = [ALPACA_PREAMBLE, f"Instruction:\n{instruction}"]
    blocks += [f"Input:\n{q}\n\nResponse:\n{a}" for q, a in shots]
    return [], "\n\n".join(blocks) + "\n\nInput:\n", "\n\nResponse:\n"


def exemplar_questions(
    style: str = DEFAULT_STYLE, names: Sequence[str] | str | None = None
) -> set[str]:
    """The questions the teacher sees as exemplars in ``style`` (whitespace collapsed), over
    the strategies ``names`` (default: all): a run leaves them out of its training and
    validation questions (the authors' style shows eight GSM8K training problems).

    >>> len(exemplar_questions("authors"))
    8
    """
    return {
        collapse_whitespace(ex.question)
        for s in get_strategies(names)
        for ex in s.form(style).exemplars
    }


def format_tagged(name: str, text: str) -> str:
    """A tagged response ``[name]: text`` (the student's output format).

    >>> format_tagged("cot", "2 + 2 = 4.\\nThe answer is 4.")
    '[cot]: 2 + 2 = 4.\\nThe answer is 4.'
    """
    return f"{tag_prefix(name)}{text}"


def free_choice_prompt(
    question: str, strategies: Sequence[Strategy], chat: bool = False, style: str = DEFAULT_STYLE
) -> str | list[dict[str, str]]:
    """A few-shot prompt that lets the *teacher* choose the strategy (``teacher.free_choice_n``).

    The instruction lists every strategy with its own instruction and asks for the chosen tag
    first (``[cot]: ...``). Exemplar ``i`` is shown in strategy ``i mod len(strategies)``, so
    each strategy is demonstrated about equally often, in the run's strategy order. The format
    of the prompt mirrors :meth:`Strategy.teacher_prompt` (``chat`` or plain text, ``style``).
    """
    question = question.strip()
    listed = "\n".join(f"{s.tag} {s.description}. {s.form(style).instruction}" for s in strategies)
    instruction = (
        "Solve each math word problem with the strategy that suits it best. The strategies "
        f"are:\n{listed}\nStart every answer with the tag of the strategy you chose, for "
        'example "[cot]: ", then solve the problem with that strategy.'
    )
    shots: list[tuple[str, str]] = []
    n = min((len(s.form(style).exemplars) for s in strategies), default=0)
    for i in range(n):
        s = strategies[i % len(strategies)]
        ex = s.form(style).exemplars[i]
        shots.append((ex.question, format_tagged(s.name, s.render(ex.rationale, style))))
    if get_style(style).layout == "alpaca":
        _, before, after = alpaca_frame(instruction, shots)
        text = f"{before}{question}{after}"
        return [{"role": "user", "content": text}] if chat else text
    if chat:
        messages: list[dict[str, str]] = []
        for i, (q, a) in enumerate(shots):
            head = f"{instruction}\n\n" if i == 0 else ""
            messages.append({"role": "user", "content": f"{head}Question: {q}"})
            messages.append({"role": "assistant", "content": a})
        head = "" if shots else f"{instruction}\n\n"
        messages.append({"role": "user", "content": f"{head}Question: {question}"})
        return messages
    blocks = [instruction, *[f"Question: {q}\nAnswer: {a}" for q, a in shots]]
    blocks.append(f"Question: {question}\nAnswer:")
    return "\n\n".join(blocks)


def parse_tagged(response: str) -> tuple[str | None, str]:
    """Split a response into ``(strategy, text)``; the strategy is ``None`` when the response
    does not start with the tag of a registered strategy (the text is then the whole response).

    >>> parse_tagged("[pot]: answer = 4")
    ('pot', 'answer = 4')
    >>> parse_tagged(" [COT]:\\n2 + 2 = 4.")
    ('cot', '2 + 2 = 4.')
    >>> parse_tagged("[foo]: 4")
    (None, '[foo]: 4')
    """
    name, rest = parse_tag(response)
    if name is not None and name in _REGISTRY:
        return name, rest
    return None, response


# ---------------------------------------------------------------------------------------------
# the built-in strategies. Eight grade-school problems written for siked, each solved in all
# three formats (tests/test_strategies.py checks every exemplar against its answer).


def _cot(*steps: str, answer: str) -> str:
    return "\n".join([*steps, SIKED.final_line(answer)])


def _l2m(*pairs: tuple[str, str], answer: str) -> str:
    return "\n".join([*SIKED.l2m_lines(pairs), SIKED.final_line(answer)])


def _pot(*lines: str) -> str:
    return "\n".join(lines)


_PROBLEMS: list[dict[str, Any]] = [
    {
        "question": "A baker makes 36 muffins. She sells 3/4 of them in the morning and gives 4 "
        "of the rest to a neighbor. How many muffins does she have left?",
        "answer": "5",
        "cot": _cot(
            "In the morning she sells 36 * 3/4 = 27 muffins.",
            "That leaves 36 - 27 = 9 muffins.",
            "After giving 4 to her neighbor, she has 9 - 4 = 5 muffins.",
            answer="5",
        ),
        "l2m": _l2m(
            ("How many muffins does she sell in the morning?", "She sells 36 * 3/4 = 27 muffins."),
            ("How many muffins are left after the morning?", "36 - 27 = 9 muffins are left."),
            ("How many muffins does she have after giving 4 away?", "She has 9 - 4 = 5 muffins."),
            answer="5",
        ),
        "pot": _pot(
            "muffins_baked = 36",
            "muffins_sold = muffins_baked * 3 / 4",
            "muffins_left = muffins_baked - muffins_sold",
            "answer = muffins_left - 4",
        ),
    },
    {
        "question": "Tom buys 3 notebooks for $2.50 each and a pen for $1.75. He pays with a $10 "
        "bill. How much change does he get?",
        "answer": "0.75",
        "cot": _cot(
            "The notebooks cost 3 * $2.50 = $7.50.",
            "With the pen he spends $7.50 + $1.75 = $9.25.",
            "His change is $10 - $9.25 = $0.75.",
            answer="0.75",
        ),
        "l2m": _l2m(
            ("How much do the notebooks cost?", "3 * $2.50 = $7.50."),
            ("How much does Tom spend in total?", "$7.50 + $1.75 = $9.25."),
            ("How much change does he get?", "$10 - $9.25 = $0.75."),
            answer="0.75",
        ),
        "pot": _pot(
            "notebook_price = 2.50",
            "pen_price = 1.75",
            "total_cost = 3 * notebook_price + pen_price",
            "answer = 10 - total_cost",
        ),
    },
    {
        "question": "A garden has 4 rows of tomato plants with 12 plants in each row. Each plant "
        "grows 5 tomatoes. Birds eat 30 of the tomatoes. How many tomatoes are left?",
        "answer": "210",
        "cot": _cot(
            "There are 4 * 12 = 48 plants.",
            "They grow 48 * 5 = 240 tomatoes.",
            "After the birds eat 30, there are 240 - 30 = 210 tomatoes left.",
            answer="210",
        ),
        "l2m": _l2m(
            ("How many plants are in the garden?", "4 * 12 = 48 plants."),
            ("How many tomatoes do the plants grow?", "48 * 5 = 240 tomatoes."),
            ("How many tomatoes are left after the birds eat 30?", "240 - 30 = 210 tomatoes."),
            answer="210",
        ),
        "pot": _pot(
            "plants = 4 * 12",
            "tomatoes_grown = plants * 5",
            "answer = tomatoes_grown - 30",
        ),
    },
    {
        "question": "Maria runs 2 miles on each weekday and 5 miles on each day of the weekend. "
        "How many miles does she run in 3 weeks?",
        "answer": "60",
        "cot": _cot(
            "On the 5 weekdays she runs 5 * 2 = 10 miles.",
            "On the 2 weekend days she runs 2 * 5 = 10 miles.",
            "So she runs 10 + 10 = 20 miles a week, and 3 * 20 = 60 miles in 3 weeks.",
            answer="60",
        ),
        "l2m": _l2m(
            ("How many miles does she run on weekdays each week?", "5 * 2 = 10 miles."),
            ("How many miles does she run on the weekend each week?", "2 * 5 = 10 miles."),
            ("How many miles does she run in one week?", "10 + 10 = 20 miles."),
            ("How many miles does she run in 3 weeks?", "3 * 20 = 60 miles."),
            answer="60",
        ),
        "pot": _pot(
            "weekday_miles = 5 * 2",
            "weekend_miles = 2 * 5",
            "miles_per_week = weekday_miles + weekend_miles",
            "answer = 3 * miles_per_week",
        ),
    },
    {
        "question": "A school trip has 145 students and 10 teachers. Each bus holds 40 people. "
        "How many buses are needed to take everyone?",
        "answer": "4",
        "cot": _cot(
            "There are 145 + 10 = 155 people.",
            "155 / 40 = 3.875, so 3 buses are not enough and they need 4 buses.",
            answer="4",
        ),
        "l2m": _l2m(
            ("How many people go on the trip?", "145 + 10 = 155 people."),
            ("How many full buses would 155 people fill?", "155 / 40 = 3.875 buses."),
            ("How many buses are needed?", "3 buses are not enough, so they need 4 buses."),
            answer="4",
        ),
        "pot": _pot(
            "import math",
            "",
            "people = 145 + 10",
            "bus_capacity = 40",
            "answer = math.ceil(people / bus_capacity)",
        ),
    },
    {
        "question": "A jacket costs $80. It is on sale for 25% off, and a 10% sales tax is added "
        "to the sale price. What is the final price of the jacket?",
        "answer": "66",
        "cot": _cot(
            "The discount is 25% of $80, which is 80 * 25 / 100 = $20.",
            "The sale price is $80 - $20 = $60.",
            "The tax is 10% of $60, which is 60 * 10 / 100 = $6, so the final price is "
            "$60 + $6 = $66.",
            answer="66",
        ),
        "l2m": _l2m(
            ("How much is the discount?", "25% of $80 is 80 * 25 / 100 = $20."),
            ("What is the sale price?", "$80 - $20 = $60."),
            ("How much is the tax?", "10% of $60 is 60 * 10 / 100 = $6."),
            ("What is the final price?", "$60 + $6 = $66."),
            answer="66",
        ),
        "pot": _pot(
            "price = 80",
            "sale_price = price * (1 - 25 / 100)",
            "tax = sale_price * 10 / 100",
            "answer = sale_price + tax",
        ),
    },
    {
        "question": "Liam is 4 years older than his sister Emma. In 6 years, the sum of their "
        "ages will be 40. How old is Emma now?",
        "answer": "12",
        "cot": _cot(
            "In 6 years each of them will be 6 years older, so the sum of their ages now is "
            "40 - 2 * 6 = 28.",
            "Without Liam's extra 4 years, the sum would be 28 - 4 = 24, which is twice "
            "Emma's age.",
            "So Emma is 24 / 2 = 12 years old.",
            answer="12",
        ),
        "l2m": _l2m(
            ("What is the sum of their ages now?", "Each is 6 years younger now: 40 - 2 * 6 = 28."),
            ("What would the sum be if Liam were as old as Emma?", "28 - 4 = 24."),
            ("How old is Emma now?", "Emma is 24 / 2 = 12 years old."),
            answer="12",
        ),
        "pot": _pot(
            "age_difference = 4",
            "sum_in_6_years = 40",
            "sum_now = sum_in_6_years - 2 * 6",
            "answer = (sum_now - age_difference) / 2",
        ),
    },
    {
        "question": "A water tank holds 1,200 liters and is 1/3 full. A pump adds 50 liters of "
        "water per minute. How many minutes will it take to fill the tank?",
        "answer": "16",
        "cot": _cot(
            "The tank now holds 1200 / 3 = 400 liters.",
            "It still needs 1200 - 400 = 800 liters.",
            "At 50 liters per minute that takes 800 / 50 = 16 minutes.",
            answer="16",
        ),
        "l2m": _l2m(
            ("How much water is in the tank now?", "1200 / 3 = 400 liters."),
            ("How much more water does the tank need?", "1200 - 400 = 800 liters."),
            ("How many minutes does the pump need for 800 liters?", "800 / 50 = 16 minutes."),
            answer="16",
        ),
        "pot": _pot(
            "capacity = 1200",
            "water_now = capacity / 3",
            "water_needed = capacity - water_now",
            "answer = water_needed / 50",
        ),
    },
]


def _exemplars(kind: str, problems: Sequence[dict[str, Any]] = _PROBLEMS) -> tuple[Exemplar, ...]:
    return tuple(Exemplar(p["question"], Fraction(p["answer"]), p[kind].strip()) for p in problems)


def _authors_forms(kind: str, style: PromptStyle = AUTHORS) -> dict[str, Form]:
    """The authors' style of a built-in strategy (:mod:`siked.authors_prompts`)."""
    exemplars = _exemplars(kind, authors_prompts.PROBLEMS)
    return {style.name: Form(authors_prompts.INSTRUCTIONS[kind], exemplars)}


_MARKER_HINT = f'"{verify.FINAL_ANSWER_MARKER} N." where N is only the final number'

COT = register(
    Strategy(
        name="cot",
        description="reason step by step in short sentences that show each calculation",
        instruction=(
            "Solve each math word problem step by step. Write short sentences that show every "
            f"calculation, then finish with the line {_MARKER_HINT}."
        ),
        exemplars=_exemplars("cot"),
        forms=_authors_forms("cot"),
        validators=(has_marker,),
        label="chain of thought",
    )
)

L2M = register(
    Strategy(
        name="l2m",
        description="break the problem into simpler sub-questions and answer them one by one",
        instruction=(
            "Solve each math word problem by breaking it into simpler sub-questions and answering "
            'them in order. Write each sub-question on its own line as "Q1: ...?" and its answer '
            'on the next line as "A1: ...", numbering them Q1/A1, Q2/A2 and so on; the last '
            f"sub-question is the original question. Finish with the line {_MARKER_HINT}."
        ),
        exemplars=_exemplars("l2m"),
        forms=_authors_forms("l2m"),
        validators=(has_subquestions, has_marker),
        label="least-to-most sub-questions",
    )
)

POT = register(
    Strategy(
        name="pot",
        description="write a Python program that computes the result and stores it in `answer`",
        instruction=(
            "Solve each math word problem by writing a short Python program. Use descriptive "
            "variable names and one calculation per line, and store the final result in a "
            "variable named `answer`. Do not print anything or read input."
        ),
        exemplars=_exemplars("pot"),
        forms=_authors_forms("pot"),
        validators=(parses_as_python, assigns_answer),
        stop=COMMON_STOP,  # blank lines are normal inside programs
        program=True,
        label="a Python program that stores the result in `answer`",
    )
)
