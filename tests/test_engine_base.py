"""The primitives every engine shares (siked.engines.base): one owner each."""

from __future__ import annotations

import pytest

from siked.engines.base import (
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
