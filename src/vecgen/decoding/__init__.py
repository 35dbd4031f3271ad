"""Embedding-level decoding: the sampler, mixing rules and the decode loop."""

from .loop import (
    Batch,
    DecodeState,
    GenerationResult,
    StepRecord,
    build_batch,
    extend,
    generate,
    prefill,
)
from .mixing import MIXING_RULES, MixingConfig, Mixture, Noise, get_rule, mix_embeddings, register_mixing_rule
from .sampling import entropy, logits_to_probs, make_generator, mask_logits, sample, truncate, vocab_mask

__all__ = [
    "MIXING_RULES",
    "Batch",
    "DecodeState",
    "GenerationResult",
    "MixingConfig",
    "Mixture",
    "Noise",
    "StepRecord",
    "build_batch",
    "entropy",
    "extend",
    "generate",
    "get_rule",
    "logits_to_probs",
    "make_generator",
    "mask_logits",
    "mix_embeddings",
    "prefill",
    "register_mixing_rule",
    "sample",
    "truncate",
    "vocab_mask",
]
