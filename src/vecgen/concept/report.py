"""Presentation of a concept-token run: console lines, the Markdown report, the figure, the files.

Everything here reads the typed records (:class:`~vecgen.concept.records.ConceptRecord`); the writer turns
them into JSON only when it writes ``records.jsonl`` and ``results.json``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..decoding.translate import Translation
from ..io import atomic_torch_save
from ..reports import RunWriter
from ..reports.plots import new_figure
from ..reports.view import read_records, register_view, rounded
from .records import ConceptRecord, ConceptVector
from .run import ConceptConfig, ConceptRun


def _fmt_tok(s: str) -> str:
    return repr(s)


def format_vector_line(v: ConceptVector, k: int = 3) -> str:
    """``Vector 1 top weights: ' Paris' (0.96), ' London' (0.01), ...  H=0.25 nats  nearest=' Paris' ...``."""
    tops = ", ".join(f"{_fmt_tok(t.token)} ({t.value:.2f})" for t in v.top[:k])
    return (f"Vector {v.index} top weights: {tops}  | H={v.entropy:.2f} nats, "
            f"nearest cos {_fmt_tok(v.nearest_cosine.token)} ({v.nearest_cosine.value:.2f}), "
            f"off-manifold {v.manifold_distance:.3f} ({v.relative_manifold_distance:.2f}× mean norm)")


def translation_display(t: Translation, width: int = 90) -> str:
    """One translation for display: its answer, or the reason it is empty with the raw ids."""
    if t.answer:
        text = t.answer if t.method != "nearest" else t.text
        text = repr(text)
        return text if len(text) <= width else text[: width - 1] + "…"
    ids = " ".join(str(i) for i in t.token_ids[:8])
    return f"(empty: {t.empty_reason}; ids [{ids}])"


def format_prompt_records(records: list[ConceptRecord], vector_k: int = 3) -> str:
    """Console text for one prompt's records (vectors once, then each N's translations)."""
    if not records:
        return ""
    last = max(records, key=lambda r: r.n)
    lines = [f"[{last.model}] Prompt: {last.prompt!r}"]
    lines += ["  " + format_vector_line(v, vector_k) for v in last.vectors]
    for rec in records:
        lines.append(f"  N={rec.n}:")
        for name, t in rec.translations.items():
            lines.append(f"    {name:<12} {translation_display(t)}")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def concept_report(run: ConceptRun, config: ConceptConfig, *, figure: str | None = None) -> str:
    """The Markdown report of a run."""
    s = config.sampling
    lines = [
        "# Concept tokens",
        "",
        f"Models: {', '.join(m['name'] for m in run.models)}. Mixing rule `{config.mixing.rule}` "
        f"(max_topk {config.mixing.max_topk}, beta {config.mixing.beta}, noise {config.mixing.noise.value}"
        f"{', hidden_scale ' + config.mixing.hidden_scale.value if config.mixing.feeds_hidden else ''}); "
        f"sampling temperature {s.temperature}, top_k {s.top_k}, top_p {s.top_p}, min_p {s.min_p}, seed {s.seed}. "
        f"N ∈ {{{', '.join(map(str, config.n_values))}}}; translations: greedy, {config.translation_tokens} tokens"
        f"{'; English-only tokens (' + config.english_policy + ')' if config.english_only else ''}.",
        "",
        "Entropies in nats. *Off-manifold* = L2 distance to the nearest real token embedding, also relative to the "
        "mean real-token embedding norm. Empty translations are explained by their raw token ids.",
        "",
    ]
    for note in run.notes:
        lines += [f"> {note}", ""]
    if figure:
        lines += [f"![per-step top weights and entropy]({figure})", ""]
    by_model: dict[str, list[ConceptRecord]] = {}
    for r in run.records:
        by_model.setdefault(r.model, []).append(r)
    for model, recs in by_model.items():
        lines += [f"## {model}", ""]
        for prompt in dict.fromkeys(r.prompt for r in recs):
            prs = [r for r in recs if r.prompt == prompt]
            last = max(prs, key=lambda r: r.n)
            lines += [f"### {prompt!r}", "", "| vector | top weights | H | nearest (cos) | nearest (L2) | off-manifold | norm |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for v in last.vectors:
                tops = ", ".join(f"`{_md(repr(t.token))}` {t.value:.2f}" for t in v.top[:5])
                lines.append(
                    f"| {v.index} | {tops} | {v.entropy:.2f} | `{_md(repr(v.nearest_cosine.token))}` "
                    f"{v.nearest_cosine.value:.2f} | `{_md(repr(v.nearest_l2.token))}` "
                    f"{v.nearest_l2.value:.3f} | {v.manifold_distance:.3f} ({v.relative_manifold_distance:.2f}×) "
                    f"| {v.norm:.3f} ({v.relative_norm:.2f}×) |")
            lines += ["", "| N | method | translation | raw ids (first 8) |", "| --- | --- | --- | --- |"]
            for r in prs:
                for name, t in r.translations.items():
                    ids = " ".join(map(str, t.token_ids[:8]))
                    lines.append(f"| {r.n} | {name} | {_md(translation_display(t, 120))} | {ids} |")
            lines.append("")
    if len(by_model) > 1:
        lines += comparison_markdown(run)
    methods = dict.fromkeys(m for r in run.records for m in r.translations)
    lines += ["## Translation prompts", ""]
    for m in methods:
        example = next(r.translations[m].prompt for r in run.records if m in r.translations)
        lines.append(f"- `{m}`: `{_md(example)}`")
    lines.append("")
    return "\n".join(lines)


def side_by_side(run: ConceptRun) -> tuple[list[str], list[tuple[str, int, str, list[Any]]]]:
    """The grid of a several-model run: ``(models, rows)``; one row per (prompt, N, method) in run order,
    ``(prompt, N, method, cells)`` with one cell per model: its :class:`ConceptRecord` for the pseudo-method
    ``"vector 1 top"``, else its :class:`~vecgen.decoding.translate.Translation`, or None where it has none."""
    models = list(dict.fromkeys(r.model for r in run.records))
    index = {(r.model, r.prompt, r.n): r for r in run.records}
    methods = list(dict.fromkeys(m for r in run.records for m in r.translations))
    rows: list[tuple[str, int, str, list[Any]]] = []
    for p in dict.fromkeys(r.prompt for r in run.records):
        for n in sorted({r.n for r in run.records}):
            recs = [index.get((m, p, n)) for m in models]
            rows.append((p, n, "vector 1 top", recs))
            rows += [(p, n, meth, [r.translations.get(meth) if r else None for r in recs]) for meth in methods]
    return models, rows


def comparison_markdown(run: ConceptRun) -> list[str]:
    """Side-by-side table: one row per (prompt, N, method), one column per model."""
    models, rows = side_by_side(run)
    lines = ["## Side by side", "", "| prompt | N | method | " + " | ".join(models) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in models) + " |"]
    for p, n, meth, cells in rows:
        if meth == "vector 1 top":
            shown = [", ".join(f"`{_md(repr(t.token))}` {t.value:.2f}" for t in r.vectors[0].top[:3]) if r else "—"
                     for r in cells]
        else:
            shown = [_md(translation_display(t, 60)) if t else "—" for t in cells]
        lines.append(f"| {_md(p)} | {n} | {meth} | " + " | ".join(shown) + " |")
    lines.append("")
    return lines


def concept_figure(run: ConceptRun, top: int = 3):
    """Per-step top weights (stacked bars, labelled with their tokens) and entropy (line, nats).

    One panel per (prompt, model): rows = prompts, columns = models.
    """
    models = list(dict.fromkeys(r.model for r in run.records))
    prompts = list(dict.fromkeys(r.prompt for r in run.records))
    fig, axes = new_figure(len(prompts), len(models), width=5.5 * len(models), height=2.8)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    handles: list = []
    labels: list = []
    for i, p in enumerate(prompts):
        for j, m in enumerate(models):
            ax = axes[i][j]
            recs = [r for r in run.records if r.model == m and r.prompt == p]
            if not recs:
                ax.set_axis_off()
                continue
            vecs = max(recs, key=lambda r: r.n).vectors
            xs = [v.index for v in vecs]
            bottom = [0.0] * len(vecs)
            for rank in range(top):
                hs = [v.top[rank].value if rank < len(v.top) else 0.0 for v in vecs]
                ax.bar(xs, hs, bottom=bottom, color=colors[rank % len(colors)], width=0.6,
                       label=f"top {rank + 1}" if i == 0 and j == 0 else None)
                for x, b, h, v in zip(xs, bottom, hs, vecs):
                    if h >= 0.08:
                        label = repr(v.top[rank].token)[1:-1][:10]
                        ax.text(x, b + h / 2, label, ha="center", va="center", fontsize=7)
                bottom = [b + h for b, h in zip(bottom, hs)]
            ax.set_ylim(0, 1.05)
            ax.set_xticks(xs)
            ax.set_xlabel("concept token")
            ax.set_ylabel("weight")
            ax.set_title(f"{m}: {p!r}"[:60], fontsize=9)
            ax2 = ax.twinx()
            ax2.plot(xs, [v.entropy for v in vecs], "k.-", label="entropy of weights")
            ax2.plot(xs, [v.distribution_entropy for v in vecs], "k.:", label="entropy of softmax")
            ax2.set_ylabel("nats")
            ax2.set_ylim(bottom=0)
            if i == 0 and j == 0:
                handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
                labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs for CJK tokens
        fig.tight_layout(rect=(0, 0, 1, 0.97 if len(prompts) > 1 else 0.9))
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False)
    return fig


def write_outputs(run: ConceptRun, config: ConceptConfig, writer: RunWriter, *, status: str = "ok", error: str | None = None) -> None:
    """Write ``results.json`` (config, models, versions, every record), ``report.md``, the figure and
    ``vectors.pt`` (the raw vectors) through ``writer``."""
    figure = None
    if run.records:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer.save_figure(concept_figure(run), "concept_weights.png")
        figure = "concept_weights.png"
        atomic_torch_save(run.vectors, writer.path("vectors.pt"))
    writer.write_results(
        {"records": run.records},
        model=run.models[0] if len(run.models) == 1 else run.models,
        status=status,
        error=error,
        notes=run.notes,
        seconds=run.seconds,
        files={"records": "records.jsonl", "report": "report.md", "figure": figure,
               "vectors": "vectors.pt" if run.records else None},
    )
    report = concept_report(run, config, figure=figure)
    if error:
        report = f"**Run stopped:** {error}\n\n" + report
    writer.write_report(report)


__all__ = [
    "comparison_markdown",
    "side_by_side",
    "concept_figure",
    "concept_report",
    "format_prompt_records",
    "format_vector_line",
    "translation_display",
    "write_outputs",
]


def _token(tw: Any) -> dict[str, Any] | None:
    if not isinstance(tw, dict):
        return None
    return {"token": tw.get("token"), "id": tw.get("id"), "value": rounded(tw.get("value"))}


@register_view("concept")
def view_data(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The run viewer's data of a ``concept`` run: per model, prompt and N, the vectors and translations."""
    out = []
    records = read_records(run_dir / "records.jsonl")
    for rec in records:
        vectors = []
        for v in rec.get("vectors") or []:
            vectors.append({
                "token": v.get("token"), "entropy": rounded(v.get("entropy")),
                "dist_entropy": rounded(v.get("distribution_entropy")),
                "top": [[t.get("token"), rounded(t.get("value"))] for t in v.get("top") or []],
                "nearest_cosine": _token(v.get("nearest_cosine")), "nearest_l2": _token(v.get("nearest_l2")),
                "manifold_distance": rounded(v.get("manifold_distance")),
                "relative_manifold_distance": rounded(v.get("relative_manifold_distance")),
                "norm": rounded(v.get("norm")), "relative_norm": rounded(v.get("relative_norm")),
            })
        translations = {name: (t or {}).get("text", "") for name, t in (rec.get("translations") or {}).items()}
        out.append({"model": rec.get("model"), "prompt": rec.get("prompt"), "n": rec.get("n"),
                    "vectors": vectors, "translations": translations})
    return {"records": out}
