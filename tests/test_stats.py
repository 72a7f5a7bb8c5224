"""Confidence intervals of accuracies."""

from __future__ import annotations

import math

import pytest

from siked.stats import ci_halfwidth, wilson_interval, z_for_confidence


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (5, 20, 0.1119, 0.4687),  # the contract's example: ci95 [0.11, 0.47]
        (50, 100, 0.4038, 0.5962),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (1, 1, 0.2065, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=5e-5)
    assert got[1] == pytest.approx(hi, abs=5e-5)


def test_wilson_edges_and_properties() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for n in (1, 7, 50, 1000):
        for k in range(0, n + 1, max(1, n // 7)):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    # symmetric around 1/2; narrower with more data and with a smaller z
    lo, hi = wilson_interval(3, 10)
    lo2, hi2 = wilson_interval(7, 10)
    assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)
    assert ci_halfwidth(wilson_interval(30, 100)) < ci_halfwidth(wilson_interval(3, 10))
    assert ci_halfwidth(wilson_interval(3, 10, z=1.0)) < ci_halfwidth(wilson_interval(3, 10))


@pytest.mark.parametrize(("k", "n", "z"), [(-1, 5, 1.96), (6, 5, 1.96), (1, -1, 1.96), (1, 5, 0.0)])
def test_wilson_rejects_bad_input(k: int, n: int, z: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n, z)


def test_z_for_confidence() -> None:
    assert z_for_confidence(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_for_confidence(0.99) == pytest.approx(2.575829, abs=1e-6)
    with pytest.raises(ValueError):
        z_for_confidence(1.0)
    assert math.isclose(ci_halfwidth([0.2, 0.6]), 0.2)
