"""A from-scratch Qwen2/Qwen2.5/Qwen3 forward pass with taps, its weight mapping, and the comparison
against transformers (``vecgen verify``).

Importing this package registers the ``reference`` backend with the loader
(:func:`~vecgen.models.register_model_swap`): ``load_model(spec, backend="reference")`` loads the transformers
model and runs :func:`from_transformers`' module on the same weights.
"""

from ..models import register_model_swap
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

register_model_swap("reference", from_transformers)

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
