"""Small statistics helpers for accuracies: confidence intervals of proportions.

Accuracies in siked are proportions of a few hundred questions at most on small machines, so
their uncertainty matters when comparing iterations. The Wilson score interval is used
throughout (``eval.json``'s ``ci95``, the report's error bars, ``siked compare``): unlike the
normal ("Wald") interval it stays inside [0, 1] and behaves well at 0 and n successes.
"""

from __future__ import annotations

import math


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
