"""The probes as library calls on a model (``vecgen.probes.superposition(m)``, ``.lens(m)``, ``.analogy(m)``), and
what a ``vecgen probe`` run writes and prints.

Each call validates its settings first (:func:`superposition_settings`, ...: the command line runs the same checks
before it loads a model), runs the probe, and returns a typed result; ``write_*`` put a result in a run folder
(``results.json``, ``records.jsonl``, ``report.md``, figures) and ``*_lines`` are its console summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_PROMPTS
from ..decoding.metrics import token_text
from ..errors import ConfigError
from ..io import check_text
from ..models import LoadedModel
from ..reports import RunWriter
from .arithmetic import (
    AnalogyHit,
    FrameHit,
    Quadruple,
    accuracy_by_relation,
    frame_accuracy,
    frame_test,
    load_pairs,
    make_quadruples,
    output_space,
    solve_analogies,
)
from .common import load_prompts, single_token
from .logit_lens import FirstTokenLens, LensRecord, first_token_lens, lens_trace
from .report import (
    analogy_figure,
    analogy_report,
    first_token_figure,
    lens_figure,
    lens_report,
    pair_figure,
    superposition_figure,
    superposition_report,
)
from .sweep import (
    DEFAULT_ALPHAS,
    DEFAULT_MIN_DIVERGENCE,
    SuperpositionResult,
    check_alphas,
    run_superposition,
)

ProgressFn = Callable[[int, int], None]


def _at_least(value: int, name: str, minimum: int = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{name}={value}: must be >= {minimum}", param=name)


# ------------------------------------------------------------------------------------------- superposition


def parse_pair(text: str) -> tuple[str, str, str]:
    """A pair written as a JSON list ``["prompt", "token a", "token b"]``.

    Raises:
        ConfigError: not JSON, not three strings, or an empty prompt.
    """
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"pair {text!r}: expected a JSON list of three strings, e.g. "
                          "'[\"Once upon a time\", \",\", \" there\"]' (prompt, token a, token b)", param="pair")
    if not value[0].strip():
        raise ConfigError(f"pair {text!r}: empty prompt", param="pair")
    return value[0], value[1], value[2]


def superposition_settings(*, prompts: Sequence[str] | str | Path | None = None,
                           pairs: Sequence[tuple[str, str, str] | str] = (),
                           alphas: Sequence[float] | str = DEFAULT_ALPHAS,
                           min_divergence: float = DEFAULT_MIN_DIVERGENCE, mixture_top_k: int = 10,
                           batch_size: int = 32) -> dict[str, Any]:
    """Validated settings of :func:`superposition` (no model needed): prompts (a list, a file, or None for the 102
    shipped ones), pairs as ``(prompt, a, b)`` texts (or their JSON), sorted α values, and the rest.

    Raises:
        ConfigError: the first bad value, its parameter named.
    """
    if isinstance(alphas, str):
        try:
            alphas = [float(a) for a in alphas.split(",") if a.strip()]
        except ValueError:
            raise ConfigError(f"alphas {alphas!r}: expected comma-separated numbers, e.g. 0,0.5,1",
                              param="alphas") from None
    if not 0.0 <= min_divergence <= 0.7:
        raise ConfigError(f"min_divergence={min_divergence}: a Jensen-Shannon divergence in nats is in "
                          "[0, ln 2 ≈ 0.693]", param="min_divergence")
    _at_least(mixture_top_k, "mixture_top_k", 0)
    _at_least(batch_size, "batch_size")
    raw = [parse_pair(p) if isinstance(p, str) else tuple(p) for p in pairs]
    texts = load_prompts(prompts) if prompts is None or isinstance(prompts, (str, Path)) else list(prompts)
    source = "shipped" if prompts is None else (str(prompts) if isinstance(prompts, (str, Path)) else "given")
    return {"prompt_texts": texts, "prompts": source, "pairs": raw, "alphas": check_alphas(alphas),
            "min_divergence": min_divergence, "mixture_top_k": mixture_top_k, "batch_size": batch_size}


def superposition_pair_ids(tokenizer: Any, pairs: Sequence[tuple[str, str, str]]) -> list[tuple[str, int, int]]:
    """``(prompt, a, b)`` texts → ``(prompt, id a, id b)`` (each token exactly one token of the tokenizer).

    Raises:
        ConfigError: a token that is not one token, or ``a`` and ``b`` the same token.
    """
    out = [(p, single_token(tokenizer, a, f"pair {p!r}, token a"), single_token(tokenizer, b, f"pair {p!r}, token b"))
           for p, a, b in pairs]
    if any(a == b for _, a, b in out):
        raise ConfigError("pair: tokens a and b are the same token; give two different tokens", param="pair")
    return out


def superposition(lm: LoadedModel, prompts: Sequence[str] | str | Path | None = None, *,
                  pairs: Sequence[tuple[str, str, str] | str] = (), alphas: Sequence[float] | str = DEFAULT_ALPHAS,
                  min_divergence: float = DEFAULT_MIN_DIVERGENCE, mixture_top_k: int = 10, batch_size: int = 32,
                  on_progress: ProgressFn | None = None) -> SuperpositionResult:
    """Feed ``α·e(a) + (1−α)·e(b)`` after each prompt for the model's own top-2 next tokens ``a``, ``b`` (and for
    ``pairs``), and compare the next-token distribution with the ones after ``a`` and after ``b``: does the
    continuation blend (KL to the α-interpolation of the two) or switch (KL to the nearer endpoint)? Also the
    model's own concept tokens fed back (``mixture_top_k`` weights; 0 skips). ``vecgen probe superposition``.

    Args:
        lm: the model (any backend). prompts: texts, a prompts file, or None (the 102 shipped beginnings).
        pairs: extra ``(prompt, token a, token b)`` (each one token, a leading space included).
        alphas: the α grid in [0, 1] with both ends. min_divergence: JS nats below which a pair is uninformative.

    Returns:
        A :class:`~vecgen.probes.sweep.SuperpositionResult` (pairs, mixtures, summary with intervals).

    Raises:
        ConfigError: a bad setting (named), a token that is not one token.
    """
    s = superposition_settings(prompts=prompts, pairs=pairs, alphas=alphas, min_divergence=min_divergence,
                               mixture_top_k=mixture_top_k, batch_size=batch_size)
    return run_superposition(lm, s["prompt_texts"], user_pairs=superposition_pair_ids(lm.tokenizer, s["pairs"]),
                             alphas=s["alphas"], min_divergence=min_divergence, mixture_top_k=mixture_top_k,
                             batch_size=batch_size, on_progress=on_progress)


def write_superposition(writer: RunWriter, res: SuperpositionResult, lm: LoadedModel, *, plots: bool = True) -> None:
    """``records.jsonl`` (pairs and mixtures), ``results.json``, ``superposition.png``, ``plots/pair-*.png`` (the
    informative and user pairs) and ``report.md``."""
    for rec in res.pairs + res.mixtures:
        writer.append_record(rec)
    desc = lm.describe()
    writer.write_results({"summary": res.summary, "pairs": res.pairs, "mixtures": res.mixtures}, model=desc,
                         settings=res.settings)
    writer.save_figure(superposition_figure(res), "superposition.png")
    if plots:
        for i, p in enumerate(res.pairs):
            if p.informative or p.source == "user":
                writer.path("plots").mkdir(exist_ok=True)
                writer.save_figure(pair_figure(p), f"plots/pair-{i:03d}.png")
    writer.write_report(superposition_report(res, desc))


def superposition_lines(res: SuperpositionResult) -> list[str]:
    """The console summary of a superposition run."""
    s = res.summary
    lines = [f"{s['pairs']} pairs, {s['informative_pairs']} informative: switch α {s['switch_alpha']['mean']:.2f} "
             f"[{s['switch_alpha']['low']:.2f}, {s['switch_alpha']['high']:.2f}], sharpness "
             f"{s['sharpness']['mean']:.1f} (linear reading: 0.5 and 1); "
             f"{s['follows_one_component']['k']}/{s['follows_one_component']['n']} follow one component"]
    if res.mixtures:
        m = s["mixture_follows_top1"]
        lines.append(f"own concept tokens: {m['k']}/{m['n']} continue closer to their top-1 token than to the mixture "
                     "of continuations")
    return lines


# ----------------------------------------------------------------------------------------------- logit lens


@dataclass
class LensResult:
    """A logit-lens run: one :class:`~vecgen.probes.logit_lens.LensRecord` per heat-map prompt and the first
    concept token's per-layer summary (None without summary prompts)."""

    records: list[LensRecord]
    first_token: FirstTokenLens | None
    settings: dict[str, Any] = field(default_factory=dict)


