"""Context-length checks before the first step: every prompt plus its budget must fit the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ContextLengthError
from ..models import LoadedModel


@torch.inference_mode()
def check_context(lm: LoadedModel, lengths: Sequence[int], budgets: Sequence[int], cached: Sequence[int] | None = None,
                  *, names: Sequence[str] | None = None) -> None:
    """Refuse requests that would run past the model's context: for every row, the positions already
    cached, its prompt length and its budget (the most inputs it feeds after the prompt:
    :meth:`RowPolicy.max_inputs`) must fit :meth:`~vecgen.models.FamilyAdapter.context_length`.
    :func:`run` calls it before any step, so a long request fails at once instead of mid-stream (learned
    positions) or silently (RoPE past its trained length); commands call it on all their items first.

    Args:
        lm: the model. lengths, budgets, cached: per row, in tokens/positions. names: row labels for the
            message (default ``prompt i``).

    Raises:
        ContextLengthError: the first row that does not fit (its length, the limit and how to shorten).
    """
    limit = lm.context_length
    if limit is None:
        return
    cached = list(cached) if cached is not None else [0] * len(lengths)
    for i, (n, c, more) in enumerate(zip(lengths, cached, budgets)):
        n, c, more = int(n), int(c), int(more)
        if c + n + more > limit:
            label = names[i] if names is not None else f"prompt {i}"
            where = f"{c} cached + {n}" if c else f"{n}"
            cells = getattr(lm.backend, "n_ctx", None)
            source = "the backend's n_ctx" if cells == limit else "max_position_embeddings"
            longer = "a larger --n-ctx" if cells == limit else "a model with a longer context"
            raise ContextLengthError(
                f"{label} needs {c + n + more} positions ({where} prompt + up to {more} generated), but "
                f"{lm.name} has a context of {limit} ({source}); shorten the prompt or lower "
                "the number of tokens to generate (--max-new-tokens, thinking/answer budgets, translation "
                f"tokens), or use {longer}")


def truncate_to_context(lm: LoadedModel, ids: Sequence[int], budget: int) -> tuple[list[int], int]:
    """Keep the last tokens of ``ids`` so that they plus ``budget`` more fit the model's context (the
    opt-in alternative to :func:`check_context`'s refusal, e.g. ``vecgen generate --truncate-prompt``).

    Returns:
        ``(ids kept, number dropped from the start)``.

    Raises:
        ContextLengthError: ``budget`` alone leaves no room for a prompt token.
    """
    limit = lm.context_length
    if limit is None or len(ids) + budget <= limit:
        return list(ids), 0
    room = limit - budget
    if room < 1:
        raise ContextLengthError(f"{budget} generated tokens leave no room for a prompt in {lm.name}'s context of "
                                 f"{limit}; lower the number of tokens to generate")
    return list(ids[-room:]), len(ids) - room


__all__ = ["check_context", "truncate_to_context"]
