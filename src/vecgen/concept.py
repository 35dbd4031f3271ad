"""The concept-token experiment (the seeds' protocol): generate N concept tokens, describe them,
translate them back into text, on one model or several side by side.

For each model and prompt:

1. the prompt is encoded (plain completion, no chat template) and ``max(N)`` concept vectors are
   generated with the decode loop (:func:`vecgen.decoding.generate`) under the mixing rule
   (default ``soft``, ``max_topk`` 10) and the sampling settings (default temperature 1.0, no
   top-k / top-p / min-p truncation: the plain softmax of the seeds);
2. each vector is described (:func:`vecgen.decoding.metrics.vector_metrics`: top weights, entropy,
   nearest tokens, distance from the embedding manifold, norm);
3. for every N, the first N vectors are translated with every method
   (:mod:`vecgen.decoding.translate`), all in one batch.

The first N vectors of an ``max(N)``-step run are exactly the vectors of an N-step run (same seed,
same random draws step by step), so one run per prompt serves every N.

Records (one per model, prompt and N) are appended to ``records.jsonl`` as soon as a prompt is done;
NaN/inf stops the run with a :class:`~vecgen.errors.NonFiniteError` naming the step, the prompt and
the model, and the records already written stay.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import SamplingConfig, format_validation_error
from .decoding.mixing import MixingConfig
from .errors import ConfigError, NoChatTemplateError, NonFiniteError

log = logging.getLogger(__name__)

#: The seeds' prompts.
DEFAULT_PROMPTS: tuple[str, ...] = ("The capital of France is", "2 plus 2 equals", "Once upon a time")
#: The seeds' numbers of concept tokens.
DEFAULT_N: tuple[int, ...] = (2, 3, 4)
#: Sampling defaults for concept generation: the plain softmax at temperature 1 (no truncation besides
#: the mixing rule's ``max_topk``), as in the seeds and Soft Thinking.
CONCEPT_SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "seed": 0}


def all_methods() -> list[str]:
    """Every registered translation method, in registry order."""
    from .decoding.translate import TRANSLATION_METHODS

    return list(TRANSLATION_METHODS)


class ConceptConfig(BaseModel):
    """Configuration of a concept-token run.

    Attributes:
        prompts: texts to continue (plain completion).
        n_values: numbers N of concept tokens to translate (each >= 1).
        methods: translation methods; ``None`` = every registered method that the model supports
            (``instruction`` is skipped for models without a chat template, with a note). Naming
            ``instruction`` explicitly on such a model is an error.
        sampling: how the concept tokens' distributions are formed (temperature, top_k, top_p, min_p, seed).
        mixing: the mixing rule and its parameters.
        translation_tokens: tokens generated per translation (greedy decoding).
        english_only: restrict concept-token weights and translation tokens to English tokens
            (:func:`vecgen.vocab.english_token_mask`; stop tokens stay allowed).
        english_policy: ``text`` or ``strict`` (see :mod:`vecgen.vocab`).
        record_top_k: mixture weights recorded per vector.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS))
    n_values: list[int] = Field(default_factory=lambda: list(DEFAULT_N))
    methods: list[str] | None = None
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(**CONCEPT_SAMPLING_DEFAULTS))
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    translation_tokens: int = Field(16, ge=1)
    english_only: bool = False
    english_policy: str = "text"
    record_top_k: int = Field(10, ge=1)

    @classmethod
    def create(cls, **values: Any) -> "ConceptConfig":
        """Validate, raising :class:`ConfigError` with one clear message.

        Raises:
            ConfigError: no prompts or an empty prompt; N < 1 or no N; an unknown, empty or duplicate
                method; an out-of-range value.
        """
        values = {k: v for k, v in values.items() if v is not None}
        prompts = values.get("prompts")
        if prompts is not None:
            if not prompts:
                raise ConfigError("no prompts given")
            for i, p in enumerate(prompts):
                if not str(p).strip():
                    raise ConfigError(f"empty prompt (prompt {i + 1}): give some text to continue, "
                                      "e.g. \"The capital of France is\"")
        n_values = values.get("n_values")
        if n_values is not None:
            if not n_values:
                raise ConfigError("no N values given")
            for n in n_values:
                if int(n) < 1:
                    raise ConfigError(f"N={n}: the number of concept tokens must be >= 1")
            values["n_values"] = sorted(set(int(n) for n in n_values))
        methods = values.get("methods")
        if methods is not None:
            from .decoding.translate import get_method

            if not methods:
                raise ConfigError("no translation methods given")
            for m in methods:
                get_method(m)
            values["methods"] = list(dict.fromkeys(methods))
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "concept config")) from None

    @property
    def max_n(self) -> int:
        return max(self.n_values)


