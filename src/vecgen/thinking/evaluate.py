"""Benchmark driver: run methods on the same tasks, write per-item records, summarise, report.

Used by ``vecgen think`` and ``benchmarks/bench_think.py``. Records go to the run's
``records.jsonl`` (:class:`~vecgen.reports.RunWriter`) as each batch completes; a rerun with the
same run name reads them back and skips finished ``(method, id)`` pairs, so an interrupted run
resumes where it stopped. The settings that shape results are saved in ``settings.json`` at the
start, and a resume with different settings is refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..benchmarks_data import Task, check_answer
from ..config import changed_settings
from ..errors import ConfigError
from ..io import atomic_write_json, to_jsonable
from .prompts import PromptStyle, build_prompt
from .runner import Method, ThinkConfig, ThinkOutput, run_thinking, think_budget
from .stats import PairedComparison, paired_comparison, wilson_interval

log = logging.getLogger(__name__)

#: Called after each batch with ``(method, n_items_done_in_this_batch)``.
BatchCallback = Callable[[str, int], None]
#: Called before each decode step with ``(method, step, live rows)``.
StepCallback = Callable[[str, int, int], None]


#: Largest weights recorded per thinking step in ``records.jsonl`` (``ThinkRecord.steps``; the run viewer
#: shows them on hover). With 5, the shipped 100-item, three-method GSM8K run's records take 6.1 MB.
TRACE_TOP_K = 5


@dataclass
class TraceStep:
    """One thinking step of a record (a line of ``steps`` in ``records.jsonl``).

    Attributes:
        token: the step's trace token (the top-1 for ``soft``), decoded on its own.
        entropy: nats, of the untruncated distribution (Cold Stop's H). mix_entropy: nats, of the fed mixture.
        top: up to :data:`TRACE_TOP_K` ``[token, weight]`` pairs, largest first: the fed mixture's weights
            for ``soft``, the model's distribution for ``cot`` / ``hidden`` (greedy: ``softmax(logits)``).
    """

    token: str
    entropy: float
    mix_entropy: float
    top: list[tuple[str, float]]

    @classmethod
    def from_json(cls, data: Any) -> "TraceStep":
        return cls(token=data["token"], entropy=data["entropy"], mix_entropy=data["mix_entropy"],
                   top=[(str(t), float(w)) for t, w in data["top"]])


@dataclass
class ThinkRecord:
    """One item answered by one method: a line of ``records.jsonl`` (field names are the JSON keys).

    Attributes:
        method, id, question, reference: the method's name, the item and its final answer.
        trace: the decoded top-1 thinking trace. forced: the decoded forced marker tokens.
        answer: the answer-phase text. pred: the extracted answer (None: no answer found). correct: pred == reference.
        stop_reason: why thinking ended (:class:`~vecgen.thinking.runner.StopReason` value).
        think_tokens, answer_tokens, tokens: thinking steps, answer tokens, their sum.
        mean_entropy, mean_mix_entropy: nats, over thinking steps (None without thinking).
        seconds: this item's share of its batch's wall time. batch_seconds, batch_size: the batch's.
        steps: one :class:`TraceStep` per thinking step (empty for ``direct``, and in records written before
            steps were recorded).
    """

    method: str
    id: str
    question: str
    reference: str
    trace: str
    forced: str
    answer: str
    pred: str | None
    correct: bool
    stop_reason: str
    think_tokens: int
    answer_tokens: int
    tokens: int
    mean_entropy: float | None
    mean_mix_entropy: float | None
    seconds: float
    batch_seconds: float
    batch_size: int
    steps: list[TraceStep] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ThinkRecord":
        """A record read back from ``records.jsonl`` (resume, the run viewer)."""
        values = {f.name: data.get(f.name) for f in fields(cls) if f.name != "steps"}
        return cls(**values, steps=[TraceStep.from_json(s) for s in data.get("steps") or []])


def make_record(task: Task, method: str, out: ThinkOutput, seconds: float, batch_seconds: float,
                batch_size: int) -> ThinkRecord:
    """The record of one item: ``out`` checked against ``task`` by its answer type's checker."""
    verdict = check_answer(task, out.answer)
    mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
    return ThinkRecord(
        method=method, id=task.id, question=task.question, reference=task.answer, trace=out.trace,
        forced=out.forced, answer=out.answer, pred=verdict.pred, correct=verdict.correct,
        stop_reason=out.stop_reason, think_tokens=out.think_tokens, answer_tokens=out.answer_tokens,
        tokens=out.generated_tokens, mean_entropy=mean(out.entropies), mean_mix_entropy=mean(out.mix_entropies),
        seconds=seconds, batch_seconds=batch_seconds, batch_size=batch_size, steps=trace_steps(out),
    )


def trace_steps(out: ThinkOutput) -> list[TraceStep]:
    """The per-step records of ``out`` (weights and entropies rounded to 4 decimals; empty when
    :func:`~vecgen.thinking.runner.run_thinking` recorded no top weights)."""
    if not out.top_ids:
        return []
    r = lambda x: round(float(x), 4)  # noqa: E731
    return [TraceStep(token=tok, entropy=r(h), mix_entropy=r(mh), top=[(t, r(w)) for t, w in zip(tt, ww)])
            for tok, h, mh, tt, ww in zip(out.trace_tokens, out.entropies, out.mix_entropies, out.top_tokens,
                                          out.top_weights)]


def check_settings(writer: Any, settings: dict[str, Any]) -> None:
    """Save ``settings`` in ``settings.json``, or compare them with the saved ones on resume.

    Raises:
        ConfigError: the run folder holds records made with different settings (the differing
            keys are named).
    """
    path = writer.path("settings.json")
    settings = to_jsonable(settings)
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = changed_settings(old, settings)
        if diff:
            shown = "; ".join(diff)
            raise ConfigError(
                f"run folder {writer.dir} was started with different settings ({shown}); "
                "resume with the same settings or choose another --run-name"
            )
        return
    atomic_write_json(path, settings)


def evaluate(
    lm: Any,
    tasks: Sequence[Task],
    configs: dict[str, ThinkConfig],
    writer: Any,
    style: PromptStyle,
    *,
    batch_size: int = 8,
    on_batch: BatchCallback | None = None,
    on_step: StepCallback | None = None,
    processes: Any = None,
) -> list[ThinkRecord]:
    """Run every method on ``tasks`` in batches, appending a record per item as batches complete.

    Items are taken in order, ``batch_size`` at a time; each chunk of items runs through every
    method before the next chunk, so an interrupted run has results for all methods. Items
    already in ``writer``'s records (same method and id) are skipped.

    Args:
        lm: the model.
        tasks: the items.
        configs: method name → settings (the name is what records carry).
        writer: a :class:`~vecgen.reports.RunWriter`.
        style: prompt style and marker (:func:`~vecgen.thinking.prompts.prompt_style`).
        batch_size: prompts per batch (>= 1).
        on_batch: progress callback after each batch.
        on_step: progress callback before each decode step.
        processes: this process's share of a data-parallel run (:class:`~vecgen.parallel.Processes`):
            batch ``b`` (of ``batch_size`` items, as in one process) is run here when ``processes.owns(b)``,
            and records go to ``processes.records_file``. Default: one process.

    Returns:
        All records of these tasks and methods (earlier runs' included, every process's once merged), in
        task order per method.

    Raises:
        ConfigError: ``batch_size < 1``.
        ContextLengthError: an item whose prompt plus budget does not fit the model (checked before any batch).
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size={batch_size}: allowed range is >= 1")
    from ..parallel import Processes

    processes = processes or Processes()
    marker = style.end_marker(lm.tokenizer)
    done = {(r.get("method"), r.get("id")) for r in read_all_records(writer)}
    prompts: dict[tuple[str, bool], list[int]] = {}

    def prompt_ids(task: Task, direct: bool) -> list[int]:
        key = (task.id, direct)
        if key not in prompts:
            prompts[key] = lm.encode(build_prompt(lm, task, style, direct=direct))
        return prompts[key]

    from ..decoding.engine import check_context

    for name, cfg in configs.items():  # every item fits the context, before the first batch runs
        todo = [t for t in tasks if (name, t.id) not in done]
        check_context(lm, [len(prompt_ids(t, cfg.method == Method.direct)) for t in todo],
                      [think_budget(cfg, marker)] * len(todo), names=[f"item {t.id!r} ({name})" for t in todo])
    for start in range(0, len(tasks), batch_size):
        if not processes.owns(start // batch_size):
            continue
        chunk = tasks[start : start + batch_size]
        for name, cfg in configs.items():
            todo = [t for t in chunk if (name, t.id) not in done]
            if not todo:
                continue
            direct = cfg.method == Method.direct
            t0 = time.perf_counter()
            step_cb = None if on_step is None else (lambda s, n, _m=name: on_step(_m, s, n))
            outs = run_thinking(lm, [prompt_ids(t, direct) for t in todo], cfg, marker, on_step=step_cb,
                                trace_top_k=TRACE_TOP_K)
            dt = time.perf_counter() - t0
            for task, out in zip(todo, outs):
                writer.append_record(make_record(task, name, out, dt / len(todo), dt, len(todo)),
                                     processes.records_file)
                done.add((name, task.id))
            log.debug("%s: %d items in %.1f s", name, len(todo), dt)
            if on_batch is not None:
                on_batch(name, len(todo))
    wanted = {t.id for t in tasks}
    order = {t.id: i for i, t in enumerate(tasks)}
    methods = list(configs)
    processes.wait()
    if processes.is_main:  # the order a one-process run writes: batch by batch, method by method, item order
        merge_records(writer, key=lambda d: (order.get(d.get("id"), len(order)) // batch_size,
                                             methods.index(d["method"]) if d.get("method") in methods else len(methods),
                                             order.get(d.get("id"), len(order))))
    processes.wait()
    latest: dict[tuple[str, str], ThinkRecord] = {}
    for d in writer.read_records():
        if d.get("method") in configs and d.get("id") in wanted:
            latest[(d["method"], d["id"])] = ThinkRecord.from_json(d)
    return sorted(latest.values(), key=lambda r: (list(configs).index(r.method), order[r.id]))


def _rank_files(writer: Any) -> list[Any]:
    return sorted(writer.dir.glob("records.rank*.jsonl"))


def read_all_records(writer: Any) -> list[dict[str, Any]]:
    """Records of ``records.jsonl`` and of every process's ``records.rank<i>.jsonl`` (a data-parallel run,
    possibly interrupted before its merge)."""
    rows = list(writer.read_records())
    for path in _rank_files(writer):
        rows += list(writer.read_records(path.name))
    return rows


def merge_records(writer: Any, key: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """Fold every ``records.rank<i>.jsonl`` into ``records.jsonl`` (atomically; each (method, id) once, sorted
    by ``key`` when given, stably) and remove them. No-op when there are none (one-process runs)."""
    ranks = _rank_files(writer)
    if not ranks:
        return
    from ..io import atomic_write_text

    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for d in read_all_records(writer):
        merged.setdefault((d.get("method"), d.get("id")), d)
    rows = sorted(merged.values(), key=key) if key is not None else list(merged.values())
    lines = [json.dumps(d, ensure_ascii=False) + "\n" for d in rows]
    atomic_write_text(writer.path("records.jsonl"), "".join(lines))
    for path in ranks:
        path.unlink()


@dataclass
class MethodSummary:
    """One method's results over the items (``results.json["results"][method]``).

    Attributes:
        n, correct: items and correct answers. accuracy: ``correct / n`` (None without items).
        ci95: Wilson 95% score interval of the accuracy, as fractions ``[lo, hi]``.
        no_answer: outputs without an extractable answer.
        mean_think_tokens, mean_answer_tokens: per item. wall_seconds: the sum over batches.
        items_per_second, tokens_per_second: per wall second (thinking + answer steps for tokens).
        stop_reasons: counts. mean_entropy: nats, over thinking steps (None without thinking).
    """

    n: int
    correct: int
    accuracy: float | None
    ci95: list[float]
    no_answer: int
    mean_think_tokens: float | None
    mean_answer_tokens: float | None
    wall_seconds: float
    items_per_second: float | None
    tokens_per_second: float | None
    stop_reasons: dict[str, int]
    mean_entropy: float | None


@dataclass(frozen=True)
class MethodPair(PairedComparison):
    """Methods ``a`` and ``b`` on the items both answered (the fields of
    :class:`~vecgen.thinking.stats.PairedComparison`: ``n``, ``both``, ``only_a``, ``only_b``, ``neither``,
    ``p_value`` of the exact McNemar test)."""

    a: str = ""
    b: str = ""


def summarize(records: Sequence[ThinkRecord], methods: Sequence[str]) -> dict[str, MethodSummary]:
    """Per-method :class:`MethodSummary` of ``records``, in ``methods`` order."""
    out: dict[str, MethodSummary] = {}
    for m in methods:
        rs = [r for r in records if r.method == m]
        n = len(rs)
        k = sum(bool(r.correct) for r in rs)
        wall = sum(float(r.seconds) for r in rs)
        tokens = sum(int(r.tokens) for r in rs)
        ents = [r.mean_entropy for r in rs if r.mean_entropy is not None]
        lo, hi = wilson_interval(k, n)
        out[m] = MethodSummary(
            n=n,
            correct=k,
            accuracy=k / n if n else None,
            ci95=[lo, hi],
            no_answer=sum(r.pred is None for r in rs),
            mean_think_tokens=sum(r.think_tokens for r in rs) / n if n else None,
            mean_answer_tokens=sum(r.answer_tokens for r in rs) / n if n else None,
            wall_seconds=wall,
            items_per_second=n / wall if wall > 0 else None,
            tokens_per_second=tokens / wall if wall > 0 else None,
            stop_reasons=dict(Counter(r.stop_reason for r in rs)),
            mean_entropy=sum(ents) / len(ents) if ents else None,
        )
    return out


def compare_methods(records: Sequence[ThinkRecord], methods: Sequence[str]) -> list[MethodPair]:
    """Paired comparison (:class:`MethodPair`) of every pair of methods on the items both answered, in
    ``methods`` order."""
    by = {m: {r.id: bool(r.correct) for r in records if r.method == m} for m in methods}
    out = []
    for i, a in enumerate(methods):
        for b in methods[i + 1 :]:
            ids = [k for k in by[a] if k in by[b]]
            cmp = paired_comparison([by[a][k] for k in ids], [by[b][k] for k in ids])
            out.append(MethodPair(**vars(cmp), a=a, b=b))
    return out


def comparison_table(pairs: Sequence[MethodPair]) -> str:
    """The Markdown table of :func:`compare_methods`."""
    lines = [
        "| A vs B | items | both right | only A right | only B right | both wrong | McNemar exact p |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in pairs:
        lines.append(
            f"| {c.a} vs {c.b} | {c.n} | {c.both} | {c.only_a} | {c.only_b} | {c.neither} | {c.p_value:.3g} |"
        )
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def summary_table(summary: dict[str, MethodSummary]) -> str:
    """The Markdown table of a summary (accuracy %, 95% Wilson interval, tokens, wall time)."""
    lines = [
        "| method | n | accuracy % | 95% CI (Wilson) | no answer | mean thinking tokens | mean answer tokens | wall s | items/s | stop reasons |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m, s in summary.items():
        lo, hi = s.ci95
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.stop_reasons.items()))
        fmt = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
        lines.append(
            f"| {m} | {s.n} | {_pct(s.accuracy)} | {_pct(lo)}–{_pct(hi)} | {s.no_answer} | "
            f"{fmt(s.mean_think_tokens, '.1f')} | {fmt(s.mean_answer_tokens, '.1f')} | "
            f"{s.wall_seconds:.0f} | {fmt(s.items_per_second, '.3f')} | {reasons} |"
        )
    return "\n".join(lines)


def render_report(
    summary: dict[str, MethodSummary],
    records: Sequence[ThinkRecord],
    *,
    title: str,
    settings: dict[str, Any],
    command: str | None = None,
    paired: Sequence[MethodPair] = (),
    example_chars: int = 700,
) -> str:
    """The Markdown report: settings, the summary table, the plot, the paired comparison
    (``paired`` from :func:`compare_methods`; the section is left out when empty) and one example per method."""
    parts = [f"# {title}", ""]
    if command:
        parts += ["Reproduce:", "", "```bash", command, "```", ""]
    parts += [summary_table(summary), "", "![accuracy and tokens](think.png)", ""]
    parts += ["Accuracy is the share of items whose extracted answer equals the reference (math-verify); "
              "the interval is Wilson's 95% score interval. Thinking tokens are fed thinking steps "
              "(tokens for cot, concept tokens for soft, fed hidden states for hidden); wall time is the sum of batch times.", ""]
    if paired:
        parts += ["## Paired comparison", "",
                  "The methods answered the same items; only items where exactly one of two methods is right "
                  "tell them apart (exact McNemar test, two-sided).", "",
                  comparison_table(paired), ""]
    parts += ["## Settings", "", "```json", json.dumps(to_jsonable(settings), indent=2), "```", ""]
    parts += ["## Examples (first item of each method; the trace is the top-1 token of each thinking step)", ""]
    for m in summary:
        rs = [r for r in records if r.method == m]
        if not rs:
            continue
        r = rs[0]
        trace = r.trace if len(r.trace) <= example_chars else r.trace[:example_chars] + " …"
        parts += [
            f"### {m} — {r.id} ({'correct' if r.correct else 'wrong'}: pred {r.pred!r}, reference {r.reference!r}, "
            f"stop {r.stop_reason}, {r.think_tokens} thinking tokens)",
            "",
            "Trace:",
            "",
            "```text",
            trace or "(no thinking)",
            "```",
            "",
            f"Answer: `{r.answer.strip()}`",
            "",
        ]
    return "\n".join(parts)


def plot_summary(summary: dict[str, MethodSummary]):
    """Two panels: accuracy with 95% Wilson intervals, and mean thinking + answer tokens per method."""
    from ..reports.plots import new_figure

    fig, axes = new_figure(1, 2, width=10.0, height=3.6)
    ax_acc, ax_tok = axes[0]
    names = list(summary)
    x = list(range(len(names)))
    acc = [100 * (summary[m].accuracy or 0.0) for m in names]
    lo = [a - 100 * summary[m].ci95[0] for a, m in zip(acc, names)]
    hi = [100 * summary[m].ci95[1] - a for a, m in zip(acc, names)]
    ax_acc.bar(x, acc, yerr=[lo, hi], capsize=6, color="#4c72b0")
    ax_acc.set_xticks(x, names)
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(0, 100)
    ax_acc.set_title("accuracy, 95% Wilson interval")
    think = [summary[m].mean_think_tokens or 0.0 for m in names]
    ans = [summary[m].mean_answer_tokens or 0.0 for m in names]
    ax_tok.bar(x, think, label="thinking", color="#dd8452")
    ax_tok.bar(x, ans, bottom=think, label="answer", color="#55a868")
    ax_tok.set_xticks(x, names)
    ax_tok.set_ylabel("tokens per item (mean)")
    ax_tok.set_title("generated tokens")
    ax_tok.legend()
    fig.tight_layout()
    return fig
