"""``results.json``, ``report.md`` and ``train.png`` of a training run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .loop import TrainResult
from .settings import TrainSettings, dev_spec


def results_payload(s: TrainSettings, result: TrainResult) -> dict[str, Any]:
    """What ``results.json`` holds under ``results`` (the per-item dev verdicts included)."""
    return {"method": s.method, "n_thoughts": s.n_thoughts, "best_epoch": result.best_epoch, "dev": result.dev,
            "train_items": result.train_items, "parameters": result.parameters,
            "train_seconds": round(result.seconds, 1), "history": [asdict(h) for h in result.history]}


def report_markdown(s: TrainSettings, result: TrainResult, run_dir: str) -> str:
    """The run's readable report: settings, final dev accuracy with its interval, the per-epoch table."""
    dev = result.dev
    lines = [f"# vecgen train: {s.method} on {s.train_data}", ""]
    if dev.get("n"):
        lo, hi = dev["ci95"]
        lines += [f"**Dev accuracy** ({dev_spec(s)}, {dev['n']} items, epoch {dev['epoch']}'s checkpoint): "
                  f"**{dev['accuracy']:.1%}** [{lo:.1%}, {hi:.1%}] (Wilson 95 %); answered with "
                  f"`vecgen think --methods {dev['method']}`"
                  + (f", {dev['n_thoughts']} thoughts" if dev.get("n_thoughts") else "")
                  + f"; {dev['mean_generated_tokens']:.1f} generated tokens per answer.", ""]
    lines += [f"Model: {s.model}" + (f" (GPT-2, {s.layers} layer{'s' if s.layers > 1 else ''}, d = {s.hidden}, {s.heads} heads)"
                                     if s.model == "scratch" else "") + f", {result.parameters:,} parameters; "
              f"{result.train_items:,} training items; {result.seconds / 60:.1f} min of training.", ""]
    if s.latent:
        lines += [f"Curriculum: c = {s.c}, {s.stages} stages of {s.epochs_per_stage} epochs, {s.epochs} epochs, "
                  f"padding to the last stage {'on' if s.pad_to_last_stage else 'off'}, stage mixing {s.stage_mix}; "
                  "the optimizer is reset at every stage.", ""]
    lines += ["| epoch | stage | train loss (nats/token) | dev accuracy | seconds |", "| ---: | ---: | ---: | ---: | ---: |"]
    for h in result.history:
        acc = "" if h.dev_accuracy is None else f"{h.dev_accuracy:.1%} (n = {h.dev_n})"
        lines.append(f"| {h.epoch} | {h.stage} | {h.loss:.4f} | {acc} | {h.seconds:.1f} |")
    lines += ["", f"Load it: `vecgen.load('{run_dir}')`; answer: `vecgen think --model {run_dir} "
              f"--benchmark {dev_spec(s) or 'FILE'} --methods {dev.get('method', s.method)}`.", ""]
    return "\n".join(lines)


def curves_figure(s: TrainSettings, result: TrainResult) -> Any:
    """Train loss and dev accuracy per epoch, the stage boundaries dashed."""
    from ..reports.plots import new_figure

    fig, axes = new_figure(1, 2, width=10, height=3.4)
    epochs = [h.epoch for h in result.history]
    axes[0][0].plot(epochs, [h.loss for h in result.history], marker="o")
    axes[0][0].set(xlabel="epoch", ylabel="train loss (nats / token)", title=f"{s.method}: loss")
    accs = [(h.epoch, h.dev_accuracy) for h in result.history if h.dev_accuracy is not None]
    if accs:
        axes[0][1].plot([e for e, _ in accs], [a for _, a in accs], marker="o", color="tab:green")
    axes[0][1].set(xlabel="epoch", ylabel="dev accuracy", ylim=(0, 1), title=f"{s.method}: dev accuracy")
    if s.latent:
        for k in range(1, s.stages + 1):
            for ax in (axes[0][0], axes[0][1]):
                ax.axvline(k * s.epochs_per_stage - 0.5, color="grey", linestyle="--", linewidth=0.6)
    fig.tight_layout()
    return fig


def write_outputs(writer: Any, s: TrainSettings, result: TrainResult) -> None:
    """Write ``results.json``, ``report.md`` and ``train.png`` into the run folder."""
    writer.write_results(results_payload(s, result), model={"name": s.model})
    writer.write_report(report_markdown(s, result, str(writer.dir)))
    writer.save_figure(curves_figure(s, result), "train.png")


__all__ = ["curves_figure", "report_markdown", "results_payload", "write_outputs"]
