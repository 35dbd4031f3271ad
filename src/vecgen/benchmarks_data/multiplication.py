"""Multi-digit multiplication with explicit steps, in the format of implicit chain-of-thought (iCoT; Deng et al.
2023/2024, MIT): every number written as its digits, least significant first, one digit per word, so that a small
word-level model reads and writes one digit per token; a task where chain-of-thought beats answering directly
(direct training of GPT-2 small fails beyond 4×4 digits; with steps, or internalised steps, 9×9 reaches 99 %).

An item ``a × b`` (``a`` with ``m`` digits, ``b`` with ``n``) has one step per digit of ``b``: the partial product
of ``a`` and that digit, shifted, and the running sum after adding it::

    question: "Multiply, digits least significant first: 5 4 3 * 7 6 ="     (345 × 67)
    steps:    ["5 1 4 2 + 0 ( 5 1 4 2 )", "0 0 7 0 2 + 5 1 4 2 ( 5 1 1 3 2 )"]
    answer:   "5 1 1 3 2"                                                     (23115)

Answers are ``exact`` (digit strings); :func:`digits_value` reads one back as an integer.
"""

from __future__ import annotations

import random

from ..errors import ConfigError
from .task import Task


def reversed_digits(value: int, width: int = 0) -> str:
    """``value``'s digits, least significant first, space-separated (``345 -> "5 4 3"``), zero-padded to ``width``."""
    text = str(value).zfill(width)
    return " ".join(reversed(text))


def digits_value(text: str) -> int:
    """The integer a least-significant-first digit string stands for (``"5 4 3" -> 345``).

    Raises:
        ValueError: a word that is not one digit.
    """
    words = text.split()
    if not words or not all(len(w) == 1 and w.isdigit() for w in words):
        raise ValueError(f"{text!r} is not a digit string")
    return int("".join(reversed(words)))


def multiplication_item(a: int, b: int, *, index: int = 0, prefix: str = "mult") -> Task:
    """The task for ``a × b`` (module docstring)."""
    if a < 0 or b < 0:
        raise ConfigError(f"multiplication of {a} and {b}: the operands must be >= 0")
    steps, total = [], 0
    for i, digit in enumerate(reversed(str(b))):
        partial = a * int(digit) * 10 ** i
        before, total = total, total + partial
        steps.append(f"{reversed_digits(partial, len(str(partial)))} + {reversed_digits(before)} "
                     f"( {reversed_digits(total)} )")
    question = f"Multiply, digits least significant first: {reversed_digits(a)} * {reversed_digits(b)} ="
    return Task(id=f"{prefix}-{index:05d}", question=question, answer=reversed_digits(a * b), answer_type="exact",
                steps=tuple(steps), meta={"a": a, "b": b})


def parse_digits(spec: str) -> tuple[int, int]:
    """``"4x4"`` → ``(4, 4)``: the operands' digit counts (1–20 each).

    Raises:
        ConfigError: anything else.
    """
    left, sep, right = spec.lower().partition("x")
    if not sep or not left.strip().isdigit() or not right.strip().isdigit():
        raise ConfigError(f"digits {spec!r}: expected MxN, e.g. 4x4", param="digits")
    m, n = int(left), int(right)
    if not (1 <= m <= 20 and 1 <= n <= 20):
        raise ConfigError(f"digits {spec!r}: each digit count must be in [1, 20]", param="digits")
    return m, n


#: The seed of the ``multiplication`` benchmark's items (training sets use small seeds: 0, 1, 2, ...).
BENCHMARK_SEED = 1_000_003
#: Items in the ``multiplication`` benchmark.
BENCHMARK_SIZE = 500


def generate_multiplication(n: int, *, digits: str = "4x4", seed: int = 0, prefix: str = "mult") -> list[Task]:
    """``n`` items of ``digits`` (``"MxN"``: M-digit times N-digit operands, leading digit non-zero), from ``seed``.
    Training sets (any seed but :data:`BENCHMARK_SEED`) skip the ``multiplication`` benchmark's items of the same
    digits, so they never hold a dev item.

    Raises:
        ConfigError: ``n < 1`` or a bad ``digits``.
    """
    if n < 1:
        raise ConfigError(f"n={n}: allowed range is >= 1", param="n")
    m, k = parse_digits(digits)
    held_out: set[tuple[int, int]] = set()
    if seed != BENCHMARK_SEED:
        held_out = {(t.meta["a"], t.meta["b"]) for t in generate_multiplication(BENCHMARK_SIZE, digits=digits,
                                                                                 seed=BENCHMARK_SEED)}
    rng = random.Random(f"multiplication-{digits}-{seed}")
    out: list[Task] = []
    for _ in range(100 * n + 1000):
        if len(out) == n:
            break
        a, b = rng.randint(10 ** (m - 1), 10 ** m - 1), rng.randint(10 ** (k - 1), 10 ** k - 1)
        if (a, b) not in held_out:
            out.append(multiplication_item(a, b, index=len(out), prefix=prefix))
    if len(out) < n:
        raise ConfigError(f"only {len(out)} distinct {digits} items outside the benchmark; ask for fewer", param="n")
    return out


__all__ = ["BENCHMARK_SEED", "BENCHMARK_SIZE", "digits_value", "generate_multiplication", "multiplication_item", "parse_digits", "reversed_digits"]
