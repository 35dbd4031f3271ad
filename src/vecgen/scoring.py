"""Teacher-forced scoring: the logits and cross-entropy of target tokens after prompts, in one forward pass.

One function serves every learning loop and scorer: the soft-prompt answer loss (:mod:`vecgen.softprompt`), the
LoRA reader's batch loss (:mod:`vecgen.probes.reader`) and lm-eval's log-likelihoods (:mod:`vecgen.lmeval`). The
batch is built the way generation builds it (:func:`~vecgen.backends.contract.build_batch`) and run through the
backend contract (:meth:`~vecgen.backends.contract.Backend.forward_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .backends.contract import build_batch
from .decoding.engine import check_context
from .models import LoadedModel


def target_logits(lm: LoadedModel, prompts: Sequence[Sequence[Any]], targets: Sequence[Sequence[int]], *,
                  what: str | None = None) -> torch.Tensor:
    """Teacher-forced logits at the target positions: one left-padded batch of ``[*prompts[i], targets[i]]`` built
    by :func:`vecgen.decoding.build_batch` (the same path as generation), positions from 0 after each row's padding,
    one forward pass through the backend contract keeping only the last ``K + 1`` positions
    (:meth:`~vecgen.backends.contract.Backend.forward_logits`; gradients flow).

    Args:
        prompts: each a list of segments (token ids or ``(n, d)`` vectors; gradients flow into the vectors).
        targets: token ids per row.
        what: the sequences' name in a context-length error; None: the caller fits rows to the context itself.

    Returns:
        ``(B, K, V)`` float32, ``K = max len(targets)``: position ``k`` of row ``b`` predicts that row's target
        token at ``k``; row ``b``'s targets are its last ``len(targets[b])`` positions.

    Raises:
        ContextLengthError: a row longer than the model's context (with ``what``).
        UnsupportedError: a backend without teacher-forced logits (llama.cpp).
    """
    targets = [list(t) for t in targets]
    batch = build_batch(lm, [[*p, t] for p, t in zip(prompts, targets)])
    mask = batch.attention_mask  # (B, T)
    if what is not None:
        check_context(lm, mask.sum(-1).tolist(), [0] * len(targets), names=[what] * len(targets))
    K = max(len(t) for t in targets)  # targets sit at the end of each left-padded row
    logits = lm.backend.forward_logits(batch, keep=K + 1)  # (B, K + 1, V)
    return logits[:, :-1]  # the position before each target token predicts it


def teacher_forced_loss(lm: LoadedModel, prompts: Sequence[Sequence[Any]], targets: Sequence[Sequence[int]], *,
                        what: str = "a training sequence") -> torch.Tensor:
    """Teacher-forced cross-entropy of each ``targets[i]`` after ``prompts[i]``, in nats per target token (averaged
    over every target token of the batch); the logits are :func:`target_logits`'.

    Args:
        prompts: each a list of segments (token ids or ``(n, d)`` vectors; gradients flow into the vectors).
        targets: token ids per row (end token included).
        what: the sequences' name in a context-length error.

    Returns:
        Scalar float32 tensor.

    Raises:
        ContextLengthError: a row longer than the model's context.
    """
    targets = [list(t) for t in targets]
    logits = target_logits(lm, prompts, targets, what=what)  # (B, K, V)
    K = logits.shape[1]
    labels = torch.full((len(targets), K), -100, dtype=torch.long, device=logits.device)  # (B, K)
    for b, t in enumerate(targets):
        labels[b, K - len(t) :] = torch.tensor(t, device=logits.device)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)


__all__ = ["target_logits", "teacher_forced_loss"]
