"""Reports and figures of the probes (markdown tables, matplotlib figures); no computation besides formatting."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..reports.plots import new_figure
from .logit_lens import FirstTokenLens, LensRecord
from .sweep import PairSweep, SuperpositionResult


def _ci(d: dict[str, Any], fmt: str = ".3f") -> str:
    if not d or d.get("n", 0) == 0:
        return "—"
    if "share" in d:
        return f"{d['k']}/{d['n']} = {_share(d)}"
    return f"{d['mean']:{fmt}} [{d['low']:{fmt}}, {d['high']:{fmt}}] (n = {d['n']})"


@functools.cache
def _default_font() -> Any:
    """matplotlib's default sans-serif font file (DejaVu Sans), to ask which characters it can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return FT2Font(font_manager.findfont(font_manager.FontProperties()))


def _share(d: dict[str, Any]) -> str:
    """A share with its Wilson interval, compact: ``41% [32, 51]``."""
    return f"{100 * d['share']:.0f}% [{100 * d['low']:.0f}, {100 * d['high']:.0f}]" if d.get("n") else "—"


def _label(s: str, n: int = 10) -> str:
    """A token as figure text: characters matplotlib's default font (DejaVu Sans) has a glyph for are kept; others
    (CJK, Indic, Ethiopic, ... scripts it lacks) and control characters are escaped (``\\u1264``)."""
    font = _default_font()

    def drawable(c: str) -> bool:
        return c.isprintable() and (c == " " or font.get_char_index(ord(c)) != 0)

    return "".join(c if drawable(c) else c.encode("unicode_escape").decode() for c in s)[:n]


def _tok(s: str) -> str:
    return repr(s).replace("|", "\\|")


# ------------------------------------------------------------------------------------------ superposition


