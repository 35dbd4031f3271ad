"""The decode engine: the one place where a decode step happens.

Every decoding path in vecgen — discrete generation, concept tokens, translations, soft-prompt answers,
``direct`` / ``cot`` / ``soft`` / ``hidden`` thinking — is :func:`run` with one small **row policy** per
prompt. A policy is the scheduler of its row (vLLM's scheduler / model-runner split at our scale): before
each step it says what the row does, after each sampled step it says what is fed.

One step, for the ``b`` live rows (gpt-fast's ``decode_one_token`` with per-row control)::

    plan     policy.next_input() per row: a Mode (sample from the logits), a token id (forced), or None (done)
    sample   per Mode group: logits (g, V) ─▶ sampler + mixing rule ─▶ Mixture ─▶ vector (g, d)
    observe  one host transfer of (token, entropy, mixture entropy, finite) for the sampled rows;
             policy.observe(...) per row: feed the vector | feed the token one-hot | retry (forced / done) | done
    feed     rows that are done leave the batch (Backend.select_rows); the others get one vector each
             (Backend.extend); the backend returns the next logits (and hidden states if a rule feeds them)

Records of every sampled step (token, top tokens of the sampler's distribution, the largest mixture
weights, entropies, optionally the fed vector) stay on the device during the loop and are copied to the
CPU once at the end, as one typed :class:`RowRecord` per prompt.

Finiteness: the logits of every sampled row and every fed vector are checked on the device; the flags
travel with the per-step transfer, and a NaN/inf raises :class:`~vecgen.errors.NonFiniteError` naming the
step and the prompt (row). Padding rows of the vocabulary and tokens outside ``allowed`` never get
probability, in every mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, cast

import torch

from ..backends.contract import Backend, Batch, ContractError, DecodeState, Prompt, build_batch
from ..config import SamplingConfig
from ..errors import ConfigError, ContextLengthError, NonFiniteError
from ..models import LoadedModel
from .mixing import MixingConfig, Mixture, get_rule, mean_input_norm, mix_embeddings, push_from_top1
from .sampling import entropy, make_generator, vocab_mask


class Action(str, Enum):
    """What a policy does with its row's sampled step."""

    feed = "feed"  #: feed the step's vector (the mixture, or the hidden state)
    feed_token = "feed_token"  #: feed the step's token one-hot (e.g. an end-of-thinking marker the trace wrote)
    retry = "retry"  #: feed nothing from this step; ask ``next_input`` again (a forced token, or done)
    done = "done"  #: the row is finished and leaves the batch; nothing is fed


@dataclass(frozen=True)
class Mode:
    """How a row's next input comes from its logits.

    Attributes:
        phase: name of the phase in records (``"generate"``, ``"think"``, ``"answer"``, ...).
        sampling: temperature / top_k / top_p / min_p of the distribution.
        mixing: the mixing rule (``onehot`` = ordinary decoding).
        stream: random stream; each stream has its own generator seeded with the ``sampling.seed`` of
            the first mode that uses it, so e.g. thinking and answering draw from separate streams.
    """

    phase: str
    sampling: SamplingConfig
    mixing: MixingConfig
    stream: str = "main"


@dataclass(frozen=True)
class Observation:
    """What a policy sees of its row's sampled step.

    Attributes:
        step: engine step (0-based).
        token: the step's discrete token (sampled, or the mixture's top-1).
        entropy: nats, of the untruncated ``softmax(logits / T)`` (Soft Thinking's H, used by Cold Stop).
        mix_entropy: nats, of the mixture weights (0 for one-hot).
    """

    step: int
    token: int
    entropy: float
    mix_entropy: float


