"""What vecgen adds inside vLLM (imported by vLLM's engine core and workers; needs the ``vllm`` package).

Three small subclasses, no copy of vLLM's source:

- :class:`HoldScheduler` (vLLM's ``scheduler_cls``): schedules only the requests named in :attr:`HoldScheduler.allowed`
  (the rows of the decode state the engine is stepping) and leaves every other running request where it is, so that
  several decode states (continuous batching, forks) share one vLLM engine and each advances only when vecgen
  steps it.
- :class:`VecgenRunnerMixin`, mixed into the worker's model runner (``GPUModelRunner`` or ``CPUModelRunner``, which
  subclasses it) by :meth:`VecgenWorkerExtension.vecgen_install`: after vLLM fills ``inputs_embeds`` for the
  scheduled tokens (``_preprocess``, its ``enable_prompt_embeds`` branch), the decode position of each request that
  has a vector waiting is overwritten with that vector: decode-time vector input inside vLLM's runner, on every
  rank. Before vLLM samples (``_sample``), the float32 logits ``(num_reqs, V)`` of the step are kept with the
  requests' ids, for vecgen's sampler.
- :class:`VecgenWorkerExtension` (vLLM's ``worker_extension_cls``): the methods vecgen calls on every worker through
  ``collective_rpc``: install the mixin, hand over the next step's vectors, take the last step's logits.
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.core.sched.scheduler import Scheduler


class HoldScheduler(Scheduler):
    """vLLM's scheduler, restricted to :attr:`allowed` request ids while it is a set (None: every request)."""

    allowed: set[str] | None = None

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        if self.allowed is None:
            return super().schedule(*args, **kwargs)
        running: list[Any] = list(getattr(self, "running"))  # vLLM's list of running requests
        held = [r for r in running if r.request_id not in self.allowed]
        self.running = [r for r in running if r.request_id in self.allowed]
        try:
            return super().schedule(*args, **kwargs)
        finally:
            self.running = self.running + held


class VecgenRunnerMixin:
    """Overrides of the model runner (see the module docstring). ``vecgen_vectors``: request id → ``(d,)`` vector
    fed at that request's next decode position; ``vecgen_logits``: ``(request ids, (num_reqs, V) float32)``."""

    vecgen_vectors: dict[str, torch.Tensor]
    vecgen_logits: tuple[list[str], torch.Tensor] | None

    def _preprocess(self, scheduler_output: Any, num_input_tokens: int, intermediate_tensors: Any = None) -> Any:
        out = super()._preprocess(scheduler_output, num_input_tokens, intermediate_tensors)  # type: ignore[misc]
        vectors = getattr(self, "vecgen_vectors", None)
        if vectors:
            embeds = out[1]
            if embeds is not None:  # None on later pipeline ranks, which take hidden states
                index = self.input_batch.req_id_to_index  # type: ignore[attr-defined]
                ends = self.query_start_loc.np  # type: ignore[attr-defined]
                for rid, vector in vectors.items():
                    i = index.get(rid)
                    if i is not None:
                        embeds[int(ends[i + 1]) - 1] = vector.to(device=embeds.device, dtype=embeds.dtype)
            self.vecgen_vectors = {}
        return out

    def _sample(self, logits: torch.Tensor | None, spec_decode_metadata: Any) -> Any:
        if logits is not None:
            n = self.input_batch.num_reqs  # type: ignore[attr-defined]
            self.vecgen_logits = (list(self.input_batch.req_ids[:n]),  # type: ignore[attr-defined]
                                  logits[:n].detach().float().cpu())
        return super()._sample(logits, spec_decode_metadata)  # type: ignore[misc]


class VecgenWorkerExtension:
    """Methods vecgen calls on every vLLM worker (``LLM.collective_rpc``)."""

    model_runner: Any

    def vecgen_install(self) -> str:
        """Mix :class:`VecgenRunnerMixin` into this worker's model runner; returns the runner's class name."""
        runner = self.model_runner
        if not isinstance(runner, VecgenRunnerMixin):
            base = type(runner)
            runner.__class__ = type("Vecgen" + base.__name__, (VecgenRunnerMixin, base), {})
            runner.vecgen_vectors = {}
            runner.vecgen_logits = None
        return type(runner).__name__

    def vecgen_set_vectors(self, vectors: dict[str, torch.Tensor]) -> None:
        """The vectors of the next step: request id → ``(d,)``."""
        self.model_runner.vecgen_vectors = dict(vectors)

    def vecgen_take_logits(self) -> tuple[list[str], torch.Tensor] | None:
        """The last step's ``(request ids, (num_reqs, V) float32 logits)`` (then forgotten)."""
        out = self.model_runner.vecgen_logits
        self.model_runner.vecgen_logits = None
        return out
