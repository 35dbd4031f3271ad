"""Typed records of a concept-token run; they stay objects until the writer turns them into JSON.

One :class:`ConceptRecord` per model, prompt and N: the prompt, the first N concept tokens described
(:class:`ConceptVector`) and their translations (:class:`~vecgen.decoding.translate.Translation`).
``records.jsonl`` and ``results.json`` hold ``dataclasses.asdict`` of these (field names are the JSON keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decoding.metrics import VectorMetrics
from ..decoding.translate import Translation


@dataclass(kw_only=True)
class ConceptVector(VectorMetrics):
    """One concept token: the vector's metrics (:class:`~vecgen.decoding.metrics.VectorMetrics`: top weights,
    entropy of the weights, nearest tokens, off-manifold distance, norm) and the step it came from.

    Attributes:
        index: 1-based position among the prompt's concept tokens.
        token, token_id: the step's discrete token (the mixture's top-1; for ``hidden``, the logits' top-1).
        distribution_entropy: nats, of the untruncated ``softmax(logits / T)`` at that step.
    """

    index: int
    token: str
    token_id: int
    distribution_entropy: float

    @classmethod
    def build(cls, index: int, token: str, token_id: int, distribution_entropy: float,
              metrics: VectorMetrics) -> "ConceptVector":
        return cls(**vars(metrics), index=index, token=token, token_id=token_id,
                   distribution_entropy=distribution_entropy)


@dataclass
class ConceptRecord:
    """One model, prompt and N.

    Attributes:
        model: the model's name. prompt_index: 0-based. prompt: the text. prompt_ids: its token ids.
        n: the number of concept tokens translated.
        vectors: the first ``n`` concept tokens.
        translations: method name → :class:`~vecgen.decoding.translate.Translation`, in the run's order.
        seconds: wall time of the prompt's concept tokens (``concept``) and translations (``translate``).
    """

    model: str
    prompt_index: int
    prompt: str
    prompt_ids: list[int]
    n: int
    vectors: list[ConceptVector]
    translations: dict[str, Translation]
    seconds: dict[str, float] = field(default_factory=dict)


__all__ = ["ConceptRecord", "ConceptVector"]
