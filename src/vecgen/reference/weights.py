"""The one weight mapping from a transformers Qwen2/Qwen3 model to :class:`ReferenceModel`, and loaders.

:func:`map_state_dict` is the single place that knows how transformers names the weights; both
:func:`from_transformers` (used by :func:`load_reference`, ``vecgen verify`` and the benchmark) and the
tests go through it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import UnsupportedModelError
from ..models import LoadedModel, load_model
from ..models.adapters import adapter_for
from .model import ReferenceConfig, ReferenceModel

log = logging.getLogger(__name__)


def weight_map(config: ReferenceConfig) -> dict[str, str]:
    """Reference parameter name → transformers state-dict key, for every reference parameter.

    With tied embeddings the LM head is the embedding matrix, so ``lm_head.weight`` is mapped from
    ``model.embed_tokens.weight``.
    """
    names = {
        "tok_embeddings.weight": "model.embed_tokens.weight",
        "final_norm.weight": "model.norm.weight",
        "lm_head.weight": "model.embed_tokens.weight" if config.tie_word_embeddings else "lm_head.weight",
    }
    for i in range(config.num_hidden_layers):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        pairs = {
            "attn_norm.weight": "input_layernorm.weight",
            "attn.wq.weight": "self_attn.q_proj.weight",
            "attn.wk.weight": "self_attn.k_proj.weight",
            "attn.wv.weight": "self_attn.v_proj.weight",
            "attn.wo.weight": "self_attn.o_proj.weight",
            "mlp_norm.weight": "post_attention_layernorm.weight",
            "mlp.w_gate.weight": "mlp.gate_proj.weight",
            "mlp.w_up.weight": "mlp.up_proj.weight",
            "mlp.w_down.weight": "mlp.down_proj.weight",
        }
        if config.qkv_bias:
            pairs |= {"attn.wq.bias": "self_attn.q_proj.bias", "attn.wk.bias": "self_attn.k_proj.bias",
                      "attn.wv.bias": "self_attn.v_proj.bias"}
        if config.qk_norm:
            pairs |= {"attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight"}
        names |= {ours + k: theirs + v for k, v in pairs.items()}
    return names


def map_state_dict(state_dict: Mapping[str, torch.Tensor], config: ReferenceConfig, *,
                   copy: bool = False) -> dict[str, torch.Tensor]:
    """Map a transformers ``Qwen2ForCausalLM`` / ``Qwen3ForCausalLM`` state dict to the reference model's.

    Strict both ways: every reference parameter must be found, and every transformers weight must be
    used (with tied embeddings, ``lm_head.weight`` may appear as a second name of the embedding).

    Args:
        state_dict: ``model.state_dict()`` of the transformers model.
        config: the reference config (decides bias, QK-norm and tying).
        copy: clone the tensors; by default they share storage with the transformers model (no extra memory;
            editing one edits both).

    Raises:
        UnsupportedModelError: missing or unused weights (a variant the reference model does not implement).
    """
    names = weight_map(config)
    missing = sorted({v for v in names.values() if v not in state_dict})
    unused = sorted(set(state_dict) - set(names.values()))
    if config.tie_word_embeddings and "lm_head.weight" in unused:
        unused.remove("lm_head.weight")  # the tied second name of the embedding matrix
    if missing or unused:
        raise UnsupportedModelError(
            f"not supported by the reference model: {config.model_type} weights differ from Qwen2/Qwen3 "
            f"(missing: {missing[:5] or 'none'}; unused: {unused[:5] or 'none'})"
        )
    return {ours: (state_dict[theirs].clone() if copy else state_dict[theirs]) for ours, theirs in names.items()}


def from_transformers(source: Any, adapter: Any = None, *, copy: bool = False, attention: str = "sdpa") -> ReferenceModel:
    """Build a :class:`ReferenceModel` with the weights of a transformers Qwen2/Qwen3 model.

    Args:
        source: a :class:`~vecgen.models.LoadedModel` or a transformers causal LM.
        adapter: the family adapter (default: ``source.adapter`` or ``adapter_for(model.config)``).
        copy: clone the weights instead of sharing storage with ``source``.
        attention: ``"sdpa"`` or ``"math"`` (see :class:`ReferenceModel`).

    Returns:
        The reference model in eval mode, gradients off, on the source's device and dtype.

    Raises:
        UnsupportedModelError: ``"not supported: <model_type>; supported: qwen2, qwen3"``, or an
            unsupported variant of those families.
    """
    model = getattr(source, "model", source) if hasattr(source, "adapter") else source
    adapter = adapter or getattr(source, "adapter", None) or adapter_for(model.config)
    config = ReferenceConfig.from_transformers(model.config, adapter)
    weights = map_state_dict(model.state_dict(), config, copy=copy)
    with torch.device("meta"):
        ref = ReferenceModel(config, attention=attention)
    ref.load_state_dict(weights, strict=True, assign=True)
    if config.tie_word_embeddings:
        ref.lm_head.weight = ref.tok_embeddings.weight  # one Parameter, as in the source
    ref.inv_freq = ref.inv_freq.to(ref.tok_embeddings.weight.device)
    ref.generation_config = getattr(model, "generation_config", None)
    ref.source_config = model.config
    ref.eval()
    ref.requires_grad_(False)
    return ref


def load_reference(spec: str = "default", *, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                   copy: bool = False, attention: str = "sdpa", show_progress: bool = True) -> Any:
    """Load a model with :func:`vecgen.models.load_model` and swap in the reference forward pass.

    Returns a :class:`~vecgen.models.LoadedModel` whose ``model`` is a :class:`ReferenceModel` (same
    tokenizer, adapter and embedding rows), ready for ``vecgen.decoding.generate``.

    Raises:
        UnsupportedModelError: not a Qwen2/Qwen3 model; plus :func:`~vecgen.models.load_model`'s errors.
    """
    lm: LoadedModel = load_model(spec, device=device, dtype=dtype, show_progress=show_progress)
    ref = from_transformers(lm, copy=copy, attention=attention)
    log.info("reference model for %s: %d layers, %d/%d heads", spec, ref.config.num_hidden_layers,
             ref.config.num_attention_heads, ref.config.num_key_value_heads)
    return lm.with_model(ref)
