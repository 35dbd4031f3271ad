"""Answer extraction and checking with math-verify (Hugging Face, ``math-verify`` on PyPI).

:func:`extract_answer` finds the final answer in a model's output; :func:`check_answer` compares it
with a reference answer by mathematical equivalence (math-verify's ``parse`` + ``verify``: ``18``,
``18.00``, ``$18`` and ``\\boxed{18}`` are equal; ``1/2`` equals ``0.5``).

Extraction order:

1. a GSM8K-style ``#### N`` line (the last one) — the format of the reference solutions;
2. math-verify's extraction on the whole text: ``\\boxed{...}``, "final answer is ...",
   "answer: ..."/"the answer is ...", then the last number or LaTeX expression.

An output with no number or expression at all has no answer (None), and is never counted correct.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

_HASHES = re.compile(r"####\s*([^\n]*)")


def _config() -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(), ExprExtractionConfig()]


def _timeout() -> int | None:
    # math-verify's timeout uses SIGALRM, which only the main thread may install.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return parse(text, extraction_config=_config(), parsing_timeout=_timeout())


def _focus(text: str) -> str:
    """The part of ``text`` that holds the answer: after the last ``####`` when there is one."""
    found = [m.group(1) for m in _HASHES.finditer(text) if m.group(1).strip()]
    return found[-1] if found else text


def parse_answer(text: str) -> list[Any]:
    """math-verify's parse of the answer in ``text``: ``[sympy value, string]``, or ``[]`` when none."""
    if not text or not text.strip():
        return []
    return _parse(_focus(text))


def extract_answer(text: str) -> str | None:
    """The final answer in ``text`` as a short string, or None when the text has no answer.

    Examples: ``"#### 18"`` → ``"18"``; ``"The answer is 18."`` → ``"18"``; ``"$18.00"`` →
    ``"18.00"``; ``"I do not know"`` → None.
    """
    parsed = parse_answer(text)
    if not parsed:
        return None
    shown = str(parsed[-1]).strip().strip("*").strip()
    return shown or str(parsed[0])


_PLAIN_NUMBER = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")


def unscorable_reason(reference: str) -> str | None:
    """Why :func:`check_answer` could never count an output correct against ``reference``, or None.

    A reference is scorable when an output that is exactly the reference is judged correct (plain numbers
    such as ``18``, ``-2.5``, ``1,200`` pass at once; anything else goes through math-verify). ``"four"``,
    ``"NaN"``, ``"1e400"`` and ``"1e5"`` are not: math-verify reads them as products of symbols.
    """
    text = reference.strip()
    if _PLAIN_NUMBER.fullmatch(text):
        return None
    if text.lower().lstrip("+-") in {"nan", "inf", "infinity", "\\infty"}:
        return "it is not a finite number"
    if check_answer(text, text).correct:
        return None
    return ("the numeric checker (math-verify) does not read it as a number or expression; write it as a "
            "number (18, -2.5, 1,200, 3/4) or in LaTeX (\\frac{3}{4})")


@dataclass(frozen=True)
class Verdict:
    """The result of checking one output.

    Attributes:
        pred: the extracted answer (None: the output has no answer).
        correct: True when ``pred`` is mathematically equal to the reference.
    """

    pred: str | None
    correct: bool


def check_answer(output: str, reference: str) -> Verdict:
    """Extract the answer from ``output`` and compare it with ``reference`` (math-verify ``verify``).

    A percentage (``"22%"``, which math-verify reads as 0.22) also counts when its number equals the
    reference (GSM8K writes percentages as plain numbers).

    Args:
        output: the model's answer text.
        reference: the reference final answer (``"18"``).

    Returns:
        A :class:`Verdict`; ``correct`` is False when the output has no answer.
    """
    from math_verify import verify

    pred = parse_answer(output)
    if not pred:
        return Verdict(None, False)
    gold = _parse(reference if "$" in reference or "\\" in reference else f"${reference}$") or _parse(reference)
    ok = bool(verify(gold, pred, timeout_seconds=_timeout()))
    if not ok and "%" in _focus(output):
        ok = bool(verify(gold, _parse(_focus(output).replace("%", "")), timeout_seconds=_timeout()))
    shown = str(pred[-1]).strip().strip("*").strip() or str(pred[0])
    return Verdict(shown, ok)
