"""Concept tokens of a prompt as one object: the vectors, their top weights and entropies, metrics, translations.

:func:`concept_tokens` runs the decode engine for ``n`` steps under a mixing rule (default ``soft``: Soft
Thinking's top-``max_topk`` mixture of ``softmax(logits / T)``, Zhang et al. 2025, ``eric-ai-lab/Soft-Thinking``)
and keeps every fed vector; ``vecgen concept`` and :meth:`vecgen.Model.concept` both call it. A
:class:`ConceptTokens` shows itself in Jupyter as the run viewer's chips (entropy colour, weights on hover).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from ..config import SamplingConfig
from ..decoding.engine import RowRecord
from ..decoding.loop import generate
from ..decoding.metrics import VectorMetrics, token_text, vector_metrics
from ..decoding.mixing import MixingConfig
from ..decoding.translate import Translation, translate
from ..errors import ConfigError
from ..models import LoadedModel
from ..reports.chips import chip, chips_block, weights_title


class TokenWeight(NamedTuple):
    """One entry of a concept token's mixture: the token as text and its weight (0–1)."""

    token: str
    weight: float


@dataclass
class ConceptTokens:
    """``n`` concept tokens generated after one prompt.

    Attributes:
        prompt: the prompt text (plain completion, no chat template). prompt_ids: its token ids.
        vectors: ``(n, d)`` float32 on the CPU: the vectors fed back (``Σ pᵢ·E[i]`` for the ``soft`` rule).
        top: per vector, its largest mixture weights, largest first (up to ``record_top_k``; weights > 0):
            ``top[0][0]`` is ``(' Paris', 0.96)`` for "The capital of France is".
        top_ids: the same entries' token ids.
        entropy: per vector, the entropy of its full mixture weights, nats.
        distribution_entropy: per vector, the entropy of the untruncated ``softmax(logits / T)``, nats.
        tokens, token_ids: per vector, the step's discrete token (the mixture's top-1; ``hidden``: the logits' top-1).
        mixing, sampling: the rule and the distribution the vectors came from.
        model: the model that made them (metrics and translations use it).
    """

    prompt: str
    prompt_ids: list[int]
    vectors: torch.Tensor
    top: list[list[TokenWeight]]
    top_ids: list[list[int]]
    entropy: list[float]
    distribution_entropy: list[float]
    tokens: list[str]
    token_ids: list[int]
    mixing: MixingConfig
    sampling: SamplingConfig
    model: LoadedModel = field(repr=False)
    record: RowRecord | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """How many concept tokens."""
        return int(self.vectors.shape[0])

    def metrics(self, top_k: int = 10) -> list[VectorMetrics]:
        """Per vector: top weights, entropy (nats), nearest real token by cosine and by L2, distance from the
        embedding manifold (absolute and relative to the mean token norm), norm
        (:func:`~vecgen.decoding.metrics.vector_metrics`)."""
        ids, weights = self._mixture_tensors()
        return vector_metrics(self.model, self.vectors, mix_ids=ids, mix_weights=weights,
                              entropies=torch.tensor(self.entropy), top_k=top_k)

    def _mixture_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        k = max((len(t) for t in self.top_ids), default=0)
        ids = torch.zeros(self.n, max(k, 1), dtype=torch.long)
        weights = torch.zeros(self.n, max(k, 1))
        for i, (tid, tw) in enumerate(zip(self.top_ids, self.top)):
            ids[i, : len(tid)] = torch.tensor(tid, dtype=torch.long)
            weights[i, : len(tw)] = torch.tensor([w.weight for w in tw])
        return ids, weights

    def translate(self, methods: str | Sequence[str] = "completion", *, n: int | None = None,
                  max_new_tokens: int = 16) -> Translation | dict[str, Translation]:
        """Translate the first ``n`` vectors (default all) back into text, greedily
        (:func:`~vecgen.decoding.translate.translate`).

        Args:
            methods: one method name (returns its :class:`~vecgen.decoding.translate.Translation`) or several
                (returns ``{method: Translation}``): ``nearest``, ``direct``, ``completion``, ``fewshot``,
                ``instruction``.
            n: how many of the vectors (1 … :attr:`n`). max_new_tokens: tokens generated per translation.

        Raises:
            ConfigError: an unknown method or ``n`` out of range. NoChatTemplateError: ``instruction`` without one.
        """
        count = self.n if n is None else int(n)
        if not 1 <= count <= self.n:
            raise ConfigError(f"n={n}: translate 1 to {self.n} of these concept tokens", param="n")
        names = [methods] if isinstance(methods, str) else list(methods)
        out = translate(self.model, [self.vectors[:count]], names, max_new_tokens=max_new_tokens)[0]
        return out[names[0]] if isinstance(methods, str) else out

    def _repr_html_(self) -> str:
        chips = [chip(t.token if t else tok, h, weights_title([(w.token, w.weight) for w in tw], h))
                 for tok, tw, h, t in zip(self.tokens, self.top, self.entropy, [tw[0] if tw else None for tw in self.top])]
        return chips_block([chip(self.prompt, None, "the prompt", forced=True), *chips],
                           caption=f"{self.n} concept tokens ({self.mixing.rule} rule); colour: entropy of the "
                                   "weights, hover: the largest weights")

    def __repr__(self) -> str:
        shown = ", ".join(f"{t[0].token!r} {t[0].weight:.2f}" if t else "?" for t in self.top)
        return f"ConceptTokens(prompt={self.prompt!r}, n={self.n}, top-1: {shown})"


