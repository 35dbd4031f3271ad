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

The engine is in parts, one module each: the policy types (:mod:`.policy`: :class:`Mode`, :class:`Action`,
:class:`Observation`, :class:`RowPolicy`), the per-row records (:mod:`.records`), the step (:mod:`.step`: sample →
mix → observe; one sampler pass per group of rows that share a phase, a sampler but its seed and temperature, and a
rule, each row drawing from its own random stream at its own temperature) and the scheduler (:mod:`.scheduler`: admission, continuous batching, chunked
prefill, ``admit`` / ``on_row_end``). :func:`run` checks its arguments and the context, then the scheduler's loop reads
admit → step → observe → retire → feed.

Records of every sampled step (token, top tokens of the sampler's distribution, the largest mixture
weights, entropies, optionally the fed vector) stay on the device during the loop and are copied to the
CPU once at the end, as one typed :class:`RowRecord` per prompt.

Finiteness: the logits of every sampled row and every fed vector are checked on the device; the flags
travel with the per-step transfer, and a NaN/inf raises :class:`~vecgen.errors.NonFiniteError` naming the
step and the prompt (row). Padding rows of the vocabulary and tokens outside ``allowed`` never get
probability, in every mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..backends.contract import Backend, ContractError, DecodeState, Prompt, build_batch
from ..errors import ConfigError
from ..models import LoadedModel
from .context import check_context, truncate_to_context
from .policy import Action, Mode, Observation, RowPolicy
from .records import EngineResult, RowRecord, StepLog
from .scheduler import Admit, RowEndHook, Scheduler, StepHook
from .step import Sampler


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
    sampler = Sampler(lm, backend, allowed, StepLog(B, int(record_top_k), keep_vectors, per_row=on_row_end is not None))
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
    return Scheduler(lm, backend, batch, policies, sampler, cap=cap, past=past, admit=admit, on_row_end=on_row_end,
                     prefill_chunk=prefill_chunk, on_step=on_step).run()


__all__ = ["Action", "Admit", "EngineResult", "Mode", "Observation", "RowEndHook", "RowPolicy",
           "RowRecord", "StepHook", "check_context", "run", "truncate_to_context"]
