"""Benchmark data: one task type, one checker per answer type, named benchmarks and task files.

:func:`load_benchmark` is what commands call: a registered name (``gsm8k``, ``arena``) or a path to a
task file (JSONL or BIG-bench JSON; :mod:`vecgen.benchmarks_data.tasks` has the formats). Every source
gives :class:`Task` objects of one of four answer types (``numeric``, ``choice``, ``yesno``, ``exact``),
checked by :func:`check_answer` (:mod:`vecgen.benchmarks_data.checkers`). New benchmarks register a
loader with :func:`register_benchmark`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from .arena import FAMILIES, arena_tasks
from .checkers import CHECKERS, Checker, Verdict, check_answer, extract_answer
from .gsm8k import GSM8K_TEST_SIZE, load_gsm8k, shipped_gsm8k_path
from .task import ANSWER_TYPES, Task, task_text
from .tasks import (
    final_answer_of_solution,
    infer_answer_type,
    load_task_file,
    task_from_record,
    tasks_from_records,
    write_task_file,
)

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
    """The soft-prompt arena's families as tasks (:func:`vecgen.benchmarks_data.arena.arena_tasks`), each of its
    family's answer type (numeric, yesno, choice).

    ``source``: ``shipped`` (the default: every family at difficulty 1) or ``FAMILY[,FAMILY...][@DIFFICULTY]``,
    e.g. ``causal@2`` or ``math_word@3`` (reasoning-gym's GSM8K-style problems). Items come from the arena's
    held-out stream of seed 0, round-robin over the families.
    """
    families, difficulty = list(FAMILIES), 1
    if source != "shipped":
        names, _, level = source.partition("@")
        families = [f.strip() for f in names.split(",") if f.strip()]
        if not families or (level and not level.isdigit()):
            raise ConfigError(f"data_source {source!r} for arena: expected FAMILY[,FAMILY...][@DIFFICULTY], "
                              "e.g. arithmetic,math_word@2", param="data_source")
        difficulty = int(level or 1)
    return arena_tasks(families, ARENA_BENCHMARK_SIZE, seed=0, difficulty=difficulty)


@register_benchmark("prosqa")
def _prosqa(source: str = "shipped") -> list[Task]:
    """ProsQA's validation split (300 items, :mod:`vecgen.benchmarks_data.prosqa`); ``source`` ``shipped`` only."""
    from .prosqa import load_prosqa_valid

    if source != "shipped":
        raise ConfigError(f"data_source {source!r} for prosqa: only the shipped validation split is a benchmark; "
                          "generate training sets with vecgen train --train-data prosqa", param="data_source")
    return load_prosqa_valid()


@register_benchmark("multiplication")
def _multiplication(source: str = "shipped") -> list[Task]:
    """500 multi-digit multiplications with steps (:mod:`vecgen.benchmarks_data.multiplication`); ``source``:
    ``shipped`` (4x4 digits) or ``MxN``."""
    from .multiplication import BENCHMARK_SEED, BENCHMARK_SIZE, generate_multiplication

    digits = "4x4" if source == "shipped" else source
    return generate_multiplication(BENCHMARK_SIZE, digits=digits, seed=BENCHMARK_SEED, prefix=f"mult-{digits}")


def load_benchmark(spec: str, *, limit: int | None = None, source: str | None = None) -> list[Task]:
    """Tasks of a named benchmark or a task file, the first ``limit`` of them.

    Args:
        spec: a registered name (``gsm8k``, ``arena``), a reasoning-gym generator ``rg:NAME[:key=value,...]``
            (:mod:`vecgen.benchmarks_data.rgym`; ``limit`` items are generated, default 1,000), or a path to a task
            file (``.jsonl``, or BIG-bench ``.json``).
        limit: keep the first ``limit`` tasks (>= 1); None = all.
        source: for named benchmarks, where the data comes from (GSM8K: ``shipped`` (default),
            ``hub``, or a JSONL path; ``arena``: ``shipped`` or ``FAMILY[,FAMILY...][@DIFFICULTY]``);
            not allowed with a task file.

    Raises:
        ConfigError: unknown benchmark (the message lists the known ones), ``limit <= 0``, or any
            loader error (malformed file with its line number, missing optional package).
    """
    if limit is not None and limit <= 0:
        raise ConfigError(f"limit={limit}: allowed range is >= 1 (or leave it out for all items)", param="limit")
    if spec.startswith("rg:"):
        if source is not None:
            raise ConfigError("data_source applies to gsm8k and arena; an rg: benchmark takes its settings after "
                              "the name (rg:NAME:key=value,...)", param="data_source")
        from .rgym import rg_tasks

        return rg_tasks(spec, limit)
    if spec in BENCHMARKS:
        tasks = BENCHMARKS[spec](source or "shipped")
    elif spec.endswith((".jsonl", ".json")) or Path(spec).is_file():
        if source is not None:
            raise ConfigError("data_source applies to named benchmarks only, not to a task file", param="data_source")
        tasks = load_task_file(spec)
    else:
        raise ConfigError(
            f"unknown benchmark {spec!r}; choose one of: {', '.join(sorted(BENCHMARKS))}, "
            "or give the path of a task file (.jsonl with question/answer per line, or a BIG-bench task .json)"
        )
    return tasks if limit is None else tasks[:limit]


__all__ = [
    "ANSWER_TYPES",
    "ARENA_BENCHMARK_SIZE",
    "BENCHMARKS",
    "CHECKERS",
    "Checker",
    "GSM8K_TEST_SIZE",
    "Task",
    "Verdict",
    "check_answer",
    "extract_answer",
    "final_answer_of_solution",
    "infer_answer_type",
    "load_benchmark",
    "load_gsm8k",
    "load_task_file",
    "register_benchmark",
    "shipped_gsm8k_path",
    "task_from_record",
    "task_text",
    "tasks_from_records",
    "write_task_file",
]
