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
        sample: the sample index of a ``--samples k`` run (0..k-1), else None. seed: that sample's per-item seed.
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
    sample: int | None = None
    seed: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ThinkRecord":
        """A record read back from ``records.jsonl`` (resume, the run viewer)."""
        values = {f.name: data.get(f.name) for f in fields(cls) if f.name != "steps"}
        return cls(**values, steps=[TraceStep.from_json(s) for s in data.get("steps") or []])


def make_record(task: Task, method: str, out: ThinkOutput, seconds: float, batch_seconds: float,
                batch_size: int, *, verdict: Any = None, sample: int | None = None,
                seed: int | None = None) -> ThinkRecord:
    """The record of one item: ``out`` checked against ``task`` by its answer type's checker (or ``verdict``, the
    check already made)."""
    verdict = verdict or check_answer(task, out.answer)
    mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
    return ThinkRecord(
        method=method, id=task.id, question=task.question, reference=task.answer, trace=out.trace,
        forced=out.forced, answer=out.answer, pred=verdict.pred, correct=verdict.correct,
        stop_reason=out.stop_reason, think_tokens=out.think_tokens, answer_tokens=out.answer_tokens,
        tokens=out.generated_tokens, mean_entropy=mean(out.entropies), mean_mix_entropy=mean(out.mix_entropies),
        seconds=seconds, batch_seconds=batch_seconds, batch_size=batch_size, steps=trace_steps(out), sample=sample,
        seed=seed,
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


def sample_seed(seed: int, task_id: str, sample: int) -> int:
    """The seed of sample ``sample`` of item ``task_id`` in a run seeded ``seed`` (sha256; the same on every
    machine and whatever the batch)."""
    from ..config import derive_seed

    return derive_seed("vecgen-sample", seed, task_id, sample)


def deterministic(cfg: ThinkConfig) -> bool:
    """True when a method's outputs cannot vary between samples: its thinking draws nothing and its answer is
    greedy. Thinking draws nothing for ``direct`` (none), ``hidden`` (the hidden state), greedy sampling, and the
    ``soft`` / ``full`` concept-token rules without noise: a concept token is the weighted mixture itself, not a
    draw (only ``onehot`` and ``moi`` sample a token; ``gumbel`` / ``dirichlet`` noise draws weights)."""
    rule = cfg.thinking_rule()
    thinking_fixed = (cfg.method in (Method.direct, Method.hidden) or cfg.think_sampling.greedy or rule.feeds_hidden
                      or (rule.rule in ("soft", "full") and rule.noise.value == "none"))
    return thinking_fixed and cfg.answer_sampling.greedy


def record_key(d: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The resume key of a record read back as a dict: ``(method, id, sample)``."""
    return d.get("method"), d.get("id"), d.get("sample")


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
    samples: int | None = None,
    seed: int = 0,
) -> list[ThinkRecord]:
    """Run every method on ``tasks`` in batches (:func:`vecgen.evaluation.answer_tasks`), appending a record per
    item as batches complete.

    Items are taken in order, ``batch_size`` at a time; each chunk of items runs through every method (and
    sample) before the next chunk, so an interrupted run has results for all methods. Items already in
    ``writer``'s records (same method, id and sample) are skipped.

    Args:
        lm: the model.
        tasks: the items.
        configs: name → settings (the name is what records carry: a method, or a grid combination).
        writer: a :class:`~vecgen.reports.RunWriter`.
        style: prompt style and marker (:func:`~vecgen.thinking.prompts.prompt_style`).
        batch_size: prompts per batch (>= 1).
        on_batch: progress callback after each batch.
        on_step: progress callback before each decode step.
        processes: this process's share of a data-parallel run (:class:`~vecgen.parallel.Processes`):
            batch ``b`` (of ``batch_size`` items, as in one process) is run here when ``processes.owns(b)``,
            and records go to ``processes.records_file``. Default: one process.
        samples: k >= 1: answer every item k times per method, sample ``s`` of item ``i`` drawing from its own
            generators seeded :func:`sample_seed` (``seed``, item id, ``s``), so it does not depend on the batch
            it ran in; records carry ``sample`` and ``seed``. None: one answer per item, the batch sharing one
            generator per stream seeded by the configs' ``seed``.
        seed: the run seed of ``samples``.

    Returns:
        All records of these tasks and methods (earlier runs' included, every process's once merged), in
        method, task, sample order.

    Raises:
        ConfigError: ``batch_size < 1`` or ``samples < 1``.
        ContextLengthError: an item whose prompt plus budget does not fit the model (checked before any batch).
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size={batch_size}: allowed range is >= 1")
    if samples is not None and samples < 1:
        raise ConfigError(f"--samples={samples}: allowed range is >= 1")
    from ..evaluation import answer_tasks
    from ..parallel import Processes

    processes = processes or Processes()
    marker = style.end_marker(lm.tokenizer)
    done = {record_key(r) for r in read_all_records(writer)}
    prompts: dict[tuple[str, bool], list[int]] = {}
    draws: list[int | None] = [None] if samples is None else list(range(samples))

    def prompt_ids(task: Task, direct: bool) -> list[int]:
        key = (task.id, direct)
        if key not in prompts:
            prompts[key] = lm.encode(build_prompt(lm, task, style, direct=direct))
        return prompts[key]

    from ..decoding.engine import check_context

    for name, cfg in configs.items():  # every item fits the context, before the first batch runs
        todo = [t for t in tasks if any((name, t.id, s) not in done for s in draws)]
        check_context(lm, [len(prompt_ids(t, cfg.method == Method.direct)) for t in todo],
                      [think_budget(cfg, marker)] * len(todo), names=[f"item {t.id!r} ({name})" for t in todo])

    def answer_fn(name: str, sample: int | None):
        cfg = configs[name]
        direct = cfg.method == Method.direct
        step_cb = None if on_step is None else (lambda s, n: on_step(name, s, n))

        def fn(batch: list[Task]) -> list[tuple[str, ThinkOutput]]:
            seeds = None if sample is None else [sample_seed(seed, t.id, sample) for t in batch]
            outs = run_thinking(lm, [prompt_ids(t, direct) for t in batch], cfg, marker, on_step=step_cb,
                                trace_top_k=TRACE_TOP_K, row_seeds=seeds)
            return [(o.answer, o) for o in outs]

        return fn

    runs = {(name, s): answer_fn(name, s) for name in configs for s in draws}
    for a in answer_tasks(tasks, runs, batch_size=batch_size, skip=lambda key, t: (*key[:1], t.id, key[1]) in done,
                          processes=processes, on_batch=None if on_batch is None else (lambda key, n: on_batch(key[0], n))):
        name, sample = a.run
        rec = make_record(a.task, name, a.output, a.seconds, a.batch_seconds, a.batch_size, verdict=a.verdict,
                          sample=sample, seed=None if sample is None else sample_seed(seed, a.task.id, sample))
        writer.append_record(rec, processes.records_file)
        done.add((name, a.task.id, sample))
        log.debug("%s: %s in %.2f s", name, a.task.id, a.seconds)
    wanted = {t.id for t in tasks}
    order = {t.id: i for i, t in enumerate(tasks)}
    methods = list(configs)
    processes.wait()
    if processes.is_main:  # the order a one-process run writes: batch by batch, method by method, item order
        merge_records(writer, key=lambda d: (order.get(d.get("id"), len(order)) // batch_size,
                                             methods.index(d["method"]) if d.get("method") in methods else len(methods),
                                             d.get("sample") or 0, order.get(d.get("id"), len(order))))
    processes.wait()
    latest: dict[tuple[Any, Any, Any], ThinkRecord] = {}
    for d in writer.read_records():
        if d.get("method") in configs and d.get("id") in wanted and d.get("sample") in draws:
            latest[record_key(d)] = ThinkRecord.from_json(d)
    return sorted(latest.values(), key=lambda r: (methods.index(r.method), order[r.id], r.sample or 0))


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
    """Fold every ``records.rank<i>.jsonl`` into ``records.jsonl`` (atomically; each (method, id, sample) once, sorted
    by ``key`` when given, stably) and remove them. No-op when there are none (one-process runs)."""
    ranks = _rank_files(writer)
    if not ranks:
        return
    from ..io import atomic_write_text

    merged: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for d in read_all_records(writer):
        merged.setdefault(record_key(d), d)
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


def compare_pairs(records: Sequence[ThinkRecord], pairs: Sequence[tuple[str, str]]) -> list[MethodPair]:
    """Paired comparison (:class:`MethodPair`) of each ``(a, b)`` on the items both answered (first samples only
    in a ``--samples`` run: sample 0, the same draw index for every method)."""
    by: dict[str, dict[str, bool]] = {}
    for r in records:
        if r.sample in (None, 0):
            by.setdefault(r.method, {})[r.id] = bool(r.correct)
    out = []
    for a, b in pairs:
        ra, rb = by.get(a, {}), by.get(b, {})
        ids = [k for k in ra if k in rb]
        cmp = paired_comparison([ra[k] for k in ids], [rb[k] for k in ids])
        out.append(MethodPair(**vars(cmp), a=a, b=b))
    return out


def compare_methods(records: Sequence[ThinkRecord], methods: Sequence[str]) -> list[MethodPair]:
    """:func:`compare_pairs` of every pair of methods, in ``methods`` order."""
    return compare_pairs(records, [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]])


def compare_to_baselines(records: Sequence[ThinkRecord], names: Sequence[str],
                         baselines: dict[str, str]) -> list[MethodPair]:
    """Every grid combination against its method's baseline combination (``baselines``: method → name; a
    combination ``METHOD[...]`` belongs to ``METHOD``)."""
    pairs = []
    for name in names:
        base = baselines.get(name.split("[", 1)[0])
        if base is not None and base != name:
            pairs.append((base, name))
    return compare_pairs(records, pairs)


@dataclass
class PassAtK:
    """pass@1 and pass@k of one method over items sampled ``samples`` times (``results.json["pass_at_k"]``).

    Attributes:
        items: items with all samples. samples: n, the samples per item. k: the budget of ``pass_at_k``.
        pass_at_1, pass_at_k: means over items of the unbiased per-item estimates (Chen et al. 2021);
        ci95_1, ci95_k: percentile-bootstrap 95% intervals over items (2,000 resamples, seed 0).
        any_correct: items with at least one correct sample.
    """

    items: int
    samples: int
    k: int
    pass_at_1: float
    ci95_1: list[float]
    pass_at_k: float
    ci95_k: list[float]
    any_correct: int


def pass_at_k_summary(records: Sequence[ThinkRecord], names: Sequence[str], samples: int,
                      k: int | None = None) -> dict[str, PassAtK]:
    """Per name, :class:`PassAtK` over the items that have all ``samples`` samples (``k`` defaults to ``samples``).

    Raises:
        ValueError: ``k`` outside ``[1, samples]``.
    """
    from .stats import mean_ci, pass_at_k

    k = samples if k is None else k
    if not 1 <= k <= samples:
        raise ValueError(f"pass@k needs 1 <= k <= samples, got k={k}, samples={samples}")
    out = {}
    for name in names:
        per: dict[str, list[bool]] = {}
        for r in records:
            if r.method == name and r.sample is not None:
                per.setdefault(r.id, []).append(bool(r.correct))
        full = [v for v in per.values() if len(v) == samples]
        p1 = [pass_at_k(samples, sum(v), 1) for v in full]
        pk = [pass_at_k(samples, sum(v), k) for v in full]
        c1, ck = mean_ci(p1), mean_ci(pk)
        out[name] = PassAtK(items=len(full), samples=samples, k=k, pass_at_1=c1["mean"], ci95_1=[c1["low"], c1["high"]],
                            pass_at_k=ck["mean"], ci95_k=[ck["low"], ck["high"]], any_correct=sum(any(v) for v in full))
    return out


def pass_at_k_table(summary: dict[str, PassAtK]) -> str:
    """The Markdown table of :func:`pass_at_k_summary`."""
    lines = ["| method | items | samples | pass@1 % | 95% CI | pass@k % | 95% CI | items with a correct sample |",
             "| --- | ---: | ---: | ---: | --- | ---: | --- | ---: |"]
    for m, p in summary.items():
        lines.append(f"| {m} | {p.items} | {p.samples} | {_pct(p.pass_at_1)} | {_pct(p.ci95_1[0])}–{_pct(p.ci95_1[1])} | "
                     f"{_pct(p.pass_at_k)} (k={p.k}) | {_pct(p.ci95_k[0])}–{_pct(p.ci95_k[1])} | {p.any_correct} |")
    return "\n".join(lines)


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
    baseline_pairs: Sequence[MethodPair] = (),
    pass_at: dict[str, PassAtK] | None = None,
    example_chars: int = 700,
) -> str:
    """The Markdown report: settings, the summary table, the plot, the paired comparison (``paired`` from
    :func:`compare_methods`), a grid's comparisons with its baselines (``baseline_pairs``), pass@k (``pass_at``;
    each section left out when empty) and one example per method."""
    parts = [f"# {title}", ""]
    if command:
        parts += ["Reproduce:", "", "```bash", command, "```", ""]
    parts += [summary_table(summary), "", "![accuracy and tokens](think.png)", ""]
    parts += ["Accuracy is the share of items whose extracted answer matches the reference (the answer type's "
              "checker: math-verify for numeric, the option for choice, yes/no, normalised string for exact); "
              "the interval is Wilson's 95% score interval. Thinking tokens are fed thinking steps "
              "(tokens for cot, concept tokens for soft, fed hidden states for hidden); wall time is the sum of batch times.", ""]
    if paired:
        parts += ["## Paired comparison", "",
                  "The methods answered the same items; only items where exactly one of two methods is right "
                  "tell them apart (exact McNemar test, two-sided).", "",
                  comparison_table(paired), ""]
    if baseline_pairs:
        parts += ["## Ablation grid: each combination against its baseline", "",
                  "A = the baseline combination, B = the ablated one; exact McNemar test on the items both answered"
                  " (first sample of each).", "", comparison_table(baseline_pairs), ""]
    if pass_at:
        parts += ["## pass@k", "",
                  "Every item was answered `samples` times per method, each sample from generators seeded by the run "
                  "seed, the item id and the sample index. pass@k is the unbiased estimator of Chen et al. (2021), "
                  "averaged over items; intervals are percentile bootstraps over items.", "",
                  pass_at_k_table(pass_at), ""]
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
