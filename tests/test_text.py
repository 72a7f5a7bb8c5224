"""Tests of the text primitives: the tag grammar, plain numbers, the one number format."""

from __future__ import annotations

from fractions import Fraction

import pytest

from siked.text import (
    TAG_LINE,
    check_tag_name,
    collapse_whitespace,
    format_number,
    format_tag,
    parse_number,
    parse_plain_number,
    parse_tag,
    tag_prefix,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pot]: answer = 1", ("pot", "answer = 1")),
        ("[cot]:The answer is 2.", ("cot", "The answer is 2.")),
        ("  [l2m]:  \nHow many?", ("l2m", "How many?")),
        ("[my_strategy2]: x", ("my_strategy2", "x")),
        ("[COT]: read in lower case", ("cot", "read in lower case")),
        ("[cot] : a blank before the colon", ("cot", "a blank before the colon")),
        ("[pot]:\n    indented = 1", ("pot", "    indented = 1")),  # one line break only
        ("[foo]: not registered, still a tag", ("foo", "not registered, still a tag")),
        ("text [cot]: in the middle", (None, "text [cot]: in the middle")),
        ("[cot] no colon", (None, "[cot] no colon")),
        ("", (None, "")),
    ],
)
def test_parse_tag(text: str, expected: tuple[str | None, str]) -> None:
    assert parse_tag(text) == expected


def test_format_and_parse_round_trip() -> None:
    for name in ("cot", "l2m", "pot", "my_strategy2"):
        assert format_tag(name) == f"[{name}]"
        assert parse_tag(tag_prefix(name) + "body") == (name, "body")


@pytest.mark.parametrize("name", ["", "Cot", "2cot", "co t", "[cot]", "cot:"])
def test_bad_tag_names(name: str) -> None:
    with pytest.raises(ValueError, match="bad strategy name"):
        check_tag_name(name)


def test_tag_line_is_the_same_grammar() -> None:
    text = "So 2.\n[pot]: x\n  [COT] : y\nnot [cot]: z"
    assert [m.group(1) for m in TAG_LINE.finditer(text)] == ["pot", "COT"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", "12"),
        ("-3", "-3"),
        ("+4", "4"),
        ("1,080", "1080"),
        ("0.46", "23/50"),
        (".5", "1/2"),
        ("5/2", "5/2"),
        ("-(1/3)", "-1/3"),
        (" 7 ", "7"),
    ],
)
def test_parse_plain_number(text: str, expected: str) -> None:
    assert parse_plain_number(text) == Fraction(expected)


@pytest.mark.parametrize(
    "text", ["", "2:3", "5; 3", "Yes", "5 cakes", "$5", "25%", "1,2", "1/2/3", "3/0", "1e3"]
)
def test_parse_plain_number_rejects(text: str) -> None:
    assert parse_plain_number(text) is None


def test_plain_numbers_are_answer_numbers() -> None:
    """What a data file writes, an answer may write too: the strict reader is a subset."""
    for text in ("12", "-3", "1,080", "0.46", "5/2", "-(1/3)"):
        assert parse_number(text) == parse_plain_number(text)


def test_one_number_format_for_gold_and_answer() -> None:
    """A record writes its gold answer and the model's answer the same way."""
    gold = parse_plain_number("7/2")
    answer = parse_number("3.50")
    assert gold is not None and answer is not None
    assert format_number(gold) == format_number(answer) == "3.5"


def test_collapse_whitespace() -> None:
    assert collapse_whitespace(" a\r\n\tb  c ") == "a b c"
    assert collapse_whitespace("") == ""