def methods_for(lm: Any, config: ConceptConfig) -> tuple[list[str], list[str]]:
    """``(methods to run, notes)`` for ``lm``.

    Raises:
        NoChatTemplateError: ``instruction`` was named explicitly and ``lm`` has no chat template.
    """
    from .decoding.translate import check_methods

    if config.methods is not None:
        check_methods(lm, config.methods)
        return list(config.methods), []
    methods = all_methods()
    try:
        check_methods(lm, methods)
        return methods, []
    except NoChatTemplateError:
        note = f"{lm.name}: no chat template, so the 'instruction' translation was skipped"
        return [m for m in methods if m != "instruction"], [note]


def total_steps(config: ConceptConfig, n_models: int = 1) -> int:
    """Upper bound of decode steps of a run (for progress bars)."""
    return n_models * len(config.prompts) * (config.max_n + config.translation_tokens)


ProgressFn = Callable[[int, str], None]
PromptDoneFn = Callable[[list[dict[str, Any]]], None]


def _step_token(lm: Any, token_id: int) -> str:
    from .decoding.metrics import token_text

    return token_text(lm.tokenizer, token_id)


def _step_no(exc: NonFiniteError) -> str:
    return "?" if exc.step is None else str(exc.step + 1)


def _located(exc: NonFiniteError, where: str, prompt_index: int) -> NonFiniteError:
    what = str(exc).split(" at step")[0]
    return NonFiniteError(f"{what} at {where}", step=exc.step, row=prompt_index)


