"""GSM8K (Cobbe et al. 2021, arXiv 2110.14168; openai/grade-school-math, MIT license).

Three sources, one result (a list of :class:`~vecgen.benchmarks_data.tasks.Task` with ids
``gsm8k-<split>-NNNN``, 0-based in file order, and answers taken from the ``#### N`` line):

* ``shipped`` — the test split (1,319 problems) packaged with vecgen under
  ``vecgen/data/gsm8k/`` with its license; works offline.
* ``hub`` — ``datasets.load_dataset("openai/gsm8k", "main", split=...)`` (needs the optional
  ``datasets`` package and network access or a local hub cache).
* a path — a JSONL file in GSM8K's own format (``question``, ``answer`` with ``#### N``), which is
  also a valid vecgen task file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from .tasks import Task, load_task_file, tasks_from_records

#: Number of problems in the GSM8K test split.
GSM8K_TEST_SIZE = 1319


def shipped_gsm8k_path() -> Path:
    """Path of the packaged GSM8K test split (``vecgen/data/gsm8k/test.jsonl``)."""
    return Path(str(resources.files("vecgen") / "data" / "gsm8k" / "test.jsonl"))


def load_gsm8k(source: str | Path = "shipped", *, split: str = "test") -> list[Task]:
    """Load GSM8K as tasks.

    Args:
        source: ``"shipped"`` (offline, test split only), ``"hub"`` (``datasets``), or a JSONL path.
        split: ``"test"`` or ``"train"`` (``hub`` only; the shipped copy is the test split).

    Returns:
        Tasks in the source's order; ``answer`` is the number after ``####`` (commas removed),
        ``solution`` the worked solution.

    Raises:
        ConfigError: an unknown split, ``datasets`` not installed, the hub unreachable, or a
            malformed file (the line number is named).
    """
    if split not in ("test", "train"):
        raise ConfigError(f"unknown GSM8K split {split!r}; choose test or train")
    prefix = f"gsm8k-{split}"
    if str(source) == "shipped":
        if split != "test":
            raise ConfigError("the shipped GSM8K copy is the test split only; use --data-source hub for train")
        return load_task_file(shipped_gsm8k_path(), id_prefix=prefix, index_ids=True)
    if str(source) == "hub":
        try:
            import datasets  # optional dependency
        except ImportError:
            raise ConfigError(
                "loading GSM8K from the hub needs the optional 'datasets' package (pip install datasets); "
                "the shipped test split works offline: --data-source shipped"
            ) from None
        try:
            rows = datasets.load_dataset("openai/gsm8k", "main", split=split)
        except Exception as exc:  # network, hub or cache errors of many types
            raise ConfigError(
                f"could not load openai/gsm8k from the hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "offline, use the shipped test split: --data-source shipped"
            ) from None
        return tasks_from_records(rows, source="openai/gsm8k", id_prefix=prefix)
    return load_task_file(source, id_prefix=prefix, index_ids=True)