class RowPolicy(Protocol):
    """The per-row scheduler (see the module docstring)."""

    def next_input(self) -> Mode | int | None:
        """Before a step: a :class:`Mode` (sample), a token id (feed it; no sampling), or None (done)."""
        ...

    def observe(self, obs: Observation) -> Action:
        """After a sampled step of this row: what to feed (:class:`Action`)."""
        ...

    def max_inputs(self) -> int:
        """An upper bound on the inputs (vectors and forced tokens) this row feeds after its prompt; the
        engine checks prompt + this bound against the model's context before the first step."""
        ...


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


#: ``on_step(step, live_rows)`` before each step (progress bars, streaming).
StepHook = Callable[[int, int], None]


class _Log:
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


@torch.inference_mode()
def check_context(lm: LoadedModel, lengths: Sequence[int], budgets: Sequence[int], cached: Sequence[int] | None = None,
                  *, names: Sequence[str] | None = None) -> None:
    """Refuse requests that would run past the model's context: for every row, the positions already
    cached, its prompt length and its budget (the most inputs it feeds after the prompt:
    :meth:`RowPolicy.max_inputs`) must fit :meth:`~vecgen.models.FamilyAdapter.context_length`.
    :func:`run` calls it before any step, so a long request fails at once instead of mid-stream (learned
    positions) or silently (RoPE past its trained length); commands call it on all their items first.

    Args:
        lm: the model. lengths, budgets, cached: per row, in tokens/positions. names: row labels for the
            message (default ``prompt i``).

    Raises:
        ContextLengthError: the first row that does not fit (its length, the limit and how to shorten).
    """
    limit = lm.context_length
    if limit is None:
        return
    cached = list(cached) if cached is not None else [0] * len(lengths)
    for i, (n, c, more) in enumerate(zip(lengths, cached, budgets)):
        n, c, more = int(n), int(c), int(more)
        if c + n + more > limit:
            label = names[i] if names is not None else f"prompt {i}"
            where = f"{c} cached + {n}" if c else f"{n}"
            cells = getattr(lm.backend, "n_ctx", None)
            source = "the backend's n_ctx" if cells == limit else "max_position_embeddings"
            longer = "a larger --n-ctx" if cells == limit else "a model with a longer context"
            raise ContextLengthError(
                f"{label} needs {c + n + more} positions ({where} prompt + up to {more} generated), but "
                f"{lm.name} has a context of {limit} ({source}); shorten the prompt or lower "
                "the number of tokens to generate (--max-new-tokens, thinking/answer budgets, translation "
                f"tokens), or use {longer}")


def truncate_to_context(lm: LoadedModel, ids: Sequence[int], budget: int) -> tuple[list[int], int]:
    """Keep the last tokens of ``ids`` so that they plus ``budget`` more fit the model's context (the
    opt-in alternative to :func:`check_context`'s refusal, e.g. ``vecgen generate --truncate-prompt``).

    Returns:
        ``(ids kept, number dropped from the start)``.

    Raises:
        ContextLengthError: ``budget`` alone leaves no room for a prompt token.
    """
    limit = lm.context_length
    if limit is None or len(ids) + budget <= limit:
        return list(ids), 0
    room = limit - budget
    if room < 1:
        raise ContextLengthError(f"{budget} generated tokens leave no room for a prompt in {lm.name}'s context of "
                                 f"{limit}; lower the number of tokens to generate")
    return list(ids[-room:]), len(ids) - room


#: ``admit(free_rows)`` → new ``(prompt, policy)`` pairs (at most ``free_rows``): prompts that arrive while :func:`run` runs.
Admit = Callable[[int], Sequence[tuple[Prompt, RowPolicy]]]
#: ``on_row_end(prompt index, record, error)`` when a row leaves the batch: its :class:`RowRecord`, and the
#: :class:`~vecgen.errors.NonFiniteError` that ended it (None when its policy ended it).
RowEndHook = Callable[[int, RowRecord, Exception | None], None]