def run_prompt(
    lm: Any,
    prompt: str,
    prompt_index: int,
    config: ConceptConfig,
    methods: Sequence[str],
    *,
    allowed: Any = None,
    progress: ProgressFn | None = None,
    prefix_cache: dict | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Concept tokens of one prompt, their metrics and translations.

    ``prefix_cache`` (a dict kept per model) lets the translation methods' fixed prefixes be prefilled
    once per model instead of once per prompt (see :func:`vecgen.decoding.translate.translate`).

    Returns:
        ``(records, vectors)``: one record per N (JSON-ready dicts) and the ``(max N, d)`` float32
        vectors on the CPU.

    Raises:
        NonFiniteError: NaN/inf in logits or vectors; ``row`` = ``prompt_index``, ``step`` as raised.
        ConfigError: an empty prompt.
    """
    import torch

    from .decoding.loop import generate
    from .decoding.metrics import vector_metrics
    from .decoding.translate import translate

    ids = lm.encode(prompt)
    if not ids:
        raise ConfigError(f"prompt {prompt_index + 1} encodes to no tokens: {prompt!r}")
    start = time.perf_counter()
    tick = (lambda step, rec: progress(1, f"{lm.name}: concept tokens")) if progress else None
    try:
        gen = generate(lm, [ids], sampling=config.sampling, mixing=config.mixing, max_new_tokens=config.max_n,
                       stop_ids=[], allowed=allowed, keep_vectors=True, record_top_k=config.record_top_k, on_step=tick)
    except NonFiniteError as exc:
        raise _located(exc, f"concept token {_step_no(exc)}", prompt_index) from None
    vectors = gen.vectors(0)  # (max N, d) float32
    mix_ids = torch.stack([s.mix_ids[0] for s in gen.steps])  # (max N, K)
    mix_w = torch.stack([s.mix_weights[0] for s in gen.steps])  # (max N, K)
    ent = torch.stack([s.mix_entropy[0] for s in gen.steps])  # (max N,)
    metrics = vector_metrics(lm, vectors, mix_ids=mix_ids, mix_weights=mix_w, entropies=ent,
                             top_k=config.record_top_k)
    described = []
    for i, (m, step) in enumerate(zip(metrics, gen.steps)):
        item = {"index": i + 1, "token": _step_token(lm, int(step.token[0])), "token_id": int(step.token[0]),
                "distribution_entropy": float(step.entropy[0])}
        item.update(dataclasses.asdict(m))
        item.pop("extra", None)
        described.append(item)
    concept_seconds = time.perf_counter() - start

    done = [0]

    def tick_tr(step, rec):
        done[0] += 1
        if progress:
            progress(1, f"{lm.name}: translations")

    start = time.perf_counter()
    try:
        translations = translate(lm, [vectors[:n] for n in config.n_values], methods,
                                 max_new_tokens=config.translation_tokens, allowed=allowed, on_step=tick_tr,
                                 prefix_cache=prefix_cache)
    except NonFiniteError as exc:
        raise _located(exc, f"translation step {_step_no(exc)}", prompt_index) from None
    if progress and done[0] < config.translation_tokens:
        progress(config.translation_tokens - done[0], f"{lm.name}: translations")
    translate_seconds = time.perf_counter() - start

    records = []
    for n, tr in zip(config.n_values, translations):
        records.append({
            "model": lm.name,
            "prompt_index": prompt_index,
            "prompt": prompt,
            "prompt_ids": ids,
            "n": n,
            "vectors": described[:n],
            "translations": {name: dataclasses.asdict(t) for name, t in tr.items()},
            "seconds": {"concept": round(concept_seconds, 3), "translate": round(translate_seconds, 3)},
        })
    return records, vectors


@dataclasses.dataclass
class ConceptRun:
    """Result of :func:`run_concept`.

    Attributes:
        records: every record (one per model, prompt and N).
        models: ``LoadedModel.describe()`` of each model, in order.
        notes: remarks (e.g. a method skipped for a model without chat template).
        vectors: ``{model: {prompt: (max N, d) tensor}}``.
        seconds: wall time per model.
    """

    records: list[dict[str, Any]]
    models: list[dict[str, Any]]
    notes: list[str]
    vectors: dict[str, dict[str, Any]]
    seconds: dict[str, float]


def run_concept(
    models: Sequence[Any],
    config: ConceptConfig,
    *,
    load: Callable[[str], Any] | None = None,
    writer: Any = None,
    progress: ProgressFn | None = None,
    on_prompt: PromptDoneFn | None = None,
    into: ConceptRun | None = None,
) -> ConceptRun:
    """Run the concept-token protocol on each model in turn (one model in memory at a time).

    Args:
        models: model specs (loaded with ``load``) or :class:`~vecgen.models.LoadedModel` objects.
        config: the run configuration.
        load: ``spec -> LoadedModel`` (default :func:`vecgen.models.load_model`).
        writer: a :class:`~vecgen.reports.RunWriter`; records are appended as each prompt completes.
        progress: called with ``(steps done, description)`` after each decode step.
        on_prompt: called with the records of each finished prompt (console output).
        into: an empty :class:`ConceptRun` to fill (so a caller still has the finished part when an
            error stops the run); a new one by default.

    Raises:
        ConfigError: no models; bad prompts.
        NoChatTemplateError: ``instruction`` requested for a model without a chat template.
        NonFiniteError: NaN/inf; the message names the model, the prompt and the step.
    """
    if not models:
        raise ConfigError("no models given")
    if load is None:
        from .models import load_model as load
    run = into if into is not None else ConceptRun([], [], [], {}, {})
    for spec in models:
        lm = load(spec) if isinstance(spec, str) else spec
        start = time.perf_counter()
        methods, notes = methods_for(lm, config)
        run.notes += notes
        for note in notes:
            log.warning(note)
        allowed = None
        if config.english_only:
            from .vocab import english_token_mask

            allowed = english_token_mask(lm, policy=config.english_policy)
        run.models.append(lm.describe())
        run.vectors[lm.name] = {}
        prefix_cache: dict = {}
        for i, prompt in enumerate(config.prompts):
            try:
                records, vectors = run_prompt(lm, prompt, i, config, methods, allowed=allowed, progress=progress,
                                              prefix_cache=prefix_cache)
            except NonFiniteError as exc:
                kept = f"; the {len(run.records)} records already done are kept"
                if writer is not None:
                    kept += f" in {writer.path('records.jsonl')}"
                raise NonFiniteError(
                    f"{exc} for prompt {i + 1} {prompt!r} on model {lm.name!r}: run stopped{kept}",
                    step=exc.step, row=i,
                ) from None
            run.vectors[lm.name][prompt] = vectors
            for rec in records:
                if writer is not None:
                    writer.append_record(rec)
                run.records.append(rec)
            if on_prompt is not None:
                on_prompt(records)
        run.seconds[lm.name] = round(time.perf_counter() - start, 2)
        if isinstance(spec, str):
            del lm
            gc.collect()
    return run


# ---------------------------------------------------------------------------------------------------
# Presentation: console lines, Markdown report, figure.


def _fmt_tok(s: str) -> str:
    return repr(s)


def format_vector_line(v: dict[str, Any], k: int = 3) -> str:
    """``Vector 1 top weights: ' Paris' (0.96), ' London' (0.01), ...  H=0.25 nats  nearest=' Paris' ...``."""
    tops = ", ".join(f"{_fmt_tok(t['token'])} ({t['value']:.2f})" for t in v["top"][:k])
    return (f"Vector {v['index']} top weights: {tops}  | H={v['entropy']:.2f} nats, "
            f"nearest cos {_fmt_tok(v['nearest_cosine']['token'])} ({v['nearest_cosine']['value']:.2f}), "
            f"off-manifold {v['manifold_distance']:.3f} ({v['relative_manifold_distance']:.2f}× mean norm)")


def translation_display(t: dict[str, Any], width: int = 90) -> str:
    """One translation for display: its answer, or the reason it is empty with the raw ids."""
    if t["answer"]:
        text = t["answer"] if t["method"] != "nearest" else t["text"]
        text = repr(text)
        return text if len(text) <= width else text[: width - 1] + "…"
    ids = " ".join(str(i) for i in t["token_ids"][:8])
    return f"(empty: {t['empty_reason']}; ids [{ids}])"


def format_prompt_records(records: list[dict[str, Any]], vector_k: int = 3) -> str:
    """Console text for one prompt's records (vectors once, then each N's translations)."""
    if not records:
        return ""
    last = max(records, key=lambda r: r["n"])
    lines = [f"[{last['model']}] Prompt: {last['prompt']!r}"]
    lines += ["  " + format_vector_line(v, vector_k) for v in last["vectors"]]
    for rec in records:
        lines.append(f"  N={rec['n']}:")
        for name, t in rec["translations"].items():
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
        f"(max_topk {config.mixing.max_topk}, beta {config.mixing.beta}, noise {config.mixing.noise.value}); "
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
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in run.records:
        by_model.setdefault(r["model"], []).append(r)
    for model, recs in by_model.items():
        lines += [f"## {model}", ""]
        for prompt in dict.fromkeys(r["prompt"] for r in recs):
            prs = [r for r in recs if r["prompt"] == prompt]
            last = max(prs, key=lambda r: r["n"])
            lines += [f"### {prompt!r}", "", "| vector | top weights | H | nearest (cos) | nearest (L2) | off-manifold | norm |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for v in last["vectors"]:
                tops = ", ".join(f"`{_md(repr(t['token']))}` {t['value']:.2f}" for t in v["top"][:5])
                lines.append(
                    f"| {v['index']} | {tops} | {v['entropy']:.2f} | `{_md(repr(v['nearest_cosine']['token']))}` "
                    f"{v['nearest_cosine']['value']:.2f} | `{_md(repr(v['nearest_l2']['token']))}` "
                    f"{v['nearest_l2']['value']:.3f} | {v['manifold_distance']:.3f} ({v['relative_manifold_distance']:.2f}×) "
                    f"| {v['norm']:.3f} ({v['relative_norm']:.2f}×) |")
            lines += ["", "| N | method | translation | raw ids (first 8) |", "| --- | --- | --- | --- |"]
            for r in prs:
                for name, t in r["translations"].items():
                    ids = " ".join(map(str, t["token_ids"][:8]))
                    lines.append(f"| {r['n']} | {name} | {_md(translation_display(t, 120))} | {ids} |")
            lines.append("")
    if len(by_model) > 1:
        lines += comparison_markdown(run)
    methods = dict.fromkeys(m for r in run.records for m in r["translations"])
    lines += ["## Translation prompts", ""]
    for m in methods:
        example = next(r["translations"][m]["prompt"] for r in run.records if m in r["translations"])
        lines.append(f"- `{m}`: `{_md(example)}`")
    lines.append("")
    return "\n".join(lines)


def comparison_markdown(run: ConceptRun) -> list[str]:
    """Side-by-side table: one row per (prompt, N, method), one column per model."""
    models = list(dict.fromkeys(r["model"] for r in run.records))
    index = {(r["model"], r["prompt"], r["n"]): r for r in run.records}
    lines = ["## Side by side", "", "| prompt | N | method | " + " | ".join(models) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in models) + " |"]
    prompts = list(dict.fromkeys(r["prompt"] for r in run.records))
    ns = sorted({r["n"] for r in run.records})
    methods = list(dict.fromkeys(m for r in run.records for m in r["translations"]))
    for p in prompts:
        for n in ns:
            row0 = f"| {_md(p)} | {n} | vector 1 top | "
            cells = []
            for m in models:
                r = index.get((m, p, n))
                cells.append(", ".join(f"`{_md(repr(t['token']))}` {t['value']:.2f}" for t in r["vectors"][0]["top"][:3])
                             if r else "—")
            lines.append(row0 + " | ".join(cells) + " |")
            for meth in methods:
                cells = []
                for m in models:
                    r = index.get((m, p, n))
                    t = r["translations"].get(meth) if r else None
                    cells.append(_md(translation_display(t, 60)) if t else "—")
                lines.append(f"| {_md(p)} | {n} | {meth} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def concept_figure(run: ConceptRun, top: int = 3):
    """Per-step top weights (stacked bars, labelled with their tokens) and entropy (line, nats).

    One panel per (prompt, model): rows = prompts, columns = models.
    """
    import warnings

    from .reports.plots import new_figure

    models = list(dict.fromkeys(r["model"] for r in run.records))
    prompts = list(dict.fromkeys(r["prompt"] for r in run.records))
    fig, axes = new_figure(len(prompts), len(models), width=5.5 * len(models), height=2.8)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    handles: list = []
    labels: list = []
    for i, p in enumerate(prompts):
        for j, m in enumerate(models):
            ax = axes[i][j]
            recs = [r for r in run.records if r["model"] == m and r["prompt"] == p]
            if not recs:
                ax.set_axis_off()
                continue
            vecs = max(recs, key=lambda r: r["n"])["vectors"]
            xs = [v["index"] for v in vecs]
            bottom = [0.0] * len(vecs)
            for rank in range(top):
                hs = [v["top"][rank]["value"] if rank < len(v["top"]) else 0.0 for v in vecs]
                ax.bar(xs, hs, bottom=bottom, color=colors[rank % len(colors)], width=0.6,
                       label=f"top {rank + 1}" if i == 0 and j == 0 else None)
                for x, b, h, v in zip(xs, bottom, hs, vecs):
                    if h >= 0.08:
                        label = repr(v["top"][rank]["token"])[1:-1][:10]
                        ax.text(x, b + h / 2, label, ha="center", va="center", fontsize=7)
                bottom = [b + h for b, h in zip(bottom, hs)]
            ax.set_ylim(0, 1.05)
            ax.set_xticks(xs)
            ax.set_xlabel("concept token")
            ax.set_ylabel("weight")
            ax.set_title(f"{m}: {p!r}"[:60], fontsize=9)
            ax2 = ax.twinx()
            ax2.plot(xs, [v["entropy"] for v in vecs], "k.-", label="entropy of weights")
            ax2.plot(xs, [v["distribution_entropy"] for v in vecs], "k.:", label="entropy of softmax")
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


def write_outputs(run: ConceptRun, config: ConceptConfig, writer: Any, *, status: str = "ok", error: str | None = None) -> None:
    """Write ``results.json`` (config, models, versions, every record), ``report.md``, the figure and
    ``vectors.pt`` (the raw vectors) through ``writer``."""
    import warnings

    from .io import atomic_torch_save

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
    "CONCEPT_SAMPLING_DEFAULTS",
    "DEFAULT_N",
    "DEFAULT_PROMPTS",
    "ConceptConfig",
    "ConceptRun",
    "all_methods",
    "comparison_markdown",
    "concept_figure",
    "concept_report",
    "format_prompt_records",
    "format_vector_line",
    "methods_for",
    "run_concept",
    "run_prompt",
    "total_steps",
    "write_outputs",
]
