"""Thinking evaluations: run methods on the same benchmark items, check every answer, summarise, compare, report.

:func:`evaluate` is the library call (``vecgen.evaluate``); ``vecgen think`` parses its flags into
:class:`~vecgen.thinking.settings.EvaluationSettings` and calls :func:`run_evaluation` with a run folder. Both
return an :class:`Evaluation`: per-method summaries (accuracy, Wilson interval, tokens), the paired exact tests,
pass@k, and the typed records.

In memory (no run folder) nothing is written. With a run folder (``out=PATH`` or a
:class:`~vecgen.reports.RunWriter`), records go to its ``records.jsonl`` as each batch completes; a rerun on the
same folder reads them back and skips finished ``(method, id, sample)`` triples, so an interrupted run resumes
where it stopped. The settings that shape results are saved in ``settings.json`` at the start, and a resume with
different settings is refused. A finished run writes ``results.json``, ``report.md``, ``think.png`` and the viewer.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ..benchmarks_data import Task, load_benchmark
from ..config import changed_settings, derive_seed
from ..decoding.engine import check_context
from ..errors import ConfigError
from ..evaluation import answer_tasks, chunk_size
from ..io import atomic_write_json, atomic_write_text, to_jsonable
from ..models import LoadedModel
from ..parallel import Processes
from ..reports import RunWriter
from .prompts import PromptStyle, build_prompt, prompt_style
from .records import TRACE_TOP_K, ThinkRecord, make_record, record_key
from .report import (
    SUMMARY_COLUMNS,
    plot_budgets,
    plot_summary,
    render_report,
    summary_cells,
    summary_table,
)
from .methods import get_method, method_names
from .runner import ThinkConfig, ThinkOutput, run_thinking, think_budget
from .settings import EvaluationSettings
from .summary import (
    BudgetRow,
    MethodPair,
    MethodSummary,
    PassAtK,
    compare_methods,
    compare_pairs,
    budget_rows,
    budget_warnings,
    compare_to_baselines,
    pass_at_k_summary,
    summarize,
)

log = logging.getLogger(__name__)

#: Called after each batch with ``(method, n_items_done_in_this_batch)``.
BatchCallback = Callable[[str, int], None]
#: Called before each decode step with ``(method, step, live rows)``.
StepCallback = Callable[[str, int, int], None]

#: How to resume a run folder (the message printed on Ctrl-C).
RESUME_HINT = "rerun the same command with --run-name {name} to resume"


def saved_without_legacy(saved: dict[str, Any]) -> dict[str, Any]:
    """A ``settings.json`` of an older version as this one writes it: each method's config without the keys its
    method no longer has (:attr:`~vecgen.thinking.methods.ThinkingMethod.legacy_keys`), so such runs resume."""
    methods = saved.get("methods")
    if not isinstance(methods, dict):
        return saved
    out = {}
    for name, cfg in methods.items():
        if isinstance(cfg, dict) and cfg.get("method") in method_names():
            legacy = get_method(cfg["method"]).legacy_keys
            cfg = {k: v for k, v in cfg.items() if k not in legacy}
        out[name] = cfg
    return {**saved, "methods": out}


def check_settings(writer: RunWriter, settings: dict[str, Any]) -> None:
    """Save ``settings`` in ``settings.json``, or compare them with the saved ones on resume.

    Raises:
        ConfigError: the run folder holds records made with different settings (the differing
            keys are named).
    """
    path = writer.path("settings.json")
    settings = to_jsonable(settings)
    if path.exists():
        old = saved_without_legacy(json.loads(path.read_text(encoding="utf-8")))
        diff = changed_settings(old, settings)
        if diff:
            shown = "; ".join(diff)
            raise ConfigError(
                f"run folder {writer.dir} was started with different settings ({shown}); "
                "resume with the same settings or choose another --run-name"
            )
        return
    atomic_write_json(path, settings)


def check_resume_before_load(run_dir: str | Path, settings: EvaluationSettings) -> None:
    """Refuse, before the model loads, a resume whose model-independent settings (benchmark, data source, every
    method's config, samples) differ from the run folder's ``settings.json``; :func:`check_settings` compares the
    rest (model, dtype, marker, backend) once the model is loaded. Nothing happens for a new run folder.

    Raises:
        ConfigError: the differing settings named, as :func:`check_settings` names them.
    """
    path = Path(run_dir) / "settings.json"
    if not path.exists():
        return
    old = saved_without_legacy(json.loads(path.read_text(encoding="utf-8")))
    new = _settings_without_model(settings, settings.method_configs())
    keys = [k for k in _MODEL_FREE_KEYS if k in old or k in new]
    diff = changed_settings({k: old.get(k, "<unset>") for k in keys}, {k: new.get(k, "<unset>") for k in keys})
    if diff:
        raise ConfigError(f"run folder {run_dir} was started with different settings ({'; '.join(diff)}); "
                          "resume with the same settings or choose another --run-name")


def sample_seed(seed: int, task_id: str, sample: int) -> int:
    """The seed of sample ``sample`` of item ``task_id`` in a run seeded ``seed`` (sha256; the same on every
    machine and whatever the batch)."""
    return derive_seed("vecgen-sample", seed, task_id, sample)


def answer_items(
    lm: LoadedModel,
    tasks: Sequence[Task],
    configs: dict[str, ThinkConfig],
    style: PromptStyle,
    *,
    writer: RunWriter | None = None,
    batch_size: int = 8,
    on_batch: BatchCallback | None = None,
    on_step: StepCallback | None = None,
    processes: Processes | None = None,
    samples: int | None = None,
    seed: int = 0,
    continuous: bool = True,
) -> list[ThinkRecord]:
    """Run every method on ``tasks`` in batches (:func:`vecgen.evaluation.answer_tasks`), one record per item,
    method and sample.

    Items are taken in order, ``batch_size`` at a time; each chunk of items runs through every method (and
    sample) before the next chunk, so an interrupted run has results for all methods. With ``writer``, each record
    is appended to its records file as its batch completes, and items already in its records (same method, id and
    sample) are skipped (resume).

    Args:
        lm: the model.
        tasks: the items.
        configs: name → settings (the name is what records carry: a method, or a grid combination).
        style: prompt style and marker (:func:`~vecgen.thinking.prompts.prompt_style`).
        writer: a run folder (:class:`~vecgen.reports.RunWriter`); None: in memory, nothing written.
        batch_size: prompts per batch (>= 1).
        on_batch: progress callback after each batch.
        on_step: progress callback before each decode step.
        processes: this process's share of a data-parallel run (:class:`~vecgen.parallel.Processes`; needs a
            ``writer``): batch ``b`` (of ``batch_size`` items, as in one process) is run here when
            ``processes.owns(b)``, and records go to ``processes.records_file``. Default: one process.
        samples: k >= 1: answer every item k times per method, sample ``s`` of item ``i`` drawing from its own
            generators seeded :func:`sample_seed` (``seed``, item id, ``s``), so it does not depend on the batch
            it ran in; records carry ``sample`` and ``seed``. None: one answer per item, the batch sharing one
            generator per stream seeded by the configs' ``seed``.
        seed: the run seed of ``samples``.
        continuous: continuous batching (:func:`~vecgen.decoding.engine.run`'s ``max_batch``): each method takes
            :data:`~vecgen.evaluation.CHUNK_BATCHES` × ``batch_size`` items at a time through ``batch_size`` rows
            that refill as rows finish; records are written per chunk. False: static batches of ``batch_size``
            items.

    Returns:
        All records of these tasks and methods (earlier runs' included, every process's once merged), in
        method, task, sample order.

    Raises:
        ConfigError: ``batch_size < 1``, ``samples < 1``, or several processes without a ``writer``.
        ContextLengthError: an item whose prompt plus budget does not fit the model (checked before any batch).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: allowed range is >= 1", param="batch_size")
    if samples is not None and samples < 1:
        raise ConfigError(f"samples={samples}: allowed range is >= 1", param="samples")
    processes = processes or Processes()
    if processes.count > 1 and writer is None:
        raise ConfigError("a data-parallel evaluation needs a run folder (out=...) to gather its processes' records")
    marker = style.end_marker(lm.tokenizer)
    found: dict[tuple[Any, Any, Any], ThinkRecord] = {}
    if writer is not None:
        for d in read_all_records(writer):
            found.setdefault(record_key(d), ThinkRecord.from_json(d))
    done = set(found)
    prompts: dict[tuple[str, bool], list[int]] = {}
    draws: list[int | None] = [None] if samples is None else list(range(samples))

    def prompt_ids(task: Task, direct: bool) -> list[int]:
        key = (task.id, direct)
        if key not in prompts:
            prompts[key] = lm.encode(build_prompt(lm, task, style, direct=direct))
        return prompts[key]

    for name, cfg in configs.items():  # every item fits the context, before the first batch runs
        todo = [t for t in tasks if any((name, t.id, s) not in done for s in draws)]
        check_context(lm, [len(prompt_ids(t, not cfg.spec.thinks)) for t in todo],
                      [think_budget(cfg, marker)] * len(todo), names=[f"item {t.id!r} ({name})" for t in todo])

    def answer_fn(name: str, sample: int | None) -> Callable[[list[Task]], list[tuple[str, ThinkOutput]]]:
        cfg = configs[name]
        direct = not cfg.spec.thinks
        step_cb = None if on_step is None else (lambda s, n: on_step(name, s, n))

        def fn(batch: list[Task]) -> list[tuple[str, ThinkOutput]]:
            seeds = None if sample is None else [sample_seed(seed, t.id, sample) for t in batch]
            outs = run_thinking(lm, [prompt_ids(t, direct) for t in batch], cfg, marker, on_step=step_cb,
                                trace_top_k=TRACE_TOP_K, row_seeds=seeds, max_batch=batch_size if continuous else None)
            return [(o.answer, o) for o in outs]

        return fn

    runs = {(name, s): answer_fn(name, s) for name in configs for s in draws}
    for a in answer_tasks(tasks, runs, batch_size=batch_size, continuous=continuous, skip=lambda key, t: (*key[:1], t.id, key[1]) in done,
                          processes=processes, on_batch=None if on_batch is None else (lambda key, n: on_batch(key[0], n))):
        name, sample = a.run
        rec = make_record(a.task, name, a.output, a.seconds, a.batch_seconds, a.batch_size, verdict=a.verdict,
                          sample=sample, seed=None if sample is None else sample_seed(seed, a.task.id, sample))
        if writer is not None:
            writer.append_record(rec, processes.records_file)
        found[(name, a.task.id, sample)] = rec
        done.add((name, a.task.id, sample))
        log.debug("%s: %s in %.2f s", name, a.task.id, a.seconds)
    order = {t.id: i for i, t in enumerate(tasks)}
    methods = list(configs)
    if writer is not None and (processes.count > 1 or _rank_files(writer)):  # gather every process's records
        processes.wait()
        if processes.is_main:  # the order a one-process run writes: chunk by chunk, method by method, item order
            size = chunk_size(batch_size, continuous)
            merge_records(writer, key=lambda d: (order.get(str(d.get("id")), len(order)) // size,
                                                 methods.index(d["method"]) if d.get("method") in methods else len(methods),
                                                 d.get("sample") or 0, order.get(str(d.get("id")), len(order))))
        processes.wait()
        found = {}
        for d in writer.read_records():
            found[record_key(d)] = ThinkRecord.from_json(d)
    keep = [r for key, r in found.items() if r.method in configs and r.id in order and r.sample in draws]
    return sorted(keep, key=lambda r: (methods.index(r.method), order[r.id], r.sample or 0))


def _rank_files(writer: RunWriter) -> list[Path]:
    return sorted(writer.dir.glob("records.rank*.jsonl"))


def read_all_records(writer: RunWriter) -> list[dict[str, Any]]:
    """Records of ``records.jsonl`` and of every process's ``records.rank<i>.jsonl`` (a data-parallel run,
    possibly interrupted before its merge)."""
    rows = list(writer.read_records())
    for path in _rank_files(writer):
        rows += list(writer.read_records(path.name))
    return rows


def merge_records(writer: RunWriter, key: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """Fold every ``records.rank<i>.jsonl`` into ``records.jsonl`` (atomically; each (method, id, sample) once, sorted
    by ``key`` when given, stably) and remove them. No-op when there are none (one-process runs)."""
    ranks = _rank_files(writer)
    if not ranks:
        return
    merged: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for d in read_all_records(writer):
        merged.setdefault(record_key(d), d)
    rows = sorted(merged.values(), key=key) if key is not None else list(merged.values())
    lines = [json.dumps(d, ensure_ascii=False) + "\n" for d in rows]
    atomic_write_text(writer.path("records.jsonl"), "".join(lines))
    for path in ranks:
        path.unlink()


@dataclass
class Evaluation:
    """The result of :func:`evaluate`: every method (or grid combination) on the same items.

    Attributes:
        benchmark: what was evaluated (a benchmark name, a task file, or ``"tasks"``).
        names: the runs' names in order: methods, or ``METHOD[field=value,...]`` grid combinations.
        summary: name → :class:`~vecgen.thinking.summary.MethodSummary` (accuracy and its Wilson 95% interval,
            no-answer count, mean thinking / answer tokens, wall seconds, stop reasons, mean entropy in nats).
        records: one :class:`~vecgen.thinking.records.ThinkRecord` per item, name (and sample), in name, item,
            sample order.
        paired: exact McNemar tests of every pair of methods (no grid).
        grid_paired: each grid combination against its method's baseline combination.
        pass_at_k: name → :class:`~vecgen.thinking.summary.PassAtK` of a ``samples`` run, else None.
        settings: the settings that shaped the results (``settings.json`` of a run folder).
        n_items: items evaluated. run_dir: the run folder, or None in memory.
    """

    benchmark: str
    names: list[str]
    summary: dict[str, MethodSummary]
    records: list[ThinkRecord]
    paired: list[MethodPair] = field(default_factory=list)
    grid_paired: list[MethodPair] = field(default_factory=list)
    pass_at_k: dict[str, PassAtK] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    n_items: int = 0
    run_dir: Path | None = None

    def budget_rows(self, settings: EvaluationSettings) -> list[BudgetRow]:
        """Each method at each thinking budget of a ``budgets`` run (:func:`~vecgen.thinking.summary.budget_rows`);
        empty otherwise."""
        if not settings.budgets:
            return []
        configs = settings.method_configs()
        return budget_rows(self.summary, {n: (configs[n].method, configs[n].max_think_tokens)
                                          for n in self.names if n in configs})

    def compare(self, a: str, b: str) -> MethodPair:
        """The paired exact McNemar test of ``a`` and ``b`` on the items both answered (first samples).

        Raises:
            ConfigError: a name that is not among :attr:`names`.
        """
        for name in (a, b):
            if name not in self.names:
                raise ConfigError(f"{name!r} is not in this evaluation; choose from: {', '.join(self.names)}")
        return compare_pairs(self.records, [(a, b)])[0]

    def accuracy(self, name: str) -> float | None:
        """The share of ``name``'s answers that are correct (None without items)."""
        return self.summary[name].accuracy

    def table(self) -> str:
        """The Markdown summary table (what ``vecgen think`` prints)."""
        return summary_table(self.summary)

    def to_pandas(self) -> Any:
        """One row per record (name, id, sample, the answer text, the extracted prediction, score, verdict, reference,
        tokens, stop reason, seconds) as a ``pandas.DataFrame``.

        Raises:
            ImportError: pandas is not installed (``pip install pandas``).
        """
        try:
            import pandas as pd  # type: ignore[import-untyped]  # optional: only this method needs it
        except ImportError as exc:  # pragma: no cover - pandas is installed with the test extra
            raise ImportError("Evaluation.to_pandas needs pandas: pip install pandas") from exc
        cols = ("method", "id", "sample", "answer", "pred", "score", "correct", "reference", "think_tokens",
                "answer_tokens", "tokens", "stop_reason", "mean_entropy", "seconds")
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.records], columns=list(cols))

    def __repr__(self) -> str:
        acc = ", ".join(f"{n} {s.correct}/{s.n}" for n, s in self.summary.items())
        return f"Evaluation({self.benchmark!r}, {self.n_items} items: {acc})"

    def _repr_html_(self) -> str:
        cell = lambda tag, x: f"<{tag}>{html.escape(x)}</{tag}>"  # noqa: E731
        rows = ["<tr>" + "".join(cell("td", x) for x in summary_cells(name, s)) + "</tr>"
                for name, s in self.summary.items()]
        pairs = [f"<tr><td>{html.escape(p.a)} vs {html.escape(p.b)}</td><td>{p.n}</td><td>{p.only_a}</td>"
                 f"<td>{p.only_b}</td><td>{p.p_value:.3g}</td></tr>" for p in self.paired + self.grid_paired]
        out = [f"<p><b>{html.escape(self.benchmark)}</b>, {self.n_items} items</p>",
               "<table><thead><tr>" + "".join(cell("th", c) for c in SUMMARY_COLUMNS) + "</tr></thead><tbody>",
               *rows, "</tbody></table>"]
        if pairs:
            out += ["<table><thead><tr><th>A vs B</th><th>items</th><th>only A right</th><th>only B right</th>"
                    "<th>McNemar exact p</th></tr></thead><tbody>", *pairs, "</tbody></table>"]
        return "\n".join(out)


