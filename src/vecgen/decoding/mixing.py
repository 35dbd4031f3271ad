"""Mixing rules: next-token probabilities → the next input vector (a "concept token").

A rule returns a :class:`Mixture` (token ids and weights); :func:`mix_embeddings` is the one
function that turns a mixture into a vector ``Σ wᵢ·E[i]``. Sparse mixtures gather only their rows
(no dense ``V × d`` product); only the ``full`` rule (all rows) uses a dense matmul.

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

Optional noise on the weights of ``soft`` (Stochastic Soft Thinking, Wu et al. 2025):
``gumbel`` (Gumbel-softmax: ``softmax((log w + g) / τ)``, g ~ Gumbel(0, 1)) or ``dirichlet``
(``w ~ Dirichlet(α · w)``).

Padding rows and tokens outside an allowed set never get weight: the sampler gives them
probability 0 before any rule runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import SamplingConfig, format_validation_error
from ..errors import ConfigError
from .sampling import entropy, logits_to_probs, sample


class Noise(str, Enum):
    """Noise on the mixture weights (Stochastic Soft Thinking)."""

    none = "none"
    gumbel = "gumbel"
    dirichlet = "dirichlet"


class MixingConfig(BaseModel):
    """Parameters of the mixing rules.

    Attributes:
        rule: registered rule name (``soft``, ``full``, ``moi``, ``onehot``).
        max_topk: ``soft`` keeps at most this many tokens (10 recommended by Soft Thinking).
        beta: ``moi``'s β (≈1 in the paper).
        noise: ``none``, ``gumbel`` or ``dirichlet`` (``soft`` only).
        gumbel_tau: Gumbel-softmax temperature τ > 0.
        dirichlet_alpha: Dirichlet concentration scale α > 0 (larger = less noise).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = "soft"
    max_topk: int = Field(10, ge=1)
    beta: float = Field(1.0, ge=0.0)
    noise: Noise = Noise.none
    gumbel_tau: float = Field(0.5, gt=0.0)
    dirichlet_alpha: float = Field(10.0, gt=0.0)

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
        probs: ``(B, V)`` the sampler's (truncated) distribution the mixture came from.
        full_probs: ``(B, V)`` untruncated ``softmax(logits / T)``, whose entropy Cold Stop uses.
    """

    weights: torch.Tensor
    indices: torch.Tensor | None
    token: torch.Tensor
    probs: torch.Tensor
    full_probs: torch.Tensor

    def top(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` largest weights and their token ids, ``(B, k)`` each (fewer if the mixture is smaller)."""
        k = min(k, self.weights.shape[-1])
        w, pos = torch.topk(self.weights, k, dim=-1)
        ids = pos if self.indices is None else torch.gather(self.indices, -1, pos)
        return ids, w

    def entropy(self) -> torch.Tensor:
        """Entropy of the mixture weights in nats, ``(B,)``."""
        return entropy(self.weights)


def mix_embeddings(embedding: torch.Tensor, mixture: Mixture) -> torch.Tensor:
    """The concept token ``Σ wᵢ·E[i]``: ``(B, d)`` in the embedding's dtype.

    Args:
        embedding: input embedding matrix ``E`` ``(V_rows, d)``.
        mixture: sparse (gathers ``B·K`` rows) or dense (``(B, V) @ (V, d)``).
    """
    w = mixture.weights.to(embedding.dtype)
    if mixture.indices is None:
        return w @ embedding[: w.shape[-1]]  # (B, V) @ (V, d) -> (B, d)
    rows = embedding[mixture.indices]  # (B, K, d)
    return torch.einsum("bk,bkd->bd", w, rows)  # (B, d)


def _sparse(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of ``probs`` ``(B, V)``, renormalised: ``(weights, indices)`` ``(B, k)``."""
    w, idx = torch.topk(probs, k, dim=-1)
    return w / w.sum(-1, keepdim=True), idx


def _support_size(probs: torch.Tensor) -> int:
    return int((probs > 0).sum(-1).max())


RuleFn = Callable[[torch.Tensor, SamplingConfig, MixingConfig, "torch.Tensor | None", "torch.Generator | None"], Mixture]

MIXING_RULES: dict[str, RuleFn] = {}


def register_mixing_rule(name: str) -> Callable[[RuleFn], RuleFn]:
    """Decorator adding a rule ``fn(logits, sampling, mixing, mask, generator) -> Mixture`` to the registry."""

    def deco(fn: RuleFn) -> RuleFn:
        MIXING_RULES[name] = fn
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


def _draw(probs: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    return probs.argmax(-1) if sampling.greedy else sample(probs, generator)


@register_mixing_rule("onehot")
def onehot_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """Ordinary decoding: sample ``y`` and feed ``E[y]``."""
    probs, full = logits_to_probs(logits, sampling, mask, return_full=True)
    y = _draw(probs, sampling, generator)
    return Mixture(torch.ones_like(y, dtype=torch.float32)[:, None], y[:, None], y, probs, full)


@register_mixing_rule("soft")
def soft_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """Soft Thinking: truncated, renormalised probabilities restricted to the ``max_topk`` largest."""
    probs, full = logits_to_probs(logits, sampling, mask, return_full=True)
    k = min(mixing.max_topk, _support_size(probs))
    w, idx = _sparse(probs, k)
    if mixing.noise == Noise.gumbel:
        u = torch.rand(w.shape, generator=generator, device=w.device).clamp(1e-10, 1 - 1e-10)
        g = -torch.log(-torch.log(u))
        logw = torch.log(w.clamp_min(1e-30)).where(w > 0, torch.full_like(w, float("-inf")))
        w = torch.softmax((logw + g) / mixing.gumbel_tau, dim=-1)
    elif mixing.noise == Noise.dirichlet:
        conc = (mixing.dirichlet_alpha * w).clamp_min(1e-6)
        w = torch._standard_gamma(conc, generator=generator)  # Dirichlet = normalised Gamma draws
        w = w * (conc > 1e-6)
        w = w / w.sum(-1, keepdim=True)
    token = torch.gather(idx, -1, w.argmax(-1, keepdim=True)).squeeze(-1)
    return Mixture(w, idx, token, probs, full)


@register_mixing_rule("full")
def full_rule(logits, sampling, mixing, mask=None, generator=None) -> Mixture:
    """CoT2: the full softmax at the sampling temperature (truncation settings ignored)."""
    plain = sampling.model_copy(update={"top_k": 0, "top_p": 1.0, "min_p": 0.0})
    probs = logits_to_probs(logits, plain, mask)
    return Mixture(probs, None, probs.argmax(-1), probs, probs)


@register_mixing_rule("moi")
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


__all__ = [
    "MIXING_RULES",
    "MixingConfig",
    "Mixture",
    "Noise",
    "get_rule",
    "mix_embeddings",
    "register_mixing_rule",
]
