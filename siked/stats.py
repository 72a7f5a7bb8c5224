"""Small statistics helpers for accuracies: confidence intervals of proportions, and paired
differences between two students.

Accuracies in siked are proportions of a few hundred questions at most on small machines, so
their uncertainty matters when comparing iterations. The Wilson score interval is used
throughout (``eval.json``'s ``ci95``, the report's error bars, ``siked compare``): unlike the
normal ("Wald") interval it stays inside [0, 1] and behaves well at 0 and n successes.

Two students evaluated on the *same* questions are compared pairwise (``siked compare
--paired``): :func:`paired_difference` gives the difference in accuracy with a 95 % interval
from a bootstrap over questions, and the exact McNemar test on the questions only one of them
solved. Pairing removes the between-question variance, which dominates two separate Wilson
intervals, so it resolves differences the unpaired intervals cannot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``.

    ``z`` is the standard-normal quantile (1.96 for 95 %). With no trials nothing is known:
    ``(0.0, 1.0)``.

    >>> lo, hi = wilson_interval(5, 20)
    >>> round(lo, 4), round(hi, 4)
    (0.1119, 0.4687)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    >>> lo, hi = wilson_interval(0, 10)
    >>> lo, round(hi, 4)
    (0.0, 0.2775)
    >>> lo, hi = wilson_interval(10, 10)
    >>> round(lo, 4), hi
    (0.7225, 1.0)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if z <= 0:
        raise ValueError(f"z must be positive, got {z}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denom
    # clamp away float noise at the boundaries (k = 0 gives lo = 1e-17, k = n gives hi = 1 - 1e-16)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def z_for_confidence(confidence: float) -> float:
    """Two-sided standard-normal quantile for a confidence level (0.95 -> 1.96).

    >>> round(z_for_confidence(0.95), 3)
    1.96
    >>> round(z_for_confidence(0.90), 3)
    1.645
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def ci_halfwidth(interval: tuple[float, float] | list[float]) -> float:
    """Half the width of an interval (for a compact "± x" display).

    >>> ci_halfwidth((0.1, 0.5))
    0.2
    """
    lo, hi = interval
    return (hi - lo) / 2.0


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under "both students are equally good", each question
    only one of them solved is a fair coin, so ``a_only ~ Binomial(a_only + b_only, 1/2)``.

    >>> mcnemar_exact(0, 0)
    1.0
    >>> round(mcnemar_exact(10, 2), 5)  # 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * 79 / 4096
    0.03857
    >>> mcnemar_exact(5, 5)
    1.0
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"counts must be >= 0, got {a_only}, {b_only}")
    m = a_only + b_only
    if m == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_bootstrap_ci(
    a: Sequence[bool],
    b: Sequence[bool],
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``accuracy(a) - accuracy(b)``, resampling questions
    (pairs) with replacement; seeded, so the same inputs give the same interval.

    >>> paired_bootstrap_ci([True] * 5, [False] * 5)
    (1.0, 1.0)
    >>> paired_bootstrap_ci([True, False], [True, False])
    (0.0, 0.0)
    """
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("no paired questions")
    d = np.asarray(a, dtype=np.int8) - np.asarray(b, dtype=np.int8)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class PairedDifference:
    """Student A vs student B on the same ``n`` questions."""

    n: int
    a_correct: int
    b_correct: int
    a_only: int  # questions A solved and B did not
    b_only: int
    diff: float  # accuracy(A) - accuracy(B)
    ci95: tuple[float, float]  # bootstrap over questions
    p_mcnemar: float


def paired_difference(
    a: Sequence[bool], b: Sequence[bool], resamples: int = 10_000, seed: int = 0
) -> PairedDifference:
    """Compare two students question by question (``a[i]``, ``b[i]``: question ``i`` solved).

    >>> r = paired_difference([True, True, False, True], [False, True, False, False])
    >>> r.diff, r.a_only, r.b_only, round(r.p_mcnemar, 3)
    (0.5, 2, 0, 0.5)
    """
    n = len(a)
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    return PairedDifference(
        n=n,
        a_correct=sum(map(bool, a)),
        b_correct=sum(map(bool, b)),
        a_only=a_only,
        b_only=b_only,
        diff=(a_only - b_only) / n if n else 0.0,
        ci95=paired_bootstrap_ci(a, b, resamples=resamples, seed=seed),
        p_mcnemar=mcnemar_exact(a_only, b_only),
    )