@contextmanager
def _progress(names: Sequence[str], total: int, done: dict[str, int], show: bool) -> Iterator[
        tuple[BatchCallback | None, StepCallback | None]]:
    """Rich progress bars, one per name (``(on_batch, on_step)`` callbacks), or no callbacks when not shown."""
    if not show:
        yield None, None
        return

    with Progress(TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[at]}"),
                  TimeElapsedColumn(), transient=False) as progress:
        bars = {m: progress.add_task(m, total=total, completed=done.get(m, 0), at="") for m in names}

        def on_step(m: str, step: int, rows: int) -> None:
            if step % 8 == 0:
                progress.update(bars[m], at=f"step {step}, {rows} rows")

        def on_batch(m: str, n: int) -> None:
            progress.update(bars[m], advance=n, at="")

        yield on_batch, on_step


#: The keys of ``settings.json`` that do not depend on the model (:func:`check_resume_before_load` compares them).
_MODEL_FREE_KEYS = ("benchmark", "data_source", "methods", "samples", "sample_seed")


def _settings_without_model(settings: EvaluationSettings, configs: dict[str, ThinkConfig]) -> dict[str, Any]:
    """The part of :func:`run_settings` known before the model loads (:data:`_MODEL_FREE_KEYS`)."""
    out: dict[str, Any] = {
        "benchmark": settings.benchmark,
        "data_source": settings.data_source or ("shipped" if settings.benchmark == "gsm8k" else None),
        "methods": {m: c.saved_settings() for m, c in configs.items()},
    }
    if settings.samples is not None:  # runs without samples keep the settings of older versions
        out.update(samples=settings.samples, sample_seed=settings.sampling.seed)
    return out


