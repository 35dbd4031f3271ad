"""What every probe shares: the shipped prompts, next-token distributions after fed vectors, divergences in nats,
single-token lookup and bootstrap intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..backends.contract import Prompt, build_batch
from ..config import CONCEPT_SAMPLING_DEFAULTS, SamplingConfig
from ..decoding.mixing import MixingConfig
from ..errors import ConfigError
from ..io import read_user_text
from ..models import LoadedModel
from ..stats import mean_ci, wilson_interval


def load_prompts(path: str | Path | None = None) -> list[str]:
    """Prompts, one per line (``#`` comments and blank lines skipped); default: the shipped
    ``vecgen/data/probes/prompts.txt`` (102 sentence beginnings written for vecgen).

    Raises:
        ConfigError: an unreadable file, or one without prompts.
    """
    if path is None:
        text = resources.files("vecgen").joinpath("data/probes/prompts.txt").read_text(encoding="utf-8")
        where = "the shipped prompts"
    else:
        text = read_user_text(path, what="--prompts file")
        where = str(path)
    prompts = [line.rstrip("\n") for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ConfigError(f"{where}: no prompts (one per line; lines starting with # are comments)")
    return prompts


def next_logprobs(lm: LoadedModel, prompts: Sequence[Prompt], *, batch_size: int = 32,
                  on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Log-probabilities of the next token after each prompt, over the real vocabulary.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (any backend: one prefill per batch through the contract).
        prompts: token ids, ``(T, d)`` vectors or segment lists (``[ids, vectors]``); see
            :func:`~vecgen.backends.contract.build_batch`.
        batch_size: prompts per forward pass.
        on_batch: called with the number of prompts done after each forward pass (progress).

    Returns:
        ``(P, V_real)`` float32 ``log_softmax(logits)`` (temperature 1, no truncation), on the CPU.
    """
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            state = lm.backend.prefill(build_batch(lm, list(prompts[i : i + batch_size])))
            z = state.logits[:, : lm.n_real_vocab].float()  # (b, V_real)
            out.append(torch.log_softmax(z, dim=-1).cpu())
            if on_batch is not None:
                on_batch(min(i + batch_size, len(prompts)))
    return torch.cat(out)


def continuation_logprobs(lm: LoadedModel, prefixes: Sequence[Sequence[int]], vectors: Sequence[torch.Tensor], *,
                          batch_size: int = 32, on_batch: Callable[[int], None] | None = None) -> list[torch.Tensor]:
    """Next-token log-probabilities after each prefix followed by each of its vectors, one position each.

    Each prefix is prefilled once; its state is forked once per vector (:meth:`Backend.fork`, rows repeated) and
    extended by that vector (:meth:`Backend.extend`), so a sweep of ``k`` vectors costs one prompt plus ``k``
    positions, not ``k`` prompts.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (any backend).
        prefixes: ``P`` token-id prompts.
        vectors: ``P`` tensors ``(k_i, d)`` (any float dtype; cast to the backend dtype) fed after prefix ``i``.
        batch_size: rows per extend (a prefix's vectors are never split).
        on_batch: called with the number of vectors done after each forward pass (progress).

    Returns:
        ``P`` tensors ``(k_i, V_real)`` float32 ``log_softmax(logits)``, on the CPU.
    """
    be = lm.backend
    out: list[torch.Tensor] = []
    done = 0
    i = 0
    with torch.no_grad():
        while i < len(prefixes):
            j, rows = i, 0
            while j < len(prefixes) and (j == i or rows + len(vectors[j]) <= batch_size):
                rows += len(vectors[j])
                j += 1
            state = be.prefill(build_batch(lm, [list(p) for p in prefixes[i:j]]))
            idx = [r for r in range(j - i) for _ in range(len(vectors[i + r]))]
            forked = be.fork(state, torch.tensor(idx, dtype=torch.long))
            vecs = torch.cat([v.to(be.device, be.dtype) for v in vectors[i:j]])  # (rows, d)
            z = be.extend(forked, vecs).logits[:, : lm.n_real_vocab].float()  # (rows, V_real)
            logp = torch.log_softmax(z, dim=-1).cpu()
            out += list(torch.split(logp, [len(v) for v in vectors[i:j]]))
            done += rows
            if on_batch is not None:
                on_batch(done)
            i = j
    return out


def kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """``KL(p ‖ q) = Σ p (log p − log q)`` in nats over the last dim (``0·log 0 = 0``); ``(..., V)`` → ``(...)``."""
    p = logp.exp()
    d = (p * (logp - logq)).where(p > 0, torch.zeros_like(p))
    return d.sum(-1).clamp_min(0.0)


def js(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence in nats (0 … ln 2); ``(..., V)`` → ``(...)``."""
    m = torch.logaddexp(logp, logq) - torch.log(torch.tensor(2.0))
    return 0.5 * (kl(logp, m) + kl(logq, m))


def tv(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Total variation distance ``½ Σ |p − q|`` (0 … 1); ``(..., V)`` → ``(...)``."""
    return 0.5 * (logp.exp() - logq.exp()).abs().sum(-1)


def concept_settings(top_k: int) -> tuple[SamplingConfig, MixingConfig]:
    """``(sampling, mixing)`` of the probes' concept tokens: ``vecgen concept``'s defaults
    (:data:`~vecgen.config.CONCEPT_SAMPLING_DEFAULTS`: temperature 1, no truncation) and the ``soft`` rule with
    the ``top_k`` largest weights (no noise, so deterministic)."""
    return SamplingConfig(**CONCEPT_SAMPLING_DEFAULTS), MixingConfig(rule="soft", max_topk=top_k)


def versus_components(mixed: torch.Tensor, components: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """What follows a fed mixture against what follows its components.

    Args:
        mixed: ``(..., V)`` log-probabilities after the mixture. components: ``(..., k, V)`` after each of its tokens,
            largest weight first. weights: ``(k,)`` the mixture's weights (sum 1).

    Returns:
        ``linear`` ``(..., V)`` = ``log Σ wᵢ·p_i`` (a linear reading), ``kl_linear`` and ``kl_top1`` ``(...)`` nats
        (``KL(p_mixed ‖ ·)``), ``same_top1`` ``(...)`` bool (the same most likely next token as after the top-1 token).
    """
    linear = torch.logsumexp(torch.log(weights)[:, None] + components, dim=-2)  # (..., V)
    top1 = components[..., 0, :]  # (..., V)
    return {"linear": linear, "kl_linear": kl(mixed, linear), "kl_top1": kl(mixed, top1),
            "same_top1": mixed.argmax(-1) == top1.argmax(-1)}


def single_token(tokenizer: Any, text: str, what: str) -> int:
    """The id of ``text`` when it is exactly one token (as written: a leading space is part of the token).

    Raises:
        ConfigError: ``text`` is empty or not one token (the pieces are named).
    """
    if text == "":
        raise ConfigError(f"{what}: empty token; give one token, e.g. ' Paris' (a leading space is part of it)")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise ConfigError(f"{what}: {text!r} is {len(ids)} tokens in this tokenizer ({pieces!r}), not one; give a "
                          "single token (a leading space is part of it)")
    return int(ids[0])


def share_ci(flags: Sequence[bool]) -> dict[str, float | int]:
    """Share of True with a Wilson 95% interval: ``{"n", "k", "share", "low", "high"}``."""
    n, k = len(flags), int(sum(bool(f) for f in flags))
    low, high = wilson_interval(k, n) if n else (float("nan"), float("nan"))
    return {"n": n, "k": k, "share": k / n if n else float("nan"), "low": low, "high": high}


__all__ = ["concept_settings", "continuation_logprobs", "versus_components", "js", "kl", "load_prompts", "mean_ci", "next_logprobs", "share_ci", "single_token", "tv"]
