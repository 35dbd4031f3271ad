"""Statistics for benchmark summaries (on :mod:`scipy.stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001).

    Computed by ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``. Unlike the normal
    (Wald) interval it stays inside [0, 1] and is not degenerate at 0 or n successes.

    Args:
        successes: k, 0 <= k <= n.
        n: trials; ``n == 0`` gives ``(0.0, 1.0)`` (nothing is known).
        confidence: the confidence level (0.95 for a 95% interval).

    Returns:
        ``(low, high)`` as fractions in [0, 1].

    Raises:
        ValueError: ``k`` outside ``[0, n]`` or ``n < 0``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest  # lazy: scipy.stats takes 1.9 s to import

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class PairedComparison:
    """Two methods scored on the same items.

    Attributes:
        n: items both methods answered.
        both: items both got right.
        only_a: items only method A got right.
        only_b: items only method B got right.
        neither: items both got wrong.
        p_value: two-sided exact McNemar test (a binomial test of ``only_a`` out of the
            ``only_a + only_b`` discordant items at p = 0.5; McNemar 1947); 1.0 without discordant items.
    """

    n: int
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired_comparison(a: Sequence[bool], b: Sequence[bool]) -> PairedComparison:
    """Compare two methods' per-item correctness on the same items (same order).

    Accuracy intervals of two methods overlap long before their difference is noise; on paired
    items only the discordant ones carry information, which the exact McNemar test uses.

    Args:
        a, b: correctness of methods A and B, item by item.

    Returns:
        The :class:`PairedComparison`.

    Raises:
        ValueError: the sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same items: {len(a)} vs {len(b)} results")
    both = sum(bool(x) and bool(y) for x, y in zip(a, b))
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b))
    discordant = only_a + only_b
    if discordant:
        from scipy.stats import binomtest  # lazy: scipy.stats takes 1.9 s to import

        p = float(binomtest(only_a, discordant, 0.5).pvalue)
    else:
        p = 1.0
    return PairedComparison(len(a), both, only_a, only_b, len(a) - both - discordant, p)


def mean_ci(values: Sequence[float], *, seed: int = 0, confidence: float = 0.95) -> dict[str, float | int]:
    """Mean with a percentile-bootstrap interval (``scipy.stats.bootstrap``, 2,000 resamples, fixed seed).

    Returns:
        ``{"n", "mean", "low", "high"}`` (``low``/``high`` equal the mean for fewer than two values or no
        spread; all NaN without values).
    """
    v = np.asarray(list(values), dtype=float)
    n = int(v.size)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "low": float("nan"), "high": float("nan")}
    mean = float(v.mean())
    if n < 2 or float(v.std()) == 0.0:
        return {"n": n, "mean": mean, "low": mean, "high": mean}
    from scipy.stats import bootstrap  # lazy: scipy.stats takes 1.9 s to import

    res = bootstrap((v,), np.mean, n_resamples=2000, confidence_level=confidence, method="percentile",
                    random_state=np.random.default_rng(seed))
    return {"n": n, "mean": mean, "low": float(res.confidence_interval.low), "high": float(res.confidence_interval.high)}


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate of one item: ``1 - C(n - c, k) / C(n, k)`` (Chen et al. 2021,
    arXiv 2107.03374, eq. 1), computed as their numerically stable product.

    Args:
        n: samples drawn for the item (>= k). c: correct samples (0 <= c <= n). k: the budget (>= 1).

    Raises:
        ValueError: ``k < 1``, ``n < k`` or ``c`` outside ``[0, n]``.
    """
    if k < 1 or n < k or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod
