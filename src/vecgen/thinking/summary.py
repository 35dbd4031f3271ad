"""Summaries of a thinking run: accuracy with Wilson intervals per method, paired exact tests between methods and
grid combinations, pass@k over samples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..stats import (
    PairedComparison,
    mean_ci,
    paired_comparison,
    pass_at_k,
    wilson_interval,
)
from .records import ThinkRecord


@dataclass
class MethodSummary:
    """One method's results over the items (``results.json["results"][method]``).

    Attributes:
        n, correct: items and correct answers. accuracy: ``correct / n`` (None without items).
        ci95: Wilson 95% score interval of the accuracy, as fractions ``[lo, hi]``.
        no_answer: outputs without an extractable answer.
        mean_think_tokens, mean_answer_tokens: per item. wall_seconds: the sum over batches.
        items_per_second, tokens_per_second: per wall second (thinking + answer steps for tokens).
        stop_reasons: counts. mean_entropy: nats, over thinking steps (None without thinking).
        mean_score: the mean partial-credit score in [0, 1] (reasoning-gym's verifiers; their format rewards for a
            wrong answer count 0); None when the items' checkers give none (then ``accuracy`` is the whole story).
        answer_budget_hits: answers that used the whole answer budget (``max_answer_tokens``), so may be cut off;
            None when the budget was not given.
    """

    n: int
    correct: int
    accuracy: float | None
    ci95: list[float]
    no_answer: int
    mean_think_tokens: float | None
    mean_answer_tokens: float | None
    wall_seconds: float
    items_per_second: float | None
    tokens_per_second: float | None
    stop_reasons: dict[str, int]
    mean_entropy: float | None
    mean_score: float | None = None
    answer_budget_hits: int | None = None


#: The share of answers at the answer budget above which a run warns that answers are cut off.
ANSWER_BUDGET_WARN = 0.05


def budget_warnings(summary: dict[str, MethodSummary], budgets: dict[str, int]) -> list[str]:
    """One line per name whose answers reached their answer budget on more than :data:`ANSWER_BUDGET_WARN` of items."""
    out = []
    for name, s in summary.items():
        if s.answer_budget_hits and s.n and s.answer_budget_hits / s.n > ANSWER_BUDGET_WARN:
            out.append(f"{name}: {s.answer_budget_hits} of {s.n} answers ({100 * s.answer_budget_hits / s.n:.0f}%) "
                       f"used the whole answer budget of {budgets[name]} tokens and may be cut off; raise "
                       "--max-answer-tokens (Python: max_answer_tokens)")
    return out


@dataclass(frozen=True)
class MethodPair(PairedComparison):
    """Methods ``a`` and ``b`` on the items both answered (the fields of
    :class:`~vecgen.stats.PairedComparison`: ``n``, ``both``, ``only_a``, ``only_b``, ``neither``,
    ``p_value`` of the exact McNemar test)."""

    a: str = ""
    b: str = ""


def summarize(records: Sequence[ThinkRecord], methods: Sequence[str],
              answer_budgets: dict[str, int] | None = None) -> dict[str, MethodSummary]:
    """Per-method :class:`MethodSummary` of ``records``, in ``methods`` order; ``answer_budgets`` (name →
    ``max_answer_tokens``) counts the answers that used their whole budget."""
    out: dict[str, MethodSummary] = {}
    for m in methods:
        rs = [r for r in records if r.method == m]
        n = len(rs)
        k = sum(bool(r.correct) for r in rs)
        wall = sum(float(r.seconds) for r in rs)
        tokens = sum(int(r.tokens) for r in rs)
        ents = [r.mean_entropy for r in rs if r.mean_entropy is not None]
        scores = [r.score for r in rs if r.score is not None]
        lo, hi = wilson_interval(k, n)
        out[m] = MethodSummary(
            n=n,
            correct=k,
            accuracy=k / n if n else None,
            ci95=[lo, hi],
            no_answer=sum(r.pred is None for r in rs),
            mean_think_tokens=sum(r.think_tokens for r in rs) / n if n else None,
            mean_answer_tokens=sum(r.answer_tokens for r in rs) / n if n else None,
            wall_seconds=wall,
            items_per_second=n / wall if wall > 0 else None,
            tokens_per_second=tokens / wall if wall > 0 else None,
            stop_reasons=dict(Counter(r.stop_reason for r in rs)),
            mean_entropy=sum(ents) / len(ents) if ents else None,
            mean_score=sum(scores) / len(scores) if scores else None,
            answer_budget_hits=(None if not answer_budgets or m not in answer_budgets
                                else sum(r.answer_tokens >= answer_budgets[m] for r in rs)),
        )
    return out


@dataclass(frozen=True)
class BudgetRow:
    """One method at one thinking budget (``vecgen think --budgets``).

    Attributes:
        name: the run's name (``cot[max_think_tokens=64]``). method, budget: its method and budget (tokens).
        accuracy, ci95: as in :class:`MethodSummary`. mean_think_tokens: thinking steps fed per item.
        points_per_100_tokens: accuracy in percentage points per 100 mean thinking tokens (None without thinking).
    """

    name: str
    method: str
    budget: int
    n: int
    accuracy: float | None
    ci95: list[float]
    mean_think_tokens: float | None
    points_per_100_tokens: float | None


def budget_rows(summary: dict[str, MethodSummary], budgets: dict[str, tuple[str, int]]) -> list[BudgetRow]:
    """:class:`BudgetRow` of every run in ``budgets`` (name → ``(method, budget)``), grouped by method."""
    rows = []
    for name, (method, budget) in sorted(budgets.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        s = summary[name]
        think = s.mean_think_tokens
        per = 100.0 * 100.0 * s.accuracy / think if s.accuracy is not None and think else None
        rows.append(BudgetRow(name, method, budget, s.n, s.accuracy, s.ci95, think, per))
    return rows


def compare_pairs(records: Sequence[ThinkRecord], pairs: Sequence[tuple[str, str]]) -> list[MethodPair]:
    """Paired comparison (:class:`MethodPair`) of each ``(a, b)`` on the items both answered (first samples only
    in a ``--samples`` run: sample 0, the same draw index for every method)."""
    by: dict[str, dict[str, bool]] = {}
    for r in records:
        if r.sample in (None, 0):
            by.setdefault(r.method, {})[r.id] = bool(r.correct)
    out = []
    for a, b in pairs:
        ra, rb = by.get(a, {}), by.get(b, {})
        ids = [k for k in ra if k in rb]
        cmp = paired_comparison([ra[k] for k in ids], [rb[k] for k in ids])
        out.append(MethodPair(**vars(cmp), a=a, b=b))
    return out


def compare_methods(records: Sequence[ThinkRecord], methods: Sequence[str]) -> list[MethodPair]:
    """:func:`compare_pairs` of every pair of methods, in ``methods`` order."""
    return compare_pairs(records, [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]])


def compare_to_baselines(records: Sequence[ThinkRecord], names: Sequence[str],
                         baselines: dict[str, str]) -> list[MethodPair]:
    """Every grid combination against its method's baseline combination (``baselines``: method → name; a
    combination ``METHOD[...]`` belongs to ``METHOD``)."""
    pairs = []
    for name in names:
        base = baselines.get(name.split("[", 1)[0])
        if base is not None and base != name:
            pairs.append((base, name))
    return compare_pairs(records, pairs)


@dataclass
class PassAtK:
    """pass@1 and pass@k of one method over items sampled ``samples`` times (``results.json["pass_at_k"]``).

    Attributes:
        items: items with all samples. samples: n, the samples per item. k: the budget of ``pass_at_k``.
        pass_at_1, pass_at_k: means over items of the unbiased per-item estimates (Chen et al. 2021);
        ci95_1, ci95_k: percentile-bootstrap 95% intervals over items (2,000 resamples, seed 0).
        any_correct: items with at least one correct sample.
    """

    items: int
    samples: int
    k: int
    pass_at_1: float
    ci95_1: list[float]
    pass_at_k: float
    ci95_k: list[float]
    any_correct: int


def pass_at_k_summary(records: Sequence[ThinkRecord], names: Sequence[str], samples: int,
                      k: int | None = None) -> dict[str, PassAtK]:
    """Per name, :class:`PassAtK` over the items that have all ``samples`` samples (``k`` defaults to ``samples``).

    Raises:
        ValueError: ``k`` outside ``[1, samples]``.
    """
    k = samples if k is None else k
    if not 1 <= k <= samples:
        raise ValueError(f"pass@k needs 1 <= k <= samples, got k={k}, samples={samples}")
    out = {}
    for name in names:
        per: dict[str, list[bool]] = {}
        for r in records:
            if r.method == name and r.sample is not None:
                per.setdefault(r.id, []).append(bool(r.correct))
        full = [v for v in per.values() if len(v) == samples]
        p1 = [pass_at_k(samples, sum(v), 1) for v in full]
        pk = [pass_at_k(samples, sum(v), k) for v in full]
        c1, ck = mean_ci(p1), mean_ci(pk)
        out[name] = PassAtK(items=len(full), samples=samples, k=k, pass_at_1=c1["mean"], ci95_1=[c1["low"], c1["high"]],
                            pass_at_k=ck["mean"], ci95_k=[ck["low"], ck["high"]], any_correct=sum(any(v) for v in full))
    return out


__all__ = ["BudgetRow", "MethodPair", "MethodSummary", "PassAtK", "budget_rows", "compare_methods", "compare_pairs", "compare_to_baselines",
           "pass_at_k_summary", "summarize"]