def run_settings(lm: LoadedModel, settings: EvaluationSettings, style: PromptStyle,
                 configs: dict[str, ThinkConfig]) -> dict[str, Any]:
    """The settings that shape a run's results (``settings.json``; a resume must match them); ``configs`` are
    ``settings.method_configs()``."""
    out = _settings_without_model(settings, configs)
    out.update(model=lm.name, dtype=str(lm.dtype).replace("torch.", ""), marker=style.marker)
    if lm.backend.name != "transformers":  # runs of older versions (transformers only) stay resumable
        out["backend"] = lm.backend.name
    return out


def run_evaluation(
    lm: LoadedModel,
    settings: EvaluationSettings,
    tasks: Sequence[Task] | None = None,
    *,
    writer: RunWriter | None = None,
    processes: Processes | None = None,
    progress: bool = True,
    command_line: str | None = None,
) -> Evaluation:
    """Evaluate ``settings``' methods on ``tasks`` (default: :meth:`load_tasks` of the settings).

    With ``writer`` (a run folder entered by the caller) the run resumes from and appends to its records and, on
    the main process, writes ``results.json``, ``report.md`` and ``think.png``; without it, nothing is written.

    Args:
        lm: the model. settings: :class:`~vecgen.thinking.settings.EvaluationSettings`.
        tasks: the items (None: loaded from ``settings.benchmark``).
        writer: the run folder, or None (in memory).
        processes: this process's share of a data-parallel run (needs ``writer``).
        progress: show a progress bar per method (rich; main process only).
        command_line: the command that started the run, for ``results.json`` and the report.

    Returns:
        The :class:`Evaluation` (on every process; only the main process writes).

    Raises:
        ConfigError: bad settings, a resume with other settings, a data-parallel run without a run folder.
        ContextLengthError: an item that does not fit the model with its budget (before the first batch).
    """
    processes = processes or Processes()
    tasks = list(tasks) if tasks is not None else load_tasks(settings)
    settings.check_size(len(tasks))
    style = prompt_style(lm, settings.marker)
    configs = settings.method_configs()
    names = list(configs)
    saved = run_settings(lm, settings, style, configs)
    if writer is not None:
        if processes.is_main:
            check_settings(writer, saved)
        processes.wait()
        if not processes.is_main:
            check_settings(writer, saved)  # the main process saved them; a mismatch here is a bug
        writer.config = {**saved, "limit": settings.limit, "batch_size": settings.batch_size,
                         "run_dir": str(writer.dir)}
    draws: list[int | None] = [None] if settings.samples is None else list(range(settings.samples))
    before = {record_key(r) for r in read_all_records(writer)} if writer is not None else set()
    done = {m: sum((m, t.id, s) in before for t in tasks for s in draws) for m in names}
    with _progress(names, len(tasks) * len(draws), done, progress and processes.is_main) as (on_batch, on_step):
        records = answer_items(lm, tasks, configs, style, writer=writer, batch_size=settings.batch_size,
                               on_batch=on_batch, on_step=on_step, processes=processes, samples=settings.samples,
                               seed=settings.sampling.seed, continuous=not settings.static_batching)
    axes = settings.axes
    answer_budgets = {n: c.max_answer_tokens for n, c in configs.items()}
    summary = summarize(records, names, answer_budgets)
    if processes.is_main:
        for line in budget_warnings(summary, answer_budgets):
            log.warning("%s", line)
    result = Evaluation(
        benchmark=settings.benchmark, names=names, summary=summary, records=records,
        paired=(compare_pairs(records, settings.budget_pairs()) if settings.budgets
                else [] if axes else compare_methods(records, names)),
        grid_paired=compare_to_baselines(records, names, settings.baselines()) if axes else [],
        pass_at_k=pass_at_k_summary(records, names, settings.samples) if settings.samples is not None else None,
        settings=saved, n_items=len(tasks), run_dir=None if writer is None else writer.dir)
    if writer is not None and processes.is_main:
        write_evaluation(writer, result, lm, settings, command_line=command_line)
    return result


