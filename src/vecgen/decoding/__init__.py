"""Embedding-level decoding: the sampler, mixing rules, the decode engine and generation on it."""

from ..backends.contract import Backend, Batch, ContractError, DecodeState, build_batch
from .engine import Action, EngineResult, Mode, Observation, RowPolicy, RowRecord, run
from .loop import GeneratePolicy, GenerationResult, StepRecord, generate
from .mixing import (
    MIXING_RULES,
    HiddenScale,
    MixingConfig,
    Mixture,
    Noise,
    get_rule,
    mix_embeddings,
    register_mixing_rule,
)
from .sampling import (
    entropy,
    logits_to_probs,
    RowGenerators,
    make_generator,
    mask_logits,
    per_generator,
    sample,
    truncate,
    vocab_mask,
)

__all__ = [
    "MIXING_RULES",
    "RowGenerators",
    "per_generator",
    "Action",
    "Backend",
    "Batch",
    "ContractError",
    "DecodeState",
    "EngineResult",
    "GeneratePolicy",
    "GenerationResult",
    "HiddenScale",
    "MixingConfig",
    "Mixture",
    "Mode",
    "Noise",
    "Observation",
    "RowPolicy",
    "RowRecord",
    "StepRecord",
    "build_batch",
    "entropy",
    "generate",
    "get_rule",
    "logits_to_probs",
    "make_generator",
    "mask_logits",
    "mix_embeddings",
    "register_mixing_rule",
    "run",
    "sample",
    "truncate",
    "vocab_mask",
]
