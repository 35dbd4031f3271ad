"""The transformers backend: any module with transformers' calling convention.

Drives ``model(input_ids | inputs_embeds, attention_mask, position_ids, past_key_values, use_cache=True,
logits_to_keep=1[, output_hidden_states=True])`` with a cache object that can narrow its batch
(``batch_select_indices``, as transformers' ``DynamicCache`` and vecgen's reference
:class:`~vecgen.reference.model.KVCache` do). Both a transformers ``AutoModelForCausalLM`` and vecgen's
from-scratch :class:`~vecgen.reference.model.ReferenceModel` run through it; ``name`` says which.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .contract import Batch, ContractError, DecodeState, extend_inputs, merge_fields, positions_of

_ACCEPTS_LOGITS_TO_KEEP: dict[type, bool] = {}


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (then only the last position's logits are computed)."""
    key = type(model)
    if key not in _ACCEPTS_LOGITS_TO_KEEP:
        try:
            _ACCEPTS_LOGITS_TO_KEEP[key] = "logits_to_keep" in inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            _ACCEPTS_LOGITS_TO_KEEP[key] = False
    return _ACCEPTS_LOGITS_TO_KEEP[key]


@dataclass
class HFCache:
    """The transformers backend's part of a :class:`DecodeState`.

    Attributes:
        past_key_values: the model's KV cache (``DynamicCache`` or the reference ``KVCache``).
        attention_mask: ``(B, S)`` long over every cached position, 0 on padding.
    """

    past_key_values: Any
    attention_mask: torch.Tensor