def write_evaluation(writer: RunWriter, result: Evaluation, lm: LoadedModel, settings: EvaluationSettings, *,
                     command_line: str | None = None) -> None:
    """Write a finished evaluation's ``think.png``, ``results.json`` and ``report.md`` into its run folder."""
    writer.save_figure(plot_summary(result.summary), "think.png")
    extra: dict[str, Any] = {"paired": result.paired}
    budgets = result.budget_rows(settings)
    if budgets:
        writer.save_figure(plot_budgets(budgets), "budgets.png")
        extra["budgets"] = budgets
    if settings.axes:
        extra.update(grid={a.field: list(a.values) for a in settings.axes}, baselines=settings.baselines(),
                     grid_paired=result.grid_paired)
    if result.pass_at_k is not None:
        extra["pass_at_k"] = result.pass_at_k
    writer.write_results(result.summary, model=lm.describe(), n_items=result.n_items, command_line=command_line,
                         **extra)
    title = f"vecgen think: {settings.benchmark}, {result.n_items} items, {lm.name}"
    warnings = budget_warnings(result.summary, {n: c.max_answer_tokens for n, c in settings.method_configs().items()})
    writer.write_report(render_report(result.summary, result.records, title=title, settings=writer.config,
                                      command=command_line, paired=result.paired, baseline_pairs=result.grid_paired,
                                      pass_at=result.pass_at_k, budgets=budgets, warnings=warnings))


