"""The sampler: logits → next-token probabilities → sampled token.

Every decode path in vecgen uses these functions. The order follows transformers' logits
processors and the Soft Thinking reference implementation (Zhang et al. 2025, arXiv 2505.15778):

1. mask: rows that are padding or outside an allowed token set get ``-inf``;
2. ``p = softmax(logits / temperature)`` (temperature 0 = greedy: the argmax gets probability 1), computed by
   :func:`tempered_softmax` so that every accepted temperature, down to the smallest positive float, gives a
   finite distribution;
3. ``top_k`` truncation, renormalise; ``top_p`` (nucleus) truncation, renormalise; ``min_p``
   truncation (drop ``p < min_p · max p``), renormalise.

Entropies are in nats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, overload

import torch

from ..config import SamplingConfig
from ..errors import ConfigError, NonFiniteError


def vocab_mask(n_rows: int, n_real: int, allowed: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """Boolean mask ``(V_rows,)`` of tokens that may receive probability.

    Args:
        n_rows: rows of the logits / embedding matrix.
        n_real: real vocabulary rows; rows ``>= n_real`` (padding) are always disallowed.
        allowed: optional bool mask ``(n_rows,)`` or 1-D tensor of allowed token ids.

    Raises:
        ConfigError: the allowed set is empty once padding is removed.
    """
    mask = torch.zeros(n_rows, dtype=torch.bool, device=device)
    mask[:n_real] = True
    if allowed is not None:
        allowed = allowed.to(device)
        if allowed.dtype == torch.bool:
            if allowed.numel() != n_rows:
                raise ConfigError(f"allowed-token mask has {allowed.numel()} entries, expected {n_rows}")
            mask &= allowed
        else:
            keep = torch.zeros_like(mask)
            keep[allowed.long()] = True
            mask &= keep
    if not bool(mask.any()):
        raise ConfigError("the allowed token set is empty: no token could ever be generated")
    return mask


def mask_logits(logits: torch.Tensor, mask: torch.Tensor | int | None) -> torch.Tensor:
    """``logits`` ``(B, V)`` as float32 with disallowed tokens set to ``-inf``.

    ``mask``: a bool ``(V,)`` tensor (see :func:`vocab_mask`), or an int ``n``: only the first ``n`` rows
    are allowed (padding rows at the end, no allowed set); the logits are then the first ``n`` columns
    (no ``-inf`` writes), and every distribution computed from them has ``n`` columns (token ids unchanged).

    Raises:
        NonFiniteError: NaN or +inf in the logits (``-inf`` is a legal "never").
    """
    if isinstance(mask, int):
        logits = logits[:, :mask]  # (B, n): a view; one copy for B > 1, else every op below would copy it
        if not logits.is_contiguous():
            logits = logits.contiguous()
        mask = None
    logits = logits.float()
    # Fast path: one reduction. A row sum is finite exactly when no entry is NaN or ±inf (barring an
    # overflow, which the exact check below then clears), so the per-entry checks run only when needed;
    # every V-sized op costs milliseconds when the CPU's threads are contended.
    all_finite = bool(torch.isfinite(logits.sum(-1)).all())
    if not all_finite and (bool(torch.isnan(logits).any()) or bool(torch.isposinf(logits).any())):
        raise NonFiniteError("the model produced NaN or inf logits")
    if mask is not None:
        logits = logits.where(mask[: logits.shape[-1]], float("-inf"))
        if not (all_finite and bool(mask.any())) and not bool(torch.isfinite(logits.amax(-1)).all()):
            raise ConfigError("no allowed token has a finite logit at this step; widen the allowed token set")
    return logits


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of distributions ``(..., V)`` → ``(...)``; zero-probability terms are 0."""
    return torch.special.entr(probs).sum(-1)  # entr(p) = −p·ln p, and 0 at p = 0


#: float32's smallest normal number. Below it a float32 ``z / T`` would divide by a subnormal (or by 0: 1e-320 is 0 in
#: float32), so :func:`tempered_softmax` divides in float64, where every positive float the options accept is
#: representable and ``z / T`` for ``z < 0`` is a huge negative number or ``-inf``: the exact limit, the argmax
#: (ties at the maximum share the mass), even between logits a subnormal apart.
MIN_TEMPERATURE = float(torch.finfo(torch.float32).tiny)


