"""The logit lens on concept tokens: what the residual stream after every layer would predict.

The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens") decodes the residual stream ``h_l`` after
layer ``l`` through the model's own final norm and LM head: ``lens_l = softmax(W · norm(h_l))``. Row 0 is the
input embedding itself, row ``L`` is the model's output (transformers' ``hidden_states[-1]`` is already
normalised, so the LM head alone reads it, and ``lens_L`` equals the model's logits).

Two views:

* :func:`lens_trace` — one prompt followed by ``N`` concept tokens (the ``soft`` rule, temperature 1, top-k
  weights: the ``vecgen concept`` defaults, deterministic) and the next few greedy tokens, decoded at every
  layer × position (top tokens and entropy: the heat map); side by side with the discrete run that feeds the
  top-1 token of each concept token instead.
* :func:`first_token_lens` — over many prompts, the first concept token's position: per layer, the KL from the
  concept token's lens to the lens after its top-1 token (``kl_top1``) and to the mixture of its components'
  lenses ``Σ wᵢ·lens(token i)`` (``kl_linear``). If a model resolves a mixture to its top-1 token in its first
  layers, ``kl_top1`` falls below ``kl_linear`` early and stays there. On transformers models, beside it, the
  Patchscopes identity readout (:mod:`~vecgen.probes.patchscope`) of the same position's hidden state at every layer:
  how often it names the concept token's top-1 token, and, as the control, how often it names the top-1 token when
  that token itself is fed.

One implementation for every backend with per-layer states (the contract's
:meth:`~vecgen.backends.contract.Backend.hidden_states` and :meth:`~vecgen.backends.contract.Backend.unembed`:
transformers and vecgen's reference model); llama.cpp raises :class:`~vecgen.errors.UnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..backends.contract import Prompt, Segment, build_batch, segments
from ..decoding import generate
from ..decoding.metrics import token_text
from ..decoding.sampling import entropy
from ..errors import ConfigError
from ..models import LoadedModel
from .common import concept_settings, kl, mean_ci, share_ci, versus_components
from .sweep import mixture_inputs


def lens_logprobs(lm: LoadedModel, prompts: Sequence[Prompt], positions: Sequence[int] | None = None) -> torch.Tensor:
    """Logit-lens log-probabilities at chosen positions of a left-padded batch.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` on a PyTorch backend (transformers or reference).
        prompts: ``B`` prompts (ids, vectors or segments; :func:`~vecgen.backends.contract.build_batch`).
        positions: indices into each row's *own* sequence (0 = its first input; negative counts from its end);
            default ``[-1]`` (the last input).

    Returns:
        ``(L + 1, B, P, V_real)`` float32 ``log_softmax``: layer 0 = the input vectors (GPT-2: plus its learned
        position embedding), layer ``L`` = the model's output (equal to its logits).

    Raises:
        UnsupportedError: a backend without per-layer hidden states (llama.cpp).
        ConfigError: a position outside a prompt.
    """
    be = lm.backend
    positions = [-1] if positions is None else list(positions)
    batch = build_batch(lm, list(prompts))
    T = batch.attention_mask.shape[1]
    lengths = batch.attention_mask.sum(-1).tolist()
    cols = torch.tensor([[T - n + (p if p >= 0 else n + p) for p in positions] for n in lengths])  # (B, P)
    if ((cols < T - torch.tensor(lengths)[:, None]) | (cols >= T)).any():
        raise ConfigError(f"lens positions {positions} fall outside a prompt")
    with torch.no_grad():
        states = be.hidden_states(batch)  # L + 1 tensors (B, T, d)
        L = len(states) - 1
        rows = []
        for layer, h in enumerate(states):
            x = torch.stack([h[b, cols[b].to(h.device)] for b in range(h.shape[0])])  # (B, P, d)
            z = be.unembed(x, final=layer == L)[..., : lm.n_real_vocab]  # (B, P, V_real)
            rows.append(torch.log_softmax(z, dim=-1).cpu())
    return torch.stack(rows)  # (L + 1, B, P, V_real)


@dataclass
class LensTrace:
    """The lens of one run (concept or discrete) at its concept positions and the ones after.

    Attributes:
        kind: ``"concept"`` or ``"discrete"``.
        inputs: label of each position's input (a concept token shows its top-1 token as ``≈token``).
        roles: ``"concept"`` (a concept-token position, or the discrete token it came from) or ``"after"``.
        top_ids, top_probs, top_texts: ``[layer][position][k]`` the lens's most likely next tokens.
        entropy: ``[layer][position]`` nats.
    """

    kind: str
    inputs: list[str]
    roles: list[str]
    top_ids: list[list[list[int]]]
    top_probs: list[list[list[float]]]
    top_texts: list[list[list[str]]]
    entropy: list[list[float]]


@dataclass
class LensRecord:
    """One prompt: its concept tokens (ids, texts, weights per position) and both traces."""

    prompt: str
    n: int
    after: int
    mixtures: list[dict[str, Any]]
    concept: LensTrace
    discrete: LensTrace
    kl_concept_discrete: list[list[float]] = field(default_factory=list)  # [layer][position] KL(concept ‖ discrete)
    kind: str = "lens"
    #: per concept position, Patchscopes' identity readout of its hidden state at every layer 0..L-1
    #: (:func:`~vecgen.probes.patchscope.patchscope_layers`); None where the backend cannot patch (reference model)
    patchscope: list[dict[str, Any]] | None = None


def _trace(lm: LoadedModel, logp: torch.Tensor, kind: str, inputs: list[str], roles: list[str], k: int) -> LensTrace:
    p = logp.exp()  # (L + 1, P, V)
    tp, ti = p.topk(k, dim=-1)
    texts = [[[token_text(lm.tokenizer, int(t)) for t in pos] for pos in layer] for layer in ti.tolist()]
    return LensTrace(kind, inputs, roles, ti.tolist(), tp.tolist(), texts, entropy(p).tolist())


def lens_trace(lm: LoadedModel, prompt: str, *, n: int = 3, after: int = 3, mixture_top_k: int = 10,
               top: int = 5) -> LensRecord:
    """The logit lens at ``n`` concept-token positions and ``after`` greedy positions after them, for the concept
    run and for the discrete run that feeds the concept tokens' top-1 tokens.

    Args:
        lm: a PyTorch-backend :class:`~vecgen.models.LoadedModel`. prompt: plain text.
        n: concept tokens (>= 1). after: greedy tokens decoded after them (>= 0).
        mixture_top_k: concept-token mixture size (soft rule, T = 1). top: lens tokens kept per cell.

    Raises:
        UnsupportedError: a backend without per-layer hidden states (llama.cpp).
    """
    ids = lm.encode(prompt)
    t1, soft = concept_settings(mixture_top_k)
    gen = generate(lm, [ids], sampling=t1, mixing=soft, max_new_tokens=n, stop_ids=[], keep_vectors=True,
                   record_top_k=mixture_top_k)
    vecs = gen.vectors(0)  # (n, d)
    mixtures = []
    for s in gen.steps:
        keep = s.mix_weights[0] > 0
        mi, mw = s.mix_ids[0][keep].tolist(), s.mix_weights[0][keep].tolist()
        mixtures.append({"ids": mi, "texts": [token_text(lm.tokenizer, t) for t in mi], "weights": mw})
    top1 = [m["ids"][0] for m in mixtures]
    c_first: list[Segment] = [ids, vecs.to(lm.backend.dtype)]
    d_first = ids + top1
    c_tail = generate(lm, [c_first], max_new_tokens=after, stop_ids=[]).token_ids(0) if after else []
    d_tail = generate(lm, [d_first], max_new_tokens=after, stop_ids=[]).token_ids(0) if after else []
    positions = list(range(len(ids), len(ids) + n + after))
    c_prompt: list[Segment] = c_first + ([c_tail] if c_tail else [])
    d_prompt = d_first + d_tail
    logp = lens_logprobs(lm, [c_prompt, d_prompt], positions)  # (L + 1, 2, P, V)
    roles = ["concept"] * n + ["after"] * after
    c_inputs = ["≈" + m["texts"][0] for m in mixtures] + [token_text(lm.tokenizer, t) for t in c_tail]
    d_inputs = [token_text(lm.tokenizer, t) for t in top1 + d_tail]
    rec = LensRecord(prompt, n, after, mixtures, _trace(lm, logp[:, 0], "concept", c_inputs, roles, top),
                     _trace(lm, logp[:, 1], "discrete", d_inputs, roles, top))
    rec.kl_concept_discrete = kl(logp[:, 0], logp[:, 1]).tolist()  # (L + 1, P)
    rec.patchscope = _patchscopes(lm, c_first, len(ids), n, top)
    return rec


def _patchscopes(lm: LoadedModel, prompt: list[Segment], start: int, n: int, top: int) -> list[dict[str, Any]] | None:
    """Patchscopes' per-layer identity readout of each concept position's hidden states (None: not a transformers
    model, whose layers the patch needs)."""
    from transformers import PreTrainedModel

    from .patchscope import patchscope_layers

    if not isinstance(lm.model, PreTrainedModel):
        return None
    with torch.no_grad():
        states = lm.backend.hidden_states(build_batch(lm, [prompt]))  # L + 1 tensors (1, T, d); no padding
    return [patchscope_layers(lm, [h[0, start + j] for h in states], top=top) for j in range(n)]


@dataclass
class FirstTokenLens:
    """Per layer, over prompts: how the first concept token's lens compares with its components' lenses.

    Attributes:
        prompts: how many prompts. layers: ``L + 1``.
        kl_top1, kl_linear: ``[layer]`` mean KL (nats) to the top-1 token's lens / to ``Σ wᵢ·lens(token i)``,
            each ``{"n", "mean", "low", "high"}`` (bootstrap 95%).
        closer_to_top1: ``[layer]`` share of prompts with ``kl_top1 < kl_linear`` (Wilson 95%).
        same_top1: ``[layer]`` share whose lens argmax equals the top-1 token's lens argmax.
        per_prompt: ``[prompt]`` ``{"prompt", "top1_weight", "kl_top1": [layer], "kl_linear": [layer]}`` (and, with
            Patchscopes, ``"patchscope_concept"`` / ``"patchscope_discrete"``: ``[layer]`` the readout's top token).
        patchscope_top1: ``[layer 0..L-1]`` share of prompts (Wilson 95%) whose concept token's hidden state at that
            layer, patched into Patchscopes' identity prompt at the same layer, reads back as its top-1 token (the
            texts compared without surrounding whitespace: the prompt's ``cat->cat`` pattern drops the leading space).
            None on a model the patch cannot hook (vecgen's reference model).
        patchscope_in_mixture: ``[layer]`` share whose readout is any of the mixture's tokens.
        patchscope_discrete_top1: ``[layer]`` the control: the hidden state after feeding the top-1 token itself.
    """

    prompts: int
    layers: int
    kl_top1: list[dict[str, float]]
    kl_linear: list[dict[str, float]]
    closer_to_top1: list[dict[str, float]]
    same_top1: list[dict[str, float]]
    per_prompt: list[dict[str, Any]]
    patchscope_top1: list[dict[str, float]] | None = None
    patchscope_in_mixture: list[dict[str, float]] | None = None
    patchscope_discrete_top1: list[dict[str, float]] | None = None


def first_token_lens(lm: LoadedModel, prompts: Sequence[str], *, mixture_top_k: int = 10, batch_size: int = 8,
                     on_progress: Callable[[int, int], None] | None = None) -> FirstTokenLens:
    """The first concept token's lens at every layer against its components' (see the module docstring).

    Args:
        lm: a PyTorch-backend model. prompts: ``N`` texts. mixture_top_k: concept-token mixture size (soft rule, T = 1).
        batch_size: sequences per forward pass. on_progress: called with ``(done, N)`` after each prompt.

    Raises:
        UnsupportedError: a backend without per-layer hidden states (llama.cpp).
    """
    mixture, vecs = mixture_inputs(lm, prompts, mixture_top_k, batch_size)
    per: list[dict[str, Any]] = []
    for i, p in enumerate(prompts):
        ids = lm.encode(p)
        keep = mixture.weights[i] > 0
        toks, w = mixture.indices[i][keep].tolist(), mixture.weights[i][keep].float().cpu()
        concept = segments(ids, vecs[i][None])
        seqs: list[Prompt] = [concept, *(ids + [t] for t in toks)]
        parts = [lens_logprobs(lm, seqs[j : j + batch_size])[:, :, 0] for j in range(0, len(seqs), batch_size)]
        logp = torch.cat(parts, dim=1)  # (L + 1, 1 + k, V)
        conc, comp = logp[:, 0], logp[:, 1:]  # (L + 1, V), (L + 1, k, V)
        v = versus_components(conc, comp, w)  # per layer
        row = {"prompt": p, "top1_weight": float(w[0]), "kl_top1": v["kl_top1"].tolist(),
               "kl_linear": v["kl_linear"].tolist(), "same_top1": v["same_top1"].tolist()}
        row |= _patchscope_row(lm, concept, ids + toks[:1], len(ids), [token_text(lm.tokenizer, t) for t in toks])
        per.append(row)
        if on_progress:
            on_progress(i + 1, len(prompts))
    layers = len(per[0]["kl_top1"]) if per else 0
    ft = FirstTokenLens(
        prompts=len(per), layers=layers,
        kl_top1=[mean_ci([r["kl_top1"][l] for r in per]) for l in range(layers)],
        kl_linear=[mean_ci([r["kl_linear"][l] for r in per]) for l in range(layers)],
        closer_to_top1=[share_ci([r["kl_top1"][l] < r["kl_linear"][l] for r in per]) for l in range(layers)],
        same_top1=[share_ci([r["same_top1"][l] for r in per]) for l in range(layers)],
        per_prompt=per)
    if per and "patchscope_is_top1" in per[0]:
        n_patch = layers - 1  # layers 0..L-1: the last state is after the final norm, which no layer takes in
        ft.patchscope_top1 = [share_ci([r["patchscope_is_top1"][l] for r in per]) for l in range(n_patch)]
        ft.patchscope_in_mixture = [share_ci([r["patchscope_in_mixture"][l] for r in per]) for l in range(n_patch)]
        ft.patchscope_discrete_top1 = [share_ci([r["patchscope_discrete_is_top1"][l] for r in per])
                                       for l in range(n_patch)]
    return ft


def _patchscope_row(lm: LoadedModel, concept: list[Segment], discrete: list[int], position: int,
                    mixture_texts: Sequence[str]) -> dict[str, Any]:
    """Patchscopes' identity readout at every layer of ``position`` in ``concept`` (the prompt + its concept token)
    and in ``discrete`` (the prompt + the top-1 token), compared with the mixture's token texts; ``{}`` where the
    model cannot be patched."""
    c, d = _patchscopes(lm, concept, position, 1, 1), _patchscopes(lm, [discrete], position, 1, 1)
    if c is None or d is None:
        return {}
    read_c, read_d = [r[0] for r in c[0]["top_texts"]], [r[0] for r in d[0]["top_texts"]]
    names = [t.strip() for t in mixture_texts]
    return {"patchscope_concept": read_c, "patchscope_discrete": read_d,
            "patchscope_is_top1": [t.strip() == names[0] for t in read_c],
            "patchscope_in_mixture": [t.strip() in names for t in read_c],
            "patchscope_discrete_is_top1": [t.strip() == names[0] for t in read_d]}


__all__ = ["FirstTokenLens", "LensRecord", "LensTrace", "first_token_lens", "lens_logprobs", "lens_trace"]
