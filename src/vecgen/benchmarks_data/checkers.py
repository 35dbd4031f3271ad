"""Answer checking: one :class:`Checker` per answer type, one :func:`check_answer` for the whole package.

Every evaluation in vecgen (``vecgen think``, the soft-prompt arena, ``vecgen[lmeval]``'s answers) checks a
model's free-text output against a :class:`~vecgen.benchmarks_data.task.Task` with :func:`check_answer`,
which dispatches on :attr:`Task.answer_type`:

=========  =====================================================================================
type       correct when
=========  =====================================================================================
numeric    the answer number is mathematically equal to the reference or an alias (math-verify's
           ``parse`` + ``verify``: ``18``, ``18.00``, ``$18``, ``\\boxed{18}``; ``1/2`` = ``0.5``;
           ``22%`` also counts for ``22``; a Unicode minus ``−3`` is ``-3``, ``9.36e-18`` is
           9.36·10⁻¹⁸); never when the answer is an unevaluated expression of the question's
           numbers (:func:`restated_expression`: ``1663 - 5242 + 7634`` restates the question)
choice     the option read from the output (a letter: ``B``, ``(B)``, ``**B**``, ``B.``,
           ``\\boxed{B}``, ``Option B``; or an option's text) is the correct option
yesno      the first ``yes`` / ``no`` word is the reference's
exact      the normalised answer equals the normalised reference or an alias (lower case; Markdown,
           ``\\boxed{}``, punctuation and the articles a / an / the removed; white space collapsed)
=========  =====================================================================================

Where the answer is read (:func:`answer_span`), for every type:

1. the output is cut at ``"\\nQuestion:"`` (a plain-completion model starting a new question);
2. a GSM8K-style ``#### ...`` line (the last) or a ``\\boxed{...}`` answers;
3. else the first non-empty line after the last "answer is" / "answer:";
4. else the first non-empty line (prompts ask for the answer alone; small models put it first and
   explain, or write code, after it: ``"11\\nTo solve this, add 7 and 4"`` answers 11);
5. when that span holds no answer of the task's type, the whole output is searched.

An output without an answer of the task's type has ``pred = None`` and is never correct.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigError
from .task import LETTERS, YES_NO, Task, yesno_value


@dataclass(frozen=True)
class Verdict:
    """The result of checking one output.

    Attributes:
        pred: the answer read from the output, as text (a canonical number such as ``"42"`` for
            ``"42.0"``, ``"Yes"``/``"No"``, the chosen option's text, the normalised string); None: the
            output has no answer of the task's type.
        correct: True when ``pred`` matches the reference (or an alias).
        score: partial credit in [0, 1] from a checker that gives it (reasoning-gym's ``score_answer``,
            :mod:`vecgen.benchmarks_data.rgym`); None for the exact checkers (``correct`` is the whole verdict).
    """

    pred: str | None
    correct: bool
    score: float | None = None


class Checker(Protocol):
    """How one answer type is read and compared.

    ``check`` never raises on model output (odd text is simply not an answer); ``validate`` refuses a
    task that no output could ever match, naming ``where`` (file and line) in a :class:`ConfigError`.
    """

    answer_type: str

    def check(self, task: Task, output: str) -> Verdict: ...

    def validate(self, task: Task, where: str) -> None: ...


# ---------------------------------------------------------------- where the answer is

_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_PHRASE = re.compile(r"\banswer\s*(?:is\s*:?|:|=)\s*", re.IGNORECASE)


def clean_response(text: str) -> str:
    """``text`` cut at ``"\\nQuestion:"`` (a plain-completion model starting a new question), stripped."""
    return (text or "").split("\nQuestion:")[0].strip()


def answer_region(text: str) -> str:
    """Where a (cleaned) output states its answer, all its lines: the last ``#### ...`` line, else the content of the
    last ``\\boxed{...}``, else everything after the last "answer is" / "answer:", else the whole text."""
    found = [m.group(1) for m in _HASHES.finditer(text) if m.group(1).strip()]
    if found:
        return found[-1].strip()
    inner = _boxed(text)
    if inner is not None:
        return inner.strip()
    phrases = list(_ANSWER_PHRASE.finditer(text))
    return (text[phrases[-1].end() :] if phrases else text).strip()


def answer_span(text: str) -> str:
    """The part of a (cleaned) output that states the answer (steps 2–4 of the module docstring): the first line of
    :func:`answer_region`, or the whole text where a ``\\boxed{}`` answers (its readers take the box themselves)."""
    if "\\boxed" in text and not any(m.group(1).strip() for m in _HASHES.finditer(text)):
        return text
    lines = [line.strip() for line in answer_region(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces), or None."""
    at = text.rfind("\\boxed{")
    if at < 0:
        return None
    depth, start = 0, at + len("\\boxed{")
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                return text[start:i]
            depth -= 1
    return None


# ---------------------------------------------------------------- numeric (math-verify)

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")


#: Minus signs that are not ASCII (U+2212 MINUS SIGN, U+FE63 SMALL HYPHEN-MINUS, U+FF0D FULLWIDTH HYPHEN-MINUS).
_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
#: One plain number: ``-4``, ``1,200``, ``3.5``, ``.5``, ``9.36e-18`` (after :data:`_MINUS`).
NUMBER_LITERAL = re.compile(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
#: A number in scientific notation (``9.36e-18``), not part of a word or hex literal.
_SCI = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?!\w|\.\d)")


def plain_numbers(text: str) -> str:
    """``text`` with Unicode minus signs as ``-`` and scientific notation as a power of ten that math-verify reads
    (``9.36e-18`` → ``9.36*10^(-18)``; math-verify alone reads ``9.36e-18`` as 9.36)."""
    return _SCI.sub(r"\1*10^(\2)", str(text).translate(_MINUS))


_LATEX_OPS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("÷", "/"), ("·", "*"))
_OPERAND = r"[(\[]*\s*-?\s*\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?\s*[)\]]*"
_EXPRESSION = re.compile(rf"{_OPERAND}(?:\s*(?:\*\*|[-+*/^])\s*{_OPERAND})+")
_OPERAND_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _numbers_of(text: str) -> set[str]:
    return {n for n in (_canonical_number(m) for m in _OPERAND_NUMBER.findall(str(text).translate(_MINUS)))
            if n is not None}


