"""The backend contract: what vecgen's decode engine needs from a model, and nothing more.

The engine (:mod:`vecgen.decoding.engine`) drives any object that satisfies :class:`Backend`. A backend
owns the model and its cache; the engine owns sampling, mixing, per-row policies and records. The
contract, in the engine's order of use:

1. :meth:`Backend.input_rows` — what the model's own input embedding returns for token ids
   (``(...,)`` long → ``(..., d)``), *including* any scale the family applies (Gemma 3 multiplies
   its embedding by ``sqrt(d)``). Every input the engine feeds for a token id, whether a prompt id,
   a forced marker token or a one-hot mixture, comes from here, so ids and their vectors give the
   same logits on every backend. :attr:`Backend.embedding` and :attr:`Backend.embed_scale` describe
   the same map as a matrix (``input_rows(i) == embed_scale · embedding[i]``), for mixtures over the
   whole vocabulary that must not gather ``V`` rows per step.
2. :meth:`Backend.prefill` — run a left-padded :class:`Batch` of token ids *or* input vectors (a
   prompt mixing both is sent as vectors built with :meth:`Backend.input_rows`), optionally on top of
   a cached state (a shared prefix, see :meth:`Backend.fork`).
3. :meth:`Backend.extend` — feed ``(B, k, d)`` more vectors, one position per vector, on top of the
   cache.
4. :meth:`Backend.select_rows` — keep some rows (finished rows leave the batch); in place.
5. :meth:`Backend.fork` — a copy holding chosen rows (indices may repeat); the source is untouched.
6. :meth:`Backend.merge` — one state holding the rows of two (continuous batching: prompts prefilled while a
   batch runs join it); each row continues exactly as it would alone.

Three capabilities serve scoring and reading rather than decoding (a backend that cannot provide one raises
:class:`~vecgen.errors.UnsupportedError` naming the backend that can):

7. :meth:`Backend.forward_logits` — teacher-forced logits of a whole batch, no cache, with autograd (soft prompts,
   the LoRA reader, lm-eval's log-likelihoods, ``vecgen diagnose``);
8. :meth:`Backend.hidden_states` — the residual stream after every layer (the logit lens);
9. :meth:`Backend.unembed` — hidden states through the final norm and the LM head.

After :meth:`~Backend.prefill` and :meth:`~Backend.extend` the state carries ``logits`` ``(B, V)``
float32 at the last fed position and, when asked for (``hidden=True``), ``hidden`` ``(B, d)``: the last
hidden state at that position, after the final norm and before the LM head (what the LM head reads;
transformers' ``hidden_states[-1]``).

Everything else in :class:`DecodeState` (``cache``) belongs to the backend. Positions are consecutive
per row, starting at 0 after the row's left padding; a row's padding is never attended to.

A new backend implements this Protocol and passes ``tests/contract`` (parametrized over every backend
and tiny model family); nothing else in vecgen changes. Violations found at run time raise
:class:`ContractError`, a bug (exit status 1), never a user error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import ConfigError, ContractError, NonFiniteError

#: A prompt part: token ids, or a ``(n, d)`` tensor of input vectors.
Segment = Sequence[int] | torch.Tensor
#: A prompt: token ids, a ``(T, d)`` tensor, or a list of segments.
Prompt = Sequence[int] | torch.Tensor | Sequence[Segment]


@dataclass
class Batch:
    """A left-padded batch of prompts.

    Attributes:
        input_ids: ``(B, T)`` long when every prompt is token ids only, else None.
        inputs_embeds: ``(B, T, d)`` in the backend's dtype when some prompt contains vectors, else None.
        attention_mask: ``(B, T)`` long, 0 on left padding.
    """

    input_ids: torch.Tensor | None
    inputs_embeds: torch.Tensor | None
    attention_mask: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.attention_mask.shape[0])


@dataclass
class DecodeState:
    """What a backend returns after feeding inputs, and takes back for the next step.

    Attributes:
        logits: ``(B, V)`` float32 logits at the last fed position of each row.
        next_position: ``(B,)`` long, the position id the next input of each row gets (padding excluded).
        hidden: ``(B, d)`` last hidden state at the last fed position (after the final norm, before the LM
            head), when the call asked for it; else None.
        cache: the backend's own state (KV cache, attention mask, sequence ids); opaque to the engine.
    """

    logits: torch.Tensor
    next_position: torch.Tensor
    hidden: torch.Tensor | None = None
    cache: Any = None

    @property
    def batch_size(self) -> int:
        return int(self.logits.shape[0])


@runtime_checkable
class Backend(Protocol):
    """What the decode engine needs from a model (see the module docstring for the rules).

    Attributes:
        name: a short backend name for results files (``"transformers"``, ``"reference"``, ...).
        device: where inputs and outputs live.
        dtype: the dtype of input vectors the model takes.
        hidden_size: ``d``.
        vocab_rows: rows of the logits and of :attr:`embedding` (padding rows included).
        embedding: ``(V_rows, d)`` the input embedding matrix, unscaled.
        embed_scale: the factor the model's embedding applies (1.0 for most families; ``sqrt(d)`` for
            Gemma 3), so ``input_rows(i) == embed_scale · embedding[i]``.
        inner_padding_exact: whether :meth:`prefill` on top of ``past`` gives the same results as the
            whole prompt when it puts padding between the cached and the new inputs of a row (False for
            sliding-window attention, whose window counts padded slots); callers that share prefixes
            (translations) share them only when this is True.
    """

    name: str
    device: torch.device
    dtype: torch.dtype
    hidden_size: int
    vocab_rows: int
    embedding: torch.Tensor
    embed_scale: float
    inner_padding_exact: bool

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """The model's input vectors for token ids: ``(...,)`` long → ``(..., d)`` in :attr:`dtype`."""
        ...

    def prefill(self, batch: Batch, past: DecodeState | None = None, *, hidden: bool = False) -> DecodeState:
        """Run a left-padded batch (on top of ``past``, which is consumed, when given).

        With ``past`` (same number of rows), positions continue from ``past.next_position`` and the
        batch's left padding sits between the cached inputs and the new ones, masked out.
        """
        ...

    def extend(self, state: DecodeState, inputs_embeds: torch.Tensor, *, hidden: bool = False) -> DecodeState:
        """Feed ``(B, k, d)`` (or ``(B, d)``) vectors on top of ``state``; returns the new state (``state`` is consumed)."""
        ...

    def select_rows(self, state: DecodeState, rows: torch.Tensor) -> DecodeState:
        """Keep batch ``rows`` (``(b,)`` long, distinct, increasing) of ``state``, in place; returns it."""
        ...

    def fork(self, state: DecodeState, rows: torch.Tensor | Sequence[int]) -> DecodeState:
        """A copy holding batch ``rows`` (indices may repeat) of ``state``, which stays untouched."""
        ...

    def merge(self, first: DecodeState, second: DecodeState) -> DecodeState:
        """One state holding the rows of ``first`` then those of ``second`` (both consumed); each row's next
        logits, positions and cache are its own, so decoding on continues as for each state alone (up to the
        kernels' batch tolerance). Both states carry ``hidden`` or neither does.

        Raises:
            ContractError: states of another backend, or ``hidden`` on one side only.
        """
        ...

    def forward_logits(self, batch: Batch, *, keep: int | None = None) -> torch.Tensor:
        """Teacher-forced logits of ``batch`` (no cache): ``(B, K, V)`` float32 at the last ``K = keep`` positions
        of every row (all ``T`` when None). Positions start at 0 after each row's left padding. Autograd flows into
        ``batch.inputs_embeds`` and any trainable weights (the caller chooses ``torch.no_grad`` or not).

        Raises:
            UnsupportedError: the backend computes no gradients / all-position logits.
        """
        ...

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """The residual stream of ``batch`` (no cache, no gradients): ``L + 1`` tensors ``(B, T, d)`` — the input
        vectors (GPT-2: plus its position embedding), then after every layer; the last one after the final norm
        (transformers' ``hidden_states``).

        Raises:
            UnsupportedError: the backend returns no per-layer states.
        """
        ...

    def unembed(self, hidden: torch.Tensor, *, final: bool = False) -> torch.Tensor:
        """Logits ``(..., V)`` float32 of hidden states ``(..., d)``: the final norm (skipped when ``final``: the
        states are already normalised, as the last of :meth:`hidden_states` is), then the LM head and the family's
        logit soft-capping.

        Raises:
            UnsupportedError: the backend exposes no LM head.
        """
        ...


