"""A from-scratch Qwen2/Qwen2.5/Qwen3 forward pass with taps, its weight mapping, and the comparison
against transformers (``vecgen verify``).

The ``reference`` backend (:mod:`.backend`, registered through the ``vecgen.backends`` entry point):
``load_model(spec, backend="reference")`` loads the transformers model and runs :func:`from_transformers`' module on
the same weights.
"""

from .model import (
    LAYER_COMPONENTS,
    SUPPORTED_FAMILIES,
    KVCache,
    ReferenceConfig,
    ReferenceModel,
    ReferenceOutput,
    apply_rope,
    attention_math,
    causal_mask,
    repeat_kv,
    rms_norm,
    rope_cos_sin,
    rope_inverse_frequencies,
    rotate_half,
    tap_names,
)
from .weights import from_transformers, load_reference, map_state_dict, weight_map


__all__ = [
    "LAYER_COMPONENTS",
    "SUPPORTED_FAMILIES",
    "KVCache",
    "ReferenceConfig",
    "ReferenceModel",
    "ReferenceOutput",
    "apply_rope",
    "attention_math",
    "causal_mask",
    "from_transformers",
    "load_reference",
    "map_state_dict",
    "repeat_kv",
    "rms_norm",
    "rope_cos_sin",
    "rope_inverse_frequencies",
    "rotate_half",
    "tap_names",
    "weight_map",
]
