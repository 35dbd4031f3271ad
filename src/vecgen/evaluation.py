"""The one evaluation loop: run tasks through answer functions in batches, check every answer, yield results.

``vecgen think`` (every method, grid combination and sample: :func:`vecgen.thinking.evaluate.evaluate`) and
the soft-prompt arena's evaluation (:func:`vecgen.softprompt.train.evaluate`) both answer tasks with
:func:`answer_tasks`; they differ only in how a batch is answered and in the records they write. Checking is
:func:`vecgen.benchmarks_data.check_answer` (one checker per answer type), resumption is the caller's
``skip`` (the ``(run, task)`` pairs already in its records), and a data-parallel run's share is
``processes.owns(batch index)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .benchmarks_data import Task, Verdict, check_answer
from .errors import ConfigError

#: The key of a run (a method name, ``(name, sample)``, ...).
K = TypeVar("K", bound=Hashable)
#: An answer function's raw output per task.
R = TypeVar("R")
#: Answers a batch of tasks: one ``(answer text, raw output)`` per task, in order. The text is what is checked.
AnswerFn = Callable[[list[Task]], list[tuple[str, R]]]


@dataclass
class Answered(Generic[K, R]):
    """One task answered by one run.

    Attributes:
        task: the task. run: the key of the answer function (a method name, ``(name, sample)``, ...).
        text: the answer text that was checked. output: the answer function's raw output for this task.
        verdict: :func:`~vecgen.benchmarks_data.check_answer`'s result.
        seconds: this task's share of its batch's wall time (s). batch_seconds, batch_size: the batch's.
    """

    task: Task
    run: K
    text: str
    output: R
    verdict: Verdict
    seconds: float
    batch_seconds: float
    batch_size: int


#: Items per chunk of a continuously batched evaluation, in batches: a chunk's rows refill until its items are done,
#: so only its last rows run below the full batch; records are written (and resumes restart) per chunk.
CHUNK_BATCHES = 4


def chunk_size(batch_size: int, continuous: bool) -> int:
    """Tasks per call of an answer function: :data:`CHUNK_BATCHES` × ``batch_size`` when it batches continuously,
    else ``batch_size``."""
    return batch_size * (CHUNK_BATCHES if continuous else 1)


def answer_tasks(
    tasks: Sequence[Task],
    runs: Mapping[K, AnswerFn[R]],
    *,
    batch_size: int = 8,
    skip: Callable[[K, Task], bool] | None = None,
    processes: Any = None,
    on_batch: Callable[[K, int], None] | None = None,
    continuous: bool = False,
) -> Iterator[Answered[K, R]]:
    """Answer ``tasks`` with every run, ``batch_size`` tasks at a time, yielding each checked answer.

    Tasks are taken in order; each chunk of tasks goes through every run (in ``runs`` order) before the next
    chunk, so an interrupted evaluation has results for every run. A consumer that writes each result as it
    comes (``records.jsonl``) loses at most the batch in flight.

    Args:
        tasks: the items.
        runs: run key → answer function (:data:`AnswerFn`).
        batch_size: tasks per call of an answer function (>= 1).
        skip: ``skip(run, task)`` True for pairs already answered (resume); default none.
        processes: this process's share of a data-parallel run (:class:`~vecgen.parallel.Processes`): chunk
            ``b`` is answered here when ``processes.owns(b)``. Default: one process, every chunk.
        on_batch: called after each batch with ``(run, tasks answered)``.
        continuous: the answer functions batch continuously themselves (their rows refill as they finish,
            ``batch_size`` at a time): each call gets :func:`chunk_size` tasks (:data:`CHUNK_BATCHES` batches'
            worth), the unit of ordering, resume and data-parallel ownership. False: ``batch_size`` tasks per call.

    Raises:
        ConfigError: ``batch_size < 1``.
        RuntimeError: an answer function returned a different number of answers than it was given tasks.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: allowed range is >= 1", param="batch_size")
    size = chunk_size(batch_size, continuous)
    for start in range(0, len(tasks), size):
        if processes is not None and not processes.owns(start // size):
            continue
        chunk = list(tasks[start : start + size])
        for key, fn in runs.items():
            todo = [t for t in chunk if skip is None or not skip(key, t)]
            if not todo:
                continue
            t0 = time.perf_counter()
            outs = fn(todo)
            dt = time.perf_counter() - t0
            if len(outs) != len(todo):
                raise RuntimeError(f"run {key!r} returned {len(outs)} answers for {len(todo)} tasks")
            for task, (text, raw) in zip(todo, outs):
                yield Answered(task, key, text, raw, check_answer(task, text), dt / len(todo), dt, len(todo))
            if on_batch is not None:
                on_batch(key, len(todo))
