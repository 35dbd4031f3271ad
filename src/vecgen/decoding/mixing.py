"""Mixing rules: next-token probabilities → the next input vector (a "concept token").

A rule returns a :class:`Mixture` (token ids and weights); :func:`mix_embeddings` is the one
function that turns a mixture into the next input vector ``Σ wᵢ·e(i)``, where ``e(i)`` is the model's own
input for token ``i`` (the backend's ``input_rows``: ``E[i]``, or ``sqrt(d)·E[i]`` for Gemma 3). Sparse
mixtures gather only their rows (no dense ``V × d`` product); only the ``full`` rule (all rows) uses a
dense matmul. Mixing runs in float32 whatever the model's dtype; the vector is cast to it at the end.

Rules (sources in the shared ANCHORS notes):

``onehot``
    Sample a token as usual and feed its embedding: ordinary decoding.
``soft``
    Soft Thinking (Zhang et al. 2025, arXiv 2505.15778): temperature, top-k / top-p / min-p
    truncation with renormalisation, keep the ``max_topk`` largest (renormalised), mix.
``full``
    CoT2 (Gozeten et al. 2025): the full-vocabulary ``softmax(logits / T)`` mixture, no truncation.
``moi``
    Mixture of Inputs (Zhuang et al. 2025, arXiv 2505.14827): sample y; posterior
    ``q = (p + β·onehot(y)) / (1 + β)``; feed ``H̃·Σ qᵢE[i] + (1 − H̃)·E[y]`` with the normalised
    entropy ``H̃ = H(p) / log |support(p)|``.
``hidden``
    COCONUT-style continuous thought without training (Hao et al. 2024, arXiv 2412.06769): feed the last
    hidden state (after the final norm, before the LM head) back as the next input. Its token (for
    records and traces) is the top-1 token of the logits. Latent norms are far larger than token
    embeddings (coconut issue #29; 140–210 against 0.51 on Qwen2.5-Coder-0.5B), so ``hidden_scale="embed"`` (the
    default) rescales each vector to the mean norm of the real tokens' input vectors;
    ``hidden_scale="none"`` feeds it as it is.

Optional noise on the weights of ``soft`` (Stochastic Soft Thinking, Wu et al. 2025):
``gumbel`` (Gumbel-softmax: ``softmax((log w + g) / τ)``, g ~ Gumbel(0, 1)) or ``dirichlet``
(``w ~ Dirichlet(α · w)``).

Optional anti-collapse push on any rule's concept token (SeLaR, arXiv 2604.08299, ``Parker-rfu/SeLaReasoning``:
"contrastive regularization"): the fed vector moves away from the top-1 token's embedding,
``v = m + λ·H̃·(m − e(top1))`` with ``m = Σ wᵢ·e(i)`` and ``H̃`` the mixture's entropy over ``log`` of its support
(in [0, 1]). It is a mixture with coefficients ``(1 + λH̃)·w − λH̃·onehot(top1)`` (they sum to 1; the top-1's may be
negative), kept as :attr:`Mixture.vector_weights` beside the distribution ``weights``. SeLaR normalises by
``log k`` of its top-k (k = 3); here the support is the rule's own (``max_topk`` for ``soft``).

Padding rows and tokens outside an allowed set never get weight: the sampler gives them
probability 0 before any rule runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..backends.contract import ContractError
from ..config import SamplingConfig, format_validation_error
from ..errors import ConfigError
from .sampling import Generators, entropy, logits_to_probs, mask_logits, per_generator, sample, tempered_softmax


class Noise(str, Enum):
    """Noise on the mixture weights (Stochastic Soft Thinking)."""

    none = "none"
    gumbel = "gumbel"
    dirichlet = "dirichlet"


class HiddenScale(str, Enum):
    """How the ``hidden`` rule scales the fed hidden state."""

    none = "none"  #: as the model produced it
    embed = "embed"  #: rescaled to the mean norm of the real tokens' input vectors


class MixingConfig(BaseModel):
    """Parameters of the mixing rules.

    Attributes:
        rule: registered rule name (``soft``, ``full``, ``moi``, ``onehot``).
        max_topk: ``soft`` keeps at most this many tokens (10 recommended by Soft Thinking).
        beta: ``moi``'s β (≈1 in the paper).
        noise: ``none``, ``gumbel`` or ``dirichlet`` (``soft`` only).
        gumbel_tau: Gumbel-softmax temperature τ > 0.
        dirichlet_alpha: Dirichlet concentration scale α > 0 (larger = less noise).
        hidden_scale: ``hidden`` rule only: ``embed`` (rescale to the mean input-embedding norm) or ``none``.
        anti_collapse: SeLaR's push of the fed vector away from the top-1 token, ``λ >= 0`` (0 = off; SeLaR uses 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rule: str = "soft"
    max_topk: int = Field(10, ge=1)
    beta: float = Field(1.0, ge=0.0)
    noise: Noise = Noise.none
    gumbel_tau: float = Field(0.5, gt=0.0)
    dirichlet_alpha: float = Field(10.0, gt=0.0)
    hidden_scale: HiddenScale = HiddenScale.embed
    anti_collapse: float = Field(0.0, ge=0.0)

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, rule: str) -> str:
        """Every config names a registered rule, whether or not its method mixes (a grid over ``rule`` with
        ``direct`` is checked like one with ``soft``)."""
        if rule not in MIXING_RULES:
            raise ValueError(f"unknown mixing rule {rule!r}; choose one of: {', '.join(MIXING_RULES)}")
        return rule

    @property
    def feeds_hidden(self) -> bool:
        """Whether the rule feeds the last hidden state (the engine then asks the backend for it)."""
        return self.rule in HIDDEN_RULES

    @classmethod
    def create(cls, **values) -> "MixingConfig":
        """Validate, raising :class:`ConfigError` (with field, value and range) instead of pydantic's error."""
        try:
            cfg = cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "mixing config")) from None
        get_rule(cfg.rule)
        return cfg


