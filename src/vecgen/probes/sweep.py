"""Can a model read a superposition? Feed ``α·e(a) + (1−α)·e(b)`` after a prompt and compare what follows.

For a token pair ``(a, b)`` that both continue a prompt (by default the model's own top-2 next tokens), the
next-token distribution ``p_α`` after the fed vector is compared, for α = 0, 0.1, …, 1, with the
distributions after the discrete tokens, ``p_a`` (α = 1) and ``p_b`` (α = 0):

* ``kl_linear[α] = KL(p_α ‖ α·p_a + (1−α)·p_b)``: how far the model is from *reading the mixture linearly*
  (continuing as the same mixture of the two continuations);
* ``kl_nearer[α] = KL(p_α ‖ p_nearer)``: how far it is from *following one component*, the endpoint with the
  larger weight (``p_a`` for α > 0.5, ``p_b`` below; the smaller of the two at 0.5) — the "single-threaded"
  reading of Wu et al. 2025, "LLMs are single-threaded reasoners";
* ``position[α] = TV(p_α, p_b) / (TV(p_α, p_a) + TV(p_α, p_b))`` in [0, 1] (0 = as after b, 1 = as after a;
  a linear reading gives ``position = α``). The **switch α** is where it first crosses 0.5 (linear
  interpolation between grid points); the **sharpness** is its largest slope over the grid (1 for a linear
  reading, ``1/Δα`` = 10 on the default grid when the continuation flips within one step).

Pairs whose two continuations are nearly the same distribution carry no signal (after "The capital of France
is", " Paris" and " London" are both followed by "."), so each pair's **divergence** ``JS(p_a, p_b)`` (nats,
at most ln 2 ≈ 0.693) is reported and the summary covers pairs with divergence ≥ ``min_divergence``.

The same question is asked of the model's *own* soft mixtures: the concept token after each prompt (the
``soft`` rule, temperature 1, top-k weights renormalised, :func:`vecgen.decoding.mixing.mix_embeddings`) is fed,
and its continuation compared with ``Σ wᵢ·p_i`` (linear reading) and with ``p_top1`` (following the top-1
component). Everything here is deterministic (no sampling).

Vectors are built from :meth:`Backend.input_rows` (the model's own input rows, embedding scale included) in
float32 and cast to the backend dtype, so α = 1 and α = 0 feed exactly ``e(a)`` and ``e(b)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..decoding.metrics import token_text
from ..decoding.mixing import mix_embeddings, soft_rule
from ..errors import ConfigError
from ..models import LoadedModel
from .common import (
    concept_settings,
    continuation_logprobs,
    js,
    kl,
    mean_ci,
    next_logprobs,
    share_ci,
    tv,
    versus_components,
)

#: α = 0, 0.1, …, 1.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(11))
#: Pairs (and mixtures) whose continuations differ by less than this JS divergence (nats) are reported but left
#: out of the summary: the two continuations are nearly the same distribution.
DEFAULT_MIN_DIVERGENCE = 0.1


def check_alphas(alphas: Sequence[float]) -> list[float]:
    """Sorted distinct α values, each in [0, 1], including both endpoints.

    Raises:
        ConfigError: a value outside [0, 1] or not finite, fewer than three values, or 0 or 1 missing.
    """
    vals = []
    for a in alphas:
        a = float(a)
        if not (0.0 <= a <= 1.0):  # also NaN
            raise ConfigError(f"alphas: {a} is outside [0, 1]; α weights token a, 1 − α token b", param="alphas")
        vals.append(a)
    vals = sorted(set(vals))
    if len(vals) < 3 or vals[0] != 0.0 or vals[-1] != 1.0:
        raise ConfigError("alphas: give at least three values including 0 and 1 (the discrete endpoints), "
                          "e.g. 0,0.25,0.5,0.75,1", param="alphas")
    return vals


@dataclass
class PairSweep:
    """One pair's sweep (α weights ``a``; ``a`` is the model's top-1 for model-chosen pairs).

    Attributes:
        prompt: the prompt text. source: ``"model"`` (its top-2) or ``"user"``.
        a, b: token ids; a_text, b_text: their strings. p_a, p_b: their probabilities after the prompt.
        divergence: ``JS(p_a, p_b)`` of the continuations after a and after b, nats.
        alphas: the grid. kl_linear, kl_nearer: nats per α (see the module docstring). position: per α, in [0, 1].
        next_a, next_b: the most likely token after a and after b (ids; texts in next_a_text, next_b_text).
        p_next_a, p_next_b: per α, the probability of next_a and of next_b after the fed vector.
        switch_alpha: first α where ``position`` crosses 0.5 (None if it never does).
        sharpness: largest ``Δposition/Δα`` over the grid (1 = linear, 1/Δα = a flip within one step).
        follows_one: mean interior ``kl_nearer`` < mean interior ``kl_linear`` (the model follows one component).
        informative: ``divergence >= min_divergence``.
    """

    prompt: str
    source: str
    a: int
    b: int
    a_text: str
    b_text: str
    p_a: float
    p_b: float
    divergence: float
    alphas: list[float]
    kl_linear: list[float]
    kl_nearer: list[float]
    position: list[float]
    next_a: int
    next_b: int
    next_a_text: str
    next_b_text: str
    p_next_a: list[float]
    p_next_b: list[float]
    switch_alpha: float | None
    sharpness: float
    follows_one: bool
    informative: bool
    kind: str = "pair"


@dataclass
class MixtureProbe:
    """The model's own concept token after one prompt, fed back.

    Attributes:
        prompt: the prompt. ids, texts, weights: the mixture (top-k, renormalised), largest first.
        divergence: ``JS(p_top1, Σ wᵢ·p_i)``: how much the linear reading differs from following the top-1.
        kl_linear: ``KL(p_mix ‖ Σ wᵢ·p_i)``; kl_top1: ``KL(p_mix ‖ p_top1)`` (nats).
        same_argmax_top1: the most likely next token after the mixture equals the one after its top-1 token.
        follows_top1: ``kl_top1 < kl_linear``. informative: ``divergence >= min_divergence``.
    """

    prompt: str
    ids: list[int]
    texts: list[str]
    weights: list[float]
    divergence: float
    kl_linear: float
    kl_top1: float
    same_argmax_top1: bool
    follows_top1: bool
    informative: bool
    kind: str = "mixture"


@dataclass
class SuperpositionResult:
    """Every pair and mixture, and the summary (see :func:`summarize`)."""

    pairs: list[PairSweep]
    mixtures: list[MixtureProbe]
    settings: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


def _interp_vectors(lm: LoadedModel, a: int, b: int, alphas: Sequence[float]) -> torch.Tensor:
    """``(A, d)`` in the backend dtype: ``α·e(a) + (1−α)·e(b)`` computed in float32."""
    be = lm.backend
    rows = be.input_rows(torch.tensor([a, b], dtype=torch.long, device=be.device)).float()  # (2, d)
    al = torch.tensor(list(alphas), dtype=torch.float32, device=rows.device)[:, None]  # (A, 1)
    return (al * rows[0] + (1 - al) * rows[1]).to(be.dtype)  # (A, d)


def sweep_logprobs(lm: LoadedModel, prompt_ids: Sequence[int], a: int, b: int, alphas: Sequence[float], *,
                   batch_size: int = 32) -> torch.Tensor:
    """Next-token log-probabilities after ``prompt_ids`` + ``α·e(a) + (1−α)·e(b)``: ``(A, V_real)`` float32."""
    return continuation_logprobs(lm, [prompt_ids], [_interp_vectors(lm, a, b, alphas)], batch_size=batch_size)[0]


def _crossing(alphas: Sequence[float], pos: Sequence[float]) -> float | None:
    for j in range(len(alphas) - 1):
        if pos[j] < 0.5 <= pos[j + 1]:
            return float(alphas[j] + (0.5 - pos[j]) / (pos[j + 1] - pos[j]) * (alphas[j + 1] - alphas[j]))
    return None


def measure_pair(logp: torch.Tensor, alphas: Sequence[float]) -> dict[str, Any]:
    """The sweep's measures from its ``(A, V)`` log-probabilities (row 0 is α = 0 → b, the last α = 1 → a)."""
    al = torch.tensor(list(alphas), dtype=torch.float32)[:, None]  # (A, 1)
    lp_b, lp_a = logp[0], logp[-1]  # (V,)
    lin = torch.logsumexp(torch.stack([torch.log(al) + lp_a, torch.log1p(-al) + lp_b]), dim=0)  # (A, V)
    kl_lin = kl(logp, lin)  # (A,)
    kl_a, kl_b = kl(logp, lp_a.expand_as(logp)), kl(logp, lp_b.expand_as(logp))  # (A,)
    alt = al[:, 0]
    kl_near = torch.where(alt > 0.5, kl_a, torch.where(alt < 0.5, kl_b, torch.minimum(kl_a, kl_b)))
    ta, tb = tv(logp, lp_a.expand_as(logp)), tv(logp, lp_b.expand_as(logp))
    pos = (tb / (ta + tb).clamp_min(1e-12)).tolist()
    pos[0], pos[-1] = 0.0, 1.0
    slopes = [(pos[j + 1] - pos[j]) / (alphas[j + 1] - alphas[j]) for j in range(len(alphas) - 1)]
    inner = [j for j, x in enumerate(alphas) if 0.0 < x < 1.0]
    next_a, next_b = int(lp_a.argmax()), int(lp_b.argmax())
    return {
        "divergence": float(js(lp_a, lp_b)),
        "kl_linear": kl_lin.tolist(),
        "kl_nearer": kl_near.tolist(),
        "position": pos,
        "next_a": next_a,
        "next_b": next_b,
        "p_next_a": logp[:, next_a].exp().tolist(),
        "p_next_b": logp[:, next_b].exp().tolist(),
        "switch_alpha": _crossing(alphas, pos),
        "sharpness": float(max(slopes)),
        "follows_one": bool(kl_near[inner].mean() < kl_lin[inner].mean()),
    }


