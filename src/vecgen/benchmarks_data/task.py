"""One benchmark item (:class:`Task`) and its answer types: the data every loader returns and every checker reads.

Task files and their formats are :mod:`vecgen.benchmarks_data.tasks`; checking is
:mod:`vecgen.benchmarks_data.checkers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: Letters of options in prompts and answers (at most 26 options).
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: A yes / no word anywhere in a text (the ``yesno`` checker reads the first).
YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def yesno_value(text: str) -> str | None:
    """``"Yes"`` / ``"No"`` when ``text`` (stripped, any case, a final period allowed) is that word, else None."""
    word = str(text).strip().rstrip(".").strip().lower()
    return {"yes": "Yes", "no": "No"}.get(word)


#: The answer types (one checker each: :data:`vecgen.benchmarks_data.checkers.CHECKERS`).
ANSWER_TYPES = ("numeric", "choice", "yesno", "exact")


@dataclass(frozen=True)
class Task:
    """One benchmark item.

    Attributes:
        id: unique id within its benchmark (records and resumption key on it).
        question: the problem text shown to the model (without options; :func:`task_text` adds them).
        answer: the final answer as a string: a number (``"18"``), ``"Yes"``/``"No"``, the correct
            option's text, or a short string.
        answer_type: ``numeric``, ``choice``, ``yesno`` or ``exact`` (:data:`ANSWER_TYPES`).
        choices: the options of a ``choice`` task, in the order they are lettered; else empty.
        aliases: other accepted answers (numeric and exact tasks).
        solution: a worked solution when the source has one (GSM8K), else None.
        steps: the reasoning steps from question to answer, one string each, when the source has them (the
            coconut/iCoT format, ProsQA, the multiplication generator): what ``vecgen train`` teaches as the
            chain-of-thought and replaces by continuous thoughts; else empty.
        meta: any other fields of the source record.
    """

    id: str
    question: str
    answer: str
    answer_type: str = "numeric"
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    solution: str | None = None
    steps: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def letter(self) -> str | None:
        """The correct option's letter (``"B"``) of a ``choice`` task, else None."""
        return LETTERS[self.choices.index(self.answer)] if self.answer in self.choices else None

    def to_json(self) -> dict[str, Any]:
        """The task-file line for this task (``id``, ``question``, ``answer``, ``answer_type``, plus
        ``choices``/``aliases``/``solution``/``steps``/meta when present)."""
        out: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer,
                               "answer_type": self.answer_type}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.solution is not None:
            out["solution"] = self.solution
        if self.steps:
            out["steps"] = list(self.steps)
        out.update(self.meta)
        return out


def task_text(task: Task) -> str:
    """The question as shown to the model: for a ``choice`` task followed by its options, one per line,
    lettered (``"A. pear"``)."""
    if task.answer_type != "choice":
        return task.question
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(task.choices))
    return f"{task.question.rstrip()}\n{options}"


__all__ = ["ANSWER_TYPES", "LETTERS", "YES_NO", "Task", "task_text", "yesno_value"]