def lens_settings(*, prompts: Sequence[str] | None = None, n: int = 3, after: int = 3, mixture_top_k: int = 10,
                  summary_prompts: int = 102, prompts_file: str | Path | None = None, batch_size: int = 8
                  ) -> dict[str, Any]:
    """Validated settings of :func:`lens` (no model needed; the summary prompts are read here).

    Raises:
        ConfigError: the first bad value, its parameter named; an unreadable prompts file.
    """
    texts = list(prompts) if prompts else list(DEFAULT_PROMPTS)
    if any(not p.strip() for p in texts):
        raise ConfigError("prompt: empty prompt; give some text to continue", param="prompt")
    _at_least(n, "n")
    _at_least(after, "after", 0)
    _at_least(mixture_top_k, "mixture_top_k", 2)
    _at_least(summary_prompts, "summary_prompts", 0)
    _at_least(batch_size, "batch_size")
    available = load_prompts(prompts_file) if summary_prompts else []
    if summary_prompts > len(available):
        source = prompts_file or "the shipped prompts file"
        raise ConfigError(f"summary_prompts={summary_prompts}: {source} has {len(available)} prompts; give at most "
                          f"{len(available)} (or 0 for no summary)", param="summary_prompts")
    summary = available[:summary_prompts]
    for text in texts:
        check_text(text, f"prompt {text[:40]!r}", param="prompt")
    return {"prompts": texts, "n": n, "after": after, "mixture_top_k": mixture_top_k, "summary_prompts": len(summary),
            "prompts_file": str(prompts_file) if prompts_file else "shipped", "summary_texts": summary,
            "batch_size": batch_size}


