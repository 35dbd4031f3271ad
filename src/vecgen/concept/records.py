"""Typed records of a concept-token run; they stay objects until the writer turns them into JSON.

One :class:`ConceptRecord` per model, prompt and N: the prompt, the first N concept tokens described
(:class:`ConceptVector`) and their translations (:class:`~vecgen.decoding.translate.Translation`).
``records.jsonl`` and ``results.json`` hold ``dataclasses.asdict`` of these (field names are the JSON keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decoding.metrics import TokenWeight, VectorMetrics
from ..decoding.translate import Translation


@dataclass
class ConceptVector:
    """One concept token: the step's token and the vector's metrics.

    Attributes:
        index: 1-based position among the prompt's concept tokens.
        token, token_id: the step's discrete token (the mixture's top-1; for ``hidden``, the logits' top-1).
        distribution_entropy: nats, of the untruncated ``softmax(logits / T)`` at that step.
        top: the largest mixture weights, largest first (:class:`~vecgen.decoding.metrics.TokenWeight`).
        entropy: nats, of the mixture weights.
        nearest_cosine, nearest_l2: nearest real token by cosine (value = cosine) and by L2 (value = distance).
        manifold_distance: L2 distance to the nearest real token embedding;
            relative_manifold_distance: the same over the mean real-token embedding norm.
        norm, relative_norm: ``‖v‖`` and ``‖v‖`` over the mean real-token embedding norm.
    """

    index: int
    token: str
    token_id: int
    distribution_entropy: float
    top: list[TokenWeight]
    entropy: float
    nearest_cosine: TokenWeight
    nearest_l2: TokenWeight
    manifold_distance: float
    relative_manifold_distance: float
    norm: float
    relative_norm: float

    @classmethod
    def build(cls, index: int, token: str, token_id: int, distribution_entropy: float,
              metrics: VectorMetrics) -> "ConceptVector":
        return cls(index=index, token=token, token_id=token_id, distribution_entropy=distribution_entropy,
                   top=metrics.top, entropy=metrics.entropy, nearest_cosine=metrics.nearest_cosine,
                   nearest_l2=metrics.nearest_l2, manifold_distance=metrics.manifold_distance,
                   relative_manifold_distance=metrics.relative_manifold_distance, norm=metrics.norm,
                   relative_norm=metrics.relative_norm)


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
