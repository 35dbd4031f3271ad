"""The engine's per-row records: every sampled step of a row (:class:`RowRecord`), what :func:`~vecgen.decoding.run`
returns (:class:`EngineResult`), and the log that keeps the steps on the device during the loop (:class:`StepLog`:
one copy to the CPU at the end, or per row as rows end when a server hands each record over)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..backends.contract import DecodeState
from .mixing import Mixture


@dataclass
class RowRecord:
    """Every sampled step of one row, on the CPU (``n`` = sampled steps, ``K`` = ``record_top_k``).

    Attributes:
        phases: ``n`` phase names (:attr:`Mode.phase`).
        tokens: ``(n,)`` long, the step's token.
        top_ids, top_probs: ``(n, K)`` the K most likely tokens under the sampler's distribution (for greedy
            steps, the untruncated ``softmax(logits)``, whose argmax the token is; ``K`` = 0 when not recorded).
        mix_ids, mix_weights: ``(n, K)`` the largest mixture weights (padded with id 0, weight 0).
        entropy: ``(n,)`` nats, of the untruncated distribution. mix_entropy: ``(n,)`` nats, of the mixture.
        fed: ``n`` actions taken (:class:`Action` values).
        vectors: ``(n, d)`` float32 vectors the steps produced (when ``keep_vectors``), else None.
        forced: token ids fed by force, in order.
    """

    phases: list[str]
    tokens: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    mix_ids: torch.Tensor
    mix_weights: torch.Tensor
    entropy: torch.Tensor
    mix_entropy: torch.Tensor
    fed: list[str]
    vectors: torch.Tensor | None = None
    forced: list[int] = field(default_factory=list)

    def select(self, phase: str) -> torch.Tensor:
        """``(m,)`` long indices of the steps of ``phase``."""
        return torch.tensor([i for i, p in enumerate(self.phases) if p == phase], dtype=torch.long)


@dataclass
class EngineResult:
    """What :func:`run` returns.

    Attributes:
        rows: one :class:`RowRecord` per prompt, in order.
        state: the backend state of the rows still in the batch when the loop ended (None if none):
            with policies that end by feeding (``Action.feed`` then ``None``), every row's state.
        state_rows: the prompt index of each row of ``state``.
        steps: engine steps run.
    """

    rows: list[RowRecord]
    state: DecodeState | None
    state_rows: list[int]
    steps: int


class StepLog:
    """Per-step records on the device; one copy to the CPU at the end."""

    _COLUMNS = ("tokens", "top_ids", "top_probs", "mix_ids", "mix_weights", "entropy", "mix_entropy", "vectors")

    def __init__(self, n_rows: int, top_k: int, keep_vectors: bool, per_row: bool = False):
        self.n_rows, self.top_k, self.keep_vectors, self.per_row = n_rows, top_k, keep_vectors, per_row
        self.rows: list[torch.Tensor] = []  # (g,) prompt indices per sampled group
        self.cols: dict[str, list[torch.Tensor]] = {k: [] for k in self._COLUMNS}
        # per_row (rows end while others run on: a server): each group is copied to the CPU when it is added and
        # kept per row, so a row's record is ready when it ends and nothing of it stays behind
        self.own: dict[int, dict[str, list[torch.Tensor]]] = {}
        self.phases: list[list[str]] = [[] for _ in range(n_rows)]
        self.fed: list[list[str]] = [[] for _ in range(n_rows)]
        self.forced: list[list[int]] = [[] for _ in range(n_rows)]

    def grow(self, n: int) -> None:
        """Room for ``n`` more rows (prompts admitted while the loop runs)."""
        self.n_rows += n
        for lists in (self.phases, self.fed, self.forced):
            lists.extend([] for _ in range(n))

    def add(self, rows: list[int], mixture: Mixture, ent: torch.Tensor, mix_ent: torch.Tensor,
            vec: torch.Tensor) -> None:
        k = self.top_k
        g = mixture.token.shape[0]
        c = self.cols
        self.rows.append(torch.tensor(rows, dtype=torch.long))
        c["tokens"].append(mixture.token)
        if k:
            # greedy: the untruncated softmax(logits) (the point mass would hide every alternative)
            dist = mixture.full_probs if mixture.probs is None else mixture.probs
            top_p, top_i = torch.topk(dist, min(k, dist.shape[-1]), dim=-1)  # (g, k)
            mix_i, mix_w = mixture.top(k)  # (g, ≤k)
            if mix_i.shape[-1] < k:  # pad: id 0, weight 0
                pad = k - mix_i.shape[-1]
                mix_i = torch.cat([mix_i, mix_i.new_zeros(g, pad)], dim=-1)
                mix_w = torch.cat([mix_w, mix_w.new_zeros(g, pad)], dim=-1)
            c["top_ids"].append(top_i)
            c["top_probs"].append(top_p)
            c["mix_ids"].append(mix_i)
            c["mix_weights"].append(mix_w.float())
        c["entropy"].append(ent)
        c["mix_entropy"].append(mix_ent)
        if self.keep_vectors:
            c["vectors"].append(vec.detach().float())
        if self.per_row:
            self.rows.pop()
            for name, parts in c.items():
                if parts:
                    for r, t in zip(rows, parts.pop().cpu()):
                        self.own.setdefault(r, {}).setdefault(name, []).append(t)

    def pop_row(self, i: int, d: int) -> RowRecord:
        """Row ``i``'s record (``per_row`` mode), forgetting it."""
        own = self.own.pop(i, {})
        n = len(own.get("tokens", []))
        k = self.top_k

        def part(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
            return torch.stack(own[name]) if name in own else torch.zeros(n, *shape, dtype=dtype)

        phases, fed, forced = self.phases[i], self.fed[i], self.forced[i]
        self.phases[i], self.fed[i], self.forced[i] = [], [], []
        return RowRecord(phases=phases, tokens=part("tokens", (), torch.long), top_ids=part("top_ids", (k,), torch.long),
                         top_probs=part("top_probs", (k,), torch.float32), mix_ids=part("mix_ids", (k,), torch.long),
                         mix_weights=part("mix_weights", (k,), torch.float32), entropy=part("entropy", (), torch.float32),
                         mix_entropy=part("mix_entropy", (), torch.float32), fed=fed,
                         vectors=part("vectors", (d,), torch.float32) if self.keep_vectors else None, forced=forced)

    def finish(self, d: int) -> list[RowRecord]:
        k = self.top_k
        split: dict[str, tuple[torch.Tensor, ...]] = {}
        counts = [0] * self.n_rows
        if self.rows:
            rows = torch.cat(self.rows)  # (N,) prompt index of every sampled row-step, in step order
            cat = {name: torch.cat(v).cpu() for name, v in self.cols.items() if v}  # the one copy to the CPU
            order = torch.argsort(rows, stable=True)  # group by row, steps in order
            counts = torch.bincount(rows, minlength=self.n_rows).tolist()
            split = {name: torch.split(t[order], counts) for name, t in cat.items()}
        out = []
        for i in range(self.n_rows):
            def part(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
                return split[name][i] if name in split else torch.zeros(counts[i], *shape, dtype=dtype)

            out.append(RowRecord(
                phases=self.phases[i],
                tokens=part("tokens", (), torch.long),
                top_ids=part("top_ids", (k,), torch.long),
                top_probs=part("top_probs", (k,), torch.float32),
                mix_ids=part("mix_ids", (k,), torch.long),
                mix_weights=part("mix_weights", (k,), torch.float32),
                entropy=part("entropy", (), torch.float32),
                mix_entropy=part("mix_entropy", (), torch.float32),
                fed=self.fed[i],
                vectors=part("vectors", (d,), torch.float32) if self.keep_vectors else None,
                forced=self.forced[i],
            ))
        return out


__all__ = ["EngineResult", "RowRecord", "StepLog"]
