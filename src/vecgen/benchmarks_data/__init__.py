"""Benchmark data: named benchmarks (GSM8K) and the task-file format other task sets plug into.

:func:`load_benchmark` is what commands call: a registered name (``gsm8k``) or a path to a task
file (see :mod:`vecgen.benchmarks_data.tasks` for the format). New benchmarks register a loader
with :func:`register_benchmark`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from .gsm8k import GSM8K_TEST_SIZE, load_gsm8k, shipped_gsm8k_path
from .tasks import Task, final_answer_of_solution, load_task_file, task_from_record, tasks_from_records, write_task_file

#: A loader: ``fn(source) -> list[Task]``; ``source`` is loader-specific (``"shipped"``, ``"hub"``, a path).
BenchmarkLoader = Callable[[str], list[Task]]

BENCHMARKS: dict[str, BenchmarkLoader] = {}


def register_benchmark(name: str) -> Callable[[BenchmarkLoader], BenchmarkLoader]:
    """Decorator adding a named benchmark loader to :data:`BENCHMARKS`."""

    def deco(fn: BenchmarkLoader) -> BenchmarkLoader:
        BENCHMARKS[name] = fn
        return fn

    return deco


@register_benchmark("gsm8k")
def _gsm8k(source: str = "shipped") -> list[Task]:
    return load_gsm8k(source)


#: Items the ``arena`` benchmark generates; ``--limit`` takes the first N.
ARENA_BENCHMARK_SIZE = 300


@register_benchmark("arena")
def _arena(source: str = "shipped") -> list[Task]:
    """The soft-prompt arena's numeric-answer families as tasks (:func:`vecgen.softprompt.arena.arena_tasks`).

    ``source``: ``shipped`` (the default: arithmetic, sequence and math_word at difficulty 1) or
    ``FAMILY[,FAMILY...][@DIFFICULTY]``, e.g. ``math_word@3`` (reasoning-gym's GSM8K-style problems).
    Items come from the arena's held-out stream of seed 0, round-robin over the families.
    """
    from ..softprompt.arena import NUMERIC_FAMILIES, arena_tasks

    families, difficulty = list(NUMERIC_FAMILIES), 1
    if source != "shipped":
        names, _, level = source.partition("@")
        families = [f.strip() for f in names.split(",") if f.strip()]
        if not families or (level and not level.isdigit()):
            raise ConfigError(f"--data-source {source!r} for arena: expected FAMILY[,FAMILY...][@DIFFICULTY], "
                              "e.g. arithmetic,math_word@2")
        difficulty = int(level or 1)
    return arena_tasks(families, ARENA_BENCHMARK_SIZE, seed=0, difficulty=difficulty)


def load_benchmark(spec: str, *, limit: int | None = None, source: str | None = None) -> list[Task]:
    """Tasks of a named benchmark or a task file, the first ``limit`` of them.

    Args:
        spec: a registered name (``gsm8k``) or a path to a ``.jsonl`` task file.
        limit: keep the first ``limit`` tasks (>= 1); None = all.
        source: for named benchmarks, where the data comes from (GSM8K: ``shipped`` (default),
            ``hub``, or a JSONL path; ``arena``: ``shipped`` or ``FAMILY[,FAMILY...][@DIFFICULTY]``);
            not allowed with a task file.

    Raises:
        ConfigError: unknown benchmark (the message lists the known ones), ``limit <= 0``, or any
            loader error (malformed file with its line number, missing optional package).
    """
    if limit is not None and limit <= 0:
        raise ConfigError(f"--limit={limit}: allowed range is >= 1 (or leave it out for all items)")
    if spec in BENCHMARKS:
        tasks = BENCHMARKS[spec](source or "shipped")
    elif spec.endswith(".jsonl") or Path(spec).is_file():
        if source is not None:
            raise ConfigError("--data-source applies to named benchmarks only, not to a task file")
        tasks = load_task_file(spec)
    else:
        raise ConfigError(
            f"unknown benchmark {spec!r}; choose one of: {', '.join(sorted(BENCHMARKS))}, "
            "or give the path of a task file (.jsonl with question/answer/id per line)"
        )
    return tasks if limit is None else tasks[:limit]


__all__ = [
    "ARENA_BENCHMARK_SIZE",
    "BENCHMARKS",
    "GSM8K_TEST_SIZE",
    "Task",
    "final_answer_of_solution",
    "load_benchmark",
    "load_gsm8k",
    "load_task_file",
    "register_benchmark",
    "shipped_gsm8k_path",
    "task_from_record",
    "tasks_from_records",
    "write_task_file",
]