def tempered_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the last dimension, finite for every ``temperature > 0``.

    The row maximum is subtracted *before* dividing (``z = logits − max``, so ``z ≤ 0`` and the maximum's
    term is exactly ``0 / T = 0``): a tiny ``T`` turns the other entries into ``-inf`` (probability 0)
    instead of overflowing to ``inf − inf = NaN``. This is
    the one temperature mechanism of the project: the sampler, every mixing rule and the Gumbel-softmax
    noise call it. Below :data:`MIN_TEMPERATURE` the division and softmax run in float64 (the temperature itself
    would not survive a cast to float32).

    Args:
        logits: ``(..., V)`` float logits; ``-inf`` entries (masked tokens) get probability 0. Every row needs
            one finite entry (:func:`mask_logits` guarantees it).
        temperature: ``T > 0`` (1 = the plain softmax).

    Returns:
        ``(..., V)`` probabilities in the input's dtype; every row is finite and sums to 1.
    """
    if temperature == 1.0:
        return torch.softmax(logits, dim=-1)
    z = logits - logits.amax(-1, keepdim=True)  # (..., V), <= 0; the maximum is exactly 0
    t = float(temperature)
    if t < MIN_TEMPERATURE:
        return torch.softmax(z.double() / t, dim=-1).to(logits.dtype)  # (..., V)
    return torch.softmax(z / t, dim=-1)


def _renorm(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    probs = probs * keep
    return probs / probs.sum(-1, keepdim=True)


def truncate(probs: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Apply ``top_k``, ``top_p`` and ``min_p`` (each followed by renormalisation) to ``probs`` ``(B, V)``."""
    if cfg.top_k > 0 and cfg.top_k < probs.shape[-1]:
        fast = _truncate_top_k(probs, cfg)
        if fast is not None:
            return fast
        kth = torch.topk(probs, cfg.top_k, dim=-1).values[..., -1:]
        probs = _renorm(probs, probs >= kth)
    if cfg.top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        keep_sorted = mass_before < cfg.top_p  # the first token is always kept
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = _renorm(probs, keep)
    if cfg.min_p > 0.0:
        threshold = cfg.min_p * probs.max(dim=-1, keepdim=True).values
        probs = _renorm(probs, probs >= threshold)
    return probs