def load_tasks(settings: EvaluationSettings) -> list[Task]:
    """The items of ``settings.benchmark`` (its ``data_source``, the first ``limit``).

    Raises:
        ConfigError: an unknown benchmark or a bad task file (the line is named).
    """
    return load_benchmark(settings.benchmark, limit=settings.limit, source=settings.data_source)


def evaluate(
    lm: LoadedModel,
    benchmark: str | Sequence[Task] = "gsm8k",
    *,
    out: str | Path | None = None,
    progress: bool = True,
    **settings: Any,
) -> Evaluation:
    """Answer a benchmark's items with every method and compare them (what ``vecgen think`` runs).

    Example::

        ev = vecgen.evaluate(m, "gsm8k", limit=10, methods=["cot", "soft"])
        ev.summary["soft"].accuracy, ev.compare("cot", "soft").p_value

    Args:
        lm: a loaded model (:func:`vecgen.load`).
        benchmark: ``gsm8k``, ``arena``, a task file (``.jsonl`` / BIG-bench ``.json``), or a list of
            :class:`~vecgen.benchmarks_data.Task` objects.
        out: None (default): in memory, nothing is written. A path: the run folder (its last part is the run
            name), written and resumed exactly as ``vecgen think --run-name`` does.
        progress: show a progress bar per method.
        settings: :class:`~vecgen.thinking.settings.EvaluationSettings` fields: ``methods`` (default
            ``("direct", "cot", "soft")``), ``limit``, ``data_source``, ``samples`` (pass@k), ``grid``
            (``["noise=none,gumbel"]``), ``baseline``, ``batch_size`` (8), ``sampling`` (the discrete sampler, a
            :class:`~vecgen.config.SamplingConfig`; default greedy), ``mixing``, ``concept`` (concept-token
            sampling overrides), ``max_think_tokens`` (320), ``max_answer_tokens`` (24), ``cold_stop_tau`` (0.01
            nats), ``cold_stop_steps`` (48), ``marker``, ``allow_large`` (go ahead with a run above 64
            configurations or 20,000 generations).

    Returns:
        An :class:`Evaluation` (shown as a table in Jupyter).

    Raises:
        ConfigError: a bad setting (the parameter is named), an unknown benchmark, a bad task file, a run folder of
            another command or with other settings, a run larger than the limits above without ``allow_large``.
        ContextLengthError: an item that does not fit the model with its budget (checked before the first batch).
    """
    tasks = None
    if not isinstance(benchmark, str):
        tasks = list(benchmark)
        if not tasks or not all(isinstance(t, Task) for t in tasks):
            raise ConfigError("benchmark: give a benchmark name, a task file, or a non-empty list of Task objects",
                              param="benchmark")
        benchmark = "tasks"
        if settings.get("limit") is not None:
            tasks = tasks[: int(settings["limit"])]
    config = EvaluationSettings.create(benchmark=benchmark, **settings)
    if tasks is None:
        tasks = load_tasks(config)
    if out is None:
        return run_evaluation(lm, config, tasks, progress=progress)
    target = Path(out)
    with RunWriter("think", name=target.name, root=target.parent, resumable=True, resume_hint=RESUME_HINT) as writer:
        return run_evaluation(lm, config, tasks, writer=writer, progress=progress)


__all__ = [
    "Evaluation",
    "answer_items",
    "check_resume_before_load",
    "check_settings",
    "evaluate",
    "load_tasks",
    "merge_records",
    "read_all_records",
    "run_evaluation",
    "run_settings",
    "sample_seed",
    "write_evaluation",
]
