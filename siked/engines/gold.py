"""The offline teacher engine: GSM8K's own human solutions, in every strategy's format.

:class:`GoldEngine` answers the teacher prompts of :mod:`siked.strategies` like any engine: it
reads the strategy and the question back from each prompt
(:func:`siked.strategies.parse_teacher_prompt`), finds the question in GSM8K, and returns the
rationale :mod:`siked.gsm8k_rationales` writes for it in the prompt's style (the student then
learns the format the prompt shows), so ``siked teach --engine gold`` runs the
very same code path (and the same filter) as an LLM teacher.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from siked.engines.base import (
    Completion,
    Engine,
    EngineContext,
    GenerateRequest,
    Prompt,
)
from siked.styles import DEFAULT_STYLE
from siked.text import collapse_whitespace

if TYPE_CHECKING:
    from siked.config import EngineConfig
    from siked.data import GSM8KSolutions

log = logging.getLogger(__name__)

#: the model name the gold teacher reports
GOLD_MODEL = "gsm8k-human"


# ---------------------------------------------------------------------------------------------
# the engine


class GoldEngine(Engine):
    """Teacher answering from GSM8K's human solutions (train and test splits).

    ``solve(problem_id, strategy)`` gives one rationale directly; ``generate`` answers the
    teacher prompts of :mod:`siked.strategies` (text or chat), returning the same rationale for
    every sample. A prompt it cannot answer (not a GSM8K question, or a strategy it has no
    builder for) gets an empty completion with ``finish_reason`` ``"no_solution"``.
    """

    name = "gold"

    def __init__(
        self,
        cfg: EngineConfig | None = None,
        model: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        splits: Sequence[str] = ("train", "test"),
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model or (cfg.model if cfg is not None else None) or GOLD_MODEL
        self.data_dir = data_dir
        self.splits = tuple(splits)
        self._solutions: dict[str, dict[str, GSM8KSolutions]] = {}
        self._by_question: dict[str, tuple[str, str]] | None = None

    @classmethod
    def context_kwargs(cls, context: EngineContext) -> dict[str, Any]:
        """The gold teacher reads GSM8K from the stage's data directory."""
        return {"data_dir": context.data_dir}

    # -- data ----------------------------------------------------------------------------------

    def _split_solutions(self, split: str) -> dict[str, GSM8KSolutions]:
        if split not in self._solutions:
            from siked.data import load_gsm8k_solutions

            self._solutions[split] = dict(load_gsm8k_solutions(split, data_dir=self.data_dir))
        return self._solutions[split]

    def _index(self) -> dict[str, tuple[str, str]]:
        if self._by_question is None:
            from siked.data import load_problems

            index: dict[str, tuple[str, str]] = {}
            for split in self.splits:
                for p in load_problems("gsm8k", split, data_dir=self.data_dir):
                    index.setdefault(collapse_whitespace(p.question), (p.id, split))
            self._by_question = index
        return self._by_question

    def find(self, question: str) -> tuple[str, str] | None:
        """``(problem_id, split)`` of a GSM8K question (whitespace-insensitive), or None."""
        return self._index().get(collapse_whitespace(question))

    def solve(
        self,
        problem_id: str,
        strategy: str,
        split: str | None = None,
        question: str = "",
        style: str = DEFAULT_STYLE,
    ) -> str | None:
        """The gold rationale of ``problem_id`` in ``strategy``'s format, in the prompt style
        ``style`` (:mod:`siked.styles`), or None.

        ``split`` defaults to the one in the id (``gsm8k-train-00012``).
        """
        from siked.gsm8k_rationales import gold_rationale

        if split is None:
            parts = problem_id.split("-")
            split = parts[1] if len(parts) >= 3 else "train"
        sol = self._split_solutions(split).get(problem_id)
        if sol is None:
            return None
        return gold_rationale(sol, strategy, question, style)

    # -- the engine interface --------------------------------------------------------------------

    def _answer(self, prompt: Prompt) -> str | None:
        from siked.strategies import parse_teacher_prompt

        parsed = parse_teacher_prompt(prompt)
        if parsed is None:
            return None
        found = self.find(parsed.question)
        if found is None:
            return None
        return self.solve(found[0], parsed.strategy.name, found[1], parsed.question, parsed.style)

    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        """``n`` identical gold completions per prompt (sampling settings do not apply)."""
        out: list[list[Completion]] = []
        for prompt in prompts:
            text = self._answer(prompt)
            reason = "stop" if text is not None else "no_solution"
            out.append([Completion(text or "", reason, None, None) for _ in range(request.n)])
        return out
