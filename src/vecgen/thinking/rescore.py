"""Re-check a finished thinking run with today's answer checkers (``vecgen rescore RUN_DIR``).

A run's records keep each answer's text, so a checker fix (reasoning-gym verdicts, restated arithmetic, Unicode
minus signs, ...) can be applied to runs made before it without running the model again. :func:`rescore` reloads the
run's items from its ``settings.json`` (benchmark, data source) and ``results.json`` (the item limit), checks every
record's answer with :func:`~vecgen.benchmarks_data.check_answer`, and rewrites, atomically and under the run
folder's lock, ``records.jsonl`` (``pred``, ``correct``, ``score``, ``reference``), ``results.json`` (summaries, paired
tests, pass@k and budgets recomputed from the same pairs), ``report.md`` and ``think.png``; ``rescore.json`` lists
every verdict that changed (old and new ``pred`` / ``correct`` / ``score``) and the accuracy before and after per
method. Rescoring twice changes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..benchmarks_data import Task, check_answer, load_benchmark
from ..errors import ConfigError
from ..io import (
    atomic_write_json,
    atomic_write_text,
    compress_jsonl,
    compressed,
    jsonl_file,
    read_jsonl_objects,
    to_jsonable,
)
from ..reports import RunWriter, environment_info
from .records import ThinkRecord
from .report import plot_budgets, plot_summary, render_report
from .summary import (
    MethodPair,
    budget_rows,
    budget_warnings,
    compare_pairs,
    pass_at_k_summary,
    summarize,
)

#: The fields a rescore may change in a record.
VERDICT_FIELDS = ("pred", "correct", "score", "reference")


@dataclass(frozen=True)
class VerdictChange:
    """One record whose verdict changed: its key, its answer text and the old and new verdict fields."""

    method: str
    id: str
    sample: int | None
    answer: str
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass
class Rescore:
    """The result of :func:`rescore`.

    Attributes:
        run_dir: the run folder. n_records: records checked.
        changes: every record whose ``pred``, ``correct`` or ``score`` changed (:class:`VerdictChange`).
        before, after: method → ``(correct, n)`` before and after.
    """

    run_dir: Path
    n_records: int
    changes: list[VerdictChange] = field(default_factory=list)
    before: dict[str, tuple[int, int]] = field(default_factory=dict)
    after: dict[str, tuple[int, int]] = field(default_factory=dict)

    def table(self) -> str:
        """A Markdown table: per method, correct before → after, and the verdicts that flipped each way."""
        rows = ["| method | correct before | correct after | wrong → right | right → wrong |",
                "| --- | ---: | ---: | ---: | ---: |"]
        for m, (k0, n) in self.before.items():
            k1 = self.after[m][0]
            up = sum(1 for c in self.changes if c.method == m and not c.old.get("correct") and c.new["correct"])
            down = sum(1 for c in self.changes if c.method == m and c.old.get("correct") and not c.new["correct"])
            rows.append(f"| {m} | {k0}/{n} ({100 * k0 / n:.1f}%) | {k1}/{n} ({100 * k1 / n:.1f}%) | {up} | {down} |")
        return "\n".join(rows)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path.parent} has no {path.name}: rescore takes a finished `vecgen think` run folder",
                          param="run_dir") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); restore it or rerun the evaluation",
                          param="run_dir") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; restore it or rerun the evaluation", param="run_dir")
    return data


def _tasks(settings: dict[str, Any], results: dict[str, Any], ids: Sequence[str], run_dir: Path) -> dict[str, Task]:
    benchmark = settings.get("benchmark")
    if not isinstance(benchmark, str) or benchmark == "tasks":
        raise ConfigError(f"{run_dir}: the run's items were given as Task objects, not a benchmark; rescore it from "
                          "Python with vecgen.evaluate on the same tasks", param="run_dir")
    limit = (results.get("config") or {}).get("limit") or len(set(ids))
    try:
        tasks = load_benchmark(benchmark, limit=limit, source=settings.get("data_source"))
    except ConfigError as exc:
        raise ConfigError(f"{run_dir}: cannot reload the run's benchmark {benchmark!r}: {exc}",
                          param="run_dir") from None
    by_id = {t.id: t for t in tasks}
    missing = sorted(set(ids) - set(by_id))
    if missing:
        raise ConfigError(f"{run_dir}: {len(missing)} record(s) name items the benchmark {benchmark!r} no longer has "
                          f"(first: {missing[0]!r}); was its task file changed?", param="run_dir")
    return by_id


def rescore(run_dir: str | Path) -> Rescore:
    """Re-check every record of a finished ``vecgen think`` run folder with today's checkers (module docstring).

    Args:
        run_dir: the run folder (``runs/<name>``) of a finished ``vecgen think`` run or ``vecgen.evaluate(out=)``.

    Returns:
        A :class:`Rescore` (the changed verdicts, accuracy before and after).

    Raises:
        ConfigError: not a finished think run folder (no ``settings.json`` / ``results.json`` / records), a benchmark
            that cannot be reloaded (a task file moved or changed), records naming items it does not have.
        LockedError: another process holds the run folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give a run folder of `vecgen think` (runs/<name>)",
                          param="run_dir")
    was_compressed = jsonl_file(run_dir / "records.jsonl") == compressed(run_dir / "records.jsonl")
    with RunWriter("think", name=run_dir.name, root=run_dir.parent, resumable=True) as writer:
        settings = _read_json(run_dir / "settings.json")
        results = _read_json(run_dir / "results.json")
        rows, _ = read_jsonl_objects(run_dir / "records.jsonl")
        if not rows:
            raise ConfigError(f"{run_dir} has no records to rescore", param="run_dir")
        tasks = _tasks(settings, results, [str(r.get("id")) for r in rows], run_dir)
        out = Rescore(run_dir=run_dir, n_records=len(rows))
        for row in rows:
            m = str(row.get("method"))
            k, n = out.before.get(m, (0, 0))
            out.before[m] = (k + bool(row.get("correct")), n + 1)
            task = tasks[str(row["id"])]
            if str(row.get("question", task.question)).strip() != task.question.strip():
                raise ConfigError(f"{run_dir}: item {row['id']!r} is not the item the run answered (its question "
                                  "differs): the benchmark made other items this time (a changed task file, or a "
                                  "generator that is not reproducible); nothing was rewritten", param="run_dir")
            v = check_answer(task, str(row.get("answer") or ""))
            new = {"pred": v.pred, "correct": v.correct, "score": v.score, "reference": task.answer}
            old = {f: row.get(f) for f in VERDICT_FIELDS}
            if any(old[f] != new[f] for f in ("pred", "correct", "score")):
                out.changes.append(VerdictChange(m, str(row["id"]), row.get("sample"), str(row.get("answer") or ""),
                                                 old, new))
            row.update({f: x for f, x in new.items() if f in row or x is not None})  # older records lack score
            k, n = out.after.get(m, (0, 0))
            out.after[m] = (k + v.correct, n + 1)
        atomic_write_text(writer.path("records.jsonl"),
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        if was_compressed:  # a shipped run keeps its records compressed
            compress_jsonl(writer.path("records.jsonl"))
        _rewrite_results(writer, results, [ThinkRecord.from_json(r) for r in rows], settings, len(out.changes))
        atomic_write_json(writer.path("rescore.json"), {
            "before": {m: {"correct": k, "n": n} for m, (k, n) in out.before.items()},
            "after": {m: {"correct": k, "n": n} for m, (k, n) in out.after.items()},
            "changes": [vars(c) for c in out.changes],
        })
    return out


def _pairs(entries: Any) -> list[tuple[str, str]]:
    return [(str(p["a"]), str(p["b"])) for p in entries or [] if isinstance(p, dict) and "a" in p and "b" in p]


def _rewrite_results(writer: RunWriter, results: dict[str, Any], records: list[ThinkRecord],
                     settings: dict[str, Any], changes: int) -> None:
    """``results.json``, ``report.md`` and the figures of the rescored ``records`` (the run's own names, pairs,
    samples and budgets)."""
    names = list(results.get("results") or {}) or list(dict.fromkeys(r.method for r in records))
    answer_budgets = {str(n): int(c["max_answer_tokens"]) for n, c in (settings.get("methods") or {}).items()
                      if isinstance(c, dict) and isinstance(c.get("max_answer_tokens"), int)}
    summary = summarize(records, names, answer_budgets)
    paired: list[MethodPair] = compare_pairs(records, _pairs(results.get("paired")))
    grid_paired = compare_pairs(records, _pairs(results.get("grid_paired")))
    updated = {**results, "results": summary, "paired": paired}
    if "grid_paired" in results:
        updated["grid_paired"] = grid_paired
    pass_at = None
    if results.get("pass_at_k") is not None and settings.get("samples"):
        pass_at = pass_at_k_summary(records, names, int(settings["samples"]))
        updated["pass_at_k"] = pass_at
    budgets = []
    if results.get("budgets"):
        budgets = budget_rows(summary, {str(b["name"]): (str(b["method"]), int(b["budget"]))
                                        for b in results["budgets"]})
        updated["budgets"] = budgets
        writer.save_figure(plot_budgets(budgets), "budgets.png")
    writer.save_figure(plot_summary(summary), "think.png")
    updated["rescored"] = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "vecgen_git_commit": environment_info().get("vecgen_git_commit"),
                           "changes": changes}
    atomic_write_json(writer.path("results.json"), to_jsonable(updated))
    model = (results.get("model") or {}).get("name", "?")
    title = f"vecgen think: {settings.get('benchmark')}, {results.get('n_items')} items, {model}"
    writer.write_report(render_report(summary, records, title=title, settings=results.get("config") or {},
                                      command=results.get("command_line"), paired=paired, baseline_pairs=grid_paired,
                                      pass_at=pass_at, budgets=budgets,
                                      warnings=budget_warnings(summary, answer_budgets)))


__all__ = ["Rescore", "VERDICT_FIELDS", "VerdictChange", "rescore"]