def _truncate_top_k(probs: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor | None:
    """:func:`truncate` with ``top_k`` on the ``k`` survivors only: the same result without the
    vocabulary-wide renormalisations and sort (each a pass over ``(B, V)``; together they cost more
    than a small model's decode step on a CPU). None when a tie at the k-th probability would keep
    more than k tokens (then the general path runs)."""
    k = cfg.top_k
    vals, idx = torch.topk(probs, k + 1, dim=-1)  # (B, k + 1), descending
    if bool(((vals[:, k] == vals[:, k - 1]) & (vals[:, k - 1] > 0)).any()):
        return None
    vals, idx = vals[:, :k], idx[:, :k]  # (B, k)
    vals = vals / vals.sum(-1, keepdim=True)
    if cfg.top_p < 1.0:
        mass_before = torch.cumsum(vals, dim=-1) - vals  # already sorted
        vals = vals * (mass_before < cfg.top_p)  # the first token is always kept
        vals = vals / vals.sum(-1, keepdim=True)
    if cfg.min_p > 0.0:
        vals = vals * (vals >= cfg.min_p * vals[:, :1])
        vals = vals / vals.sum(-1, keepdim=True)
    return torch.zeros_like(probs).scatter_(-1, idx, vals)


@overload
def logits_to_probs(logits: torch.Tensor, cfg: SamplingConfig, mask: torch.Tensor | int | None = None, *,
                    return_full: Literal[False] = False) -> torch.Tensor: ...


@overload
def logits_to_probs(logits: torch.Tensor, cfg: SamplingConfig, mask: torch.Tensor | int | None = None, *,
                    return_full: Literal[True]) -> tuple[torch.Tensor, torch.Tensor]: ...


def logits_to_probs(
    logits: torch.Tensor,
    cfg: SamplingConfig,
    mask: torch.Tensor | int | None = None,
    *,
    return_full: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Next-token probabilities ``(B, V)`` float32 after temperature and truncation.

    Args:
        logits: ``(B, V)`` raw logits (any float dtype).
        cfg: the sampling configuration.
        mask: optional bool ``(V,)`` of allowed tokens (see :func:`vocab_mask`), or an int ``n`` (the first
            ``n`` rows allowed; the results then have ``n`` columns).
        return_full: also return the untruncated ``softmax(logits / T)`` (``T = 1`` when greedy),
            on which Soft Thinking measures entropy.

    Returns:
        ``probs`` or ``(probs, full)``; rows sum to 1, disallowed tokens have probability 0.

    Raises:
        NonFiniteError: NaN/inf logits.
        ConfigError: every token masked.
    """
    logits = mask_logits(logits, mask)
    full = tempered_softmax(logits, cfg.temperature if cfg.temperature > 0 else 1.0)
    if cfg.greedy:
        probs = torch.zeros_like(full).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
    else:
        probs = truncate(full, cfg)
    return (probs, full) if return_full else probs


class RowGenerators:
    """Per-row random generators for one batched sampler pass (vLLM's per-request generators in its
    ``SamplingMetadata``): row ``r`` draws from ``generators[r]``.

    Rows that share a generator draw together, in one call and in row order, exactly as a pass over those rows alone
    with that one generator does; rows with their own generators draw alone. So every row's draws are what its own
    random stream gave when each stream was sampled in a pass of its own, while everything deterministic (masks,
    softmax, truncation, top-k: the passes over ``V``) runs once for all the rows. Draw through
    :func:`per_generator` (or :func:`sample`), which accept a plain generator too.

    Args:
        generators: ``B`` generators (the same object repeated for rows that share a stream).
    """

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)
        rows: dict[int, list[int]] = {}
        for r, g in enumerate(self.generators):
            rows.setdefault(id(g), []).append(r)
        #: ``(generator, its rows in order)`` per distinct generator, in order of first row
        self.groups: list[tuple[torch.Generator, list[int]]] = [(self.generators[r[0]], r) for r in rows.values()]

    def __len__(self) -> int:
        return len(self.generators)


#: A generator argument of the sampler and the mixing rules: one for every row, one per row, or none.
Generators = torch.Generator | RowGenerators | None


def per_generator(generator: Generators, fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
                  *rows: torch.Tensor, pad: float = 0.0) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``fn(gen, *rows)`` for the rows of each generator (:class:`RowGenerators`), results back in row order; a
    plain generator (or None) gets one call on all rows.

    Args:
        generator: the pass's generator(s).
        fn: ``(generator, *tensors of the same rows) -> tensor or tuple of tensors``, each ``(n, ...)``.
        rows: tensors ``(B, ...)`` whose rows are split by generator.
        pad: results of different widths (last dimension) are right-padded with this to the widest.

    Returns:
        What ``fn`` returns, for all ``B`` rows.
    """
    if not isinstance(generator, RowGenerators):
        return fn(generator, *rows)
    parts = []
    for gen, idx in generator.groups:
        sel = torch.tensor(idx, device=rows[0].device)
        out = fn(gen, *(t[sel] for t in rows))
        parts.append((idx, out if isinstance(out, tuple) else (out,)))
    results = []
    for k in range(len(parts[0][1])):
        pieces = [out[k] for _, out in parts]
        width = max(p.shape[-1] for p in pieces) if pieces[0].dim() > 1 else None
        if width is not None:
            pieces = [torch.nn.functional.pad(p, (0, width - p.shape[-1]), value=pad) if p.shape[-1] < width else p
                      for p in pieces]
        full = pieces[0].new_empty((len(generator), *pieces[0].shape[1:]))
        for (idx, _), piece in zip(parts, pieces):
            full[torch.tensor(idx, device=full.device)] = piece
        results.append(full)
    return results[0] if len(results) == 1 else tuple(results)


def sample(probs: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """Draw one token per row from ``probs`` ``(B, V)`` → ``(B,)`` long. One-hot rows return their argmax.
    ``generator``: one for every row, or :class:`RowGenerators` (each row from its own)."""
    return per_generator(generator, lambda g, p: torch.multinomial(p, 1, generator=g).squeeze(-1),  # type: ignore[return-value]
                         probs)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded :class:`torch.Generator` on ``device`` (reproducible sampling)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
