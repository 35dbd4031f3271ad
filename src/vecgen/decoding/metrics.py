"""Per-vector metrics of concept tokens: what a vector is made of and where it lies.

For each input vector ``v`` (shape ``(d,)``) fed by the decode loop:

* **top tokens with weights** — the largest mixture weights (from the :class:`~vecgen.decoding.StepRecord`);
* **entropy of the weights**, in nats (``H(w) = −Σ wᵢ log wᵢ``);
* **nearest real token by cosine** — ``argmaxᵢ ⟨v, E[i]⟩ / (‖v‖·‖E[i]‖)`` over real tokens only;
* **nearest real token by L2** — ``argminᵢ ‖v − E[i]‖``;
* **distance from the embedding manifold** — the L2 distance to the nearest real token embedding
  (0 for any real token's embedding), also divided by the mean real-token embedding norm
  ``mean_i ‖E[i]‖`` so models of different scale compare;
* **vector norm** ``‖v‖``.

Only rows ``< n_real_vocab`` count as tokens: padding rows of the embedding matrix (Qwen: 151,936 rows
for 151,665 real tokens) are excluded from every search and statistic. Searches run over the
vocabulary in chunks of ``chunk_rows`` rows, so extra memory stays ``O(chunk_rows · M)`` for ``M``
query vectors instead of ``O(V · M)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..models import LoadedModel
from .sampling import entropy

#: Rows of the embedding matrix processed at once by the nearest-token searches.
DEFAULT_CHUNK_ROWS = 16384


class EmbeddingIndex:
    """Nearest-token search over the real rows of an embedding matrix.

    Args:
        embedding: ``E`` ``(V_rows, d)``, any float dtype (searches run in float32 chunk by chunk).
        n_real: rows ``< n_real`` are real tokens; the rest (padding) are never returned.
        chunk_rows: rows per chunk.

    Attributes:
        row_norms: ``(n_real,)`` float32 ``‖E[i]‖``.
        mean_norm: mean real-token embedding norm (float).
    """

    def __init__(self, embedding: torch.Tensor, n_real: int, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        if n_real < 1 or n_real > embedding.shape[0]:
            raise ValueError(f"n_real={n_real} outside [1, {embedding.shape[0]}]")
        self.embedding = embedding
        self.n_real = int(n_real)
        self.chunk_rows = int(chunk_rows)
        norms = []
        with torch.no_grad():
            for start in range(0, self.n_real, self.chunk_rows):
                rows = embedding[start : min(start + self.chunk_rows, self.n_real)].float()  # (c, d)
                norms.append(torch.linalg.vector_norm(rows, dim=-1))  # (c,)
        self.row_norms = torch.cat(norms)  # (n_real,)
        self.mean_norm = float(self.row_norms.mean())

    @torch.no_grad()
    def nearest(self, vectors: torch.Tensor, k: int = 1, metric: str = "cosine") -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` nearest real tokens of each vector.

        Args:
            vectors: ``(M, d)`` (or ``(d,)``) query vectors.
            k: neighbours per vector (``1 ≤ k ≤ n_real``).
            metric: ``"cosine"`` (largest cosine similarity first) or ``"l2"`` (smallest Euclidean
                distance first; distances are recomputed directly as ``‖v − E[i]‖`` for the returned
                rows, so a real token's own embedding gives exactly 0).

        Returns:
            ``(ids, scores)``, each ``(M, k)``: long token ids and float32 cosine similarities or L2
            distances, best first.

        Raises:
            ValueError: unknown metric. ConfigError (a ValueError): ``k`` out of range.
        """
        if metric not in ("cosine", "l2"):
            raise ValueError(f"unknown metric {metric!r}; use 'cosine' or 'l2'")
        if not 1 <= k <= self.n_real:
            raise ConfigError(f"k={k}: allowed range is [1, {self.n_real}] (the model's real vocabulary)", param="k")
        single = vectors.dim() == 1
        q = (vectors[None] if single else vectors).to(self.embedding.device).float()  # (M, d)
        q_norm = torch.linalg.vector_norm(q, dim=-1)  # (M,)
        best_s: torch.Tensor | None = None
        best_i = torch.zeros(0, dtype=torch.long)
        for start in range(0, self.n_real, self.chunk_rows):
            stop = min(start + self.chunk_rows, self.n_real)
            rows = self.embedding[start:stop].float()  # (c, d)
            dots = q @ rows.T  # (M, c)
            norms = self.row_norms[start:stop]  # (c,)
            if metric == "cosine":
                score = dots / (q_norm[:, None] * norms[None]).clamp_min(1e-12)  # (M, c), higher = nearer
            else:
                score = -(q_norm[:, None] ** 2 - 2 * dots + norms[None] ** 2)  # (M, c) = −‖v − e‖²
            kk = min(k, stop - start)
            s, i = torch.topk(score, kk, dim=-1)  # (M, kk)
            i = i + start
            if best_s is None:
                best_s, best_i = s, i
            else:
                both_s = torch.cat([best_s, s], -1)
                both_i = torch.cat([best_i, i], -1)
                best_s, pos = torch.topk(both_s, min(k, both_s.shape[-1]), dim=-1)
                best_i = torch.gather(both_i, -1, pos)
        assert best_s is not None  # n_real >= 1: at least one chunk
        if metric == "l2":  # exact distances for the winners (the expansion above loses precision near 0)
            diff = q[:, None] - self.embedding[best_i].float()  # (M, k, d)
            dist = torch.linalg.vector_norm(diff, dim=-1)  # (M, k)
            dist, order = torch.sort(dist, dim=-1)
            best_i, best_s = torch.gather(best_i, -1, order), dist
        best_i, best_s = best_i.cpu(), best_s.cpu()
        return (best_i[0], best_s[0]) if single else (best_i, best_s)