def run(
    lm: LoadedModel,
    prompts: Sequence[Prompt],
    policies: Sequence[RowPolicy],
    *,
    allowed: torch.Tensor | None = None,
    record_top_k: int = 0,
    keep_vectors: bool = False,
    past: DecodeState | None = None,
    on_step: StepHook | None = None,
    backend: Backend | None = None,
    max_batch: int | None = None,
    admit: Admit | None = None,
    on_row_end: RowEndHook | None = None,
    prefill_chunk: int | None = None,
) -> EngineResult:
    """Decode a batch of prompts, each row driven by its policy, until every row is done.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (tokenizer pad id, ``n_real_vocab``, ``backend``).
        prompts: ``B`` prompts (token ids, ``(T, d)`` vectors, or lists of segments; see
            :func:`~vecgen.backends.contract.build_batch`); may be empty when ``admit`` is given.
        policies: ``B`` row policies, one per prompt (policy ``i`` drives prompt ``i``).
        allowed: optional allowed-token mask ``(V_rows,)`` bool or id tensor, applied in every mode
            (padding rows are always excluded).
        record_top_k: K of the per-step top-token and mixture records (0 = record only tokens and entropies).
        keep_vectors: keep every produced vector ``(d,)`` float32 in the records.
        past: continue from this state (one row per prompt, e.g. a shared prefix from
            :meth:`Backend.fork`); the prompts are fed on top of it. It is consumed.
        on_step: called before each step with ``(step, live rows)``.
        backend: the backend to drive (default ``lm.backend``).
        max_batch: continuous batching: at most this many rows decode at once; the first ``max_batch`` prompts
            start, and whenever rows finish, the next waiting prompts are prefilled and join the running batch
            (:meth:`Backend.merge`), so the batch stays full until the queue is empty (vLLM's and Orca's
            iteration-level scheduling). None (or ``>= B``): every prompt starts at once (a static batch).
            Rows are independent either way: a row's tokens do not depend on which rows share its batch beyond
            the backend's kernel tolerances. Not combined with ``past`` (which holds every row already).
        admit: prompts that arrive while the loop runs (a server's requests): whenever fewer than ``max_batch``
            rows are live and no given prompt waits, ``admit(free rows)`` returns new ``(prompt, policy)`` pairs
            (prompt indices continue after ``B``); the loop returns when no row is live and ``admit`` returns
            nothing. Requires ``max_batch``.
        on_row_end: each row's end, as it happens: ``on_row_end(i, record, error)`` (records are then kept per
            row and handed over, and :attr:`EngineResult.rows` is empty). A NaN/inf in one row's logits or vector
            then ends that row with the error instead of raising, and its neighbours go on. A random stream
            (:attr:`Mode.stream`) is forgotten when the last row that drew from it ends.
        prefill_chunk: chunked prefill of arriving prompts (``admit``): a token-id prompt longer than this is
            prefilled ``prefill_chunk`` tokens per step, each chunk on top of the last (:meth:`Backend.prefill` with
            ``past``), between the live rows' decode steps, and joins them after its last chunk; so a long prompt
            does not stall the rows already decoding (Sarathi-Serve's chunked prefill, Agrawal et al. 2024).
            Its tokens equal an unchunked prefill's up to the kernels' tolerance. None: whole prompts.

    Returns:
        An :class:`EngineResult`.

    Raises:
        ConfigError: bad prompts, an unknown rule, an empty allowed set.
        ContextLengthError: a prompt plus its policy's budget does not fit the model's context.
        NonFiniteError: NaN/inf logits or vectors (``step`` and ``row`` = prompt index), without ``on_row_end``.
        ContractError: a policy or backend broke its contract (a bug).
    """
    backend = backend or lm.backend
    policies = list(policies)
    B = len(prompts)
    if len(policies) != B:
        raise ContractError(f"{len(policies)} policies for {B} prompts")
    if max_batch is not None and max_batch < 1:
        raise ConfigError(f"max_batch={max_batch}: allowed range is >= 1", param="max_batch")
    if admit is not None and (max_batch is None or past is not None):
        raise ContractError("admit needs max_batch (the rows arriving prompts may fill) and no past state")
    if prefill_chunk is not None and prefill_chunk < 1:
        raise ConfigError(f"prefill_chunk={prefill_chunk}: allowed range is >= 1", param="prefill_chunk")
    sampler = _Sampler(lm, backend, allowed, _Log(B, int(record_top_k), keep_vectors, per_row=on_row_end is not None))
    sampler.isolate = on_row_end is not None
    batch = build_batch(backend, prompts, lm.tokenizer.pad_token_id) if B else None  # every prompt checked first
    if past is not None and past.batch_size != B:
        raise ContractError(f"past has {past.batch_size} rows but {B} prompts were given")
    if past is not None and max_batch is not None and max_batch < B:
        raise ContractError("continuous batching (max_batch) cannot start from a past state holding every row")
    if batch is not None:
        check_context(lm, batch.attention_mask.sum(dim=1).tolist(), [p.max_inputs() for p in policies],
                      past.next_position.tolist() if past is not None else None)
    cap = B if max_batch is None else int(max_batch) if admit is not None else min(int(max_batch), B)
    plans: dict[int, Mode | int | None] = {}
    state: DecodeState | None = past
    live: list[int] = []  # prompt index of each row of ``state``
    waiting = list(range(B))  # prompts not yet admitted, in order
    chunked: list[_Prefilling] = []  # arrived long prompts being prefilled a chunk per step, oldest first
    step = 0

    def end(rows: Sequence[int], errors: dict[int, Exception] | None = None) -> None:
        if on_row_end is not None:
            for i in rows:
                sampler.release(i)
                on_row_end(i, sampler.log.pop_row(i, backend.hidden_size), (errors or {}).get(i))

    while True:
        # 0. Admission: waiting prompts fill the free rows (all of them at the start of a static batch), then
        #    prompts that arrived (``admit``).
        new: list[int] = []
        free = cap - len(live) - len(chunked)
        if waiting and free > 0:
            assert batch is not None
            new, waiting = waiting[:free], waiting[free:]
            fresh_batch = _rows_of(batch, new)
        elif admit is not None and free > 0:
            arrived = list(admit(free))[:free]
            if arrived:
                first = len(policies)
                policies += [p for _, p in arrived]
                sampler.log.grow(len(arrived))
                check_context(lm, [_prompt_length(q) for q, _ in arrived], [p.max_inputs() for _, p in arrived])
                for k, (q, _) in enumerate(arrived):
                    if prefill_chunk is not None and _is_ids(q) and len(q) > prefill_chunk:
                        chunked.append(_Prefilling(first + k, list(cast(Sequence[int], q))))
                    else:
                        new.append(first + k)
                if new:
                    fresh_batch = build_batch(backend, [arrived[i - first][0] for i in new], lm.tokenizer.pad_token_id)
        if new:
            plans.update({i: policies[i].next_input() for i in new})
            fresh = backend.prefill(fresh_batch, None if live else state,  # ``past`` at the start
                                    hidden=_wants_hidden(plans[i] for i in live + new))
            state = fresh if not live else _join(backend, state, fresh)
            live += new
        if chunked:  # the oldest long prompt's next chunk, between two steps of the live rows
            c = chunked[0]
            piece = c.ids[c.done: c.done + int(prefill_chunk or len(c.ids))]
            c.done += len(piece)
            last = c.done >= len(c.ids)
            if last:
                plans[c.index] = policies[c.index].next_input()
            c.state = backend.prefill(build_batch(backend, [piece], lm.tokenizer.pad_token_id), c.state,
                                      hidden=last and _wants_hidden(plans[i] for i in [*live, c.index]))
            if last:
                chunked.pop(0)
                state = c.state if not live else _join(backend, state, c.state)
                live.append(c.index)
        if not live and not chunked:  # nothing given waits and nothing arrived
            return EngineResult([] if on_row_end is not None else sampler.log.finish(backend.hidden_size), None, [], step)
        if not live:  # only prompts being prefilled: their next chunks
            continue
        assert state is not None  # admitted rows have a state
        # 1. Rows whose policy is done before sampling leave the batch.
        keep = [j for j, i in enumerate(live) if plans[i] is not None]
        if not keep:
            end(live)
            if waiting or admit is not None:  # every admitted row ended before sampling: admit the next ones
                live, state = [], None
                continue
            return EngineResult(sampler.log.finish(backend.hidden_size) if on_row_end is None else [], state, live, step)
        if len(keep) < len(live):
            end([i for j, i in enumerate(live) if plans[i] is None])
            state = backend.select_rows(state, torch.tensor(keep, dtype=torch.long))
            live = [live[j] for j in keep]
        if on_step is not None:
            on_step(step, len(live))
        vec = torch.empty(len(live), backend.hidden_size, dtype=backend.dtype, device=backend.device)  # (b, d)
        # 2. Sample the rows that have a Mode; 3. their policies decide what is fed; forced ids are fed as planned.
        failed: dict[int, Exception] = {}  # batch row -> the error that ends it (``on_row_end`` only)
        groups = sampler.sample(state, live, plans, step, failed)
        forced = [(j, _token_id(plans[i], i)) for j, i in enumerate(live) if not isinstance(plans[i], Mode)]
        done = _observe(groups, live, policies, backend, vec, forced, sampler.log, step,
                        failed if on_row_end is not None else None)
        done |= set(failed)
        if forced:
            rows_f = torch.tensor([j for j, _ in forced], device=vec.device)
            vec[rows_f] = backend.input_rows(torch.tensor([t for _, t in forced], dtype=torch.long,
                                                          device=backend.device))  # (f, d): the model's own rows
            for j, t in forced:
                sampler.log.forced[live[j]].append(t)
        # 4. Feed: finished rows leave the batch, the others get their vector.
        step += 1
        end([live[j] for j in sorted(done)], {live[j]: e for j, e in failed.items()})
        keep = [j for j in range(len(live)) if j not in done]
        if not keep:
            if waiting or admit is not None:
                live, state = [], None
                continue
            return EngineResult(sampler.log.finish(backend.hidden_size) if on_row_end is None else [], None, [], step)
        if len(keep) < len(live):
            idx = torch.tensor(keep, dtype=torch.long)
            state = backend.select_rows(state, idx)
            vec = vec[idx.to(vec.device)]
            live = [live[j] for j in keep]
        plans = {i: policies[i].next_input() for i in live}
        state = backend.extend(state, vec, hidden=_wants_hidden(plans.values()))