def lens(lm: LoadedModel, prompts: Sequence[str] | None = None, *, n: int = 3, after: int = 3,
         mixture_top_k: int = 10, summary_prompts: int = 102, prompts_file: str | Path | None = None,
         batch_size: int = 8, on_progress: ProgressFn | None = None) -> LensResult:
    """The logit lens (nostalgebraist 2020) at concept-token positions: every layer's residual stream decoded through
    the final norm and the LM head, for ``n`` concept tokens (and ``after`` greedy tokens) after each prompt beside the
    discrete run of their top-1 tokens; and over ``summary_prompts`` shipped prompts (or ``prompts_file``), the first
    concept token's per-layer KL to its top-1 token's lens and to the mixture of its components' lenses.
    ``vecgen probe lens``.

    Raises:
        ConfigError: a bad setting (named). UnsupportedError: a backend without per-layer states (llama.cpp).
    """
    s = lens_settings(prompts=prompts, n=n, after=after, mixture_top_k=mixture_top_k, summary_prompts=summary_prompts,
                      prompts_file=prompts_file, batch_size=batch_size)
    records = [lens_trace(lm, p, n=n, after=after, mixture_top_k=mixture_top_k) for p in s["prompts"]]
    first = (first_token_lens(lm, s["summary_texts"], mixture_top_k=mixture_top_k, batch_size=batch_size,
                              on_progress=on_progress) if s["summary_texts"] else None)
    return LensResult(records, first, {k: v for k, v in s.items() if k not in ("summary_texts", "batch_size")})


