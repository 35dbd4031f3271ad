"""Model-family adapters: the one place that knows how Qwen2/Qwen2.5, Qwen3, GPT-2 and other
Llama-like models differ.

Code elsewhere asks the adapter (``lm.adapter``) instead of testing model names. Facts come from
the model configs and model cards (see ``docs/ANCHORS.md`` in the shared notes):

=========  ========  =======  =============================  =================
family     QKV bias  QK-norm  positions                      thinking switch
=========  ========  =======  =============================  =================
qwen2      yes       no       RoPE                           no
qwen3      no        yes      RoPE                           ``enable_thinking``
gpt2       yes       no       learned absolute (``wpe``)     no
llama      no        no       RoPE                           no
=========  ========  =======  =============================  =================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PAD_PLACEHOLDER = re.compile(r"^\[PAD\d+\]$")


@dataclass(frozen=True)
class FamilyAdapter:
    """Facts and small behaviours of one model family.

    Attributes:
        family: ``"qwen2"``, ``"qwen3"``, ``"gpt2"`` or ``"llama"`` (generic Llama-like fallback).
        model_types: transformers ``config.model_type`` values handled by this adapter.
        qkv_bias: attention q/k/v projections have a bias.
        qk_norm: per-head RMSNorm on q and k before RoPE.
        rotary: positions enter through rotary embeddings (RoPE) rather than a learned table.
        thinking_tokens: ``(start, end)`` thinking markers of thinking-capable chat models, else None.
        stop_tokens: tokens that end generation besides the model's eos (Qwen: ``<|im_end|>`` closes
            a chat turn, ``<|endoftext|>`` ends a document; the hub generation configs list both).
    """

    family: str
    model_types: tuple[str, ...]
    qkv_bias: bool
    qk_norm: bool
    rotary: bool = True
    thinking_tokens: tuple[str, str] | None = None
    stop_tokens: tuple[str, ...] = ()

    def stop_token_ids(self, tokenizer: Any, generation_config: Any = None) -> list[int]:
        """Token ids that end generation: the model's ``eos_token_id`` (one or several), the tokenizer's
        eos, and the family's stop tokens. Sorted, unique."""
        ids: set[int] = set()
        for src in (getattr(generation_config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif src:
                ids.update(int(i) for i in src)
        vocab = tokenizer.get_vocab()
        ids.update(vocab[t] for t in self.stop_tokens if t in vocab)
        return sorted(ids)


_QWEN_STOPS = ("<|im_end|>", "<|endoftext|>")
QWEN2 = FamilyAdapter("qwen2", ("qwen2",), qkv_bias=True, qk_norm=False, stop_tokens=_QWEN_STOPS)
QWEN3 = FamilyAdapter(
    "qwen3", ("qwen3",), qkv_bias=False, qk_norm=True, thinking_tokens=("<think>", "</think>"), stop_tokens=_QWEN_STOPS
)
GPT2 = FamilyAdapter("gpt2", ("gpt2",), qkv_bias=True, qk_norm=False, rotary=False)
LLAMA = FamilyAdapter("llama", ("llama", "mistral"), qkv_bias=False, qk_norm=False)

ADAPTERS: tuple[FamilyAdapter, ...] = (QWEN2, QWEN3, GPT2, LLAMA)


def adapter_for(config: Any) -> FamilyAdapter:
    """The adapter for a transformers config (by ``model_type``); unknown types get the generic
    Llama-like adapter, which assumes nothing family-specific."""
    model_type = getattr(config, "model_type", "")
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    return LLAMA


def count_real_vocab(tokenizer: Any, n_rows: int) -> int:
    """Number of embedding rows that are real tokens.

    Embedding matrices are padded (Qwen: 151,936 rows for 151,665 real tokens). Hub tokenizers simply
    have fewer entries than rows; tokenizers rebuilt from GGUF files fill the gap with ``[PADnnnnnn]``
    placeholders, which are not counted. Returns ``min(n_rows, len(tokenizer))`` minus the trailing
    placeholder entries.
    """
    n = min(n_rows, len(tokenizer))
    while n > 0 and _PAD_PLACEHOLDER.match(str(tokenizer.convert_ids_to_tokens(n - 1))):
        n -= 1
    return n