def merge_fields(first: DecodeState, second: DecodeState, cache: Any) -> DecodeState:
    """The engine-visible fields of two states, rows of ``first`` then ``second``, around a merged ``cache``
    (shared by every backend's :meth:`Backend.merge`).

    Raises:
        ContractError: ``hidden`` on one side only.
    """
    if (first.hidden is None) != (second.hidden is None):
        raise ContractError("merge got one state with hidden states and one without")
    hidden = None if first.hidden is None or second.hidden is None else torch.cat([first.hidden, second.hidden.to(
        first.hidden.device)])  # (b1 + b2, d)
    return DecodeState(torch.cat([first.logits, second.logits.to(first.logits.device)]),  # (b1 + b2, V)
                       torch.cat([first.next_position, second.next_position.to(first.next_position.device)]),
                       hidden, cache)


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``(B, T)`` of a left-padded attention mask ``(B, T)``: 0 at each row's first input (padding
    gets 0 too, and is masked out)."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


def segments(*parts: Segment) -> list[Segment]:
    """A prompt made of parts (``[ids_before, vectors, ids_after]``), typed as one."""
    return list(parts)


def extend_inputs(state: DecodeState, inputs_embeds: torch.Tensor) -> torch.Tensor:
    """The vectors of :meth:`Backend.extend` as ``(B, k, d)`` (a ``(B, d)`` step gets ``k = 1``), checked against
    ``state``'s rows.

    Raises:
        ContractError: a row count other than the state's.
    """
    if inputs_embeds.dim() == 2:
        inputs_embeds = inputs_embeds[:, None]  # (B, 1, d)
    if inputs_embeds.shape[0] != state.batch_size:
        raise ContractError(f"extend got {inputs_embeds.shape[0]} rows for a state of {state.batch_size}")
    return inputs_embeds


