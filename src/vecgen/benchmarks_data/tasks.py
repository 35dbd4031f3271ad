"""The task-file formats: one question with a checkable final answer per item, of one of four answer types.

Every benchmark loader in vecgen returns :class:`Task` objects, and any file in these formats plugs into
``vecgen think --benchmark PATH``. The soft-prompt arena's families produce the same type
(:func:`vecgen.benchmarks_data.arena.arena_tasks`, ``vecgen think --benchmark arena``), and
:func:`write_task_file` saves any list of tasks as a JSONL task file. Answers are checked by the
task's type's checker (:mod:`vecgen.benchmarks_data.checkers`).

**JSONL task file** (``.jsonl``; UTF-8, one JSON object per line, blank lines ignored)::

    {"id": "add-1", "question": "What is 2 + 3?", "answer": "5"}
    {"question": "Tom has 3 apples ...", "answer": "He has 3 + 4 = 7 apples.\\n#### 7", "level": 1}
    {"question": "Is ice cold?", "answer": "Yes"}
    {"question": "Which is a fruit?", "choices": ["stone", "pear"], "answer": "B"}
    {"question": "Spell 3 as a word.", "answer": "three", "answer_type": "exact", "aliases": ["3"]}

Fields:

``question`` (required)
    Non-empty string: the problem as shown to the model (a ``choice`` task's options are listed after
    it, lettered A, B, ...: :func:`task_text`).
``answer`` (required)
    The final answer as a string or a number. Numeric: ``"18"``, ``18``, ``"1/2"``,
    ``"\\\\frac{1}{2}"``; a string with a GSM8K-style ``#### N`` line is reduced to ``N`` (commas removed)
    and the whole string is kept as the worked ``solution``. Choice: the correct option's text or its
    letter (``"B"``). Yes/no: ``"Yes"`` or ``"No"`` (any case).
``answer_type`` (optional)
    ``numeric``, ``choice``, ``yesno`` or ``exact``. Inferred when absent: ``choice`` when ``choices``
    is given, ``yesno`` for a yes/no answer, ``numeric`` for an answer math-verify reads as a number or
    expression, else ``exact``. Items without it must all infer the same type: a file that mixes types
    must name them.
``choices`` (``choice`` only)
    The options (2–26 distinct non-empty strings); the answer must be one of them or its letter.
``aliases`` (optional)
    Other accepted answers (``["three", "3"]``): numeric and exact tasks.
``steps`` (optional)
    The reasoning steps from question to answer, a list of non-empty strings (what ``vecgen train`` teaches as
    the chain-of-thought; :attr:`Task.steps`).
``id`` (optional)
    String or integer, unique within the file; default ``<file stem>-<line number>``.
anything else
    Kept in :attr:`Task.meta` (e.g. a difficulty level or the source of the item).

**BIG-bench JSON task** (``.json``; the format of BIG-bench's ``task.json``, Srivastava et al. 2022): an
object with ``examples``, each with ``input`` and either ``target`` (a string or a list of accepted
strings: the first is the answer, the rest aliases; the type is inferred as above, per file) or
``target_scores`` (``{"option": score}``: a ``choice`` task whose answer is the single highest-scoring
option). The task's ``task_prefix`` (if any) is put before every input; ids are ``<file stem>-<index>``.

**coconut / iCoT JSON** (``.json`` holding a list; the format of COCONUT's data files, Hao et al. 2024, and of
ProsQA and GSM8k-Aug): ``[{"question": ..., "steps": ["...", ...], "answer": ...}, ...]``, each object read like a
JSONL line above (``steps`` required here; other fields, e.g. ProsQA's ``edges``, kept in :attr:`Task.meta`); ids
are ``<file stem>-<index>``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import (
    MAX_TEXT_CHARS,
    atomic_write_text,
    check_strings,
    parse_json,
    read_user_text,
)
from .checkers import CHECKERS, NumericChecker
from .task import ANSWER_TYPES, LETTERS, Task, yesno_value

#: The numeric checker (its ``unscorable`` decides the inferred type of an untyped answer).
NUMERIC = NumericChecker()

_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def final_answer_of_solution(solution: str) -> str | None:
    """The ``N`` of the last ``#### N`` line of a GSM8K-style solution, without thousands separators.

    ``"... so 9 * 2 = 18\\n#### 18"`` → ``"18"``; ``"#### 1,000"`` → ``"1000"``; no ``####`` → None.
    """
    found = _GSM8K_FINAL.findall(solution)
    if not found:
        return None
    return found[-1].replace(",", "").strip() or None


def infer_answer_type(answer: str, choices: Sequence[str] = ()) -> str:
    """The answer type of a record without ``answer_type``: ``choice`` with choices, ``yesno`` for a yes/no
    answer, ``numeric`` when math-verify reads the answer as a number or expression, else ``exact``."""
    if choices:
        return "choice"
    if yesno_value(answer) is not None:
        return "yesno"
    return "numeric" if NUMERIC.unscorable(answer) is None else "exact"


def _string_list(value: Any, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              and str(v).strip() for v in value):
        raise ConfigError(f"{where}: {name!r} must be a list of non-empty strings")
    return tuple(str(v).strip() for v in value)


def task_from_record(record: Any, *, default_id: str, where: str) -> tuple[Task, bool]:
    """Validate one decoded task record.

    Args:
        record: the decoded JSON value of one line.
        default_id: the id when the record has none.
        where: location used in error messages (``"tasks.jsonl line 3"``).

    Returns:
        ``(task, typed)``: the task and whether its record named its ``answer_type`` (else it was inferred).

    Raises:
        ConfigError: not an object, a missing or empty ``question``/``answer``, a bad ``id``, an unknown
            ``answer_type``, bad ``choices``/``aliases``, a choice answer not among the choices, or an answer
            its type's checker can never count correct.
    """
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected a JSON object with 'question' and 'answer', got {type(record).__name__}")
    data = dict(record)
    question = data.pop("question", None)
    answer = data.pop("answer", None)
    tid = data.pop("id", default_id)
    solution = data.pop("solution", None)
    answer_type = data.pop("answer_type", None)
    choices = _string_list(data.pop("choices", None), "choices", where)
    aliases = _string_list(data.pop("aliases", None), "aliases", where)
    steps = _string_list(data.pop("steps", None), "steps", where)
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: 'question' must be a non-empty string")
    if len(question) > MAX_TEXT_CHARS:
        raise ConfigError(f"{where}: 'question' has {len(question):,} characters, more than {MAX_TEXT_CHARS:,}: longer "
                          "than any model's context; is it the right field?")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise ConfigError(f"{where}: 'answer' must be a non-empty string or a number")
    if isinstance(answer, float) and not math.isfinite(answer):
        raise ConfigError(f"{where}: 'answer' {answer} is not a finite number; no output could ever match it")
    check_strings(record, where)
    if isinstance(tid, bool) or not isinstance(tid, (str, int)) or not str(tid).strip():
        raise ConfigError(f"{where}: 'id' must be a non-empty string or an integer")
    if solution is not None and not isinstance(solution, str):
        raise ConfigError(f"{where}: 'solution' must be a string")
    if answer_type is not None and answer_type not in ANSWER_TYPES:
        raise ConfigError(f"{where}: unknown answer_type {answer_type!r}; choose one of: {', '.join(ANSWER_TYPES)}")
    if choices and answer_type not in (None, "choice"):
        raise ConfigError(f"{where}: 'choices' given for an answer_type {answer_type!r} task; "
                          "choices belong to answer_type \"choice\"")
    if len(set(c.lower() for c in choices)) != len(choices):
        raise ConfigError(f"{where}: 'choices' has the same option twice: {list(choices)}")
    answer = str(answer).strip()
    if "####" in answer and answer_type in (None, "numeric") and not choices:
        final = final_answer_of_solution(answer)
        if final is None:
            raise ConfigError(f"{where}: 'answer' has '####' but no final answer after it")
        solution = solution or answer
        answer = final
    typed = answer_type is not None
    answer_type = answer_type or infer_answer_type(answer, choices)
    if answer_type == "choice":
        if answer not in choices and len(answer) == 1 and answer.upper() in LETTERS[: len(choices)]:
            answer = choices[LETTERS.index(answer.upper())]
        if aliases:
            raise ConfigError(f"{where}: 'aliases' do not apply to a choice task (the letter and the option text "
                              "are both accepted)")
    if answer_type == "yesno":
        answer = yesno_value(answer) or answer
    task = Task(id=str(tid), question=question, answer=answer, answer_type=answer_type, choices=choices,
                aliases=aliases, solution=solution, steps=steps, meta=data)
    CHECKERS[answer_type].validate(task, where)
    return task, typed


class _TypeGuard:
    """Refuses a file whose untyped items infer different answer types."""

    def __init__(self, source: str):
        self.source = source
        self.first: tuple[str, str] | None = None

    def add(self, task: Task, typed: bool, where: str) -> None:
        if typed:
            return
        if self.first is None:
            self.first = (task.answer_type, where)
        elif task.answer_type != self.first[0]:
            raise ConfigError(
                f"{self.source} mixes answer types without 'answer_type': {where} reads as {task.answer_type} "
                f"(answer {task.answer!r}) but {self.first[1]} as {self.first[0]}; add \"answer_type\" "
                f"({', '.join(ANSWER_TYPES)}) to the items")


def tasks_from_records(records: Iterable[Any], *, source: str, id_prefix: str) -> list[Task]:
    """Validate records (e.g. rows of a ``datasets`` split) into tasks with unique ids.

    Args:
        records: decoded records, one per task.
        source: name used in error messages.
        id_prefix: default ids are ``<id_prefix>-<index>`` (4 digits, 0-based).

    Raises:
        ConfigError: an invalid record, a duplicate id (the record index is named), or untyped records
            of different inferred answer types.
    """
    tasks, seen = [], set()
    guard = _TypeGuard(source)
    for i, rec in enumerate(records):
        where = f"{source} record {i}"
        task, typed = task_from_record(rec, default_id=f"{id_prefix}-{i:04d}", where=where)
        guard.add(task, typed, where)
        if task.id in seen:
            raise ConfigError(f"{where}: duplicate id {task.id!r}")
        seen.add(task.id)
        tasks.append(task)
    return tasks


def load_task_file(path: str | Path, *, id_prefix: str | None = None, index_ids: bool = False) -> list[Task]:
    """Read a task file: JSONL (``.jsonl`` or any other name) or BIG-bench JSON (``.json``); formats in the
    module docstring.

    Args:
        path: the file.
        id_prefix: prefix of default ids (default: the file stem); a JSONL line without ``id`` gets
            ``<prefix>-<line number>`` (1-based line numbers, as an editor shows them).
        index_ids: default ids are ``<prefix>-NNNN`` with the 0-based task index instead (GSM8K).

    Returns:
        The tasks in file order.

    Raises:
        ConfigError: missing file, invalid JSON, a bad record, a duplicate id, mixed inferred answer
            types, or no tasks; the message names the file and line number (JSONL) or example index
            (BIG-bench).
    """
    path = Path(path)
    prefix = id_prefix or path.stem
    text = read_user_text(path, "task file")
    if path.suffix.lower() == ".json":
        data = parse_json(text, str(path))
        if isinstance(data, list) and data and all(isinstance(rec, dict) for rec in data):
            return _coconut_tasks(path, data, prefix)
        return _bigbench_tasks(path, data, prefix)
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    guard = _TypeGuard(str(path))
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        record = parse_json(line, where)
        default_id = f"{prefix}-{len(tasks):04d}" if index_ids else f"{prefix}-{lineno}"
        task, typed = task_from_record(record, default_id=default_id, where=where)
        guard.add(task, typed, f"line {lineno}")
        if task.id in seen:
            raise ConfigError(f"{where}: duplicate id {task.id!r} (first on line {seen[task.id]})")
        seen[task.id] = lineno
        tasks.append(task)
    if not tasks:
        raise ConfigError(f"{path}: no tasks (expected one JSON object per line)")
    return tasks


def _coconut_tasks(path: Path, data: list[Any], prefix: str) -> list[Task]:
    """Tasks of a coconut/iCoT JSON list (``question``, ``steps``, ``answer`` per object)."""
    for i, rec in enumerate(data):
        if isinstance(rec, dict) and "steps" not in rec:
            raise ConfigError(f"{path} item {i}: no 'steps'; a coconut-format file (a JSON list) gives each item "
                              "'question', 'steps' (a list of strings) and 'answer'")
    return tasks_from_records(data, source=str(path), id_prefix=prefix)


def _bigbench_tasks(path: Path, data: Any, prefix: str) -> list[Task]:
    """Tasks of a BIG-bench ``task.json`` (the module docstring says how examples map to answer types)."""
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list) or not examples:
        raise ConfigError(f"{path}: a BIG-bench task file needs a non-empty 'examples' list "
                          "(objects with 'input' and 'target' or 'target_scores'); a coconut-format file is a list of "
                          "objects with 'question', 'steps' and 'answer'")
    task_prefix = data.get("task_prefix") or ""
    if not isinstance(task_prefix, str):
        raise ConfigError(f"{path}: 'task_prefix' must be a string")
    records = []
    for i, ex in enumerate(examples):
        where = f"{path} example {i}"
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str):
            raise ConfigError(f"{where}: expected an object with a string 'input'")
        rec: dict[str, Any] = {"id": f"{prefix}-{i:04d}", "question": task_prefix + ex["input"]}
        scores, target = ex.get("target_scores"), ex.get("target")
        if scores is not None:
            if (not isinstance(scores, dict) or len(scores) < 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values())):
                raise ConfigError(f"{where}: 'target_scores' must map at least 2 options to numbers")
            best = max(scores.values())
            winners = [k for k, v in scores.items() if v == best]
            if len(winners) != 1:
                raise ConfigError(f"{where}: 'target_scores' has {len(winners)} options with the top score {best}; "
                                  "a choice task needs exactly one correct option")
            rec.update(choices=list(scores), answer=winners[0], answer_type="choice")
        elif isinstance(target, str) and target.strip():
            rec["answer"] = target
        elif isinstance(target, list) and target and all(isinstance(t, str) and t.strip() for t in target):
            rec["answer"], rest = target[0], target[1:]
            if rest:
                rec["aliases"] = rest
        else:
            raise ConfigError(f"{where}: needs 'target' (a non-empty string or list of strings) or 'target_scores'")
        records.append(rec)
    tasks = tasks_from_records(records, source=str(path), id_prefix=prefix)
    return tasks


def write_task_file(path: str | Path, tasks: Sequence[Task]) -> Path:
    """Write ``tasks`` as a JSONL task file (atomically); :func:`load_task_file` reads it back unchanged."""
    lines = [json.dumps(t.to_json(), ensure_ascii=False) for t in tasks]
    return atomic_write_text(path, "\n".join(lines) + "\n")