def restated_expression(span: str, question: str) -> str | None:
    """The arithmetic expression that ``span`` ends on when it only restates ``question``'s numbers, else None.

    An answer such as ``1663 - 5242 - 9376 - 8961 + 7634`` (or ``... =`` with nothing after it) for the question
    "1663 - 5242 - 9376 - 8961 + 7634 =" is a restatement: math-verify would evaluate it and credit it. The span's
    last stated value (after its last ``=``, when something follows it) is a restatement when it is an expression of
    two or more numbers joined by ``+ - * / ^ × ÷ ·`` of which at least two are numbers of the question; a lone
    fraction ``a/b`` only when the question writes that same fraction (a fraction is an answer form of its own).
    """
    text = _strip_markup(span).translate(_MINUS)
    for latex, op in _LATEX_OPS:
        text = text.replace(latex, op)
    head, eq, tail = text.rpartition("=")
    text = tail if eq and _OPERAND_NUMBER.search(tail) else (head if eq else text)
    found = list(_EXPRESSION.finditer(text))
    numbers = list(_OPERAND_NUMBER.finditer(text))
    if not found or not numbers or found[-1].end() < numbers[-1].end():  # a number stated after the expression
        return None
    expr = found[-1].group(0).strip()
    operands = [_canonical_number(n) for n in _OPERAND_NUMBER.findall(expr)]
    if len(operands) < 2:
        return None
    if re.fullmatch(r"-?\s*\d+\s*/\s*\d+", expr):  # a fraction: a restatement only where the question writes it
        return expr if re.sub(r"\s", "", expr) in re.sub(r"\s", "", question.translate(_MINUS)) else None
    asked = _numbers_of(question)
    return expr if sum(o in asked for o in operands) >= 2 else None


def _timeout() -> int | None:
    # math-verify's timeout uses SIGALRM, which only the main thread may install.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list[Any]:
    from math_verify import (  # lazy: 0.7 s to import
        ExprExtractionConfig,
        LatexExtractionConfig,
        parse,
    )

    try:
        return parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                     parsing_timeout=_timeout())
    except Exception:  # noqa: BLE001 - math-verify can fail on odd text; then there is no answer
        return []


