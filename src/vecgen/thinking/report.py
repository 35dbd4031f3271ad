"""Presenting a thinking run: Markdown tables, the report, the summary plot, and the run viewer's data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import to_jsonable
from ..reports.plots import new_figure
from ..reports.view import (
    StringTable,
    compact_steps,
    read_records,
    register_view,
    rounded,
)
from .methods import get_method, method_names
from .records import ThinkRecord
from .runner import ThinkConfig
from .summary import BudgetRow, MethodPair, MethodSummary, PassAtK


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


#: The columns of a summary table (Markdown in reports, HTML in notebooks).
SUMMARY_COLUMNS = ("method", "n", "accuracy %", "95% CI (Wilson)", "mean score", "no answer", "mean thinking tokens",
                   "mean answer tokens", "wall s", "items/s", "stop reasons")


def summary_cells(name: str, s: MethodSummary) -> list[str]:
    """One row of a summary table (:data:`SUMMARY_COLUMNS`) as text."""
    lo, hi = s.ci95
    fmt = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
    return [name, str(s.n), _pct(s.accuracy), f"{_pct(lo)}–{_pct(hi)}", fmt(s.mean_score, ".3f"), str(s.no_answer),
            fmt(s.mean_think_tokens, ".1f"), fmt(s.mean_answer_tokens, ".1f"), f"{s.wall_seconds:.0f}",
            fmt(s.items_per_second, ".3f"), ", ".join(f"{k} {v}" for k, v in sorted(s.stop_reasons.items()))]


def summary_table(summary: dict[str, MethodSummary]) -> str:
    """The Markdown table of a summary (accuracy %, 95% Wilson interval, tokens, wall time)."""
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    lines += ["| " + " | ".join(summary_cells(m, s)) + " |" for m, s in summary.items()]
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
    budgets: Sequence[BudgetRow] = (),
    warnings: Sequence[str] = (),
    example_chars: int = 700,
) -> str:
    """The Markdown report: settings, the summary table, the plot, the paired comparison (``paired`` from
    :func:`compare_methods`), a grid's comparisons with its baselines (``baseline_pairs``), pass@k (``pass_at``;
    each section left out when empty) and one example per method."""
    parts = [f"# {title}", ""]
    if command:
        parts += ["Reproduce:", "", "```bash", command, "```", ""]
    parts += [summary_table(summary), "", "![accuracy and tokens](think.png)", ""]
    if warnings:
        parts += ["**Warnings:**", "", *[f"- {w}" for w in warnings], ""]
    parts += ["Accuracy is the share of items whose extracted answer matches the reference (the answer type's "
              "checker: math-verify for numeric, never crediting an unevaluated expression of the question's "
              "numbers; the option for choice, yes/no, normalised string for exact; for reasoning-gym items the "
              "generator's own verifier, correct at score 1, its format rewards counted 0 in the mean score); "
              "the interval is Wilson's 95% score interval. Thinking tokens are fed thinking steps "
              "(tokens for cot, concept tokens for soft, fed hidden states for hidden); wall time is the sum of batch times.", ""]
    if budgets:
        parts += ["## Thinking budgets", "",
                  "Each method ran with each thinking budget (the end-of-thinking marker forced at the budget). "
                  "Points per 100 thinking tokens = accuracy (%) / mean thinking tokens × 100: what each 100 tokens of "
                  "thinking bought. The paired comparison below compares the methods at each budget.", "",
                  budget_table(budgets), "", "![accuracy against thinking tokens](budgets.png)", ""]
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


def budget_table(rows: Sequence[BudgetRow]) -> str:
    """The Markdown table of :func:`~vecgen.thinking.summary.budget_rows`."""
    fmt = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
    lines = ["| method | budget | n | accuracy % | 95% CI (Wilson) | mean thinking tokens | points per 100 thinking tokens |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.method} | {r.budget} | {r.n} | {_pct(r.accuracy)} | {_pct(r.ci95[0])}–{_pct(r.ci95[1])} | "
                     f"{fmt(r.mean_think_tokens, '.1f')} | {fmt(r.points_per_100_tokens, '.2f')} |")
    return "\n".join(lines)


def plot_budgets(rows: Sequence[BudgetRow]):
    """Accuracy (with 95% Wilson intervals) against mean thinking tokens, one line per method across its budgets."""
    fig, axes = new_figure(1, 1, width=6.4, height=4.0)
    ax = axes[0][0]
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        x = [r.mean_think_tokens or 0.0 for r in mine]
        y = [100 * (r.accuracy or 0.0) for r in mine]
        err = [[a - 100 * r.ci95[0] for a, r in zip(y, mine)], [100 * r.ci95[1] - a for a, r in zip(y, mine)]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, label=method)
        for xi, yi, r in zip(x, y, mine):
            ax.annotate(str(r.budget), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("mean thinking tokens per item")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("accuracy against thinking tokens (labels: budget)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_summary(summary: dict[str, MethodSummary]):
    """Two panels: accuracy with 95% Wilson intervals, and mean thinking + answer tokens per method."""
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


def step_weights(cfg: Any) -> str:
    """What a method's recorded step weights are, as the runner decided
    (:attr:`~vecgen.thinking.runner.ThinkConfig.steps_record_mixture`): ``"mixture"`` or ``"distribution"``
    (also for a configuration this version cannot read)."""
    try:
        return "mixture" if ThinkConfig(**cfg).steps_record_mixture else "distribution"
    except Exception:  # noqa: BLE001 - missing or from another version: the label is all that depends on it
        return "distribution"


def method_summary(cfg: Any) -> str | None:
    """The registered method's one-line summary for a saved config (the viewer's column note); None when the config
    names no registered method."""
    name = cfg.get("method") if isinstance(cfg, dict) else None
    return get_method(name).summary if name in method_names() else None


@register_view("think")
def view_data(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The run viewer's data of a ``think`` run: items, each method's answer and trace steps (compact columns)."""
    records = read_records(run_dir / "records.jsonl")
    def column(data: dict[str, Any]) -> str:  # a --samples run: one column per method and sample
        sample = data.get("sample")
        return str(data.get("method")) if sample in (None, 0) else f"{data.get('method')} #{sample}"

    methods = list((run.get("config") or {}).get("methods") or {})
    for data in records:
        if column(data) not in methods:
            methods.append(column(data))
    strings = StringTable()
    items: dict[str, dict[str, Any]] = {}
    for data in records:
        steps = data.get("steps") or []  # read as plain lists: a full GSM8K run has ~700k steps
        rec = ThinkRecord.from_json({**data, "steps": []})
        item = items.setdefault(rec.id, {"id": rec.id, "q": rec.question, "ref": rec.reference, "r": {}})
        row: dict[str, Any] = {
            "a": rec.answer, "p": rec.pred, "c": 1 if rec.correct else 0, "s": rec.stop_reason,
            "n": rec.think_tokens, "tr": rec.trace, "f": rec.forced, "H": rounded(rec.mean_entropy),
            "mH": rounded(rec.mean_mix_entropy),
        }
        if steps:  # weights and entropies in thousandths (integers keep the page ~25% smaller)
            row.update(compact_steps(steps, strings))
        item["r"][column(data)] = row
    results = run.get("results") or {}
    cfgs = (run.get("config") or {}).get("methods") or {}
    kinds = {m: step_weights(cfgs.get(m.split(" #")[0])) for m in methods}
    about = {m: method_summary(cfgs.get(m.split(" #")[0])) for m in methods}
    return {"methods": methods, "kinds": kinds, "about": {m: a for m, a in about.items() if a}, "summary": results, "paired": run.get("paired") or [],
            "items": list(items.values()), "tokens": strings.items}


__all__ = ["SUMMARY_COLUMNS", "budget_table", "comparison_table", "plot_budgets", "pass_at_k_table", "plot_summary", "render_report", "step_weights", "summary_cells", "summary_table",
           "view_data"]