@dataclass
class _Prefilling:
    """An arrived prompt prefilled a chunk per step (``run(prefill_chunk=)``): its index, ids, tokens done, state."""

    index: int
    ids: list[int]
    done: int = 0
    state: DecodeState | None = None


def _is_ids(prompt: Prompt) -> bool:
    return not isinstance(prompt, torch.Tensor) and all(isinstance(t, int) for t in prompt)


def _prompt_length(prompt: Prompt) -> int:
    """Positions a prompt takes: ids, ``(T, d)`` vectors, or segments of either."""
    if isinstance(prompt, torch.Tensor):
        return int(prompt.shape[0])
    if _is_ids(prompt):
        return len(prompt)
    total = 0
    for seg in prompt:
        total += int(seg.shape[0]) if isinstance(seg, torch.Tensor) else len(cast(Sequence[int], seg))
    return total


def _join(backend: Backend, state: DecodeState | None, fresh: DecodeState) -> DecodeState:
    """The live rows' ``state`` with the rows of a new prefill ``fresh`` after them (:meth:`Backend.merge`)."""
    assert state is not None  # live rows have a state
    # hidden states are returned when some row's plan feeds them; rows whose plan does not never read theirs this
    # step, so the side without them gets zeros
    if state.hidden is None and fresh.hidden is not None:
        state.hidden = fresh.hidden.new_zeros(state.batch_size, fresh.hidden.shape[-1])
    elif fresh.hidden is None and state.hidden is not None:
        fresh.hidden = state.hidden.new_zeros(fresh.batch_size, state.hidden.shape[-1])
    return backend.merge(state, fresh)