def model_pairs(lm: LoadedModel, prompts: Sequence[str], *, batch_size: int = 32,
                logp: torch.Tensor | None = None) -> list[tuple[str, int, int, float, float]]:
    """The model's top-2 next tokens after each prompt: ``(prompt, a, b, p_a, p_b)`` with ``a`` the top-1
    (``logp``: the prompts' ``(P, V)`` next-token log-probabilities, when already computed)."""
    if logp is None:
        logp = next_logprobs(lm, [lm.encode(p) for p in prompts], batch_size=batch_size)  # (P, V)
    top_p, top_i = logp.exp().topk(2, dim=-1)
    return [(p, int(i[0]), int(i[1]), float(q[0]), float(q[1])) for p, i, q in zip(prompts, top_i, top_p)]


def mixture_inputs(lm: LoadedModel, prompts: Sequence[str], top_k: int, batch_size: int,
                    logp: torch.Tensor | None = None) -> tuple[Any, torch.Tensor]:
    """The model's own concept token after each prompt: ``(mixture, vectors (P, d))`` (soft rule, T = 1)."""
    if logp is None:
        logp = next_logprobs(lm, [lm.encode(p) for p in prompts], batch_size=batch_size)  # (P, V)
    sampling, mixing = concept_settings(top_k)
    mixture = soft_rule(logp, sampling, mixing)
    return mixture, mix_embeddings(lm.backend, _to_device(mixture, lm.backend.device))  # (P, d)