class TransformersBackend:
    """:class:`~vecgen.backends.contract.Backend` over a module with transformers' calling convention.

    Args:
        model: the causal LM (transformers, or vecgen's reference model).
        embed_scale: the factor the model's input embedding applies (the family adapter's
            :meth:`~vecgen.models.adapters.FamilyAdapter.embed_scale`).
        sliding_window: the model has sliding-window attention layers (the adapter's
            :meth:`~vecgen.models.adapters.FamilyAdapter.has_sliding_window`); then padding inside a row
            is not exact (``inner_padding_exact`` is False).
        name: ``"transformers"`` or ``"reference"`` (recorded in results).
        final_norm: returns the module that normalises the last residual stream before the LM head (the family
            adapter's :meth:`~vecgen.models.adapters.FamilyAdapter.final_norm`); looked up on first
            :meth:`unembed`.
        logit_softcap: the family's final logit soft-capping ``c`` (``c·tanh(z / c)``; Gemma), or None.
    """

    def __init__(self, model: Any, *, embed_scale: float = 1.0, sliding_window: bool = False,
                 name: str = "transformers", final_norm: Callable[[], Any] | None = None,
                 logit_softcap: float | None = None):
        self.model = model
        self.name = name
        self._find_final_norm = final_norm
        self._final_norm: Any = None
        self.logit_softcap = logit_softcap
        self.embed_scale = float(embed_scale)
        self.inner_padding_exact = not sliding_window
        self._embed_module = model.get_input_embeddings()
        weight = self._embed_module.weight
        self.device = weight.device
        self.dtype = weight.dtype
        self.hidden_size = int(weight.shape[1])
        self.vocab_rows = int(weight.shape[0])
        self._logits_to_keep = accepts_logits_to_keep(model)

    @property
    def embedding(self) -> torch.Tensor:
        """``(V_rows, d)`` the input embedding weight (unscaled)."""
        return self._embed_module.weight

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``(...,)`` long → ``(..., d)``: the model's own embedding module applied to ``ids``."""
        return self._embed_module(ids.to(self.device))

    def _call(self, hidden: bool, **kwargs: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        if hidden:
            kwargs["output_hidden_states"] = True
        out = self.model(use_cache=True, **kwargs)
        h = None
        if hidden:
            states = getattr(out, "hidden_states", None)
            if not states:
                raise ContractError(f"{type(self.model).__name__} returned no hidden_states for output_hidden_states=True")
            h = states[-1][:, -1].to(self.device)  # (B, d): after the final norm, before the LM head
        # with layers on several devices (device_map) the logits come from the last one: bring them home
        return out, out.logits[:, -1].float().to(self.device), h  # (B, V) float32

    def prefill(self, batch: Batch, past: DecodeState | None = None, *, hidden: bool = False) -> DecodeState:
        mask = batch.attention_mask.to(self.device)
        if past is not None and past.batch_size != batch.batch_size:
            raise ContractError(f"past has {past.batch_size} rows but the batch has {batch.batch_size}")
        offset = torch.zeros_like(mask[:, 0]) if past is None else past.next_position.to(mask.device)  # (B,)
        positions = offset[:, None] + (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T); padding gets the offset
        full_mask = mask if past is None else torch.cat([past.cache.attention_mask, mask], dim=-1)  # (B, S)
        out, logits, h = self._call(
            hidden,
            input_ids=batch.input_ids,
            inputs_embeds=batch.inputs_embeds,
            attention_mask=full_mask,
            position_ids=positions,
            past_key_values=None if past is None else past.cache.past_key_values,
        )
        return DecodeState(logits, offset + mask.sum(-1), h, HFCache(out.past_key_values, full_mask))

    def extend(self, state: DecodeState, inputs_embeds: torch.Tensor, *, hidden: bool = False) -> DecodeState:
        inputs_embeds = extend_inputs(state, inputs_embeds)  # (B, k, d)
        B, k, _ = inputs_embeds.shape
        cache: HFCache = state.cache
        ones = torch.ones(B, k, dtype=cache.attention_mask.dtype, device=cache.attention_mask.device)
        mask = torch.cat([cache.attention_mask, ones], dim=-1)  # (B, S + k)
        positions = state.next_position[:, None] + torch.arange(k, device=state.next_position.device)  # (B, k)
        out, logits, h = self._call(
            hidden,
            inputs_embeds=inputs_embeds.to(self.dtype),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache.past_key_values,
        )
        return DecodeState(logits, positions[:, -1] + 1, h, HFCache(out.past_key_values, mask))

    def select_rows(self, state: DecodeState, rows: torch.Tensor) -> DecodeState:
        rows = torch.as_tensor(rows, dtype=torch.long).to(self.device)
        cache: HFCache = state.cache
        pkv = cache.past_key_values
        if not hasattr(pkv, "batch_select_indices"):
            raise ContractError(f"{type(pkv).__name__} cannot narrow its batch (no batch_select_indices)")
        pkv.batch_select_indices(rows)
        cache.attention_mask = cache.attention_mask[rows]  # (b, S)
        # slots that are padding for every kept row (left by rows that left, e.g. after merges) are dropped, so a
        # continuously batched cache stays as long as its longest live row, not the batch's whole history
        start = int((cache.attention_mask.sum(0) > 0).long().argmax()) if cache.attention_mask.shape[0] else 0
        if start > 0 and _trim_kv(pkv, start):
            cache.attention_mask = cache.attention_mask[:, start:]  # (b, S - start)
        state.next_position = state.next_position[rows]  # (b,)
        state.logits = state.logits[rows.to(state.logits.device)]  # (b, V)
        if state.hidden is not None:
            state.hidden = state.hidden[rows.to(state.hidden.device)]  # (b, d)
        return state

    def fork(self, state: DecodeState, rows: torch.Tensor | Sequence[int]) -> DecodeState:
        return self.select_rows(copy.deepcopy(state), torch.as_tensor(rows, dtype=torch.long))

    def merge(self, first: DecodeState, second: DecodeState) -> DecodeState:
        """Rows of ``first`` then ``second``: the shorter cache is left-padded (zero keys and values, mask 0) to the
        longer one's length in every layer, then the two are concatenated along the batch. Padding sits before each
        row's first input, as in a left-padded prefill, so it is exact for sliding-window layers too (their window
        is counted back from the newest slot); a sliding layer that keeps only its window is padded to the longer
        of the two windows."""
        a, b = first.cache, second.cache
        if not isinstance(a, HFCache) or not isinstance(b, HFCache):
            raise ContractError("merge got a state that is not the transformers backend's")
        S = max(a.attention_mask.shape[1], b.attention_mask.shape[1])
        masks = [torch.nn.functional.pad(m, (S - m.shape[1], 0)) for m in (a.attention_mask, b.attention_mask)]
        _merge_kv(a.past_key_values, b.past_key_values)
        return merge_fields(first, second, HFCache(a.past_key_values, torch.cat(masks)))  # mask (b1 + b2, S)

    def _inputs(self, batch: Batch) -> dict[str, Any]:
        mask = batch.attention_mask.to(self.device)  # (B, T)
        if batch.inputs_embeds is not None:
            inputs: dict[str, Any] = {"inputs_embeds": batch.inputs_embeds.to(self.device, self.dtype)}
        else:
            assert batch.input_ids is not None  # a Batch holds one or the other
            inputs = {"input_ids": batch.input_ids.to(self.device)}
        return {**inputs, "attention_mask": mask, "position_ids": positions_of(mask), "use_cache": False}

    def forward_logits(self, batch: Batch, *, keep: int | None = None) -> torch.Tensor:
        kwargs = self._inputs(batch)
        T = batch.attention_mask.shape[1]
        k = T if keep is None else int(keep)
        if not 1 <= k <= T:
            raise ContractError(f"forward_logits keep={keep} for a batch of {T} positions")
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = k
        out = self.model(**kwargs)
        return out.logits[:, -k:].float().to(self.device)  # (B, k, V)

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            out = self.model(**self._inputs(batch), output_hidden_states=True)
        states = getattr(out, "hidden_states", None)
        if not states:
            raise ContractError(f"{type(self.model).__name__} returned no hidden_states for output_hidden_states=True")
        return tuple(states)  # L + 1 tensors (B, T, d)

    def unembed(self, hidden: torch.Tensor, *, final: bool = False) -> torch.Tensor:
        x = hidden
        if not final:
            if self._final_norm is None:
                if self._find_final_norm is None:
                    raise ContractError("this TransformersBackend was built without a final_norm lookup")
                self._final_norm = self._find_final_norm()
            x = self._final_norm(x.to(next(self._final_norm.parameters()).device))
        head = self.model.get_output_embeddings()
        z = head(x.to(head.weight.device)).float()  # (..., V)
        if self.logit_softcap:
            z = self.logit_softcap * torch.tanh(z / self.logit_softcap)
        return z.to(self.device)


def _left_pad_cat(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(b1, h, s1, e)`` and ``(b2, h, s2, e)`` → ``(b1 + b2, h, max(s1, s2), e)``, each left-padded with zeros."""
    S = max(x.shape[2], y.shape[2])
    pad = [torch.nn.functional.pad(t, (0, 0, S - t.shape[2], 0)) for t in (x, y.to(x.device))]
    return torch.cat(pad)


def _trim_kv(pkv: Any, start: int) -> bool:
    """Drop the first ``start`` slots of every layer of a KV cache, in place (slots that are padding for every row);
    a sliding layer that keeps fewer slots than remain keeps them, its ``cumulative_length`` lowered. Returns False,
    changing nothing, for a cache it does not know (static layers, other types): correct, only longer."""
    if hasattr(pkv, "layers"):
        layers = [la for la in pkv.layers if la.is_initialized]
        if type(pkv).__name__ != "DynamicCache" or any(
                not isinstance(getattr(la, "cumulative_length", 0), int) for la in layers):
            return False
        for layer in layers:
            total = getattr(layer, "cumulative_length", layer.keys.shape[2])
            keep = min(layer.keys.shape[2], total - start)
            layer.keys, layer.values = layer.keys[:, :, -keep:], layer.values[:, :, -keep:]
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = total - start
        return True
    if type(pkv).__name__ == "KVCache":
        for i, (k, v) in enumerate(zip(pkv.keys, pkv.values)):
            if k is not None and v is not None:
                pkv.keys[i], pkv.values[i] = k[:, :, start:], v[:, :, start:]
        return True
    return False


def _merge_kv(into: Any, other: Any) -> None:
    """Append ``other``'s batch rows to the KV cache ``into``, in place: transformers' ``DynamicCache`` (layers with
    ``keys`` / ``values``; sliding layers' ``cumulative_length`` becomes the longer one) or the reference
    ``KVCache`` (``keys`` / ``values`` lists).

    Raises:
        ContractError: another cache type, or caches of different depth.
    """
    if hasattr(into, "layers") and hasattr(other, "layers"):
        if len(into.layers) != len(other.layers):
            raise ContractError("merge got caches with different numbers of layers")
        for la, lb in zip(into.layers, other.layers):
            if not (la.is_initialized and lb.is_initialized):
                raise ContractError("merge got a cache layer that holds nothing yet")
            la.keys, la.values = _left_pad_cat(la.keys, lb.keys), _left_pad_cat(la.values, lb.values)
            if hasattr(la, "cumulative_length"):
                la.cumulative_length = max(la.cumulative_length, lb.cumulative_length)
        return
    if type(into).__name__ == "KVCache" and type(other).__name__ == "KVCache":
        for i, (ka, kb, va, vb) in enumerate(zip(into.keys, other.keys, into.values, other.values)):
            if ka is None or kb is None or va is None or vb is None:
                raise ContractError("merge got a cache layer that holds nothing yet")
            into.keys[i], into.values[i] = _left_pad_cat(ka, kb), _left_pad_cat(va, vb)
        return
    raise ContractError(f"cannot merge KV caches of types {type(into).__name__} and {type(other).__name__}")


__all__ = ["HFCache", "TransformersBackend", "accepts_logits_to_keep"]