@dataclass
class _Group:
    """The rows of one :class:`Mode` in one step: batch rows, the mixture and its vectors ``(g, d)``."""

    rows: list[int]
    mode: Mode
    mixture: Mixture
    vectors: torch.Tensor
    host: list[list[float]] = field(default_factory=list)  # per row: token, entropy, mix entropy, finite


class _Sampler:
    """The sampler + mixing-rule half of a step: one pass per distinct mode, records to the log."""

    def __init__(self, lm: LoadedModel, backend: Backend, allowed: torch.Tensor | None, log: _Log):
        self.lm, self.backend, self.log = lm, backend, log
        # Without an allowed set the mask is "the first n_real rows": the sampler then works on a view of
        # the real columns instead of writing -inf into the padding rows every step.
        self.mask: torch.Tensor | int = (int(lm.n_real_vocab) if allowed is None else
                                         vocab_mask(backend.vocab_rows, lm.n_real_vocab, allowed, device=backend.device))
        self.generators: dict[str, torch.Generator] = {}
        self.target_norm: float | None = None
        #: NaN/inf in a row ends that row (``failed``) instead of raising (:func:`run`'s ``on_row_end``)
        self.isolate = False
        self.stream_rows: dict[str, set[int]] = {}  # isolate only: the rows that drew from each stream

    def release(self, row: int) -> None:
        """``row`` has ended: forget the random streams no other row drew from."""
        for stream in [s for s, rows in self.stream_rows.items() if row in rows]:
            self.stream_rows[stream].discard(row)
            if not self.stream_rows[stream]:
                del self.stream_rows[stream], self.generators[stream]

    def sample(self, state: DecodeState, live: list[int], plans: dict[int, Any], step: int,
               failed: dict[int, Exception] | None = None) -> list[_Group]:
        by_mode: dict[Mode, list[int]] = {}
        for j, i in enumerate(live):
            if isinstance(plans[i], Mode):
                by_mode.setdefault(plans[i], []).append(j)
        groups, scalars = [], []
        for mode, rows in by_mode.items():
            if mode.stream not in self.generators:
                self.generators[mode.stream] = make_generator(mode.sampling.seed, self.backend.device)
            if self.isolate:
                self.stream_rows.setdefault(mode.stream, set()).update(live[j] for j in rows)
            while True:
                idx = None if len(rows) == len(live) else torch.tensor(rows, device=state.logits.device)
                logits = state.logits if idx is None else state.logits[idx]  # (g, V)
                try:
                    mixture = get_rule(mode.mixing.rule)(logits, mode.sampling, mode.mixing, self.mask,
                                                         self.generators[mode.stream])
                    break
                except NonFiniteError:
                    bad = (torch.isnan(logits) | torch.isposinf(logits)).any(-1).nonzero()[:, 0].tolist()
                    if not self.isolate or failed is None:
                        i = live[rows[bad[0]]]
                        raise NonFiniteError(f"NaN or inf logits at step {step} for prompt {i}", step=step,
                                             row=i) from None
                    for b in bad:  # those rows end with the error; the others are sampled again
                        failed[rows[b]] = NonFiniteError(f"NaN or inf logits at step {step}", step=step,
                                                         row=live[rows[b]])
                    rows = [j for k, j in enumerate(rows) if k not in set(bad)]
                    if not rows:
                        break
            if not rows:
                continue
            mixture = push_from_top1(mixture, mode.mixing.anti_collapse)
            hidden = None
            if mixture.hidden_scale is not None:
                if state.hidden is None:
                    raise ContractError(f"backend {self.backend.name} returned no hidden state although one was asked for")
                hidden = state.hidden if idx is None else state.hidden[idx.to(state.hidden.device)]  # (g, d)
                if self.target_norm is None:
                    self.target_norm = mean_input_norm(self.backend, self.lm.n_real_vocab)
            v = mix_embeddings(self.backend, mixture, hidden=hidden, target_norm=self.target_norm)  # (g, d)
            ent = entropy(mixture.full_probs)  # (g,) nats
            mix_ent = mixture.entropy() + 0.0  # (g,); + 0.0 turns -0.0 into 0.0
            self.log.add([live[j] for j in rows], mixture, ent, mix_ent, v)
            finite = torch.isfinite(v.float().sum(-1))  # (g,)
            scalars.append(torch.stack([mixture.token.double(), ent.double(), mix_ent.double(), finite.double()], -1))
            groups.append(_Group(rows, mode, mixture, v))
        if groups:  # the step's one transfer to the host: (token, entropy, mixture entropy, finite) per row
            host = torch.cat(scalars).cpu().tolist()
            k = 0
            for g in groups:
                g.host, k = host[k : k + len(g.rows)], k + len(g.rows)
        return groups