def _to_device(mixture: Any, device: torch.device) -> Any:
    return dataclasses.replace(mixture, weights=mixture.weights.to(device),
                               indices=None if mixture.indices is None else mixture.indices.to(device))


def run_superposition(lm: LoadedModel, prompts: Sequence[str], *, user_pairs: Sequence[tuple[str, int, int]] = (),
                      alphas: Sequence[float] = DEFAULT_ALPHAS, min_divergence: float = DEFAULT_MIN_DIVERGENCE,
                      mixture_top_k: int = 10, batch_size: int = 32,
                      on_progress: Callable[[int, int], None] | None = None) -> SuperpositionResult:
    """Sweep the model's top-2 pair at every prompt and every user pair, and feed back its own concept tokens.

    Each prompt is prefilled once and forked per fed vector (:func:`~vecgen.probes.common.continuation_logprobs`),
    at most ``batch_size`` vectors per forward pass.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (any backend).
        prompts: texts whose top-2 next tokens form the model pairs (plain completion, no template).
        user_pairs: extra ``(prompt, a, b)`` with token ids (α weights ``a``).
        alphas: the grid (see :func:`check_alphas`). min_divergence: nats, for ``informative``.
        mixture_top_k: mixture size of the own-mixture probe (0 = skip it).
        on_progress: called with ``(sequences done, total)`` after each forward pass.

    Returns:
        A :class:`SuperpositionResult` with its summary.
    """
    alphas = check_alphas(alphas)
    tok = lm.tokenizer
    first_logp = next_logprobs(lm, [lm.encode(p) for p in prompts], batch_size=batch_size)  # (P, V)
    items = [(p, a, b, pa, pb, "model") for p, a, b, pa, pb in model_pairs(lm, prompts, logp=first_logp)]
    if user_pairs:
        first = next_logprobs(lm, [lm.encode(p) for p, _, _ in user_pairs], batch_size=batch_size).exp()
        items += [(p, a, b, float(first[i, a]), float(first[i, b]), "user") for i, (p, a, b) in enumerate(user_pairs)]
    prefixes: list[list[int]] = []
    vectors: list[torch.Tensor] = []
    for p, a, b, *_ in items:
        prefixes.append(lm.encode(p))
        vectors.append(_interp_vectors(lm, a, b, alphas))  # (A, d)
    mixture = None
    if mixture_top_k:
        mixture, vecs = mixture_inputs(lm, prompts, mixture_top_k, batch_size, logp=first_logp)
        comps: list[list[int]] = []
        for r, p in enumerate(prompts):
            toks = mixture.indices[r][mixture.weights[r] > 0].tolist()
            comps.append(toks)
            prefixes.append(lm.encode(p))
            rows = lm.backend.input_rows(torch.tensor(toks, dtype=torch.long, device=lm.backend.device))  # (k, d)
            vectors.append(torch.cat([vecs[r][None], rows]))  # the mixture, then each of its tokens
    total = sum(len(v) for v in vectors)
    outs = continuation_logprobs(lm, prefixes, vectors, batch_size=batch_size,
                                 on_batch=(lambda n: on_progress(n, total)) if on_progress else None)
    pairs = []
    for n, (p, a, b, pa, pb, src) in enumerate(items):
        m = measure_pair(outs[n], alphas)
        pairs.append(PairSweep(prompt=p, source=src, a=a, b=b, a_text=token_text(tok, a), b_text=token_text(tok, b),
                               p_a=pa, p_b=pb, alphas=list(alphas), next_a_text=token_text(tok, m["next_a"]),
                               next_b_text=token_text(tok, m["next_b"]),
                               informative=m["divergence"] >= min_divergence, **m))
    mixtures = []
    for r, p in enumerate(prompts if mixture is not None else []):
        assert mixture is not None
        toks = comps[r]
        mixed, comp = outs[len(items) + r][0], outs[len(items) + r][1:]  # (V,), (k, V)
        w = mixture.weights[r][: len(toks)].float().cpu()  # weights > 0 come first (descending)
        v = versus_components(mixed, comp, w)
        kl_lin, kl_top = float(v["kl_linear"]), float(v["kl_top1"])
        div = float(js(comp[0], v["linear"]))
        mixtures.append(MixtureProbe(p, toks, [token_text(tok, t) for t in toks], w.tolist(), div, kl_lin, kl_top,
                                     bool(v["same_top1"]), kl_top < kl_lin, div >= min_divergence))
    settings = {"alphas": list(alphas), "min_divergence": min_divergence, "mixture_top_k": mixture_top_k,
                "n_prompts": len(prompts), "n_user_pairs": len(user_pairs), "batch_size": batch_size}
    res = SuperpositionResult(pairs, mixtures, settings)
    res.summary = summarize(res)
    return res


