"""Generation on the decode engine: :func:`generate` runs every row under a :class:`GeneratePolicy`.

Discrete decoding is the ``onehot`` mixing rule; concept tokens are any other rule. Each step is the
engine's (:mod:`vecgen.decoding.engine`): ``logits → probs`` (the one sampler) ``→ mixing rule → next
input`` through the backend contract (:mod:`vecgen.backends.contract`); rows that emit a stop token
leave the batch.

The pieces the engine uses are the backend's: ``lm.backend.prefill`` / ``extend`` / ``select_rows`` /
``fork`` and :func:`~vecgen.backends.contract.build_batch`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..backends.contract import Batch, DecodeState, Prompt, Segment, build_batch
from ..config import SamplingConfig
from ..errors import ConfigError
from ..models import LoadedModel
from .engine import Action, Mode, Observation, RowRecord, StepHook, run
from .mixing import MixingConfig, get_rule


@dataclass
class StepRecord:
    """One decode step for the whole batch (tensors on the CPU; rows that had finished hold zeros).

    Attributes:
        token: ``(B,)`` the discrete token of the step (sampled, or top-1 of the mixture).
        top_ids, top_probs: ``(B, K)`` the K most likely tokens under the sampler's distribution (greedy: the
            untruncated ``softmax(logits)``).
        mix_ids, mix_weights: ``(B, K)`` the K largest mixture weights (one-hot: the token, 1.0).
        entropy: ``(B,)`` nats, of the untruncated ``softmax(logits / T)`` (Soft Thinking's H).
        mix_entropy: ``(B,)`` nats, of the mixture weights.
        vector: ``(B, d)`` the fed input vector, when ``keep_vectors`` (else None).
    """

    token: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    mix_ids: torch.Tensor
    mix_weights: torch.Tensor
    entropy: torch.Tensor
    mix_entropy: torch.Tensor
    vector: torch.Tensor | None = None


@dataclass
class GenerationResult:
    """Output of :func:`generate`.

    Attributes:
        steps: one :class:`StepRecord` per step (``(B, ...)`` views of ``rows``).
        lengths: ``(B,)`` valid steps per row (through its stop token, if any).
        finished: ``(B,)`` rows that emitted a stop token.
        state: with ``feed_last`` and no stop tokens, the decode state after the last vector (every row);
            else None (rows leave the batch as they finish).
        rows: the engine's typed per-row records (:class:`~vecgen.decoding.engine.RowRecord`).
    """

    steps: list[StepRecord]
    lengths: torch.Tensor
    finished: torch.Tensor
    state: DecodeState | None = None
    rows: list[RowRecord] = field(default_factory=list)

    @property
    def tokens(self) -> torch.Tensor:
        """``(B, N)`` long: the discrete token of every step (rows past their length are padding)."""
        return torch.stack([s.token for s in self.steps], dim=1)

    def token_ids(self, row: int) -> list[int]:
        """Token ids of ``row`` up to and including its stop token."""
        return self.tokens[row, : int(self.lengths[row])].tolist()

    def text(self, row: int, tokenizer: Any, *, skip_special_tokens: bool = True) -> str:
        """Decoded text of ``row``."""
        return tokenizer.decode(self.token_ids(row), skip_special_tokens=skip_special_tokens)

    def vectors(self, row: int) -> torch.Tensor:
        """``(n, d)`` the vectors fed for ``row`` (requires ``keep_vectors=True``)."""
        vectors = self.rows[row].vectors if self.rows else None
        if vectors is None:
            raise ValueError("vectors were not kept; call generate(..., keep_vectors=True)")
        return vectors[: int(self.lengths[row])]


class GeneratePolicy:
    """A row that samples ``max_new_tokens`` steps with one :class:`~vecgen.decoding.engine.Mode`, or
    fewer when it emits a stop token (recorded, not fed).

    Args:
        mode: how each step is sampled and mixed.
        max_new_tokens: steps (>= 1).
        stops: token ids that end the row.
        feed_last: feed the last step's vector too (so the final state continues after it).
        on_token: called with each step's token (streaming).
    """

    def __init__(self, mode: Mode, max_new_tokens: int, stops: frozenset[int], *, feed_last: bool = False,
                 on_token: Callable[[int], None] | None = None):
        self.mode, self.max_new_tokens, self.stops, self.feed_last = mode, max_new_tokens, stops, feed_last
        self.on_token = on_token
        self.tokens: list[int] = []
        self.finished = False

    def next_input(self) -> Mode | None:
        return None if self.finished or len(self.tokens) >= self.max_new_tokens else self.mode

    def max_inputs(self) -> int:
        return self.max_new_tokens if self.feed_last else self.max_new_tokens - 1

    def observe(self, obs: Observation) -> Action:
        self.tokens.append(obs.token)
        if self.on_token is not None:
            self.on_token(obs.token)
        if obs.token in self.stops:
            self.finished = True
            return Action.done
        if len(self.tokens) >= self.max_new_tokens and not self.feed_last:
            return Action.done
        return Action.feed


def _step_records(rows: list[RowRecord], keep_vectors: bool) -> list[StepRecord]:
    """Per-step ``(B, ...)`` views of per-row records (rows past their length hold zeros)."""
    B, n = len(rows), max((len(r.phases) for r in rows), default=0)

    def dense(name: str) -> torch.Tensor:
        parts = [getattr(r, name) for r in rows]
        out = parts[0].new_zeros((B, n, *parts[0].shape[1:]))
        for b, t in enumerate(parts):
            out[b, : t.shape[0]] = t
        return out

    cols = {name: dense(name) for name in ("tokens", "top_ids", "top_probs", "mix_ids", "mix_weights", "entropy",
                                           "mix_entropy")}
    vecs = dense("vectors") if keep_vectors else None
    return [StepRecord(token=cols["tokens"][:, s], top_ids=cols["top_ids"][:, s], top_probs=cols["top_probs"][:, s],
                       mix_ids=cols["mix_ids"][:, s], mix_weights=cols["mix_weights"][:, s],
                       entropy=cols["entropy"][:, s], mix_entropy=cols["mix_entropy"][:, s],
                       vector=None if vecs is None else vecs[:, s]) for s in range(n)]


def _row_callback(on_token: Callable[[int, int], None] | None, row: int) -> Callable[[int], None] | None:
    """``on_token(row, token)`` bound to one row, or None."""
    if on_token is None:
        return None
    return lambda token: on_token(row, token)


def generate(
    lm: LoadedModel,
    prompts: Sequence[Prompt],
    *,
    sampling: SamplingConfig | None = None,
    mixing: MixingConfig | str = "onehot",
    max_new_tokens: int | None = None,
    stop_ids: Sequence[int] | None = None,
    allowed: torch.Tensor | None = None,
    keep_vectors: bool = False,
    record_top_k: int = 0,
    feed_last: bool = False,
    on_step: StepHook | None = None,
    on_token: Callable[[int, int], None] | None = None,
    past: DecodeState | None = None,
    max_batch: int | None = None,
) -> GenerationResult:
    """Generate tokens or concept tokens for a batch of prompts.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (its ``backend`` runs the model).
        prompts: see :func:`~vecgen.backends.contract.build_batch`.
        sampling: temperature / top_k / top_p / min_p / seed (default: greedy).
        mixing: a :class:`MixingConfig` or a rule name (``onehot`` = discrete decoding; ``hidden`` feeds
            the last hidden state).
        max_new_tokens: steps per prompt (default ``sampling.max_new_tokens``).
        stop_ids: tokens that end a row; ``None`` = the model's eos/end-of-turn tokens; ``[]`` = run
            exactly ``max_new_tokens`` steps (concept vectors).
        allowed: optional allowed-token mask ``(V_rows,)`` bool or id tensor (e.g. English-only);
            padding rows are always excluded.
        keep_vectors: keep each produced vector in the records.
        record_top_k: K of the per-step top-token and mixture-weight records (``StepRecord.top_ids`` ... ;
            default 0 = tokens and entropies only, no extra top-k pass over the vocabulary per step).
        feed_last: also feed the last vector, so ``result.state`` continues after it.
        on_step: called before each step with ``(step, live rows)`` (progress).
        on_token: called with ``(row, token)`` after each sampled step (streaming).
        past: continue from this state (one row per prompt, e.g. a cached shared prefix from
            ``lm.backend.fork``); the prompts are fed on top of it. It is consumed.
        max_batch: continuous batching: at most this many rows at once, waiting prompts joining as rows finish
            (:func:`~vecgen.decoding.engine.run`); None: all prompts at once.

    Returns:
        A :class:`GenerationResult`.

    Raises:
        ConfigError: bad prompts, an unknown rule, an empty allowed set, ``max_new_tokens`` < 1.
        NonFiniteError: NaN/inf in logits or vectors (names the step and prompt).
    """
    sampling = sampling or SamplingConfig()
    mixing = MixingConfig.create(rule=mixing) if isinstance(mixing, str) else mixing
    get_rule(mixing.rule)
    n_steps = int(max_new_tokens or sampling.max_new_tokens)
    if n_steps < 1:
        raise ConfigError(f"max_new_tokens={n_steps}: allowed range is >= 1")
    stops = frozenset(lm.stop_token_ids() if stop_ids is None else [int(t) for t in stop_ids])
    if past is not None and past.batch_size != len(prompts):
        raise ConfigError(f"past has {past.batch_size} rows but {len(prompts)} prompts were given")
    mode = Mode("generate", sampling, mixing)
    policies = [GeneratePolicy(mode, n_steps, stops, feed_last=feed_last, on_token=_row_callback(on_token, r))
                for r in range(len(prompts))]
    result = run(lm, prompts, policies, allowed=allowed, record_top_k=record_top_k, keep_vectors=keep_vectors,
                 past=past, on_step=on_step, max_batch=max_batch)
    lengths = torch.tensor([len(p.tokens) for p in policies], dtype=torch.long)
    finished = torch.tensor([p.finished for p in policies], dtype=torch.bool)
    return GenerationResult(steps=_step_records(result.rows, keep_vectors), lengths=lengths, finished=finished,
                            state=result.state, rows=result.rows)


__all__ = [
    "Batch",
    "DecodeState",
    "GeneratePolicy",
    "GenerationResult",
    "Prompt",
    "Segment",
    "StepRecord",
    "build_batch",
    "generate",
]