def write_lens(writer: RunWriter, res: LensResult, lm: LoadedModel) -> None:
    """``records.jsonl``, ``lens-<i>.png`` per prompt, ``lens-first-token.png``, ``results.json`` and ``report.md``."""
    for i, rec in enumerate(res.records):
        writer.append_record(rec)
        writer.save_figure(lens_figure(rec), f"lens-{i + 1}.png")
    if res.first_token is not None:
        writer.save_figure(first_token_figure(res.first_token), "lens-first-token.png")
    desc = lm.describe()
    writer.write_results({"first_token": res.first_token, "prompts": [
        {"prompt": r.prompt, "mixtures": r.mixtures, "concept_inputs": r.concept.inputs,
         "discrete_inputs": r.discrete.inputs} for r in res.records]}, model=desc, settings=res.settings)
    writer.write_report(lens_report(res.records, res.first_token, desc))


def lens_lines(res: LensResult) -> list[str]:
    """The console summary of a lens run."""
    lines = []
    for r in res.records:
        last = len(r.concept.entropy) - 1
        lines.append(f"{r.prompt!r}: concept tokens {[m['texts'][0] for m in r.mixtures]}, last-layer top "
                     f"{[c[0] for c in r.concept.top_texts[last]]} vs discrete "
                     f"{[c[0] for c in r.discrete.top_texts[last]]}")
    ft = res.first_token
    if ft is not None:
        best = min(range(ft.layers), key=lambda layer: ft.kl_top1[layer]["mean"])
        lines.append(f"first concept token over {ft.prompts} prompts: KL to its top-1 token's lens is smallest at "
                     f"layer {best} ({ft.kl_top1[best]['mean']:.3f} nats); last layer: {ft.kl_top1[-1]['mean']:.3f} "
                     f"vs {ft.kl_linear[-1]['mean']:.3f} to the mixture of its components")
        if ft.patchscope_top1:
            shares = [d["share"] for d in ft.patchscope_top1]
            top = max(range(len(shares)), key=shares.__getitem__)
            lines.append(f"Patchscopes reads the first concept token as its top-1 token on {100 * shares[top]:.0f}% of "
                         f"prompts at layer {top} (best layer), {100 * shares[0]:.0f}% at layer 0")
    return lines


# ------------------------------------------------------------------------------------------ vector arithmetic


@dataclass
class AnalogyResult:
    """A vector-arithmetic run: top-1 / top-k accuracy per relation and space, the frame test, and the hits."""

    accuracy: dict[str, Any]
    frame_accuracy: dict[str, Any]
    hits: dict[str, list[AnalogyHit]]
    frame_hits: list[FrameHit]
    skipped: list[Quadruple]
    relations_without_frame: list[str]
    tied_embeddings: bool
    k: int
    settings: dict[str, Any] = field(default_factory=dict)


def analogy_quadruples(pairs: str | Path | dict[str, list[tuple[str, str]]] | None = None) -> list[Quadruple]:
    """Quadruples from word pairs (a TSV file, a ``{relation: [(x, y), ...]}`` dict, or None: the 126 shipped pairs).

    Raises:
        ConfigError: an unreadable file, or no relation with two pairs.
    """
    quads = make_quadruples(pairs if isinstance(pairs, dict) else load_pairs(pairs))
    if not quads:
        raise ConfigError(f"{pairs or 'the pairs'}: no relation has two pairs, so no quadruple can be formed",
                          param="pairs")
    return quads


