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

from ..backends.contract import Prompt, segments
from ..decoding.metrics import EmbeddingIndex, token_text
from ..errors import ConfigError
from ..io import read_user_text
from ..models import LoadedModel
from .common import kl, next_logprobs


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
    hits_q: list[Quadruple] = []
    ids: list[list[int]] = []
    skipped: list[Quadruple] = []
    for q in quadruples:
        found = [word_token(tokenizer, w) for w in (q.a, q.b, q.c, q.d)]
        t = [x for x in found if x is not None]
        if len(t) < 4:
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
        hits.append(AnalogyHit(q, (int(t[0]), int(t[1]), int(t[2]), int(t[3])), ti, cs, rank))
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


#: Frames of the concept-token test, per shipped relation: ``(before, after)`` around the fed vector, chosen so that
#: what follows the word names its partner (``Fact: ⟨Berlin⟩ is the capital of`` → `` Germany``).
FRAMES: dict[str, tuple[str, str]] = {
    "capital": ("Fact:", " is the capital of"),
    "gender": ("Fact:", " is the female counterpart of"),
    "plural": ("Fact: the word", " is the plural of the word"),
    "tense": ("Fact: the word", " is the past tense of the word"),
    "comparative": ("Fact: the word", " is the comparative of the word"),
}


@dataclass
class FrameHit:
    """The concept-token test of one quadruple: ``v = e(b) − e(a) + e(c)`` fed in its relation's frame.

    Attributes:
        quadruple: the question. frame: ``(before, after)`` text around the word.
        target_next: the most likely next token after the frame with the discrete ``d`` (id; its text in
            target_text). v_top: the most likely next tokens after the frame with ``v`` (ids, best first).
        top1: ``v_top[0] == target_next``; top5: ``target_next`` in ``v_top``.
        control_top1: the frame with the discrete ``c`` (the word the arithmetic started from) already gives
            ``target_next`` as its most likely next token (a frame that does not tell ``c`` from ``d``).
        kl_d, kl_c: ``KL(p_v ‖ p_d)`` and ``KL(p_v ‖ p_c)`` of the next-token distributions, nats.
        closer_to_d: ``kl_d < kl_c``: the model continues the vector more as it does ``d`` than as ``c``.
    """

    quadruple: Quadruple
    frame: tuple[str, str]
    target_next: int
    target_text: str
    v_top: list[int]
    v_top_texts: list[str]
    top1: bool
    top5: bool
    control_top1: bool
    kl_d: float
    kl_c: float
    closer_to_d: bool


def frame_test(lm: LoadedModel, hits: Sequence[AnalogyHit], *, k: int = 5, frames: dict[str, tuple[str, str]] | None = None,
               batch_size: int = 32) -> tuple[list[FrameHit], list[str]]:
    """Feed ``e(b) − e(a) + e(c)`` (the model's own input rows, embedding scale included) as a concept token in
    its relation's frame and compare the next token with the frame's after the discrete ``d`` (and ``c``).

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (any backend). hits: quadruples with their token ids (from
            :func:`solve_analogies`). k: top-k of the test. frames: per relation (default :data:`FRAMES`).

    Returns:
        ``(frame_hits, relations_without_frame)``.
    """
    frames = FRAMES if frames is None else frames
    todo = [h for h in hits if h.quadruple.relation in frames]
    missing = sorted({h.quadruple.relation for h in hits} - set(frames))
    be = lm.backend
    prefixes, vectors, afters = [], [], []
    for h in todo:
        before, after = frames[h.quadruple.relation]
        rows = be.input_rows(torch.tensor(h.ids, dtype=torch.long, device=be.device)).float()  # (4, d): a, b, c, d
        v = rows[1] - rows[0] + rows[2]  # (d,)
        prefixes.append(lm.encode(before))
        vectors.append(torch.stack([v, rows[3], rows[2]]))  # (3, d): v, d, c
        afters.append(lm.encode(after))
    out = []
    if todo:
        # the vector sits inside the frame: prefill "before", then feed the word and the frame's rest as vectors
        seqs: list[Prompt] = []
        for pre, vecs, aft in zip(prefixes, vectors, afters):
            tail = be.input_rows(torch.tensor(aft, dtype=torch.long, device=be.device))  # (t, d)
            seqs += [segments(pre, torch.cat([w[None].to(be.dtype), tail])) for w in vecs]
        logp = next_logprobs(lm, seqs, batch_size=batch_size)  # (3·M, V)
        for i, h in enumerate(todo):
            lv, ld, lc = logp[3 * i], logp[3 * i + 1], logp[3 * i + 2]
            target = int(ld.argmax())
            top = lv.topk(k).indices.tolist()
            out.append(FrameHit(h.quadruple, frames[h.quadruple.relation], target, token_text(lm.tokenizer, target),
                                top, [token_text(lm.tokenizer, t) for t in top], top[0] == target, target in top,
                                int(lc.argmax()) == target, float(kl(lv, ld)), float(kl(lv, lc)),
                                bool(kl(lv, ld) < kl(lv, lc))))
    return out, missing


def frame_accuracy(hits: Sequence[FrameHit]) -> dict[str, dict[str, float | int]]:
    """Per relation (and ``"all"``): ``n``, ``top1``, ``top5``, ``control_top1`` and ``closer_to_d`` shares."""
    groups: dict[str, list[FrameHit]] = {}
    for h in hits:
        groups.setdefault(h.quadruple.relation, []).append(h)
    groups["all"] = list(hits)
    return {rel: {"n": len(hs), "top1": sum(h.top1 for h in hs) / len(hs) if hs else 0.0,
                  "top5": sum(h.top5 for h in hs) / len(hs) if hs else 0.0,
                  "control_top1": sum(h.control_top1 for h in hs) / len(hs) if hs else 0.0,
                  "closer_to_d": sum(h.closer_to_d for h in hs) / len(hs) if hs else 0.0}
            for rel, hs in groups.items()}


def output_space(lm: LoadedModel) -> torch.Tensor | None:
    """The LM head's ``(V_rows, d)`` unembedding matrix, or None when the backend does not expose it (llama.cpp)."""
    model = getattr(lm, "model", None)
    if model is None or not hasattr(model, "get_output_embeddings"):
        return None
    head = model.get_output_embeddings()
    return None if head is None else head.weight.detach()


__all__ = ["FRAMES", "AnalogyHit", "FrameHit", "Quadruple", "accuracy_by_relation", "frame_accuracy", "frame_test",
           "output_space", "load_pairs", "make_quadruples", "nearest_excluding",
           "solve_analogies", "word_token"]