@dataclass
class Mixture:
    """The weights of one concept token per batch row.

    Attributes:
        weights: ``(B, K)`` float32 (sparse) or ``(B, V)`` (dense); rows sum to 1.
        indices: ``(B, K)`` long token ids for sparse mixtures; None for dense (all rows).
        token: ``(B,)`` long, the discrete token the step stands for (the sampled token for
            ``onehot``/``moi``, the top-1 token otherwise).
        probs: ``(B, V)`` the sampler's (truncated) distribution the mixture came from; None for greedy
            ``onehot`` (the point mass at ``token``).
        full_probs: ``(B, V)`` untruncated ``softmax(logits / T)``, whose entropy Cold Stop uses.
        hidden_scale: set by the ``hidden`` rule: the vector is the last hidden state (scaled this way),
            not a mixture of embeddings; ``weights``/``indices`` then record the top-1 token.
        vector_weights: the coefficients of the fed vector when they differ from ``weights`` (the anti-collapse
            push, :func:`push_from_top1`; same shape, rows sum to 1, the top-1's may be negative); None = ``weights``.
    """

    weights: torch.Tensor
    indices: torch.Tensor | None
    token: torch.Tensor
    probs: torch.Tensor | None
    full_probs: torch.Tensor
    hidden_scale: HiddenScale | None = None
    vector_weights: torch.Tensor | None = None

    def top(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` largest weights and their token ids, ``(B, k)`` each (fewer if the mixture is smaller)."""
        k = min(k, self.weights.shape[-1])
        w, pos = torch.topk(self.weights, k, dim=-1)
        ids = pos if self.indices is None else torch.gather(self.indices, -1, pos)
        return ids, w

    def entropy(self) -> torch.Tensor:
        """Entropy of the mixture weights in nats, ``(B,)``."""
        return entropy(self.weights)


class _MatrixRows:
    """A bare embedding matrix seen as a backend (scale 1, ``input_rows(i) = E[i]``)."""

    def __init__(self, embedding: torch.Tensor):
        self.embedding = embedding
        self.embed_scale = 1.0
        self.dtype = embedding.dtype

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids]


_MEAN_NORMS: dict[tuple[int, int], float] = {}


def mean_input_norm(source: Any, n_real: int | None = None) -> float:
    """Mean L2 norm of the model's input vectors of the first ``n_real`` rows (all rows by default):
    ``embed_scale · mean ‖E[i]‖``, computed in float32 chunks once per matrix and cached."""
    E = source.embedding if not isinstance(source, torch.Tensor) else source
    scale = 1.0 if isinstance(source, torch.Tensor) else float(source.embed_scale)
    n = int(n_real or E.shape[0])
    key = (E.data_ptr(), n)
    if key not in _MEAN_NORMS:
        with torch.no_grad():
            total = sum(float(torch.linalg.vector_norm(E[i : i + 16384].float(), dim=-1).sum())
                        for i in range(0, n, 16384))
        _MEAN_NORMS[key] = total / n
    return scale * _MEAN_NORMS[key]


def mix_embeddings(source: Any, mixture: Mixture, *, hidden: torch.Tensor | None = None,
                   target_norm: float | None = None) -> torch.Tensor:
    """The next input vector of each row: ``Σ wᵢ·e(i)`` (or the scaled hidden state), ``(B, d)`` in the model dtype.

    Args:
        source: a :class:`~vecgen.backends.contract.Backend` (``e(i)`` = its ``input_rows``), or a bare
            embedding matrix ``E`` ``(V_rows, d)`` (``e(i) = E[i]``).
        mixture: sparse (gathers ``B·K`` input rows) or dense (``(B, V) @ (V, d)`` times ``embed_scale``);
            weights in float32, the product accumulated in float32 (sparse) and cast to the model dtype.
        hidden: ``(B, d)`` the last hidden states; required when ``mixture.hidden_scale`` is set.
        target_norm: the norm ``hidden_scale="embed"`` rescales to (default :func:`mean_input_norm`
            over all rows of ``source``).

    Raises:
        ContractError: a ``hidden`` mixture without hidden states (the engine did not ask the backend).
    """
    src = _MatrixRows(source) if isinstance(source, torch.Tensor) else source
    if mixture.hidden_scale is not None:
        if hidden is None:
            raise ContractError("the hidden rule needs the last hidden state, but none was computed")
        h = hidden.float()  # (B, d)
        if mixture.hidden_scale == HiddenScale.embed:
            norm = mean_input_norm(src) if target_norm is None else target_norm
            h = h * (norm / torch.linalg.vector_norm(h, dim=-1, keepdim=True).clamp_min(1e-12))  # (B, d)
        return h.to(src.dtype)
    coef = mixture.weights if mixture.vector_weights is None else mixture.vector_weights
    if mixture.indices is None:
        E = src.embedding
        w = coef[:, : E.shape[0]]  # (B, V)
        out = w.to(E.dtype) @ E[: w.shape[-1]]  # (B, V) @ (V, d) -> (B, d), accumulated in float32 by the BLAS
        return out if src.embed_scale == 1.0 else out * src.embed_scale
    if mixture.indices.shape[-1] == 1:  # one weight, which is 1 (rows sum to 1): one-hot
        return src.input_rows(mixture.indices[:, 0])  # (B, d), exactly the model's input for the token
    rows = src.input_rows(mixture.indices).float()  # (B, K, d)
    return torch.einsum("bk,bkd->bd", coef.float(), rows).to(src.dtype)  # (B, d)


def push_from_top1(mixture: Mixture, strength: float) -> Mixture:
    """SeLaR's anti-collapse term: the mixture with :attr:`Mixture.vector_weights` set so that the fed vector is
    ``m + λ·H̃·(m − e(top1))`` (module docstring), ``λ = strength``; ``weights`` (the distribution) are unchanged.

    ``H̃ = H(w) / log |support(w)|`` in [0, 1] per row (0 for a one-token support: nothing to push). Hidden-state
    mixtures are returned unchanged (their vector is not a mixture of embeddings).
    """
    if strength <= 0.0 or mixture.hidden_scale is not None:
        return mixture
    w = mixture.weights.float()  # (B, K)
    support = (w > 0).sum(-1).float()  # (B,)
    h_norm = torch.where(support > 1, entropy(w) / torch.log(support.clamp_min(2.0)), torch.zeros_like(support))
    push = strength * h_norm.clamp(0.0, 1.0)[:, None]  # (B, 1)
    top1 = torch.zeros_like(w).scatter_(-1, w.argmax(-1, keepdim=True), 1.0)  # (B, K)
    return dataclasses.replace(mixture, vector_weights=(1.0 + push) * w - push * top1)


def _support_size(probs: torch.Tensor) -> int:
    return int((probs > 0).sum(-1).max())


#: A mixing rule: ``(logits (B, V), sampling, mixing, mask, generator) -> Mixture``; the mask is a bool ``(V,)`` of
#: allowed tokens, an int ``n`` (the first ``n`` rows allowed) or None; the generator is one for every row, or (for
#: rules registered with ``row_generators=True``) a :class:`~vecgen.decoding.sampling.RowGenerators`.
RuleFn = Callable[[torch.Tensor, SamplingConfig, MixingConfig, "torch.Tensor | int | None", Generators], Mixture]

#: A rule function as written (its keyword defaults kept for direct callers).
F = TypeVar("F", bound=RuleFn)

MIXING_RULES: dict[str, RuleFn] = {}
#: Rules whose vector is the last hidden state (the engine asks the backend for it).
HIDDEN_RULES: set[str] = set()
#: Rules that draw through :func:`~vecgen.decoding.sampling.per_generator` / :func:`~vecgen.decoding.sampling.sample`
#: and so take per-row generators: rows with their own random streams (pass@k samples, seeded requests) share one
#: pass. Other rules get one pass per stream.
ROW_GENERATOR_RULES: set[str] = set()


def register_mixing_rule(name: str, *, feeds_hidden: bool = False, row_generators: bool = False
                         ) -> Callable[[F], F]:
    """Decorator adding a rule ``fn(logits, sampling, mixing, mask, generator) -> Mixture`` to the registry.

    ``feeds_hidden``: the rule's mixtures set ``hidden_scale`` and are fed the last hidden state.
    ``row_generators``: the rule takes a :class:`~vecgen.decoding.sampling.RowGenerators` (it draws only through
    ``per_generator`` / ``sample``, and its results for a row do not depend on the other rows), so rows with
    different random streams are sampled in one pass.
    """

    def deco(fn: F) -> F:
        MIXING_RULES[name] = fn
        if feeds_hidden:
            HIDDEN_RULES.add(name)
        if row_generators:
            ROW_GENERATOR_RULES.add(name)
        return fn

    return deco


def get_rule(name: str) -> RuleFn:
    """The registered rule ``name``.

    Raises:
        ConfigError: unknown rule (the message lists the known ones).
    """
    try:
        return MIXING_RULES[name]
    except KeyError:
        raise ConfigError(f"unknown mixing rule {name!r}; choose one of: {', '.join(MIXING_RULES)}") from None


def _draw(probs: torch.Tensor, sampling: SamplingConfig, generator: Generators) -> torch.Tensor:
    return probs.argmax(-1) if sampling.greedy else sample(probs, generator)


@register_mixing_rule("onehot", row_generators=True)
def onehot_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """Ordinary decoding: sample ``y`` and feed ``E[y]``. Greedy: ``y = argmax``, and ``probs`` stays None
    (the point mass at ``y``; no ``(B, V)`` one-hot is built)."""
    if sampling.greedy:
        z = mask_logits(logits, mask)  # (B, V)
        y = z.argmax(-1)  # (B,): on the logits, as transformers' greedy search (ties in float32 probabilities are not ties here)
        full = torch.softmax(z, dim=-1)  # (B, V): T = 1, for the entropy
        return Mixture(torch.ones_like(y, dtype=torch.float32)[:, None], y[:, None], y, None, full)
    probs, full = logits_to_probs(logits, sampling, mask, return_full=True)
    y = sample(probs, generator)
    return Mixture(torch.ones_like(y, dtype=torch.float32)[:, None], y[:, None], y, probs, full)


@register_mixing_rule("soft", row_generators=True)
def soft_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """Soft Thinking: truncated, renormalised probabilities restricted to the ``max_topk`` largest."""
    probs, full = logits_to_probs(logits, sampling, mask, return_full=True)
    w, idx = torch.topk(probs, min(mixing.max_topk, probs.shape[-1]), dim=-1)  # (B, max_topk), descending

    def finish(gen: torch.Generator | None, w: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = int((w > 0).sum(-1).max())  # the support, when smaller than max_topk: no (B, V)-sized pass for it
        w, idx = w[:, :k], idx[:, :k]
        w = w / w.sum(-1, keepdim=True)
        if mixing.noise == Noise.gumbel:
            u = torch.rand(w.shape, generator=gen, device=w.device).clamp(1e-10, 1 - 1e-10)
            g = -torch.log(-torch.log(u))
            logw = torch.log(w.clamp_min(1e-30)).where(w > 0, torch.full_like(w, float("-inf")))
            w = tempered_softmax(logw + g, mixing.gumbel_tau)  # finite for every tau > 0
        elif mixing.noise == Noise.dirichlet:
            w = _dirichlet(w, mixing.dirichlet_alpha, gen)
        return w, idx

    # with noise, each generator's rows are trimmed to their own support and draw their own noise (per-row
    # generators); without, nothing is drawn and every row's weights are the same whatever it is batched with
    w, idx = per_generator(generator, finish, w, idx) if mixing.noise != Noise.none else finish(None, w, idx)
    token = torch.gather(idx, -1, w.argmax(-1, keepdim=True)).squeeze(-1)
    return Mixture(w, idx, token, probs, full)


def _dirichlet(w: torch.Tensor, alpha: float, generator: torch.Generator | None) -> torch.Tensor:
    """One draw of ``Dirichlet(alpha · w)`` per row of ``w`` ``(B, K)`` (zero weights stay 0), float32.

    Normalised Gamma draws, taken in log space so that every ``alpha > 0`` gives a finite, normalised row:
    ``Gamma(c) = Gamma(c + 1) · U^(1/c)`` (Marsaglia & Tsang 2000, the boost for ``c < 1``), so
    ``log G = log Gamma(c + 1) + log(U) / c`` and the row is ``softmax(log G)``. A direct ``Gamma(c)`` draw
    underflows for tiny ``c`` (every entry the same floor: a uniform row instead of the categorical limit)
    and overflows near ``c = 1e38``. Concentrations are kept in ``[1e-300, 1e30]`` (float64): below, the draw
    is already one-hot; above, it is ``w`` to float precision.
    """
    conc = (alpha * w.double()).clamp(1e-300, 1e30)  # (B, K)
    boosted = torch._standard_gamma(conc + 1.0, generator=generator)  # (B, K) float64, >= a positive floor
    u = torch.rand(conc.shape, generator=generator, dtype=torch.float64, device=w.device).clamp_min(1e-300)
    log_g = torch.log(boosted) + torch.log(u) / conc  # (B, K), finite
    log_g = log_g.where(w > 0, torch.full_like(log_g, float("-inf")))  # truncated tokens keep weight 0
    return torch.softmax(log_g, dim=-1).float()


@register_mixing_rule("full", row_generators=True)
def full_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """CoT2: the full softmax at the sampling temperature (truncation settings ignored)."""
    plain = sampling.model_copy(update={"top_k": 0, "top_p": 1.0, "min_p": 0.0})
    probs = logits_to_probs(logits, plain, mask)
    return Mixture(probs, None, probs.argmax(-1), probs, probs)


@register_mixing_rule("moi", row_generators=True)
def moi_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """Mixture of Inputs: blend the sampled token's embedding with the β-posterior mixture."""
    probs, full = logits_to_probs(logits, sampling, mask, return_full=True)
    y = _draw(probs, sampling, generator)
    onehot = torch.zeros_like(probs).scatter_(-1, y[:, None], 1.0)
    posterior = (probs + mixing.beta * onehot) / (1.0 + mixing.beta)
    support = (probs > 0).sum(-1).clamp_min(2).float()
    h_norm = (entropy(probs) / torch.log(support)).clamp(0.0, 1.0)[:, None]  # (B, 1)
    weights = h_norm * posterior + (1.0 - h_norm) * onehot
    k = _support_size(weights)
    if k < weights.shape[-1] // 2:
        w, idx = torch.topk(weights, k, dim=-1)
        return Mixture(w, idx, y, probs, full)
    return Mixture(weights, None, y, probs, full)


@register_mixing_rule("hidden", feeds_hidden=True, row_generators=True)
def hidden_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """COCONUT-style continuous thought: feed the last hidden state; the step's token is the top-1 token."""
    probs, full = logits_to_probs(logits, sampling, mask, return_full=True)
    y = probs.argmax(-1)  # (B,)
    return Mixture(torch.ones_like(y, dtype=torch.float32)[:, None], y[:, None], y, probs, full,
                   hidden_scale=mixing.hidden_scale)


__all__ = [
    "HIDDEN_RULES",
    "HiddenScale",
    "MIXING_RULES",
    "ROW_GENERATOR_RULES",
    "MixingConfig",
    "Mixture",
    "Noise",
    "get_rule",
    "mean_input_norm",
    "mix_embeddings",
    "push_from_top1",
    "register_mixing_rule",
]