def summarize(res: SuperpositionResult) -> dict[str, Any]:
    """Over informative pairs: mean switch α and sharpness with bootstrap 95% intervals, the share that follows
    one component (Wilson 95%), mean KL per α to the linear reading and to the nearer endpoint; the same shares
    for the own mixtures."""
    inf = [p for p in res.pairs if p.informative]
    sw = [p.switch_alpha for p in inf if p.switch_alpha is not None]
    alphas = res.settings["alphas"]
    per_alpha = []
    for j, x in enumerate(alphas):
        per_alpha.append({"alpha": x,
                          "kl_linear": mean_ci([p.kl_linear[j] for p in inf])["mean"] if inf else None,
                          "kl_nearer": mean_ci([p.kl_nearer[j] for p in inf])["mean"] if inf else None,
                          "position": mean_ci([p.position[j] for p in inf])["mean"] if inf else None})
    mix_inf = [m for m in res.mixtures if m.informative]
    return {
        "pairs": len(res.pairs),
        "informative_pairs": len(inf),
        "switch_alpha": mean_ci(sw),
        "sharpness": mean_ci([p.sharpness for p in inf]),
        "follows_one_component": share_ci([p.follows_one for p in inf]),
        "per_alpha": per_alpha,
        "mixtures": len(res.mixtures),
        "informative_mixtures": len(mix_inf),
        "mixture_follows_top1": share_ci([m.follows_top1 for m in mix_inf]),
        "mixture_same_argmax_top1": share_ci([m.same_argmax_top1 for m in mix_inf]),
        "mixture_kl_linear": mean_ci([m.kl_linear for m in mix_inf]),
        "mixture_kl_top1": mean_ci([m.kl_top1 for m in mix_inf]),
        "mixture_top1_weight": mean_ci([m.weights[0] for m in mix_inf]),
    }


__all__ = ["DEFAULT_ALPHAS", "DEFAULT_MIN_DIVERGENCE", "MixtureProbe", "PairSweep", "SuperpositionResult",
           "check_alphas", "measure_pair", "model_pairs", "run_superposition", "summarize",
           "sweep_logprobs"]
