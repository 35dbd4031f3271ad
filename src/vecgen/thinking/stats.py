"""Small statistics for benchmark summaries."""

from __future__ import annotations

import math

#: Two-sided 95% standard-normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001).

    ``(p̂ + z²/2n ± z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`` with ``p̂ = successes / n``. Unlike the
    normal (Wald) interval it stays inside [0, 1] and is not degenerate at 0 or n successes.

    Args:
        successes: k, 0 <= k <= n.
        n: trials; ``n == 0`` gives ``(0.0, 1.0)`` (nothing is known).
        z: normal quantile (1.96 for 95%).

    Returns:
        ``(low, high)`` as fractions in [0, 1].

    Raises:
        ValueError: ``k`` outside ``[0, n]`` or ``n < 0``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, center - half)  # exact ends (rounding aside)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high