def superposition_report(res: SuperpositionResult, model: dict[str, Any]) -> str:
    s = res.summary
    st = res.settings
    lines = [f"# Superposition sweep — {model.get('name', '')}", "",
             f"Pairs: {s['pairs']} ({s['informative_pairs']} with continuation divergence JS ≥ "
             f"{st['min_divergence']} nats, summarised below). α grid: {', '.join(f'{a:g}' for a in st['alphas'])}. "
             "α weights token a (the model's top-1 for its own pairs), 1 − α token b.", "",
             "| measure | value [95% interval] | a linear reading would give |", "|---|---|---|",
             f"| switch α (position crosses 0.5) | {_ci(s['switch_alpha'])} | 0.5 |",
             f"| sharpness (largest Δposition/Δα) | {_ci(s['sharpness'], '.2f')} | 1 |",
             f"| pairs closer to the nearer endpoint than to the interpolation | {_ci(s['follows_one_component'])} | "
             "0% |", "",
             "Mean over informative pairs per α (KL in nats; position 0 = as after b, 1 = as after a):", "",
             "| α | KL to interpolation | KL to nearer endpoint | position |", "|---|---|---|---|"]
    for r in s["per_alpha"]:
        if r["kl_linear"] is None:
            continue
        lines.append(f"| {r['alpha']:g} | {r['kl_linear']:.3f} | {r['kl_nearer']:.3f} | {r['position']:.3f} |")
    lines += ["", "## The model's own concept tokens fed back", "",
              f"Mixtures: {s['mixtures']} (top-{st['mixture_top_k']} soft mixtures at temperature 1), "
              f"{s['informative_mixtures']} whose linear reading differs from the top-1 component's continuation "
              f"(JS ≥ {st['min_divergence']}).", "",
              "| measure | value [95% interval] |", "|---|---|",
              f"| closer to the top-1 component than to Σ wᵢ·p_i | {_ci(s['mixture_follows_top1'])} |",
              f"| same most likely next token as after the top-1 token | {_ci(s['mixture_same_argmax_top1'])} |",
              f"| KL to the linear reading Σ wᵢ·p_i (nats) | {_ci(s['mixture_kl_linear'])} |",
              f"| KL to the top-1 component (nats) | {_ci(s['mixture_kl_top1'])} |",
              f"| top-1 weight | {_ci(s['mixture_top1_weight'])} |", "",
              "## Pairs (by divergence)", "",
              "| prompt | a | b | p(a) | p(b) | JS | next after a / b | switch α | sharpness | follows one |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(res.pairs, key=lambda p: -p.divergence):
        sw = "—" if p.switch_alpha is None else f"{p.switch_alpha:.2f}"
        lines.append(f"| {_tok(p.prompt)}{' (user)' if p.source == 'user' else ''} | {_tok(p.a_text)} | "
                     f"{_tok(p.b_text)} | {p.p_a:.2f} | {p.p_b:.2f} | {p.divergence:.3f} | {_tok(p.next_a_text)} / "
                     f"{_tok(p.next_b_text)} | {sw} | {p.sharpness:.1f} | {'yes' if p.follows_one else 'no'} |")
    return "\n".join(lines) + "\n"


def pair_figure(p: PairSweep) -> Any:
    fig, ax = new_figure(1, 2, width=9.0, height=3.0)
    al = p.alphas
    a0, a1 = ax[0]
    a0.plot(al, p.p_next_a, "o-", color="#0072B2", label=f"p('{_label(p.next_a_text)}') (top after a)")
    a0.plot(al, p.p_next_b, "s-", color="#D55E00", label=f"p('{_label(p.next_b_text)}') (top after b)")
    lin_a = [x * p.p_next_a[-1] + (1 - x) * p.p_next_a[0] for x in al]
    lin_b = [x * p.p_next_b[-1] + (1 - x) * p.p_next_b[0] for x in al]
    a0.plot(al, lin_a, color="#0072B2", ls=":", lw=0.9)
    a0.plot(al, lin_b, color="#D55E00", ls=":", lw=0.9)  # dotted: what a linear reading would give
    a0.set_xlabel(f"α  (α·e('{_label(p.a_text)}') + (1−α)·e('{_label(p.b_text)}'))")
    a0.set_ylabel("next-token probability")
    a0.legend(fontsize=7)
    a1.plot(al, p.kl_linear, "o-", label="KL to interpolation (linear reading)")
    a1.plot(al, p.kl_nearer, "s-", label="KL to nearer endpoint (one component)")
    a1.set_xlabel("α")
    a1.set_ylabel("KL (nats)")
    a1.legend(fontsize=7)
    fig.suptitle(f"{_label(p.prompt, 60)!r} · a='{_label(p.a_text)}' b='{_label(p.b_text)}' · JS={p.divergence:.3f}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def superposition_figure(res: SuperpositionResult) -> Any:
    inf = [p for p in res.pairs if p.informative]
    fig, ax = new_figure(1, 2, width=10.0, height=3.6)
    a0, a1 = ax[0]
    for p in inf:
        a0.plot(p.alphas, p.position, color="0.6", lw=0.6, alpha=0.6)
    per = [r for r in res.summary["per_alpha"] if r["position"] is not None]
    a0.plot([r["alpha"] for r in per], [r["position"] for r in per], "o-", color="#0072B2", lw=2, label="mean")
    a0.plot([0, 1], [0, 1], "k--", lw=1, label="linear reading")
    a0.set_xlabel("α (weight of a)")
    a0.set_ylabel("position (0 = as after b, 1 = as after a)")
    a0.set_title(f"{len(inf)} informative pairs", fontsize=9)
    a0.legend(fontsize=8)
    a1.plot([r["alpha"] for r in per], [r["kl_linear"] for r in per], "o-", label="KL to interpolation")
    a1.plot([r["alpha"] for r in per], [r["kl_nearer"] for r in per], "s-", label="KL to nearer endpoint")
    a1.set_xlabel("α")
    a1.set_ylabel("mean KL (nats)")
    a1.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------- lens


def lens_figure(rec: LensRecord) -> Any:
    """Layer × position heat maps (entropy, nats; each cell labelled with the lens's top token), concept run beside
    the discrete run."""
    L1 = len(rec.concept.entropy)
    P = len(rec.concept.inputs)
    fig, ax = new_figure(1, 2, width=max(10.0, 3.2 * P), height=max(6.0, 0.32 * L1))
    vmax = max(max(max(r) for r in rec.concept.entropy), max(max(r) for r in rec.discrete.entropy))
    for a, tr, title in ((ax[0][0], rec.concept, "concept tokens"), (ax[0][1], rec.discrete, "their top-1 tokens")):
        H = np.array(tr.entropy)  # (L + 1, P)
        im = a.imshow(H, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        for l in range(L1):
            for j in range(P):
                t = tr.top_texts[l][j][0]
                a.text(j, l, _label(t), ha="center", va="center", fontsize=6,
                       color="white" if H[l, j] < 0.6 * vmax else "black")
        a.set_xticks(range(P), [_label(s, 14) for s in tr.inputs], rotation=30, fontsize=7)
        a.set_ylabel("layer (0 = input embedding)")
        a.set_title(f"{title}: {_label(rec.prompt, 60)!r}", fontsize=9)
        fig.colorbar(im, ax=a, label="entropy (nats)")
    fig.tight_layout()
    return fig


def first_token_figure(ft: FirstTokenLens) -> Any:
    fig, ax = new_figure(1, 2, width=10.0, height=3.4)
    a0, a1 = ax[0]
    xs = list(range(ft.layers))
    for series, label in ((ft.kl_top1, "KL to the top-1 token's lens"), (ft.kl_linear, "KL to Σ wᵢ·lens(token i)")):
        a0.plot(xs, [d["mean"] for d in series], "o-", ms=3, label=label)
        a0.fill_between(xs, [d["low"] for d in series], [d["high"] for d in series], alpha=0.2)
    a0.set_yscale("log")
    a0.set_xlabel("layer")
    a0.set_ylabel("mean KL (nats)")
    a0.legend(fontsize=8)
    a1.plot(xs, [d["share"] for d in ft.closer_to_top1], "o-", ms=3, label="closer to top-1 than to the mixture")
    a1.plot(xs, [d["share"] for d in ft.same_top1], "s-", ms=3, label="same lens argmax as the top-1 token")
    if ft.patchscope_top1 and ft.patchscope_discrete_top1:
        px = list(range(len(ft.patchscope_top1)))
        a1.plot(px, [d["share"] for d in ft.patchscope_top1], "^-", ms=3, label="Patchscopes reads the top-1 token")
        a1.plot(px, [d["share"] for d in ft.patchscope_discrete_top1], "v--", ms=3,
                label="Patchscopes, top-1 token fed (control)")
    a1.set_ylim(0, 1)
    a1.set_xlabel("layer")
    a1.set_ylabel(f"share of {ft.prompts} prompts")
    a1.legend(fontsize=8)
    fig.suptitle("first concept token, per layer", fontsize=9)
    fig.tight_layout()
    return fig


def lens_report(records: Sequence[LensRecord], ft: FirstTokenLens | None, model: dict[str, Any]) -> str:
    lines = [f"# Logit lens on concept tokens — {model.get('name', '')}", ""]
    if ft is not None:
        lines += [f"## First concept token, {ft.prompts} prompts", "",
                  "Per layer: KL from the concept token's lens to its top-1 token's lens and to the mixture of its "
                  "components' lenses (nats, mean [bootstrap 95%]); share of prompts closer to the top-1 token.", "",
                  "| layer | KL to top-1 | KL to mixture of components | closer to top-1 | same argmax as top-1 |"
                  + (" Patchscopes reads top-1 | Patchscopes reads a mixture token | control: top-1 token fed |"
                     if ft.patchscope_top1 else ""),
                  "|---|---|---|---|---|" + ("---|---|---|" if ft.patchscope_top1 else "")]
        for l in range(ft.layers):
            row = (f"| {l} | {_ci(ft.kl_top1[l])} | {_ci(ft.kl_linear[l])} | "
                   f"{100 * ft.closer_to_top1[l]['share']:.0f}% | {100 * ft.same_top1[l]['share']:.0f}% |")
            if ft.patchscope_top1 and ft.patchscope_in_mixture and ft.patchscope_discrete_top1:
                row += (" — | — | — |" if l >= len(ft.patchscope_top1) else
                        f" {_share(ft.patchscope_top1[l])} | {_share(ft.patchscope_in_mixture[l])} | "
                        f"{_share(ft.patchscope_discrete_top1[l])} |")
            lines.append(row)
        if ft.patchscope_top1:
            lines += ["", "Patchscopes (Ghandeharioun et al. 2024): the first concept token's hidden state at layer l "
                      "patched into `cat->cat; 1135->1135; hello->hello; ?->` at the same layer; the share of prompts "
                      "(Wilson 95%) whose next token is the concept token's top-1 token or any token of its mixture "
                      "(texts compared without surrounding spaces); the control patches the state after feeding the "
                      "top-1 token itself. The last layer's state is after the final norm, which no layer takes in."]
        lines.append("")
    for rec in records:
        lines += [f"## {rec.prompt!r}", "",
                  "Concept tokens: " + "; ".join(
                      ", ".join(f"{t!r} {w:.2f}" for t, w in zip(m["texts"][:3], m["weights"][:3]))
                      for m in rec.mixtures), "",
                  "Top lens token per layer (concept run → discrete run), every 4th layer and the last:", "",
                  "| layer | " + " | ".join(f"{c!r} / {d!r}" for c, d in zip(rec.concept.inputs, rec.discrete.inputs))
                  + " |", "|---" * (len(rec.concept.inputs) + 1) + "|"]
        L1 = len(rec.concept.entropy)
        for l in sorted(set(range(0, L1, 4)) | {L1 - 1}):
            cells = [f"{_tok(rec.concept.top_texts[l][j][0])} / {_tok(rec.discrete.top_texts[l][j][0])}"
                     for j in range(len(rec.concept.inputs))]
            lines.append(f"| {l} | " + " | ".join(cells) + " |")
        lines.append("")
        if rec.patchscope:
            lines += ["Patchscopes (Ghandeharioun et al. 2024): each concept token's hidden state at layer l patched into "
                      "`cat->cat; 1135->1135; hello->hello; ?->` at the same layer; the model's next token (top-1 and "
                      "its probability), every 4th layer:", "",
                      "| layer | " + " | ".join(f"{c!r}" for c in rec.concept.inputs[: len(rec.patchscope)]) + " |",
                      "|---" * (len(rec.patchscope) + 1) + "|"]
            for l in range(0, len(rec.patchscope[0]["layers"]), 4):
                cells = [f"{_tok(ps['top_texts'][l][0])} {ps['top_probs'][l][0]:.2f}" for ps in rec.patchscope]
                lines.append(f"| {l} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- analogy


def analogy_report(acc: dict[str, dict[str, dict[str, Any]]], frame_acc: dict[str, dict[str, Any]],
                   skipped: int, model: dict[str, Any], k: int, no_frame: Sequence[str]) -> str:
    rels = [r for r in next(iter(acc.values())) if r != "all"] + ["all"]
    lines = [f"# Vector arithmetic — {model.get('name', '')}", "",
             f"Nearest tokens of e(b) − e(a) + e(c) by cosine, a, b, c excluded (top-1 / top-{k} accuracy); "
             f"{skipped} quadruples skipped (a word that is not one token).", "",
             "| relation | n | " + " | ".join(f"{sp} top-1 | {sp} top-{k}" for sp in acc) + " |",
             "|---|---|" + "---|---|" * len(acc)]
    for r in rels:
        n = next(iter(acc.values()))[r]["n"]
        lines.append(f"| {r} | {n} | " + " | ".join(
            f"{100 * acc[sp][r]['top1']:.0f}% | {100 * acc[sp][r][f'top{k}']:.0f}%" for sp in acc) + " |")
    if frame_acc:
        lines += ["", "## The vector fed as a concept token in a frame", "",
                  "The next token after the frame with the vector, against the frame with the discrete target d "
                  "(top-1: the same most likely next token; top-5: d's most likely next token among the vector's "
                  "top 5). Control: the frame with c (where the arithmetic started) already gives d's next token. "
                  "Closer to d: KL(p_v ‖ p_d) < KL(p_v ‖ p_c).", "",
                  "| relation | n | top-1 | top-5 | control (c) top-1 | closer to d than to c |", "|---|---|---|---|---|---|"]
        for r in [r for r in frame_acc if r != "all"] + ["all"]:
            f = frame_acc[r]
            lines.append(f"| {r} | {f['n']} | {100 * f['top1']:.0f}% | {100 * f['top5']:.0f}% | "
                         f"{100 * f['control_top1']:.0f}% | {100 * f['closer_to_d']:.0f}% |")
    if no_frame:
        lines += ["", f"No frame for relation(s) {', '.join(no_frame)}: the frame test covers the shipped relations."]
    return "\n".join(lines) + "\n"


def analogy_figure(acc: dict[str, dict[str, dict[str, Any]]], frame_acc: dict[str, dict[str, Any]], k: int) -> Any:
    rels = [r for r in next(iter(acc.values())) if r != "all"] + ["all"]
    series = [(f"{sp} top-1", [acc[sp][r]["top1"] for r in rels]) for sp in acc]
    series += [(f"{sp} top-{k}", [acc[sp][r][f"top{k}"] for r in rels]) for sp in acc]
    if frame_acc:
        series.append(("frame top-1", [frame_acc.get(r, {}).get("top1", 0.0) for r in rels]))
    fig, ax = new_figure(1, 1, width=9.0, height=3.4)
    a = ax[0][0]
    w = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        a.bar(np.arange(len(rels)) + i * w, vals, w, label=label)
    a.set_xticks(np.arange(len(rels)) + 0.4 - w / 2, rels)
    a.set_ylim(0, 1)
    a.set_ylabel("accuracy")
    a.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ reader


def reader_figure(losses: Sequence[float]) -> Any:
    """The training loss per optimizer step with a 10-step running mean."""
    fig, ax = new_figure(1, 1, width=7.0, height=3.2)
    a = ax[0][0]
    xs = list(range(1, len(losses) + 1))
    a.plot(xs, losses, color="0.6", lw=0.8, label="per step")
    run = [sum(losses[max(0, i - 9) : i + 1]) / len(losses[max(0, i - 9) : i + 1]) for i in range(len(losses))]
    a.plot(xs, run, color="#0072B2", lw=2, label="running mean (10 steps)")
    a.set_xlabel("optimizer step")
    a.set_ylabel("cross-entropy (nats per target token)")
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reader_report(table: dict[str, Any], training: dict[str, Any], model: dict[str, Any]) -> str:
    lines = [f"# Concept-token reader — {model.get('name', '')}", "",
             "Held-out examples (arena questions cut after a random word, N concept tokens each). Exact match: all N "
             "top-1 tokens read right; top-2 accuracy: per position; weight MAE: mean |error| of the 3 largest weights "
             "per position (a missing weight counts as 0). Intervals: Wilson 95%.", "",
             "| reader | exact match | top-2 accuracy | weight MAE |", "|---|---|---|---|"]
    for label, name in (("base", "base model, reader prompt"), ("reader", "trained LoRA reader")):
        t = table[label]
        lines.append(f"| {name} | {_ci(t['exact_match'])} | {_ci(t['top2_accuracy'])} | {t['weight_mae']:.3f} |")
    for m, t in table["translations"].items():
        lines.append(f"| translation `{m}` (base model) | {_ci(t['exact_match'])} | — | — |")
    k = table["continuation_kl"]
    lines += ["", f"The model's own next token after prompt + concept tokens (no reader prompt), adapter on vs off: "
              f"KL(base ‖ reader) {_ci(k['kl'], '.4f')} nats; same most likely token {_ci(k['same_argmax'])}.", ""]
    if training.get("losses"):
        lines += [f"Training: {training.get('steps')} steps, {training.get('trainable_parameters', '?')} trainable "
                  f"parameters, loss {training['first_loss']:.3f} → {training['last10_mean_loss']:.3f} (mean of the "
                  f"last 10 steps)" + (f", {training['train_s'] / 60:.1f} min" if "train_s" in training else "") + ".",
                  ""]
    return "\n".join(lines) + "\n"


__all__ = ["analogy_figure", "analogy_report", "first_token_figure", "lens_figure", "lens_report", "pair_figure",
           "reader_figure", "reader_report", "superposition_figure", "superposition_report"]
