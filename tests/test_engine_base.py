"""The primitives every engine shares (siked.engines.base): one owner each."""

from __future__ import annotations

import pytest

from siked.engines.base import (
    Completion,
    Engine,
    EngineError,
    GenerateRequest,
    Prompt,
    derive_seed,
    merge_eos_ids,
    prepare_generate,
    seed_or_fresh,
    token_completion,
)


def decode(ids: list[int]) -> str:
    return "".join(chr(ord("a") + i) for i in ids)


def test_a_completion_ends_at_the_first_end_token_or_stop_string() -> None:
    # tokens 0..4 decode to "abcde"; 9 is an end token
    c = token_completion([0, 1, 9, 2], decode, [9], [], prompt_tokens=5)
    assert (c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) == ("ab", "stop", 5, 2)
    c = token_completion([0, 1, 2, 3], decode, [9], ["c"], prompt_tokens=5)
    assert (c.text, c.finish_reason, c.completion_tokens) == ("ab", "stop", 4)
    c = token_completion([0, 1, 2], decode, [9], ["x"], 5, end_reason="abort")
    assert (c.text, c.finish_reason) == ("abc", "abort")
    # a row a stop string ended after its second token
    c = token_completion([0, 1, 2, 3], decode, [9], [], 5, stopped_at=2)
    assert (c.text, c.finish_reason, c.completion_tokens) == ("ab", "stop", 2)


def test_end_tokens_are_merged_once_in_order() -> None:
    assert merge_eos_ids(None, [2, 7], 2, (7, 3)) == [2, 7, 3]


def test_an_unseeded_sample_gets_a_fresh_seed_and_a_seeded_one_keeps_it() -> None:
    assert seed_or_fresh(5) == 5
    fresh = {seed_or_fresh(None) for _ in range(8)}
    assert len(fresh) > 1 and all(0 <= s < 2**31 for s in fresh)


def test_prepare_generate_checks_then_gives_stops_and_seeds() -> None:
    stops, seeds = prepare_generate(["a", "b"], 2, 0.7, 0.9, 8, ["Q:", "", "Q:"], 3)
    assert stops == ["Q:"] and len(seeds) == 2 and seeds[0] != seeds[1]
    assert prepare_generate(["a"], 1, 0.0, 1.0, 8, None, None) == ([], [None])
    with pytest.raises(ValueError, match="top_p"):
        prepare_generate(["a"], 1, 0.0, 0.0, 8, None, None)


class Echo(Engine):
    """Answers each prompt with its text and sample index; ``short`` drops the last row."""

    name = "echo"

    def __init__(self, short: bool = False) -> None:
        super().__init__()
        self.short = short
        self.requests: list[GenerateRequest] = []

    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        self.requests.append(request)
        rows = [[Completion(f"{p}{j}", "stop", 1, 1) for j in range(request.n)] for p in prompts]
        return rows[:-1] if self.short else rows


def test_generate_checks_prepares_once_and_counts() -> None:
    e = Echo()
    rows = e.generate(["a", "b"], n=2, temperature=0.5, stop=["Q:", "", "Q:"], seed=3)
    assert [[c.text for c in r] for r in rows] == [["a0", "a1"], ["b0", "b1"]]
    (req,) = e.requests
    assert req.stops == ("Q:",) and req.samples == 2
    assert req.seeds == (derive_seed(3, "a"), derive_seed(3, "b"))
    assert req.seed(1, 0) == derive_seed(derive_seed(3, "b"), 0)
    assert (e.stats.prompts, e.stats.completions) == (2, 4)
    assert len(e.generate(["a"], n=3)) == 1 and e.requests[-1].samples == 1  # greedy
    with pytest.raises(ValueError, match="n must be"):
        e.generate(["a"], n=0)
    assert len(e.requests) == 2  # a bad call never reaches the engine


def test_generate_refuses_an_engine_answer_of_the_wrong_shape() -> None:
    with pytest.raises(EngineError, match=r"echo: \[1\] completions for 2 prompts x 1"):
        Echo(short=True).generate(["a", "b"])
