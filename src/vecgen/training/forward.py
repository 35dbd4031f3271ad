"""The training forward pass with continuous thoughts (COCONUT, Hao et al. 2024), differentiable through them.

For a :class:`~vecgen.training.sequences.Batch` whose rows hold ``n_i`` thoughts at columns ``P .. P + n_i - 1``,
:func:`thought_logits` runs ``N + 1`` passes over one KV cache (``N = max n_i``), as the official implementation
does: pass 0 reads columns ``[0, P)``; pass ``j`` reads column ``P + j - 1``, whose input is the last hidden state
at column ``P + j - 2`` for rows that have a thought there; the last pass reads the rest. Gradients flow through
every thought into the passes that produced it (nothing is detached). A batch without thoughts is one pass.

The hidden state fed back is the model's last hidden state (``hidden_states[-1]``: after the final norm for GPT-2,
Qwen2 and Llama), unscaled: exactly what the ``coconut`` thinking method feeds at inference (the ``hidden`` rule
with ``hidden_scale="none"``), so a trained model thinks at inference as it was trained.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .sequences import IGNORE, Batch


def input_embeddings(model: Any, input_ids: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``(B, T)`` ids → ``(B, T, d)`` the model's input vectors (its embedding times the family's ``scale``)."""
    rows = model.get_input_embeddings()(input_ids)
    return rows * scale if scale != 1.0 else rows


def thought_logits(model: Any, batch: Batch, *, continuous: bool, embed_scale: float = 1.0) -> torch.Tensor:
    """Logits of every position, ``(B, L, V)`` float.

    Args:
        model: a transformers causal LM (``inputs_embeds``, ``position_ids``, ``past_key_values``,
            ``output_hidden_states``).
        batch: the padded batch.
        continuous: feed last hidden states into the thought slots (``coconut``); False: the slots' own tokens
            (``pause``), one pass.
        embed_scale: the family's input-embedding scale (1 for GPT-2 / Qwen / Llama).
    """
    from transformers import DynamicCache

    embeds = input_embeddings(model, batch.input_ids, embed_scale)
    mask, pos = batch.attention_mask, batch.position_ids
    n, p = batch.max_thoughts, batch.prefix_width
    if not continuous or n == 0:
        return model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits
    cache = DynamicCache()
    parts, start, cur = [], 0, embeds
    for j in range(n):
        end = p + j
        out = model(inputs_embeds=cur[:, start:end], attention_mask=mask[:, :end], position_ids=pos[:, start:end],
                    past_key_values=cache, use_cache=True, output_hidden_states=True)
        parts.append(out.logits)
        hidden = out.hidden_states[-1][:, -1]  # (B, d): the state at column end - 1
        col = p + j
        slot = batch.thought_mask[:, col].unsqueeze(-1)  # (B, 1)
        new = torch.where(slot, hidden.to(cur.dtype), cur[:, col])
        cur = torch.cat([cur[:, :col], new.unsqueeze(1), cur[:, col + 1:]], dim=1)
        start = end
    out = model(inputs_embeds=cur[:, start:], attention_mask=mask, position_ids=pos[:, start:],
                past_key_values=cache, use_cache=True)
    parts.append(out.logits)
    return torch.cat(parts, dim=1)


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy in nats over the labelled positions: ``logits[:, t]`` predicts ``labels[:, t + 1]``;
    ``reduction`` ``mean`` (per labelled token) or ``sum``."""
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE, reduction=reduction)


__all__ = ["input_embeddings", "sequence_loss", "thought_logits"]
