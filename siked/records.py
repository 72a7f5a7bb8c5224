"""The one record schema every stage reads and writes (one rationale per JSON line).

Rows are plain dicts on disk so that ``datasets.load_dataset("json", data_files=...)`` loads
them directly; :class:`Record` is the typed view used in code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Source = Literal["teacher", "student"]

#: Structured outcome of checking one rationale. ``ok`` means an answer was obtained (it may
#: still be wrong); the others say why there is no usable answer.
STATUSES = ("ok", "no_answer", "invalid", "timeout", "error", "rejected", "memory")


@dataclass
class Record:
    qid: str
    question: str
    gold: str  # exact gold answer as a string ("72", "-3", "7/2")
    strategy: str  # registered strategy name: "cot", "l2m", "pot", ...
    text: str  # the rationale, without the "[tag]: " prefix
    answer: str | None  # extracted answer (normalised string) or None
    correct: bool
    rule: str  # which extraction rule fired: "marker", "boxed", "last_number", "program", ...
    status: str  # one of STATUSES
    source: Source
    iteration: int  # -1 for teacher rows, else the SIKeD iteration that produced it
    sample: int  # sample index within (qid, strategy) or (qid) for free sampling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        names = {f.name for f in fields(cls)}
        missing = names - d.keys()
        if missing:
            raise ValueError(f"record is missing keys {sorted(missing)}: {d!r:.200}")
        return cls(**{k: d[k] for k in names})
