"""Model-family adapters: the one place that knows how Qwen2/Qwen2.5, Qwen3, GPT-2 and other
Llama-like models differ.

Code elsewhere asks the adapter (``lm.adapter``) instead of testing model names. Facts come from
the model configs and model cards (see ``docs/ANCHORS.md`` in the shared notes):

=========  ========  =======  =============================  =================  ====================
family     QKV bias  QK-norm  positions                      thinking switch    input embedding
=========  ========  =======  =============================  =================  ====================
qwen2      yes       no       RoPE                           no                 ``E[i]``
qwen3      no        yes      RoPE                           ``enable_thinking``  ``E[i]``
gpt2       yes       no       learned absolute (``wpe``)     no                 ``E[i]``
llama      no        no       RoPE                           no                 ``E[i]``
gemma3     no        yes      RoPE (local + global layers)   no                 ``sqrt(d)·E[i]``
=========  ========  =======  =============================  =================  ====================

Gemma 3 scales its word embedding by ``sqrt(hidden_size)`` inside the embedding module
(``Gemma3TextScaledWordEmbedding``, Gemma 3 technical report, arXiv 2503.19786; the same as Gemma 1/2),
so the model's input for token ``i`` is not the row ``E[i]``. Every input vecgen feeds for a token goes
through the backend's ``input_rows`` (the module itself), and mixtures over the whole vocabulary use
:meth:`FamilyAdapter.embed_scale`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedModelError

_PAD_PLACEHOLDER = re.compile(r"^\[PAD\d+\]$")


@dataclass(frozen=True)
class FamilyAdapter:
    """Facts and small behaviours of one model family.

    Attributes:
        family: ``"qwen2"``, ``"qwen3"``, ``"gpt2"``, ``"gemma3"`` or ``"llama"`` (generic Llama-like fallback).
        model_types: transformers ``config.model_type`` values handled by this adapter.
        qkv_bias: attention q/k/v projections have a bias.
        qk_norm: per-head RMSNorm on q and k before RoPE.
        rotary: positions enter through rotary embeddings (RoPE) rather than a learned table.
        thinking_tokens: ``(start, end)`` thinking markers of thinking-capable chat models, else None.
        stop_tokens: tokens that end generation besides the model's eos (Qwen: ``<|im_end|>`` closes
            a chat turn, ``<|endoftext|>`` ends a document; the hub generation configs list both).
        scaled_embeddings: the input embedding multiplies ``E[i]`` by ``sqrt(hidden_size)`` (Gemma).
    """

    family: str
    model_types: tuple[str, ...]
    qkv_bias: bool
    qk_norm: bool
    rotary: bool = True
    thinking_tokens: tuple[str, str] | None = None
    stop_tokens: tuple[str, ...] = ()
    scaled_embeddings: bool = False

    def has_sliding_window(self, config: Any) -> bool:
        """Whether some attention layers see only a window of recent cache slots (Gemma 3's local layers,
        Mistral). Their window counts padded slots, so padding *inside* a row (a prompt fed on top of a
        shorter cached prefix) changes which real tokens they see; left padding does not."""
        layer_types = getattr(config, "layer_types", None)
        if layer_types:
            return "sliding_attention" in layer_types
        return bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True) is not False

    def context_length(self, config: Any) -> int | None:
        """The longest sequence (prompt + generated, in positions) the model was built or trained for:
        ``max_position_embeddings`` (RoPE families: the trained length; running past it is silently
        degraded) or GPT-2's ``n_positions`` (the size of the learned position table: past it, the lookup
        fails). None when the config names neither."""
        for key in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def embed_scale(self, config: Any) -> float:
        """The factor the model's input embedding applies to ``E[i]``: ``sqrt(hidden_size)`` for families
        with scaled embeddings (Gemma), else 1.0."""
        return float(config.hidden_size) ** 0.5 if self.scaled_embeddings else 1.0

    def final_norm(self, model: Any) -> Any:
        """The module that normalises the last residual stream before the LM head (the logit lens applies it to
        every layer's residual stream): ``model.norm`` of the Llama-like families, GPT-2's ``transformer.ln_f``,
        the reference model's ``final_norm``.

        Raises:
            UnsupportedModelError: no such module is found (a model class this adapter does not know).
        """
        for path in ("final_norm", "model.norm", "transformer.ln_f", "model.language_model.norm"):
            obj = model
            for part in path.split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    break
            if obj is not None:
                return obj

        raise UnsupportedModelError(f"cannot find the final norm of {type(model).__name__} ({self.family} family)")

    def logit_softcap(self, config: Any) -> float | None:
        """Gemma's final logit soft-capping ``c`` (``logits = c·tanh(logits / c)``), else None."""
        cap = getattr(config, "final_logit_softcapping", None)
        return float(cap) if cap else None

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
GEMMA3 = FamilyAdapter("gemma3", ("gemma3_text", "gemma3"), qkv_bias=False, qk_norm=True,
                       stop_tokens=("<end_of_turn>",), scaled_embeddings=True)

ADAPTERS: tuple[FamilyAdapter, ...] = (QWEN2, QWEN3, GPT2, LLAMA, GEMMA3)


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
