"""The engine's scheduler: admission, continuous batching, chunked prefill, retiring rows.

:class:`Scheduler` holds the loop's state — the live rows and their backend state, the prompts still waiting, the
arrived long prompts being prefilled a chunk per step — and :meth:`Scheduler.run` reads as the loop does::

    admit   waiting prompts (then arrived ones, ``admit``) fill the free rows: prefilled, merged into the batch
    plan    each live row's policy says what it does; rows done before sampling retire
    step    sample → mix → observe (:mod:`vecgen.decoding.step`); forced tokens get the model's own input rows
    retire  rows that are done leave the batch (``on_row_end`` gets each record as it ends)
    feed    the others get one vector each (:meth:`Backend.extend`)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch

from ..backends.contract import Backend, Batch, DecodeState, Prompt, build_batch
from ..models import LoadedModel
from .context import check_context
from .policy import Mode, RowPolicy
from .records import EngineResult, RowRecord
from .step import Sampler, observe, token_id, wants_hidden

#: ``on_step(step, live_rows)`` before each step (progress bars, streaming).
StepHook = Callable[[int, int], None]
#: ``admit(free_rows)`` → new ``(prompt, policy)`` pairs (at most ``free_rows``): prompts that arrive while
#: :func:`~vecgen.decoding.run` runs.
Admit = Callable[[int], Sequence[tuple[Prompt, RowPolicy]]]
#: ``on_row_end(prompt index, record, error)`` when a row leaves the batch: its :class:`RowRecord`, and the
#: :class:`~vecgen.errors.NonFiniteError` that ended it (None when its policy ended it).
RowEndHook = Callable[[int, RowRecord, Exception | None], None]


@dataclass
class Prefilling:
    """An arrived prompt prefilled a chunk per step (``run(prefill_chunk=)``): its index, ids, tokens done, state."""

    index: int
    ids: list[int]
    done: int = 0
    state: DecodeState | None = None


class Scheduler:
    """The state of one :func:`~vecgen.decoding.run` call and its loop (module docstring).

    Args:
        lm: the model.
        backend: the backend driven.
        batch: the given prompts as one left-padded batch (None when there are none: ``admit`` only).
        policies: one policy per given prompt (arrived prompts' policies are appended).
        sampler: the step's sampler (it holds the log).
        cap: rows decoded at once.
        past: the state the given prompts continue (or None).
        admit: as :func:`~vecgen.decoding.run`.
        on_row_end: as :func:`~vecgen.decoding.run`.
        prefill_chunk: as :func:`~vecgen.decoding.run`.
        on_step: as :func:`~vecgen.decoding.run`.
    """

    def __init__(self, lm: LoadedModel, backend: Backend, batch: Batch | None, policies: list[RowPolicy],
                 sampler: Sampler, *, cap: int, past: DecodeState | None, admit: Admit | None,
                 on_row_end: RowEndHook | None, prefill_chunk: int | None, on_step: StepHook | None):
        self.lm, self.backend, self.batch, self.policies, self.sampler = lm, backend, batch, policies, sampler
        self.cap, self.admit_fn, self.on_row_end, self.prefill_chunk, self.on_step = (cap, admit, on_row_end,
                                                                                     prefill_chunk, on_step)
        self.plans: dict[int, Mode | int | None] = {}
        self.state: DecodeState | None = past
        self.live: list[int] = []  # prompt index of each row of ``state``
        self.waiting = list(range(batch.batch_size if batch is not None else 0))  # not yet admitted, in order
        self.chunked: list[Prefilling] = []  # arrived long prompts being prefilled a chunk per step, oldest first
        self.step = 0

    # ------------------------------------------------------------------------------------------- the loop

    def run(self) -> EngineResult:
        """Admit → plan → step → retire → feed until every row is done (and nothing more arrives)."""
        while True:
            self.admit()
            if not self.live and not self.chunked:  # nothing given waits and nothing arrived
                return self.result(None, [])
            if not self.live:  # only prompts being prefilled: their next chunks
                continue
            if not self.retire_planned_done():  # every live row was done before sampling
                if self.more_may_come():
                    self.live, self.state = [], None
                    continue
                return self.result(self.state, self.live)
            if self.on_step is not None:
                self.on_step(self.step, len(self.live))
            vec, done, failed = self.sample_and_observe()
            self.step += 1
            self.retire([self.live[j] for j in sorted(done)], {self.live[j]: e for j, e in failed.items()})
            keep = [j for j in range(len(self.live)) if j not in done]
            if not keep:
                if self.more_may_come():
                    self.live, self.state = [], None
                    continue
                return self.result(None, [])
            self.feed(vec, keep)

    def more_may_come(self) -> bool:
        """Prompts still wait, or more may arrive (``admit``)."""
        return bool(self.waiting) or self.admit_fn is not None

    def result(self, state: DecodeState | None, state_rows: list[int]) -> EngineResult:
        records = self.sampler.log.finish(self.backend.hidden_size) if self.on_row_end is None else []
        return EngineResult(records, state, state_rows, self.step)

    # -------------------------------------------------------------------------------------- admission

    def admit(self) -> None:
        """Waiting prompts fill the free rows (all of them at the start of a static batch), then prompts that arrived
        (``admit``); long arrived prompts are queued for chunked prefill; the oldest of those gets its next chunk."""
        new: list[int] = []
        fresh_batch: Batch | None = None
        free = self.cap - len(self.live) - len(self.chunked)
        if self.waiting and free > 0:
            assert self.batch is not None
            new, self.waiting = self.waiting[:free], self.waiting[free:]
            fresh_batch = rows_of(self.batch, new)
        elif self.admit_fn is not None and free > 0:
            new, fresh_batch = self._arrivals(free)
        if new:
            assert fresh_batch is not None
            self.plans.update({i: self.policies[i].next_input() for i in new})
            fresh = self.backend.prefill(fresh_batch, None if self.live else self.state,  # ``past`` at the start
                                         hidden=wants_hidden(self.plans[i] for i in self.live + new))
            self.state = fresh if not self.live else join(self.backend, self.state, fresh)
            self.live += new
        if self.chunked:
            self._next_chunk()

    def _arrivals(self, free: int) -> tuple[list[int], Batch | None]:
        """Prompts from ``admit``: their indices to prefill now and their batch; long ones go to :attr:`chunked`."""
        assert self.admit_fn is not None
        arrived = list(self.admit_fn(free))[:free]
        if not arrived:
            return [], None
        first = len(self.policies)
        self.policies += [p for _, p in arrived]
        self.sampler.log.grow(len(arrived))
        check_context(self.lm, [prompt_length(q) for q, _ in arrived], [p.max_inputs() for _, p in arrived])
        new = []
        for k, (q, _) in enumerate(arrived):
            if self.prefill_chunk is not None and is_ids(q) and len(q) > self.prefill_chunk:
                self.chunked.append(Prefilling(first + k, list(cast(Sequence[int], q))))
            else:
                new.append(first + k)
        if not new:
            return [], None
        return new, build_batch(self.backend, [arrived[i - first][0] for i in new], self.lm.tokenizer.pad_token_id)

    def _next_chunk(self) -> None:
        """The oldest long prompt's next chunk, between two steps of the live rows; after its last it joins them."""
        c = self.chunked[0]
        piece = c.ids[c.done: c.done + int(self.prefill_chunk or len(c.ids))]
        c.done += len(piece)
        last = c.done >= len(c.ids)
        if last:
            self.plans[c.index] = self.policies[c.index].next_input()
        c.state = self.backend.prefill(build_batch(self.backend, [piece], self.lm.tokenizer.pad_token_id), c.state,
                                       hidden=last and wants_hidden(self.plans[i] for i in [*self.live, c.index]))
        if last:
            self.chunked.pop(0)
            self.state = c.state if not self.live else join(self.backend, self.state, c.state)
            self.live.append(c.index)

    # ------------------------------------------------------------------------------------ step and feed

    def retire_planned_done(self) -> bool:
        """Rows whose policy is done before sampling leave the batch; False when none is left."""
        assert self.state is not None  # admitted rows have a state
        keep = [j for j, i in enumerate(self.live) if self.plans[i] is not None]
        if not keep:
            self.retire(self.live)
            return False
        if len(keep) < len(self.live):
            self.retire([i for j, i in enumerate(self.live) if self.plans[i] is None])
            self.state = self.backend.select_rows(self.state, torch.tensor(keep, dtype=torch.long))
            self.live = [self.live[j] for j in keep]
        return True

    def sample_and_observe(self) -> tuple[torch.Tensor, set[int], dict[int, Exception]]:
        """Sample the rows that have a Mode; their policies decide what is fed; forced ids get the model's own input
        rows. Returns the vectors ``(b, d)``, the batch rows that are done, and the errors that end rows
        (``on_row_end`` only)."""
        assert self.state is not None
        backend, live, plans = self.backend, self.live, self.plans
        vec = torch.empty(len(live), backend.hidden_size, dtype=backend.dtype, device=backend.device)  # (b, d)
        failed: dict[int, Exception] = {}  # batch row -> the error that ends it (``on_row_end`` only)
        groups = self.sampler.sample(self.state, live, plans, self.step, failed)
        forced = [(j, token_id(plans[i], i)) for j, i in enumerate(live) if not isinstance(plans[i], Mode)]
        done = observe(groups, live, self.policies, backend, vec, forced, self.sampler.log, self.step,
                       failed if self.on_row_end is not None else None)
        done |= set(failed)
        if forced:
            rows_f = torch.tensor([j for j, _ in forced], device=vec.device)
            vec[rows_f] = backend.input_rows(torch.tensor([t for _, t in forced], dtype=torch.long,
                                                          device=backend.device))  # (f, d): the model's own rows
            for j, t in forced:
                self.sampler.log.forced[live[j]].append(t)
        return vec, done, failed

    def retire(self, rows: Sequence[int], errors: dict[int, Exception] | None = None) -> None:
        """Rows (prompt indices) that end: with ``on_row_end``, each record (and error) is handed over now."""
        if self.on_row_end is not None:
            for i in rows:
                self.sampler.release(i)
                self.on_row_end(i, self.sampler.log.pop_row(i, self.backend.hidden_size), (errors or {}).get(i))

    def feed(self, vec: torch.Tensor, keep: list[int]) -> None:
        """The rows ``keep`` (batch rows) stay and get their vectors; the others leave the batch."""
        assert self.state is not None
        if len(keep) < len(self.live):
            idx = torch.tensor(keep, dtype=torch.long)
            self.state = self.backend.select_rows(self.state, idx)
            vec = vec[idx.to(vec.device)]
            self.live = [self.live[j] for j in keep]
        self.plans = {i: self.policies[i].next_input() for i in self.live}
        self.state = self.backend.extend(self.state, vec, hidden=wants_hidden(self.plans.values()))


def is_ids(prompt: Prompt) -> bool:
    """Whether ``prompt`` is token ids only (chunked prefill takes those)."""
    return not isinstance(prompt, torch.Tensor) and all(isinstance(t, int) for t in prompt)


def prompt_length(prompt: Prompt) -> int:
    """Positions a prompt takes: ids, ``(T, d)`` vectors, or segments of either."""
    if isinstance(prompt, torch.Tensor):
        return int(prompt.shape[0])
    if is_ids(prompt):
        return len(prompt)
    total = 0
    for seg in prompt:
        total += int(seg.shape[0]) if isinstance(seg, torch.Tensor) else len(cast(Sequence[int], seg))
    return total


def join(backend: Backend, state: DecodeState | None, fresh: DecodeState) -> DecodeState:
    """The live rows' ``state`` with the rows of a new prefill ``fresh`` after them (:meth:`Backend.merge`)."""
    assert state is not None  # live rows have a state
    # hidden states are returned when some row's plan feeds them; rows whose plan does not never read theirs this
    # step, so the side without them gets zeros
    if state.hidden is None and fresh.hidden is not None:
        state.hidden = fresh.hidden.new_zeros(state.batch_size, fresh.hidden.shape[-1])
    elif fresh.hidden is None and state.hidden is not None:
        fresh.hidden = state.hidden.new_zeros(fresh.batch_size, state.hidden.shape[-1])
    return backend.merge(state, fresh)


def rows_of(batch: Batch, rows: list[int]) -> Batch:
    """The prompts ``rows`` of a left-padded batch, without the columns that are padding in all of them."""
    if len(rows) == batch.batch_size:
        return batch
    idx = torch.tensor(rows, dtype=torch.long, device=batch.attention_mask.device)
    mask = batch.attention_mask[idx]  # (b, T)
    start = int(mask.shape[1] - mask.sum(dim=1).max())  # the longest of these rows starts here
    return Batch(None if batch.input_ids is None else batch.input_ids[idx, start:],
                 None if batch.inputs_embeds is None else batch.inputs_embeds[idx.to(batch.inputs_embeds.device), start:],
                 mask[:, start:])


__all__ = ["Admit", "Prefilling", "RowEndHook", "Scheduler", "StepHook", "join", "prompt_length", "rows_of"]