def concept_tokens(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    n: int,
    sampling: SamplingConfig,
    mixing: MixingConfig,
    allowed: torch.Tensor | None = None,
    record_top_k: int = 10,
    on_step: Callable[[int, int], None] | None = None,
) -> list[ConceptTokens]:
    """``n`` concept tokens after each prompt, one prompt at a time (each seeded with ``sampling.seed``, so a prompt's
    vectors do not depend on the others; the first ``k`` of an ``n``-step run are those of a ``k``-step run).

    Args:
        lm: the model. prompts: texts (plain completion).
        n: concept tokens per prompt (>= 1). sampling: the distribution (temperature, top-k/p, min-p, seed).
        mixing: the rule (``soft``, ``full``, ``moi``, ``onehot``, ``hidden``) and its parameters.
        allowed: allowed-token mask ``(V_rows,)`` (e.g. English only), or None.
        record_top_k: mixture weights kept per vector. on_step: ``(step, live rows)`` before each step.

    Raises:
        ConfigError: ``n < 1``, an empty prompt or one that encodes to no tokens.
        NonFiniteError: NaN/inf in logits or vectors (the step is named; ``row`` = the prompt's index).
    """
    if n < 1:
        raise ConfigError(f"n={n}: the number of concept tokens must be >= 1", param="n")
    out = []
    for i, prompt in enumerate(prompts):
        ids = lm.encode(prompt)
        if not ids:
            raise ConfigError(f"prompt {i + 1} encodes to no tokens: {prompt!r}", param="prompt")
        gen = generate(lm, [ids], sampling=sampling, mixing=mixing, max_new_tokens=n, stop_ids=[], allowed=allowed,
                       keep_vectors=True, record_top_k=record_top_k, on_step=on_step)
        row = gen.rows[0]
        top_ids, top = [], []
        for ids_k, w_k in zip(row.mix_ids.tolist(), row.mix_weights.tolist()):
            kept = [(t, w) for t, w in zip(ids_k, w_k) if w > 0]
            top_ids.append([t for t, _ in kept])
            top.append([TokenWeight(token_text(lm.tokenizer, t), float(w)) for t, w in kept])
        token_ids = [int(t) for t in row.tokens.tolist()]
        out.append(ConceptTokens(
            prompt=prompt, prompt_ids=list(ids), vectors=gen.vectors(0).float().cpu(), top=top, top_ids=top_ids,
            entropy=[float(h) for h in row.mix_entropy.tolist()],
            distribution_entropy=[float(h) for h in row.entropy.tolist()],
            tokens=[token_text(lm.tokenizer, t) for t in token_ids], token_ids=token_ids, mixing=mixing,
            sampling=sampling, model=lm, record=row))
    return out


__all__ = ["ConceptTokens", "TokenWeight", "concept_tokens"]
