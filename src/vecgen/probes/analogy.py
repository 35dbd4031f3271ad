"""Vector arithmetic on token embeddings: does ``E[b] − E[a] + E[c]`` land on ``d`` (``a : b :: c : d``)?

The classic word-vector test (Mikolov et al. 2013, "Linguistic Regularities in Continuous Space Word
Representations": ``king − man + woman ≈ queen``) asked of a language model's own token spaces: the input
embedding ``E`` and the output (unembedding) matrix ``W`` of the LM head (the same matrix for tied models such
as Qwen2.5-0.5B). As in that work, ``a``, ``b`` and ``c`` themselves are excluded from the answers, and
similarity is cosine.

Word pairs ship in ``vecgen/data/probes/analogy_pairs.tsv`` (written for vecgen, facts only: capital–country,
gender, plural, tense, comparative); quadruples are formed within a relation from consecutive pairs,
cyclically. A word is looked up as one token with a leading space (``" Paris"``); quadruples with a word that
is not a single token in the model's tokenizer are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..decoding.metrics import EmbeddingIndex
from ..errors import ConfigError
from ..io import read_user_text


@dataclass(frozen=True)
class Quadruple:
    """``a : b :: c : d`` within one relation (``b = relation(a)``, ``d = relation(c)``)."""

    relation: str
    a: str
    b: str
    c: str
    d: str


@dataclass
class AnalogyHit:
    """The answers for one quadruple in one space.

    Attributes:
        quadruple: the question. ids: ``(a, b, c, d)`` token ids.
        top_ids: the ``k`` nearest tokens of ``E[b] − E[a] + E[c]`` by cosine, ``a``/``b``/``c`` excluded, best first.
        top_scores: their cosine similarities.
        rank: 1-based rank of ``d`` among them (None when ``d`` is not in the top ``k``).
    """

    quadruple: Quadruple
    ids: tuple[int, int, int, int]
    top_ids: list[int]
    top_scores: list[float]
    rank: int | None


def load_pairs(path: str | Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """Word pairs by relation from a TSV file (``relation<TAB>x<TAB>y`` per line, ``#`` comments; default: the
    shipped list).

    Raises:
        ConfigError: a line without exactly three non-empty fields (its number named), or no pairs.
    """
    if path is None:
        text = resources.files("vecgen").joinpath("data", "probes", "analogy_pairs.tsv").read_text(encoding="utf-8")
        where = "the shipped analogy pairs"
    else:
        text = read_user_text(path, what="analogy pairs file")
        where = str(path)
    pairs: dict[str, list[tuple[str, str]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not all(fields):
            raise ConfigError(f"{where}, line {n}: expected relation<TAB>word<TAB>word, got {line!r}")
        pairs.setdefault(fields[0], []).append((fields[1], fields[2]))
    if not pairs:
        raise ConfigError(f"{where} holds no pairs")
    return pairs


def make_quadruples(pairs: dict[str, list[tuple[str, str]]]) -> list[Quadruple]:
    """Consecutive pairs of each relation, cyclically: ``x_i : y_i :: x_{i+1} : y_{i+1}`` (a relation with
    ``n ≥ 2`` pairs gives ``n`` quadruples; one with a single pair gives none)."""
    out = []
    for rel, ps in pairs.items():
        if len(ps) < 2:
            continue
        for i, (a, b) in enumerate(ps):
            c, d = ps[(i + 1) % len(ps)]
            out.append(Quadruple(rel, a, b, c, d))
    return out


def word_token(tokenizer: Any, word: str) -> int | None:
    """The id of ``" " + word`` when it is one token, else None."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 else None


def nearest_excluding(index: EmbeddingIndex, vectors: torch.Tensor, exclude: torch.Tensor,
                      k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest tokens by cosine of each vector, leaving out its own ``exclude`` ids.

    Args:
        index: the space (:class:`~vecgen.decoding.metrics.EmbeddingIndex` over its real rows).
        vectors: ``(M, d)`` queries. exclude: ``(M, X)`` long ids never returned for that row.
        k: answers per row.

    Returns:
        ``(ids, cosines)``, each ``(M, k)``, best first.
    """
    ids, scores = index.nearest(vectors, k + exclude.shape[1], "cosine")  # (M, k + X)
    keep = ~(ids[:, :, None] == exclude[:, None, :].to(ids.device)).any(-1)  # (M, k + X)
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[:, :k]  # kept first, in score order
    return torch.gather(ids, -1, order), torch.gather(scores, -1, order)


def solve_analogies(space: torch.Tensor, n_real: int, tokenizer: Any, quadruples: Iterable[Quadruple],
                    k: int = 5) -> tuple[list[AnalogyHit], list[Quadruple]]:
    """Answer every quadruple in one token space.

    Args:
        space: ``(V_rows, d)`` token vectors (input embedding or unembedding), any float dtype.
        n_real: rows ``< n_real`` are real tokens (padding rows are never answers).
        tokenizer: finds each word's token (``" " + word``, one token).
        quadruples: the questions. k: answers kept per question (top-1 and top-``k`` accuracy).

    Returns:
        ``(hits, skipped)``: one :class:`AnalogyHit` per quadruple whose four words are single tokens, and the
        quadruples skipped because one is not.
    """
    hits_q, ids, skipped = [], [], []
    for q in quadruples:
        t = [word_token(tokenizer, w) for w in (q.a, q.b, q.c, q.d)]
        if any(x is None for x in t):
            skipped.append(q)
            continue
        hits_q.append(q)
        ids.append(t)
    if not ids:
        return [], skipped
    index = EmbeddingIndex(space, n_real)
    tid = torch.tensor(ids, dtype=torch.long)  # (M, 4): a, b, c, d
    rows = space[tid.to(space.device)].float()  # (M, 4, d)
    v = rows[:, 1] - rows[:, 0] + rows[:, 2]  # (M, d): E[b] − E[a] + E[c]
    top, cos = nearest_excluding(index, v, tid[:, :3], k)
    hits = []
    for q, t, ti, cs in zip(hits_q, ids, top.tolist(), cos.tolist()):
        rank = ti.index(t[3]) + 1 if t[3] in ti else None
        hits.append(AnalogyHit(q, tuple(t), ti, cs, rank))
    return hits, skipped


def accuracy_by_relation(hits: Sequence[AnalogyHit], k: int) -> dict[str, dict[str, float | int]]:
    """Per relation (and ``"all"``): ``n``, top-1 and top-``k`` accuracy (shares of quadruples)."""
    groups: dict[str, list[AnalogyHit]] = {}
    for h in hits:
        groups.setdefault(h.quadruple.relation, []).append(h)
    groups["all"] = list(hits)
    out = {}
    for rel, hs in groups.items():
        n = len(hs)
        out[rel] = {"n": n, "top1": sum(h.rank == 1 for h in hs) / n if n else 0.0,
                    f"top{k}": sum(h.rank is not None for h in hs) / n if n else 0.0}
    return out


__all__ = ["AnalogyHit", "Quadruple", "accuracy_by_relation", "load_pairs", "make_quadruples", "nearest_excluding",
           "solve_analogies", "word_token"]
