"""Restricting decoding to a token set (English-only, or any allowed ids).

:func:`english_token_mask` returns a bool mask ``(V_rows,)`` for a :class:`~vecgen.models.LoadedModel`.
Pass it as ``allowed=`` to :func:`vecgen.decoding.generate` (or to
:func:`vecgen.decoding.sampling.vocab_mask`): the one sampler sets disallowed logits to ``-inf`` before
the softmax, so discrete sampling never picks them and every mixing rule (``soft``, ``full``, ``moi``)
puts weight only on allowed tokens, renormalised over them. :class:`AllowedTokensLogitsProcessor` does
the same for users of transformers' ``model.generate``.

End of generation: the English sets contain no special tokens, but the mask keeps the model's stop
tokens (eos and end-of-turn: ``<|im_end|>`` and ``<|endoftext|>`` for Qwen, ``<|endoftext|>`` for GPT-2;
:meth:`LoadedModel.stop_token_ids`) allowed by default, otherwise a restricted generation could never
stop. ``keep_stop_tokens=False`` removes them (fixed-length concept-token runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from transformers import LogitsProcessor as _LogitsProcessorBase

from ..errors import ConfigError
from ..models import LoadedModel
from .classify import Policy, VocabClassification, classify_tokenizer, parse_policy


def classify_model_vocab(lm: LoadedModel, *, cache: bool = True) -> VocabClassification:
    """Classification of every embedding row of ``lm`` (rows ``>= lm.n_real_vocab`` are padding)."""
    return classify_tokenizer(lm.tokenizer, lm.vocab_rows, cache=cache)


def english_token_mask(
    lm: LoadedModel,
    policy: Policy | str = Policy.text,
    *,
    keep_stop_tokens: bool = True,
    extra_ids: Iterable[int] = (),
    cache: bool = True,
) -> torch.Tensor:
    """Allowed-token mask of English tokens for a loaded model.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (its tokenizer must be byte-level BPE).
        policy: ``"text"`` (ASCII letters, digits, punctuation, white space; the default) or
            ``"strict"`` (ASCII letters with an optional leading space). See :mod:`vecgen.vocab.classify`.
        keep_stop_tokens: also allow ``lm.stop_token_ids()`` (eos / end of turn), so generation can stop.
        extra_ids: more token ids to allow.
        cache: use the classification cache.

    Returns:
        ``torch.BoolTensor`` of shape ``(V_rows,)`` on ``lm.device``; padding rows are False.

    Raises:
        ConfigError: unknown policy; an extra id outside the vocabulary.
        UnsupportedModelError: the tokenizer is not byte-level BPE.
    """
    mask = classify_model_vocab(lm, cache=cache).mask(parse_policy(policy))
    ids = list(lm.stop_token_ids()) if keep_stop_tokens else []
    ids += [int(i) for i in extra_ids]
    for i in ids:
        if not 0 <= i < lm.n_real_vocab:
            raise ConfigError(f"token id {i} is outside the real vocabulary (0..{lm.n_real_vocab - 1})")
        mask[i] = True
    return mask.to(lm.device)


def english_only_mask(lm: LoadedModel, english_only: bool) -> torch.Tensor | None:
    """``allowed=`` of the decode loop for an ``english_only`` switch: :func:`english_token_mask` with the ``text``
    policy (stop tokens kept), or None when the switch is off."""
    return english_token_mask(lm, policy=Policy.text) if english_only else None


def token_set_mask(n_rows: int, ids: Iterable[int]) -> torch.Tensor:
    """``(n_rows,)`` bool mask with ``True`` at ``ids``.

    Raises:
        ConfigError: an id outside ``0..n_rows-1``.
    """
    mask = torch.zeros(n_rows, dtype=torch.bool)
    for i in ids:
        if not 0 <= int(i) < n_rows:
            raise ConfigError(f"token id {i} is outside 0..{n_rows - 1}")
        mask[int(i)] = True
    return mask


class AllowedTokensLogitsProcessor(_LogitsProcessorBase):
    """A transformers ``LogitsProcessor`` that sets the scores of disallowed tokens to ``-inf``.

    Use with ``model.generate(..., logits_processor=LogitsProcessorList([proc]))``. Works for greedy,
    sampling and beam search, since every later step only sees the masked scores.

    Args:
        allowed: bool mask ``(V,)`` (e.g. from :func:`english_token_mask`) or a 1-D tensor / list of
            allowed token ids. Score columns beyond the mask's length (padding rows) are disallowed.

    Raises:
        ConfigError: the allowed set is empty; at call time, a row whose allowed tokens all have
            ``-inf`` scores (instead of a NaN distribution).
    """

    def __init__(self, allowed: torch.Tensor | Iterable[int]):
        if not isinstance(allowed, torch.Tensor):
            allowed = torch.tensor(list(allowed), dtype=torch.long)
        if allowed.dtype != torch.bool:
            ids = allowed.long().flatten()
            if ids.numel() and int(ids.min()) < 0:
                raise ConfigError("allowed token ids must be >= 0")
            mask = torch.zeros(int(ids.max()) + 1 if ids.numel() else 0, dtype=torch.bool)
            mask[ids] = True
            allowed = mask
        if not bool(allowed.any()):
            raise ConfigError("the allowed token set is empty: no token could ever be generated")
        self.allowed = allowed.flatten()
        self._cache: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _mask_for(self, width: int, device: torch.device) -> torch.Tensor:
        key = (width, device)
        if key not in self._cache:
            m = torch.zeros(width, dtype=torch.bool)
            n = min(width, self.allowed.numel())
            m[:n] = self.allowed[:n].cpu()
            if not bool(m.any()):
                raise ConfigError(f"no allowed token falls inside the model's {width} score columns")
            self._cache[key] = m.to(device)
        return self._cache[key]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` ``(B, V)`` → the same with disallowed columns at ``-inf``."""
        mask = self._mask_for(scores.shape[-1], scores.device)
        out = scores.masked_fill(~mask, float("-inf"))
        if not bool(torch.isfinite(out).any(dim=-1).all()):
            raise ConfigError("no allowed token has a finite score at this step; widen the allowed token set")
        return out


def english_logits_processor(lm: LoadedModel, policy: Policy | str = Policy.text, **kwargs: Any) -> AllowedTokensLogitsProcessor:
    """:class:`AllowedTokensLogitsProcessor` over :func:`english_token_mask` (same arguments)."""
    return AllowedTokensLogitsProcessor(english_token_mask(lm, policy, **kwargs))
