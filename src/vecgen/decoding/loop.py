"""The decode loop: prefill a (batched, left-padded) prompt, then feed one vector per step.

Each step computes ``logits → probs`` (the shared sampler) ``→ mixing rule → next inputs_embeds``
and reuses ``past_key_values``. Discrete generation is the same loop with the ``onehot`` rule.

Pieces (gpt-fast style), usable on their own by runners that need per-row control:

* :func:`build_batch` — prompts made of token ids and/or vectors → left-padded ``inputs_embeds``
  (or ``input_ids``) with ``attention_mask``;
* :func:`prefill` — run the prompt, keep the cache and the last position's logits (optionally on top
  of a cached ``past``, e.g. a shared prefix copied per row with :func:`fork_state`);
* :func:`extend` — feed ``(B, k, d)`` more input vectors on top of the cache;
* :func:`generate` — the loop, returning a :class:`GenerationResult` with per-step records.

The model may be any module with transformers' calling convention (``inputs_embeds``,
``attention_mask``, ``position_ids``, ``past_key_values``, ``use_cache``), e.g. vecgen's reference
model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import SamplingConfig
from ..errors import ConfigError, NonFiniteError
from .mixing import MixingConfig, Mixture, get_rule, mix_embeddings
from .sampling import entropy, make_generator, vocab_mask

#: A prompt part: token ids, or a ``(n, d)`` tensor of input vectors.
Segment = Sequence[int] | torch.Tensor
#: A prompt: token ids, a ``(T, d)`` tensor, or a list of segments.
Prompt = Sequence[int] | torch.Tensor | Sequence[Segment]


@dataclass
class Batch:
    """A left-padded batch.

    Attributes:
        input_ids: ``(B, T)`` long when every prompt is token ids only, else None.
        inputs_embeds: ``(B, T, d)`` when some prompt contains vectors, else None.
        attention_mask: ``(B, T)`` long, 0 on left padding.
    """

    input_ids: torch.Tensor | None
    inputs_embeds: torch.Tensor | None
    attention_mask: torch.Tensor


@dataclass
class DecodeState:
    """What the loop carries between steps.

    Attributes:
        past_key_values: the model's KV cache.
        attention_mask: ``(B, T_total)`` long over prompt + fed vectors.
        next_position: ``(B,)`` long position id of the next input (padding excluded).
        logits: ``(B, V)`` float32 logits at the last fed position.
    """

    past_key_values: Any
    attention_mask: torch.Tensor
    next_position: torch.Tensor
    logits: torch.Tensor


def _segments(prompt: Prompt) -> list[Segment]:
    if isinstance(prompt, torch.Tensor):
        return [prompt] if prompt.dim() == 2 else [prompt.tolist()]
    items = list(prompt)
    if all(isinstance(x, int) for x in items):
        return [items]
    return items


def build_batch(lm: Any, prompts: Sequence[Prompt]) -> Batch:
    """Left-pad prompts into one batch.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel`.
        prompts: each a list of token ids, a ``(T, d)`` tensor of vectors, or a list of such segments
            (e.g. ``[ids_before, vectors, ids_after]``).

    Raises:
        ConfigError: no prompts, or an empty prompt.
        NonFiniteError: a NaN/inf input vector (the prompt index is named).
    """
    if not prompts:
        raise ConfigError("no prompts given")
    device, dtype = lm.device, lm.dtype
    seg_lists = [_segments(p) for p in prompts]
    only_ids = all(not isinstance(s, torch.Tensor) for segs in seg_lists for s in segs)
    lengths = [sum(len(s) for s in segs) for segs in seg_lists]
    for i, n in enumerate(lengths):
        if n == 0:
            raise ConfigError(f"prompt {i} is empty")
    T = max(lengths)
    B = len(prompts)
    mask = torch.zeros(B, T, dtype=torch.long, device=device)
    for i, n in enumerate(lengths):
        mask[i, T - n :] = 1
    if only_ids:
        pad = lm.tokenizer.pad_token_id or 0
        ids = torch.full((B, T), pad, dtype=torch.long, device=device)
        for i, segs in enumerate(seg_lists):
            flat = [t for s in segs for t in s]
            ids[i, T - len(flat) :] = torch.tensor(flat, dtype=torch.long, device=device)
        return Batch(ids, None, mask)
    embeds = torch.zeros(B, T, lm.hidden_size, dtype=dtype, device=device)
    for i, segs in enumerate(seg_lists):
        parts = []
        for s in segs:
            if isinstance(s, torch.Tensor):
                v = s.to(device=device, dtype=dtype)
                if not bool(torch.isfinite(v).all()):
                    raise NonFiniteError(f"prompt {i} contains a NaN or inf input vector", row=i)
                parts.append(v)
            elif len(s):
                parts.append(lm.embed(torch.tensor([list(s)], device=device))[0])
        row = torch.cat(parts, dim=0)  # (T_i, d)
        embeds[i, T - row.shape[0] :] = row
    return Batch(None, embeds, mask)


_ACCEPTS_LOGITS_TO_KEEP: dict[type, bool] = {}


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (then only the last position's logits are computed)."""
    key = type(model)
    if key not in _ACCEPTS_LOGITS_TO_KEEP:
        try:
            _ACCEPTS_LOGITS_TO_KEEP[key] = "logits_to_keep" in inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            _ACCEPTS_LOGITS_TO_KEEP[key] = False
    return _ACCEPTS_LOGITS_TO_KEEP[key]


def _call(model: Any, **kwargs: Any) -> Any:
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1
    return model(use_cache=True, **kwargs)


def prefill(model: Any, batch: Batch, past: DecodeState | None = None) -> DecodeState:
    """Run the prompt; return the cache and last-position logits ``(B, V)`` float32.

    With ``past`` (a state of the same ``B`` rows, e.g. a shared prefix from :func:`fork_state`), the
    batch is fed on top of that cache: positions continue from ``past.next_position`` and the batch's
    left padding sits between the cached tokens and the new ones, masked by the attention mask.
    ``past`` is consumed (its cache grows in place). A row may be all padding in ``past``.
    """
    mask = batch.attention_mask
    offset = torch.zeros_like(mask[:, 0]) if past is None else past.next_position.to(mask.device)  # (B,)
    positions = offset[:, None] + (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T); left padding gets the offset
    full_mask = mask if past is None else torch.cat([past.attention_mask, mask], dim=-1)  # (B, T_past + T)
    out = _call(
        model,
        input_ids=batch.input_ids,
        inputs_embeds=batch.inputs_embeds,
        attention_mask=full_mask,
        position_ids=positions,
        past_key_values=None if past is None else past.past_key_values,
    )
    return DecodeState(out.past_key_values, full_mask, offset + mask.sum(-1), out.logits[:, -1].float())


def extend(model: Any, state: DecodeState, inputs_embeds: torch.Tensor) -> DecodeState:
    """Feed ``inputs_embeds`` ``(B, d)`` or ``(B, k, d)`` on top of the cache; updates ``state`` in place."""
    if inputs_embeds.dim() == 2:
        inputs_embeds = inputs_embeds[:, None]  # (B, 1, d)
    B, k, _ = inputs_embeds.shape
    ones = torch.ones(B, k, dtype=state.attention_mask.dtype, device=state.attention_mask.device)
    state.attention_mask = torch.cat([state.attention_mask, ones], dim=-1)  # (B, T + k)
    positions = state.next_position[:, None] + torch.arange(k, device=state.next_position.device)  # (B, k)
    out = _call(
        model,
        inputs_embeds=inputs_embeds,
        attention_mask=state.attention_mask,
        position_ids=positions,
        past_key_values=state.past_key_values,
    )
    state.past_key_values = out.past_key_values
    state.next_position = positions[:, -1] + 1
    state.logits = out.logits[:, -1].float()
    return state


def select_rows(state: DecodeState, rows: torch.Tensor) -> DecodeState:
    """Keep only batch ``rows`` of ``state`` (``(b,)`` long indices), e.g. to drop finished rows.

    The KV cache is narrowed in place (transformers ``Cache.batch_select_indices``; a legacy tuple
    cache is indexed), so later :func:`extend` calls compute only the kept rows. Updates ``state``
    in place and returns it.
    """
    rows = rows.to(state.attention_mask.device)
    cache = state.past_key_values
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(rows)
    else:  # legacy ((k, v), ...) with (B, heads, T, head_dim) tensors
        cache = tuple(tuple(t[rows] for t in layer) for layer in cache)
    state.past_key_values = cache
    state.attention_mask = state.attention_mask[rows]  # (b, T_total)
    state.next_position = state.next_position[rows]  # (b,)
    state.logits = state.logits[rows.to(state.logits.device)]  # (b, V)
    return state


def fork_state(state: DecodeState, rows: torch.Tensor | Sequence[int]) -> DecodeState:
    """A copy of ``state`` holding batch ``rows`` (indices may repeat), leaving ``state`` untouched.

    Typical use: prefill a few shared prefixes once, then give each prompt of a batch a copy of its
    prefix's cache and pass it to :func:`generate` as ``past``.
    """
    import copy

    rows = torch.as_tensor(rows, dtype=torch.long)
    return select_rows(copy.deepcopy(state), rows)


@dataclass
class StepRecord:
    """One decode step for the whole batch (tensors on the CPU).

    Attributes:
        token: ``(B,)`` the discrete token of the step (sampled, or top-1 of the mixture).
        top_ids, top_probs: ``(B, K)`` the K most likely tokens under the sampler's distribution.
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
        steps: one :class:`StepRecord` per step.
        lengths: ``(B,)`` valid steps per row (through its stop token, if any).
        finished: ``(B,)`` rows that emitted a stop token.
        state: the decode state after the loop (the last vector is fed only with ``feed_last``).
    """

    steps: list[StepRecord]
    lengths: torch.Tensor
    finished: torch.Tensor
    state: DecodeState | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        if not self.steps or self.steps[0].vector is None:
            raise ValueError("vectors were not kept; call generate(..., keep_vectors=True)")
        return torch.stack([s.vector[row] for s in self.steps])[: int(self.lengths[row])]


StepCallback = Callable[[int, StepRecord], None]


def _check_finite(t: torch.Tensor, what: str, step: int, active: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` naming the first active row of ``t`` ``(B, ...)`` with a NaN/inf."""
    if bool(torch.isfinite(t.sum(-1)).all()):  # one reduction: a NaN/inf entry makes its row sum non-finite
        return
    bad = ~torch.isfinite(t).all(-1).cpu() & active
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise NonFiniteError(f"{what} at step {step} for prompt {row}", step=step, row=row)


@torch.inference_mode()
def generate(
    lm: Any,
    prompts: Sequence[Prompt],
    *,
    sampling: SamplingConfig | None = None,
    mixing: MixingConfig | str = "onehot",
    max_new_tokens: int | None = None,
    stop_ids: Sequence[int] | None = None,
    allowed: torch.Tensor | None = None,
    keep_vectors: bool = False,
    record_top_k: int = 10,
    feed_last: bool = False,
    on_step: StepCallback | None = None,
    past: DecodeState | None = None,
) -> GenerationResult:
    """Generate tokens or concept tokens for a batch of prompts.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (or one with a replaced model).
        prompts: see :func:`build_batch`.
        sampling: temperature / top_k / top_p / min_p / seed (default: greedy).
        mixing: a :class:`MixingConfig` or a rule name (``onehot`` = discrete decoding).
        max_new_tokens: steps per prompt (default ``sampling.max_new_tokens``).
        stop_ids: tokens that end a row; ``None`` = the model's eos/end-of-turn tokens; ``[]`` = run
            exactly ``max_new_tokens`` steps (concept vectors).
        allowed: optional allowed-token mask ``(V_rows,)`` bool or id tensor (e.g. English-only);
            padding rows are always excluded.
        keep_vectors: keep each fed vector in the records.
        record_top_k: K of the per-step top-token records.
        feed_last: also feed the last vector, so ``result.state`` continues after it.
        on_step: called after each step with ``(step, record)`` (streaming, progress, writing).
        past: continue from this state (one row per prompt, e.g. a cached shared prefix from
            :func:`fork_state`); the prompts are fed on top of it. It is consumed.

    Returns:
        A :class:`GenerationResult`.

    Raises:
        ConfigError: bad prompts, an unknown rule, an empty allowed set.
        NonFiniteError: NaN/inf in logits or vectors (names the step and prompt).
    """
    sampling = sampling or SamplingConfig()
    mixing = MixingConfig.create(rule=mixing) if isinstance(mixing, str) else mixing
    rule = get_rule(mixing.rule)
    n_steps = int(max_new_tokens or sampling.max_new_tokens)
    if n_steps < 1:
        raise ConfigError(f"max_new_tokens={n_steps}: allowed range is >= 1")
    stops = torch.tensor(lm.stop_token_ids() if stop_ids is None else list(stop_ids), dtype=torch.long)
    mask = vocab_mask(lm.vocab_rows, lm.n_real_vocab, allowed, device=lm.device)
    generator = make_generator(sampling.seed, lm.device)
    E = lm.embedding

    batch = build_batch(lm, prompts)
    B = batch.attention_mask.shape[0]
    if past is not None and past.attention_mask.shape[0] != B:
        raise ConfigError(f"past has {past.attention_mask.shape[0]} rows but {B} prompts were given")
    state = prefill(lm.model, batch, past)
    active = torch.ones(B, dtype=torch.bool)
    lengths = torch.zeros(B, dtype=torch.long)
    steps: list[StepRecord] = []
    for step in range(n_steps):
        _check_finite(state.logits, "NaN or inf logits", step, active)
        mixture: Mixture = rule(state.logits, sampling, mixing, mask, generator)
        vec = mix_embeddings(E, mixture)  # (B, d)
        _check_finite(vec, "NaN or inf input vector", step, active)
        record = _record(mixture, vec if keep_vectors else None, record_top_k)
        steps.append(record)
        lengths += active.long()
        if stops.numel():
            active &= ~torch.isin(record.token, stops)
        if on_step is not None:
            on_step(step, record)
        if not bool(active.any()) or (step == n_steps - 1 and not feed_last):
            break
        state = extend(lm.model, state, vec)
    finished = ~active if stops.numel() else torch.zeros_like(active)
    return GenerationResult(steps=steps, lengths=lengths, finished=finished, state=state)


def _record(mixture: Mixture, vec: torch.Tensor | None, k: int) -> StepRecord:
    top_p, top_i = torch.topk(mixture.probs, min(k, mixture.probs.shape[-1]), dim=-1)
    dense_probs = mixture.indices is None and mixture.weights is mixture.probs  # e.g. `full`: reuse, don't redo
    mix_ids, mix_w = (top_i, top_p) if dense_probs else mixture.top(k)
    ent = entropy(mixture.full_probs)  # (B,)
    mix_ent = ent if dense_probs and mixture.full_probs is mixture.probs else mixture.entropy()
    return StepRecord(
        token=mixture.token.cpu(),
        top_ids=top_i.cpu(),
        top_probs=top_p.cpu(),
        mix_ids=mix_ids.cpu(),
        mix_weights=mix_w.cpu(),
        entropy=ent.cpu(),
        mix_entropy=mix_ent.cpu(),
        vector=None if vec is None else vec.detach().float().cpu(),
    )
