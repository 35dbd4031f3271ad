"""The task-file format: one question with a checkable final answer per JSONL line.

Every benchmark loader in vecgen returns :class:`Task` objects, and any JSONL file in this format
plugs into ``vecgen think --benchmark PATH``. The soft-prompt arena's numeric tasks come in the same
form (:func:`vecgen.softprompt.arena.arena_tasks`, ``vecgen think --benchmark arena``) and
:func:`write_task_file` saves any list of tasks as such a file.

Format (UTF-8, one JSON object per line, blank lines ignored)::

    {"id": "add-1", "question": "What is 2 + 3?", "answer": "5"}
    {"question": "Tom has 3 apples ...", "answer": "He has 3 + 4 = 7 apples.\\n#### 7", "level": 1}

Fields:

``question`` (required)
    Non-empty string: the problem as shown to the model.
``answer`` (required)
    The final answer as a string or a number (``"18"``, ``18``, ``"1/2"``, ``"\\\\frac{1}{2}"``).
    A string with a GSM8K-style ``#### N`` line is reduced to ``N`` (commas removed) and the whole
    string is kept as the worked ``solution``. Answers are compared with math-verify.
``id`` (optional)
    String or integer, unique within the file; default ``<file stem>-<line number>``.
anything else
    Kept in :attr:`Task.meta` (e.g. a difficulty level or the source of the item).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_write_text

_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Task:
    """One benchmark item.

    Attributes:
        id: unique id within its benchmark (records and resumption key on it).
        question: the problem text shown to the model.
        answer: the final answer as a string (``"18"``), checked with math-verify.
        solution: a worked solution when the source has one (GSM8K), else None.
        meta: any other fields of the source record.
    """

    id: str
    question: str
    answer: str
    solution: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The task-file line for this task (``id``, ``question``, ``answer``, plus ``solution``/meta)."""
        out: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer}
        if self.solution is not None:
            out["solution"] = self.solution
        out.update(self.meta)
        return out


def final_answer_of_solution(solution: str) -> str | None:
    """The ``N`` of the last ``#### N`` line of a GSM8K-style solution, without thousands separators.

    ``"... so 9 * 2 = 18\\n#### 18"`` → ``"18"``; ``"#### 1,000"`` → ``"1000"``; no ``####`` → None.
    """
    found = _GSM8K_FINAL.findall(solution)
    if not found:
        return None
    return found[-1].replace(",", "").strip() or None


def task_from_record(record: Any, *, default_id: str, where: str) -> Task:
    """Validate one decoded task record.

    Args:
        record: the decoded JSON value of one line.
        default_id: the id when the record has none.
        where: location used in error messages (``"tasks.jsonl line 3"``).

    Raises:
        ConfigError: not an object, a missing or empty ``question``/``answer``, a bad ``id``.
    """
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected a JSON object with 'question' and 'answer', got {type(record).__name__}")
    data = dict(record)
    question = data.pop("question", None)
    answer = data.pop("answer", None)
    tid = data.pop("id", default_id)
    solution = data.pop("solution", None)
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: 'question' must be a non-empty string")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise ConfigError(f"{where}: 'answer' must be a non-empty string or a number")
    if isinstance(tid, bool) or not isinstance(tid, (str, int)) or not str(tid).strip():
        raise ConfigError(f"{where}: 'id' must be a non-empty string or an integer")
    if solution is not None and not isinstance(solution, str):
        raise ConfigError(f"{where}: 'solution' must be a string")
    answer = str(answer).strip()
    if "####" in answer:
        final = final_answer_of_solution(answer)
        if final is None:
            raise ConfigError(f"{where}: 'answer' has '####' but no final answer after it")
        solution = solution or answer
        answer = final
    return Task(id=str(tid), question=question, answer=answer, solution=solution, meta=data)


def check_scorable(task: Task, where: str) -> None:
    """Refuse a task whose answer the checker can never match (scored wrong whatever the model says).

    Raises:
        ConfigError: naming ``where`` (file and line), the answer and why.
    """
    from ..thinking.answers import unscorable_reason

    why = unscorable_reason(task.answer)
    if why is not None:
        raise ConfigError(f"{where}: answer {task.answer!r} can never be scored correct: {why}")


def tasks_from_records(records: Iterable[Any], *, source: str, id_prefix: str) -> list[Task]:
    """Validate records (e.g. rows of a ``datasets`` split) into tasks with unique ids.

    Args:
        records: decoded records, one per task.
        source: name used in error messages.
        id_prefix: default ids are ``<id_prefix>-<index>`` (4 digits, 0-based).

    Raises:
        ConfigError: an invalid record or a duplicate id (the record index is named).
    """
    tasks, seen = [], set()
    for i, rec in enumerate(records):
        task = task_from_record(rec, default_id=f"{id_prefix}-{i:04d}", where=f"{source} record {i}")
        check_scorable(task, f"{source} record {i}")
        if task.id in seen:
            raise ConfigError(f"{source} record {i}: duplicate id {task.id!r}")
        seen.add(task.id)
        tasks.append(task)
    return tasks


def load_task_file(path: str | Path, *, id_prefix: str | None = None, index_ids: bool = False) -> list[Task]:
    """Read a task file (format in the module docstring).

    Args:
        path: a ``.jsonl`` file.
        id_prefix: prefix of default ids (default: the file stem); a line without ``id`` gets
            ``<prefix>-<line number>`` (1-based line numbers, as an editor shows them).
        index_ids: default ids are ``<prefix>-NNNN`` with the 0-based task index instead (GSM8K).

    Returns:
        The tasks in file order.

    Raises:
        ConfigError: missing file, invalid JSON, a bad record, a duplicate id, or no tasks; the
            message names the file and line number.
    """
    from ..io import read_user_text

    path = Path(path)
    prefix = id_prefix or path.stem
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    text = read_user_text(path, "task file")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        default_id = f"{prefix}-{len(tasks):04d}" if index_ids else f"{prefix}-{lineno}"
        task = task_from_record(record, default_id=default_id, where=where)
        check_scorable(task, where)
        if task.id in seen:
            raise ConfigError(f"{where}: duplicate id {task.id!r} (first on line {seen[task.id]})")
        seen[task.id] = lineno
        tasks.append(task)
    if not tasks:
        raise ConfigError(f"{path}: no tasks (expected one JSON object per line)")
    return tasks


def write_task_file(path: str | Path, tasks: Sequence[Task]) -> Path:
    """Write ``tasks`` as a task file (atomically); :func:`load_task_file` reads it back unchanged."""
    lines = [json.dumps(t.to_json(), ensure_ascii=False) for t in tasks]
    return atomic_write_text(path, "\n".join(lines) + "\n")
