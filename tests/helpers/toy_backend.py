"""A toy backend, registered from test code (the backend registry's proof, issue 35 item 2): it keeps no KV cache at
all. Its state is every row's input vectors and attention mask so far; each call runs the whole sequence again
through the transformers module (``use_cache=False``). Slow and simple, and a different implementation of the
contract than :class:`~vecgen.backends.transformers.TransformersBackend` (no ``past_key_values``, no cache
surgery in ``select_rows`` / ``fork`` / ``merge``): what the contract suite checks must hold for it too."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from vecgen.backends.contract import Batch, ContractError, DecodeState, extend_inputs, merge_fields, positions_of
from vecgen.models.backends import BackendSpec, LoadRequest, get_backend, register_backend


@dataclass
class ToyCache:
    """Every row's inputs so far: ``embeds`` ``(B, S, d)`` and ``mask`` ``(B, S)`` (0 on left padding)."""

    embeds: torch.Tensor
    mask: torch.Tensor


class ToyBackend:
    """:class:`~vecgen.backends.contract.Backend` over a transformers causal LM, recomputing every position."""

    name = "toy"

    def __init__(self, lm):
        self.model = lm.model
        self._inner = lm.backend  # the transformers backend of the same module: only for its embedding and LM head
        self.embed_scale = self._inner.embed_scale
        self.inner_padding_exact = self._inner.inner_padding_exact
        self.device, self.dtype = self._inner.device, self._inner.dtype
        self.hidden_size, self.vocab_rows = self._inner.hidden_size, self._inner.vocab_rows

    @property
    def embedding(self) -> torch.Tensor:
        return self._inner.embedding

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self._inner.input_rows(ids)

    def _run(self, embeds: torch.Tensor, mask: torch.Tensor, hidden: bool) -> DecodeState:
        out = self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions_of(mask), use_cache=False,
                         output_hidden_states=hidden)
        h = out.hidden_states[-1][:, -1] if hidden else None
        return DecodeState(out.logits[:, -1].float(), mask.sum(-1), h, ToyCache(embeds, mask))

    def _embeds(self, batch: Batch) -> torch.Tensor:
        if batch.inputs_embeds is not None:
            return batch.inputs_embeds.to(self.device, self.dtype)
        return self.input_rows(batch.input_ids)

    def prefill(self, batch: Batch, past: DecodeState | None = None, *, hidden: bool = False) -> DecodeState:
        embeds, mask = self._embeds(batch), batch.attention_mask.to(self.device)
        if past is not None:
            if past.batch_size != batch.batch_size:
                raise ContractError(f"past has {past.batch_size} rows but the batch has {batch.batch_size}")
            embeds, mask = torch.cat([past.cache.embeds, embeds], 1), torch.cat([past.cache.mask, mask], 1)
        return self._run(embeds, mask, hidden)

    def extend(self, state: DecodeState, inputs_embeds: torch.Tensor, *, hidden: bool = False) -> DecodeState:
        new = extend_inputs(state, inputs_embeds).to(self.dtype)  # (B, k, d)
        cache: ToyCache = state.cache
        ones = torch.ones(new.shape[:2], dtype=cache.mask.dtype, device=cache.mask.device)
        return self._run(torch.cat([cache.embeds, new], 1), torch.cat([cache.mask, ones], 1), hidden)

    def select_rows(self, state: DecodeState, rows: torch.Tensor) -> DecodeState:
        rows = torch.as_tensor(rows, dtype=torch.long)
        state.cache = ToyCache(state.cache.embeds[rows], state.cache.mask[rows])
        state.logits, state.next_position = state.logits[rows], state.next_position[rows]
        if state.hidden is not None:
            state.hidden = state.hidden[rows]
        return state

    def fork(self, state: DecodeState, rows) -> DecodeState:
        return self.select_rows(dataclasses.replace(state), torch.as_tensor(rows, dtype=torch.long))

    def merge(self, first: DecodeState, second: DecodeState) -> DecodeState:
        a, b = first.cache, second.cache
        S = max(a.mask.shape[1], b.mask.shape[1])
        embeds = [torch.nn.functional.pad(c.embeds, (0, 0, S - c.embeds.shape[1], 0)) for c in (a, b)]
        masks = [torch.nn.functional.pad(c.mask, (S - c.mask.shape[1], 0)) for c in (a, b)]
        return merge_fields(first, second, ToyCache(torch.cat(embeds), torch.cat(masks)))

    def forward_logits(self, batch: Batch, *, keep: int | None = None) -> torch.Tensor:
        return self._inner.forward_logits(batch, keep=keep)

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        return self._inner.hidden_states(batch)

    def unembed(self, hidden: torch.Tensor, *, final: bool = False) -> torch.Tensor:
        return self._inner.unembed(hidden, final=final)


def load(request: LoadRequest):
    """The transformers load of ``request``, decoded by :class:`ToyBackend`."""
    lm = get_backend("transformers").load(request)
    return dataclasses.replace(lm, backend=ToyBackend(lm))


def register() -> BackendSpec:
    """Register the ``toy`` backend (idempotent); returns its spec."""
    return register_backend(TOY, replace=True)


TOY = BackendSpec("toy", "a test backend that recomputes every position (no KV cache)", load=load,
                  families=("qwen2", "gpt2"))