def _observe(groups: list[_Group], live: list[int], policies: Sequence[RowPolicy], backend: Backend,
             vec: torch.Tensor, forced: list[tuple[int, int]], log: _Log, step: int,
             failed: dict[int, Exception] | None = None) -> set[int]:
    """Each sampled row's policy decides what is fed (written into ``vec`` / appended to ``forced``);
    returns the batch rows that are done. With ``failed``, a non-finite vector ends its row there (not raised)."""
    done: set[int] = set()
    for g in groups:
        for k, (j, (tok, ent, mix_ent, ok)) in enumerate(zip(g.rows, g.host)):
            i = live[j]
            if not ok:
                error = NonFiniteError(f"NaN or inf input vector at step {step} for prompt {i}", step=step, row=i)
                if failed is None:
                    raise error
                failed[j] = error
                continue
            returned = policies[i].observe(Observation(step, int(tok), float(ent), float(mix_ent)))
            try:
                action = Action(returned)
            except ValueError:
                raise ContractError(f"policy of prompt {i} returned {returned!r} from observe; expected an Action") from None
            log.phases[i].append(g.mode.phase)
            log.fed[i].append(action.value)
            if action == Action.feed:
                vec[j] = g.vectors[k]
            elif action == Action.feed_token:
                vec[j] = backend.input_rows(g.mixture.token[k])
            elif action == Action.done:
                done.add(j)
            else:  # retry: a forced token, or done
                again = policies[i].next_input()
                if again is None:
                    done.add(j)
                else:
                    forced.append((j, _token_id(again, i)))
    return done


def _rows_of(batch: Batch, rows: list[int]) -> Batch:
    """The prompts ``rows`` of a left-padded batch, without the columns that are padding in all of them."""
    if len(rows) == batch.batch_size:
        return batch
    idx = torch.tensor(rows, dtype=torch.long, device=batch.attention_mask.device)
    mask = batch.attention_mask[idx]  # (b, T)
    start = int(mask.shape[1] - mask.sum(dim=1).max())  # the longest of these rows starts here
    return Batch(None if batch.input_ids is None else batch.input_ids[idx, start:],
                 None if batch.inputs_embeds is None else batch.inputs_embeds[idx.to(batch.inputs_embeds.device), start:],
                 mask[:, start:])


def _wants_hidden(plans: Any) -> bool:
    return any(isinstance(m, Mode) and m.mixing.feeds_hidden for m in plans)


def _token_id(plan: Any, row: int) -> int:
    if isinstance(plan, bool) or not isinstance(plan, int):
        raise ContractError(f"policy of prompt {row} returned {plan!r}; expected a Mode, a token id or None")
    return plan


__all__ = ["Action", "Admit", "EngineResult", "Mode", "Observation", "RowEndHook", "RowPolicy", "RowRecord", "StepHook",
           "run"]