_INDEX_CACHE: dict[tuple, EmbeddingIndex] = {}


def embedding_index(lm: LoadedModel) -> EmbeddingIndex:
    """The (cached) :class:`EmbeddingIndex` of a :class:`~vecgen.models.LoadedModel`'s input embedding.

    The cache key is the tensor's storage, shape and version counter, so in-place updates rebuild it.
    """
    E = lm.embedding
    key = (E.data_ptr(), tuple(E.shape), E.dtype, E._version, int(lm.n_real_vocab))
    index = _INDEX_CACHE.get(key)
    if index is None:
        if len(_INDEX_CACHE) >= 4:
            _INDEX_CACHE.clear()
        index = _INDEX_CACHE[key] = EmbeddingIndex(E, lm.n_real_vocab)
    return index


@dataclass
class TokenWeight:
    """One token of a vector's description: id, decoded text and a weight / similarity / distance."""

    id: int
    token: str
    value: float


@dataclass
class VectorMetrics:
    """Metrics of one concept vector.

    Attributes:
        top: the largest mixture weights (token, weight), largest first.
        entropy: entropy of the mixture weights in nats (over all weights, not only ``top``).
        nearest_cosine: nearest real token by cosine similarity (value = cosine).
        nearest_l2: nearest real token by Euclidean distance (value = distance).
        manifold_distance: L2 distance to the nearest real token embedding (same as ``nearest_l2.value``).
        relative_manifold_distance: ``manifold_distance / mean real-token embedding norm``.
        norm: ``‖v‖``.
        relative_norm: ``‖v‖ / mean real-token embedding norm``.
    """

    top: list[TokenWeight]
    entropy: float
    nearest_cosine: TokenWeight
    nearest_l2: TokenWeight
    manifold_distance: float
    relative_manifold_distance: float
    norm: float
    relative_norm: float


def token_text(tokenizer: Any, token_id: int) -> str:
    """Decoded text of one token (special tokens shown as themselves, e.g. ``<|im_end|>``)."""
    return tokenizer.decode([int(token_id)], skip_special_tokens=False)


def vector_metrics(
    lm: LoadedModel,
    vectors: torch.Tensor,
    *,
    mix_ids: torch.Tensor | None = None,
    mix_weights: torch.Tensor | None = None,
    entropies: torch.Tensor | None = None,
    top_k: int = 5,
) -> list[VectorMetrics]:
    """Metrics of ``M`` vectors.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (embedding, ``n_real_vocab``, tokenizer).
        vectors: ``(M, d)`` the fed vectors.
        mix_ids, mix_weights: ``(M, K)`` the largest mixture weights and their ids (from the step
            records), largest first; when omitted, ``top`` is empty.
        entropies: ``(M,)`` entropy of the full mixture weights in nats (``StepRecord.mix_entropy``);
            when omitted it is computed from ``mix_weights`` (exact only if they hold every weight).
        top_k: how many of the mixture weights to keep in ``top``.

    Returns:
        One :class:`VectorMetrics` per vector.

    Raises:
        ValueError: ``vectors`` is not 2-D, or shapes of the weights do not match.
    """
    if vectors.dim() != 2:
        raise ValueError(f"vectors must be (M, d), got shape {tuple(vectors.shape)}")
    M = vectors.shape[0]
    if mix_ids is not None and (mix_weights is None or mix_ids.shape != mix_weights.shape or mix_ids.shape[0] != M):
        raise ValueError("mix_ids and mix_weights must both be (M, K)")
    index = embedding_index(lm)
    tok = lm.tokenizer
    cos_i, cos_s = index.nearest(vectors, 1, "cosine")  # (M, 1)
    l2_i, l2_d = index.nearest(vectors, 1, "l2")  # (M, 1)
    norms = torch.linalg.vector_norm(vectors.float(), dim=-1).cpu()  # (M,)
    if entropies is None and mix_weights is not None:
        w = mix_weights.float().clamp_min(0)
        entropies = entropy(w / w.sum(-1, keepdim=True))
    out = []
    for m in range(M):
        top: list[TokenWeight] = []
        if mix_ids is not None and mix_weights is not None:
            for i, w in zip(mix_ids[m, :top_k].tolist(), mix_weights[m, :top_k].tolist()):
                if w > 0:
                    top.append(TokenWeight(int(i), token_text(tok, i), float(w)))
        dist = float(l2_d[m, 0])
        out.append(
            VectorMetrics(
                top=top,
                entropy=float(entropies[m]) if entropies is not None else math.nan,
                nearest_cosine=TokenWeight(int(cos_i[m, 0]), token_text(tok, int(cos_i[m, 0])), float(cos_s[m, 0])),
                nearest_l2=TokenWeight(int(l2_i[m, 0]), token_text(tok, int(l2_i[m, 0])), dist),
                manifold_distance=dist,
                relative_manifold_distance=dist / index.mean_norm,
                norm=float(norms[m]),
                relative_norm=float(norms[m]) / index.mean_norm,
            )
        )
    return out


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "EmbeddingIndex",
    "TokenWeight",
    "VectorMetrics",
    "embedding_index",
    "token_text",
    "vector_metrics",
]
