"""Backends: what runs the model under vecgen's decode engine.

:mod:`vecgen.backends.contract` writes down what the engine needs (:class:`Backend`); every backend
implements it and passes the contract test suite (``tests/contract``).

* :class:`~vecgen.backends.transformers.TransformersBackend` — transformers models (``DynamicCache``)
  and vecgen's reference model (its own :class:`~vecgen.reference.model.KVCache`).
* :class:`~vecgen.backends.llamacpp.LlamaCppBackend` — a GGUF file run by llama.cpp (optional extra
  ``vecgen[llamacpp]``; import :mod:`vecgen.backends.llamacpp`, or ``load_model(..., backend="llamacpp")``).
"""

from .contract import (
    Backend,
    Batch,
    ContractError,
    DecodeState,
    Prompt,
    Segment,
    build_batch,
)
from .transformers import HFCache, TransformersBackend, accepts_logits_to_keep

__all__ = [
    "Backend",
    "Batch",
    "ContractError",
    "DecodeState",
    "HFCache",
    "Prompt",
    "Segment",
    "TransformersBackend",
    "accepts_logits_to_keep",
    "build_batch",
]