def _verify(gold: list[Any], pred: list[Any]) -> bool:
    from math_verify import verify  # lazy: 0.7 s to import

    try:
        return bool(verify(gold, pred, timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001
        return False


def _canonical_number(text: str) -> str | None:
    try:
        value = float(str(text).replace(",", ""))
    except (TypeError, ValueError, OverflowError):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    value = float(f"{value:.15g}")  # 15 significant digits: 2.43*10^2 is 243, not 243.00000000000003
    return str(int(value)) if value.is_integer() else repr(value)


def _gold(reference: str) -> list[Any]:
    ref = plain_numbers(reference.strip())
    return _parse(ref if "$" in ref or "\\" in ref else f"${ref}$") or _parse(ref)


class NumericChecker:
    """``numeric``: math-verify equivalence (Hugging Face ``math-verify``)."""

    answer_type = "numeric"

    def read(self, output: str) -> tuple[str | None, list[Any], str]:
        """``(pred, parsed, span)``: the answer number as canonical text, math-verify's parse, the span read."""
        text = clean_response(output).translate(_MINUS)
        span = answer_span(text)
        if not _NUMBER.search(span) and "\\" not in span:
            span = text
        bare_latex = "\\" in span and not any(d in span for d in ("$", "\\(", "\\["))  # LaTeX without delimiters
        literal = _strip_markup(span).strip("'\"").removesuffix(".").strip()
        if NUMBER_LITERAL.fullmatch(literal):  # one number as written: no parser's reading needed
            return _canonical_number(literal), _parse(plain_numbers(literal)), span
        attempts = ([_parse(f"${plain_numbers(span)}$")] if bare_latex else []) + [_parse(plain_numbers(span))]
        for parsed in attempts:  # the first reading that holds a number: as LaTeX first where it has no delimiters
            for candidate in parsed:
                try:
                    number = _canonical_number(str(float(candidate)))
                except (TypeError, ValueError, OverflowError):
                    number = _canonical_number(str(candidate))
                if number is not None:
                    return number, parsed, span
        parsed = attempts[-1]
        if parsed:
            shown = str(parsed[-1]).strip().strip("*").strip()
            return shown or str(parsed[0]), parsed, span
        matches = _NUMBER.findall(span)
        if matches:
            number = _canonical_number(matches[-1])
            return number, _parse(f"${matches[-1].replace(',', '')}$"), span
        return None, [], span

    def check(self, task: Task, output: str) -> Verdict:
        pred, parsed, span = self.read(output)
        if pred is None:
            return Verdict(None, False)
        restated = restated_expression(span, task.question)
        if restated is not None:  # math-verify would evaluate the question's own arithmetic
            return Verdict(restated, False)
        for ref in (task.answer, *task.aliases):
            gold = _gold(ref)
            if _verify(gold, parsed):
                return Verdict(pred, True)
            if "%" in span and _verify(gold, _parse(span.replace("%", ""))):
                return Verdict(pred, True)
            if _canonical_number(ref) is not None and _canonical_number(ref) == pred:
                return Verdict(pred, True)
        return Verdict(pred, False)

    def unscorable(self, reference: str) -> str | None:
        """Why no output could match ``reference``, or None (``"four"``, ``"NaN"``, ``"1e400"`` cannot)."""
        text = reference.strip().translate(_MINUS)
        if _PLAIN_NUMBER.fullmatch(text):
            return None
        if _SCI.fullmatch(text.lstrip("+-")):
            return None if _canonical_number(text) is not None else "it is not a finite number"
        if text.lower().lstrip("+-") in {"nan", "inf", "infinity", "\\infty"}:
            return "it is not a finite number"
        if self.check(Task("check", "", text), text).correct:  # the reference itself, as an output, is right
            return None
        return ("the numeric checker (math-verify) does not read it as a number or expression; write it as a "
                "number (18, -2.5, 1,200, 3/4) or in LaTeX (\\frac{3}{4}), or give the task another answer_type")

    def validate(self, task: Task, where: str) -> None:
        for ref in (task.answer, *task.aliases):
            why = self.unscorable(ref)
            if why is not None:
                raise ConfigError(f"{where}: answer {ref!r} can never be scored correct: {why}")


# ---------------------------------------------------------------- yes / no

class YesNoChecker:
    """``yesno``: the first ``yes`` / ``no`` word of the span (else of the whole output)."""

    answer_type = "yesno"

    def check(self, task: Task, output: str) -> Verdict:
        text = clean_response(output)
        span = _strip_markup(answer_span(text))
        match = YES_NO.search(span) or YES_NO.search(text)
        pred = match.group(1).capitalize() if match else None
        return Verdict(pred, pred is not None and pred == yesno_value(task.answer))

    def validate(self, task: Task, where: str) -> None:
        if yesno_value(task.answer) is None:
            raise ConfigError(f"{where}: answer {task.answer!r} of a yesno task must be Yes or No")


# ---------------------------------------------------------------- multiple choice

_LETTER_ANSWER = re.compile(r"^(?P<pre>(?i:(?:the\s+)?(?:correct\s+)?(?:option|choice|answer)\s*(?:is\s*)?)?)[:\s]*"
                            r"(?P<open>\()?(?P<letter>[A-Z])\)?(?P<end>[.):,]|\s|$)")


def _strip_markup(text: str) -> str:
    inner = _boxed(text)
    if inner is not None:
        text = inner
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    return text.replace("**", "").replace("$", "").replace("`", "").strip().strip("*_ ").strip()


def _named_option(choices: Sequence[str], text: str) -> str | None:
    """The option whose text appears first in ``text`` (whole words, any case), or None."""
    found = []
    for option in choices:
        match = re.search(rf"(?<![\w.]){re.escape(option)}(?![\w]|\.\d)", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), -len(option), option))
    return min(found)[2] if found else None


