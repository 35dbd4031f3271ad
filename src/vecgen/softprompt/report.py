"""Figures and Markdown for soft-prompt runs (``learning_curves.png``, ``report.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..reports.plots import new_figure
from ..reports.view import register_view


def _running_mean(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def learning_curves_figure(summary: dict[str, Any], families: Sequence[str]):
    """Two panels: held-out accuracy (overall, per family, baseline without soft prompt) and the
    per-episode training loss (nats per answer token) with its running mean and online accuracy."""
    fig, axes = new_figure(2, 1, width=8.0, height=3.4)
    ax = axes[0][0]
    evals = summary["curves"]["eval"]
    x = [e["episode"] for e in evals]
    ax.plot(x, [e["accuracy"] for e in evals], "o-", color="black", linewidth=2.2, label="all (soft prompt)")
    for name in families:
        ys = [e["per_family"].get(name, {}).get("accuracy") for e in evals]
        if any(y is not None for y in ys):
            ax.plot(x, [float("nan") if y is None else y for y in ys], ".-", linewidth=1, alpha=0.8, label=name)
    base = summary.get("baseline")
    if base:
        ax.axhline(base["accuracy"], color="gray", linestyle="--", label="all, no soft prompt")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("episode")
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=7, ncol=3, loc="best")
    ax.grid(alpha=0.3)

    ax = axes[1][0]
    train = summary["curves"]["train"]
    if train:
        ep = [r["episode"] for r in train]
        loss = [r["loss"] for r in train]
        ax.plot(ep, loss, ".", color="tab:blue", alpha=0.4, label="loss per episode")
        ax.plot(ep, _running_mean(loss, 10), color="tab:blue", label="loss, running mean (10)")
        ax.set_ylabel("answer loss (nats/token)")
        twin = ax.twinx()
        twin.plot(ep, _running_mean([float(r["correct"]) for r in train], 10), color="tab:green",
                  label="online accuracy, running mean (10)")
        twin.set_ylim(-0.03, 1.03)
        twin.set_ylabel("online accuracy")
        lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
        ax.legend(lines, labels, fontsize=7, loc="upper right")
    ax.set_xlabel("episode")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def report_markdown(summary: dict[str, Any], config: Any, model: dict[str, Any]) -> str:
    """A short Markdown report: setup, accuracy table (baseline / initial / final per family), speed."""
    speed = summary["speed"]
    lines = [
        "# Soft-prompt run",
        "",
        f"Model {model.get('name')} ({model.get('family')}, {model.get('device')}, {model.get('dtype')}); "
        f"{config.soft_tokens} soft tokens, placement {config.placement.value}, "
        f"chat template {'on' if config.chat_template else 'off'}, init {config.init.value}, lr {config.lr}, "
        f"difficulty {config.difficulty}, seed {config.seed}.",
        f"Status: {summary['status']}, {summary['episodes_done']} of {config.episodes} episodes; "
        f"held-out set of {summary['baseline']['n']} items.",
        "",
        "| family | no soft prompt | soft prompt, episode 0 | soft prompt, last eval |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in summary["per_family"].items():
        lines.append(f"| {name} | {_pct(row['baseline'])} | {_pct(row['initial'])} | {_pct(row['final'])} |")
    initial, final = summary["initial"] or {}, summary["final"] or {}
    lines.append(f"| **all** | {_pct(summary['baseline']['accuracy'])} | {_pct(initial.get('accuracy'))} | "
                 f"{_pct(final.get('accuracy'))} |")
    lines += ["", "| eval episode | held-out accuracy |", "| --- | --- |"]
    lines += [f"| {e['episode']} | {_pct(e['accuracy'])} |" for e in summary["curves"]["eval"]]
    if speed["episodes_per_s"]:
        lines += [
            "",
            f"Speed: {speed['episodes_per_s']:.3f} episodes/s over {speed['episodes']} episodes "
            f"(answer generation {_pct(speed['generation_share'])}, gradient step "
            f"{_pct(speed['gradient_step_share'])} of episode time); held-out evaluations took "
            f"{speed['eval_seconds']:.1f} s in total.",
        ]
    lines += ["", "![learning curves](learning_curves.png)", ""]
    return "\n".join(lines)


@register_view("softprompt")
def view_data(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The run viewer's data of a ``softprompt`` run: curves per family and the learned vectors' nearest tokens."""
    results = run.get("results") or {}
    soft = results.get("soft_prompt") or {}
    return {"per_family": results.get("per_family") or {}, "baseline": results.get("baseline"),
            "vectors": soft.get("vectors") or [], "status": results.get("status"),
            "episodes_done": results.get("episodes_done")}