def _segments(prompt: Prompt) -> list[Segment]:
    if isinstance(prompt, torch.Tensor):
        return [prompt] if prompt.dim() == 2 else [prompt.tolist()]
    items = list(prompt)
    if all(isinstance(x, int) for x in items):
        return [[int(x) for x in items]]  # type: ignore[arg-type]  # every item is an int
    return items  # type: ignore[return-value]  # a list of segments


def build_batch(backend: Any, prompts: Sequence[Prompt], pad_token_id: int | None = None) -> Batch:
    """Left-pad prompts into one :class:`Batch` for ``backend``.

    Args:
        backend: the backend whose :meth:`~Backend.input_rows` embeds id segments of mixed prompts, or a
            :class:`~vecgen.models.LoadedModel` (its ``backend``, and its tokenizer's pad id).
        prompts: each a list of token ids, a ``(T, d)`` tensor of vectors, or a list of such segments
            (e.g. ``[ids_before, vectors, ids_after]``).
        pad_token_id: id written into left padding of an ids-only batch (never attended to; default 0,
            or the tokenizer's pad id when a LoadedModel is given).

    Raises:
        ConfigError: no prompts, or an empty prompt.
        NonFiniteError: a NaN/inf input vector (the prompt index is named).
    """
    if not prompts:
        raise ConfigError("no prompts given")
    if hasattr(backend, "backend") and hasattr(backend, "tokenizer"):  # a LoadedModel
        pad_token_id = backend.tokenizer.pad_token_id if pad_token_id is None else pad_token_id
        backend = backend.backend
    device = backend.device
    seg_lists = [_segments(p) for p in prompts]
    only_ids = all(not isinstance(s, torch.Tensor) for segs in seg_lists for s in segs)
    lengths = [sum(len(s) for s in segs) for segs in seg_lists]
    for i, n in enumerate(lengths):
        if n == 0:
            raise ConfigError(f"prompt {i} is empty")
    T = max(lengths)
    B = len(prompts)
    mask = torch.zeros(B, T, dtype=torch.long, device=device)
    for i, n in enumerate(lengths):
        mask[i, T - n :] = 1
    if only_ids:
        ids = torch.full((B, T), int(pad_token_id or 0), dtype=torch.long, device=device)
        for i, segs in enumerate(seg_lists):
            flat = [int(t) for s in segs for t in s]
            ids[i, T - len(flat) :] = torch.tensor(flat, dtype=torch.long, device=device)
        return Batch(ids, None, mask)
    embeds = torch.zeros(B, T, backend.hidden_size, dtype=backend.dtype, device=device)
    for i, segs in enumerate(seg_lists):
        parts = []
        for s in segs:
            if isinstance(s, torch.Tensor):
                v = s.to(device=device, dtype=backend.dtype)
                if v.dim() != 2 or v.shape[-1] != backend.hidden_size:
                    raise ConfigError(f"prompt {i} has a vector segment of shape {tuple(s.shape)}; "
                                      f"expected (n, {backend.hidden_size})")
                if not bool(torch.isfinite(v).all()):
                    raise NonFiniteError(f"prompt {i} contains a NaN or inf input vector", row=i)
                parts.append(v)
            elif len(s):
                parts.append(backend.input_rows(torch.tensor(list(s), dtype=torch.long, device=device)))
        row = torch.cat(parts, dim=0)  # (T_i, d)
        embeds[i, T - row.shape[0] :] = row
    return Batch(None, embeds, mask)


__all__ = ["Backend", "Batch", "ContractError", "DecodeState", "Prompt", "Segment", "build_batch", "extend_inputs",
           "merge_fields", "positions_of", "segments"]