class ChoiceChecker:
    """``choice``: a letter (``B``, ``(B)``, ``**B**``, ``\\boxed{B}``, ``Option B``) or an option's text."""

    answer_type = "choice"

    def read(self, task: Task, output: str) -> str | None:
        """The chosen option's text, or None."""
        text = clean_response(output)
        span = _strip_markup(answer_span(text))
        letters = LETTERS[: len(task.choices)]
        match = _LETTER_ANSWER.match(span)
        if match and match.group("letter") in letters:
            option = task.choices[letters.index(match.group("letter"))]
            rest = span[match.end():].strip().lower()
            # "A pear is a fruit": a capital A followed by other words is the article, not option A
            if (match.group("pre").strip() or match.group("open") or match.group("end").strip() or not rest
                    or rest.startswith(option.lower())):
                return option
        if len(span) == 1 and span.upper() in letters:
            return task.choices[letters.index(span.upper())]
        return _named_option(task.choices, span) or _named_option(task.choices, text)

    def check(self, task: Task, output: str) -> Verdict:
        pred = self.read(task, output)
        return Verdict(pred, pred is not None and pred.strip().lower() == task.answer.strip().lower())

    def validate(self, task: Task, where: str) -> None:
        if len(task.choices) < 2:
            raise ConfigError(f"{where}: a choice task needs at least 2 choices, got {len(task.choices)}")
        if len(task.choices) > len(LETTERS):
            raise ConfigError(f"{where}: a choice task has at most {len(LETTERS)} choices, got {len(task.choices)}")
        if task.answer not in task.choices:
            raise ConfigError(f"{where}: answer {task.answer!r} is not among the choices {list(task.choices)}; "
                              "give the correct option's text or its letter (A, B, ...)")


# ---------------------------------------------------------------- exact string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_text(text: str) -> str:
    """The normalised form :class:`ExactChecker` compares: markup removed, lower case, punctuation and
    articles removed, white space collapsed (SQuAD's normalisation, Rajpurkar et al. 2016)."""
    text = _strip_markup(str(text)).lower()
    text = _ARTICLES.sub(" ", _PUNCT.sub(" ", text))
    return " ".join(text.split())


class ExactChecker:
    """``exact``: the normalised span (or its first sentence) equals the normalised reference or an alias."""

    answer_type = "exact"

    def check(self, task: Task, output: str) -> Verdict:
        text = clean_response(output)
        span = answer_span(text)
        wanted = {normalize_text(a) for a in (task.answer, *task.aliases)}
        candidates = [span, re.split(r"(?<=[.!?])\s", span)[0], *span.split(",")[:1]]
        for cand in candidates:
            norm = normalize_text(cand)
            if norm in wanted:
                return Verdict(norm, True)
        pred = normalize_text(span)
        return Verdict(pred or None, False)

    def validate(self, task: Task, where: str) -> None:
        for ref in (task.answer, *task.aliases):
            if not normalize_text(ref):
                raise ConfigError(f"{where}: answer {ref!r} is empty once normalised (punctuation and articles "
                                  "are ignored); give a word or number")


#: One checker per answer type.
CHECKERS: dict[str, Checker] = {c.answer_type: c for c in (NumericChecker(), ChoiceChecker(), YesNoChecker(),
                                                           ExactChecker())}


def check_answer(task: Task, output: str) -> Verdict:
    """Check ``output`` (the model's answer text) against ``task`` with its type's :class:`Checker`.

    Returns:
        A :class:`Verdict`; ``correct`` is False when the output has no answer of the task's type.
    """
    return CHECKERS[task.answer_type].check(task, output)


def extract_answer(task: Task, output: str) -> str | None:
    """The answer read from ``output`` for ``task``'s type (``Verdict.pred``), or None."""
    return check_answer(task, output).pred