def analogy(lm: LoadedModel, pairs: str | Path | dict[str, list[tuple[str, str]]] | None = None, *, k: int = 5,
            frames: bool = True, batch_size: int = 32) -> AnalogyResult:
    """Vector arithmetic on token embeddings: the nearest tokens of ``e(b) − e(a) + e(c)`` (``a : b :: c : d``) in the
    input embedding and the LM head's unembedding (not on llama.cpp), top-1 / top-``k`` accuracy per relation; with
    ``frames``, the vector fed as a concept token in its relation's frame. ``vecgen probe analogy``.

    Raises:
        ConfigError: a bad setting (named), a pairs file without quadruples.
    """
    _at_least(k, "k")
    _at_least(batch_size, "batch_size")
    if k > lm.n_real_vocab:
        raise ConfigError(f"k={k}: allowed range is [1, {lm.n_real_vocab}] ({lm.name}'s real vocabulary)", param="k")
    quads = analogy_quadruples(pairs)
    spaces = {"input": lm.embedding}
    head = output_space(lm)
    if head is not None:
        spaces["output"] = head
    acc: dict[str, Any] = {}
    all_hits: dict[str, list[AnalogyHit]] = {}
    skipped: list[Quadruple] = []
    for name, space in spaces.items():
        hits, skipped = solve_analogies(space, lm.n_real_vocab, lm.tokenizer, quads, k=k)
        acc[name], all_hits[name] = accuracy_by_relation(hits, k), hits
    fhits, no_frame = frame_test(lm, all_hits["input"], k=5, batch_size=batch_size) if frames else ([], [])
    tied = head is not None and bool(head.data_ptr() == lm.embedding.data_ptr())
    settings = {"pairs": str(pairs) if isinstance(pairs, (str, Path)) else ("given" if pairs else "shipped"), "k": k,
                "frames": frames, "quadruples": len(quads)}
    return AnalogyResult(acc, frame_accuracy(fhits) if fhits else {}, all_hits, fhits, skipped, no_frame, tied, k,
                         settings)


def write_analogy(writer: RunWriter, res: AnalogyResult, lm: LoadedModel) -> None:
    """``records.jsonl`` (nearest-token and frame hits), ``results.json``, ``analogy.png`` and ``report.md``."""
    for name, hits in res.hits.items():
        for h in hits:
            writer.append_record({"kind": "nearest", "space": name, **hit_record(h, lm)})
    for fh in res.frame_hits:
        writer.append_record({"kind": "frame", **vars(fh)})
    desc = lm.describe()
    writer.write_results({"accuracy": res.accuracy, "frame_accuracy": res.frame_accuracy,
                          "skipped": [vars(q) for q in res.skipped],
                          "relations_without_frame": res.relations_without_frame,
                          "tied_embeddings": res.tied_embeddings}, model=desc, settings=res.settings)
    writer.save_figure(analogy_figure(res.accuracy, res.frame_accuracy, res.k), "analogy.png")
    writer.write_report(analogy_report(res.accuracy, res.frame_accuracy, len(res.skipped), desc, res.k,
                                       res.relations_without_frame))


def hit_record(h: AnalogyHit, lm: LoadedModel) -> dict[str, Any]:
    """One nearest-token hit as a record (the top tokens decoded)."""
    return {"quadruple": vars(h.quadruple), "ids": list(h.ids), "top_ids": h.top_ids,
            "top_texts": [token_text(lm.tokenizer, t) for t in h.top_ids], "top_scores": h.top_scores, "rank": h.rank}


def analogy_lines(res: AnalogyResult) -> list[str]:
    """The console summary of a vector-arithmetic run."""
    k = res.k
    lines = []
    for name, acc in res.accuracy.items():
        a = acc["all"]
        lines.append(f"{name} space: top-1 {100 * a['top1']:.0f}%, top-{k} {100 * a[f'top{k}']:.0f}% of {a['n']} "
                     "quadruples")
    if res.frame_accuracy:
        f = res.frame_accuracy["all"]
        lines.append(f"fed as a concept token in a frame: top-1 {100 * f['top1']:.0f}%, top-5 {100 * f['top5']:.0f}%, "
                     f"closer to d than to c {100 * f['closer_to_d']:.0f}%")
    return lines


__all__ = ["AnalogyResult", "LensResult", "analogy", "analogy_lines", "analogy_quadruples", "hit_record", "lens",
           "lens_lines", "lens_settings", "parse_pair", "superposition", "superposition_lines",
           "superposition_pair_ids", "superposition_settings", "write_analogy", "write_lens", "write_superposition"]

