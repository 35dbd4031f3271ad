"""The three runners — ``direct``, ``cot``, ``soft`` — as one batched loop on vecgen's decode loop.

Every method is the same two-phase loop built from :func:`~vecgen.decoding.loop.build_batch`,
:func:`~vecgen.decoding.loop.prefill`, :func:`~vecgen.decoding.loop.extend` and the mixing rules:

1. **thinking** — each step turns the logits into a :class:`~vecgen.decoding.mixing.Mixture` with
   the thinking rule and feeds ``mix_embeddings(E, mixture)``: ``cot`` uses the ``onehot`` rule
   (discrete chain-of-thought, greedy or sampled), ``soft`` a concept-token rule (``soft`` =
   Soft Thinking, ``full``, ``moi``, ...). The top-1 token of every step is the *trace*.
2. **answer** — discrete decoding (``onehot`` with the answer sampling) from the same KV cache.

``direct`` starts in the answer phase (its prompt ends where the answer starts).

Thinking ends per row, at different steps in a batch:

* ``marker`` — the top-1 trace ends with the end-of-thinking marker (``</think>``, or a text marker
  such as ``"Answer:"`` detected on the decoded trace). That step feeds the marker token itself
  (one-hot, also for ``soft``), as Soft Thinking does with ``</think>``;
* ``eos`` — the top-1 token is an end-of-turn token: it is not fed; the marker is forced instead;
* ``cold_stop`` — Cold Stop (:class:`~vecgen.thinking.coldstop.ColdStop`) fires: the marker is forced;
* ``max_tokens`` — ``max_think_tokens`` thinking steps were fed: the marker is forced.

Forcing feeds the marker's token embeddings one per step (a per-row queue; for a line-start text
marker a newline first when the trace does not end a line, :meth:`EndMarker.forced_ids`), then the
row answers.
Each step feeds exactly one vector per live row: the mixture (thinking rows), a forced marker token,
or the sampled answer token; finished rows are dropped from the batch and KV cache
(:func:`~vecgen.decoding.loop.select_rows`).

With greedy thinking sampling every rule's mixture is one-hot, so ``soft`` with the ``onehot`` (or
``soft``) rule produces exactly the ``cot`` greedy output; the tests check this token for token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import SamplingConfig, format_validation_error
from ..decoding.loop import build_batch, extend, prefill, select_rows
from ..decoding.mixing import MixingConfig, get_rule, mix_embeddings
from ..decoding.sampling import entropy, make_generator, vocab_mask
from ..errors import ConfigError
from .coldstop import ColdStop
from .markers import EndMarker

log = logging.getLogger(__name__)

#: Default thinking budget (tokens or concept tokens). Qwen2.5-0.5B's GSM8K chains of thought are
#: mostly 100–250 tokens; longer ones are usually loops.
DEFAULT_MAX_THINK_TOKENS = 320
#: Default answer budget after the marker (a number and the end of the turn).
DEFAULT_MAX_ANSWER_TOKENS = 24
#: Default Cold Stop τ in nats (Soft Thinking's value).
DEFAULT_COLD_STOP_TAU = 0.01
#: Default Cold Stop L. Soft Thinking uses 256 at 32B with budgets of ~32k tokens; scaled to a
#: 320-token budget, 48 consecutive near-certain steps (15% of the budget) mark a loop or a copy.
DEFAULT_COLD_STOP_STEPS = 48
#: Soft Thinking's concept-token sampling (reference scripts: temperature 0.6, top_p 0.95,
#: top_k 30, min_p 0.001, max_topk 10).
SOFT_THINKING_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 30, "min_p": 0.001}


class Method(str, Enum):
    """What happens before the answer."""

    direct = "direct"  #: answer at once
    cot = "cot"  #: discrete chain-of-thought
    soft = "soft"  #: think in concept tokens


class StopReason(str, Enum):
    """Why thinking ended for a row."""

    marker = "marker"
    eos = "eos"
    cold_stop = "cold_stop"
    max_tokens = "max_tokens"
    none = "none"  #: ``direct``: no thinking phase


class ThinkConfig(BaseModel):
    """One method's settings.

    Attributes:
        method: ``direct``, ``cot`` or ``soft``.
        think_sampling: the distribution thinking steps come from (``cot``: the discrete sampler,
            default greedy; ``soft``: the concept-token distribution, default
            :data:`SOFT_THINKING_SAMPLING`; greedy here makes ``soft`` equal to ``cot``).
        answer_sampling: the discrete sampler of the answer phase (default greedy).
        mixing: the thinking rule (``cot``/``direct`` use ``onehot`` whatever is given here).
        max_think_tokens: thinking steps before the marker is forced (>= 1).
        max_answer_tokens: answer tokens before the row stops (>= 1).
        cold_stop_tau: Cold Stop τ in nats (>= 0; 0 = off).
        cold_stop_steps: Cold Stop L (>= 1).
        answer_stops_at_newline: end the answer at the first newline after non-blank text
            (None = yes for text markers like ``"Answer:"``, no for ``</think>``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Method.cot
    think_sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    answer_sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    mixing: MixingConfig = Field(default_factory=lambda: MixingConfig(rule="soft"))
    max_think_tokens: int = Field(DEFAULT_MAX_THINK_TOKENS, ge=1)
    max_answer_tokens: int = Field(DEFAULT_MAX_ANSWER_TOKENS, ge=1)
    cold_stop_tau: float = Field(DEFAULT_COLD_STOP_TAU, ge=0.0)
    cold_stop_steps: int = Field(DEFAULT_COLD_STOP_STEPS, ge=1)
    answer_stops_at_newline: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _soft_thinking_default(cls, data: Any) -> Any:
        """``soft`` without ``think_sampling`` gets Soft Thinking's concept-token sampling
        (:data:`SOFT_THINKING_SAMPLING`); greedy would make every concept token one-hot, i.e. ``cot``."""
        if isinstance(data, dict) and data.get("method") == Method.soft and data.get("think_sampling") is None:
            data = {**data, "think_sampling": SamplingConfig(**SOFT_THINKING_SAMPLING)}
        return data

    @classmethod
    def create(cls, **values: Any) -> "ThinkConfig":
        """Validate, raising :class:`ConfigError` (field, value, range); ``None`` values are ignored."""
        try:
            cfg = cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "thinking config")) from None
        get_rule(cfg.thinking_rule().rule)
        return cfg

    def thinking_rule(self) -> MixingConfig:
        """The rule of the thinking phase: ``onehot`` for ``cot``, the configured rule for ``soft``."""
        return self.mixing if self.method == Method.soft else MixingConfig(rule="onehot")


@dataclass
class ThinkOutput:
    """What one prompt produced.

    Attributes:
        trace_ids: top-1 token of every fed thinking step (for ``cot``: the chain-of-thought).
        forced_ids: marker tokens fed by force (empty when thinking ended by the marker).
        answer_ids: answer-phase tokens, through the stop token if any.
        stop_reason: why thinking ended (:class:`StopReason` value).
        entropies: nats, the full-distribution entropy of every thinking step (Cold Stop's H).
        mix_entropies: nats, the entropy of every fed thinking mixture (0 for one-hot).
        trace, forced, answer: decoded ``trace_ids`` / ``forced_ids`` / ``answer_ids`` (filled by
            :func:`run_thinking`).
    """

    trace_ids: list[int] = field(default_factory=list)
    forced_ids: list[int] = field(default_factory=list)
    answer_ids: list[int] = field(default_factory=list)
    stop_reason: str = StopReason.none.value
    entropies: list[float] = field(default_factory=list)
    mix_entropies: list[float] = field(default_factory=list)
    trace: str = ""
    forced: str = ""
    answer: str = ""

    @property
    def think_tokens(self) -> int:
        """Thinking steps fed (tokens for ``cot``, concept tokens for ``soft``)."""
        return len(self.trace_ids)

    @property
    def answer_tokens(self) -> int:
        """Generated answer tokens."""
        return len(self.answer_ids)

    @property
    def generated_tokens(self) -> int:
        """Model steps that produced a token or concept token: thinking + answer (forced tokens excluded)."""
        return self.think_tokens + self.answer_tokens


_THINK, _FORCE, _ANSWER = 0, 1, 2


@torch.inference_mode()
def run_thinking(
    lm: Any,
    prompts: Sequence[Sequence[int]],
    cfg: ThinkConfig,
    marker: EndMarker,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> list[ThinkOutput]:
    """Run one method on a batch of prompts.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel`.
        prompts: token ids per prompt (from :func:`~vecgen.thinking.prompts.build_prompt`);
            batched with left padding.
        cfg: the method's settings.
        marker: the end-of-thinking marker.
        on_step: called before each decode step with ``(step, live rows)`` (progress display).

    Returns:
        One :class:`ThinkOutput` per prompt, in order.

    Raises:
        ConfigError: an empty prompt or bad settings.
        NonFiniteError: NaN/inf logits.
    """
    if not prompts:
        return []
    B = len(prompts)
    think_rule_cfg = cfg.thinking_rule()
    think_rule = get_rule(think_rule_cfg.rule)
    answer_rule = get_rule("onehot")
    onehot_cfg = MixingConfig(rule="onehot")
    mask = vocab_mask(lm.vocab_rows, lm.n_real_vocab, None, device=lm.device)
    think_gen = make_generator(cfg.think_sampling.seed, lm.device)
    answer_gen = make_generator(cfg.answer_sampling.seed, lm.device)
    stops = set(lm.stop_token_ids())
    newline_stop = (marker.token_id is None) if cfg.answer_stops_at_newline is None else cfg.answer_stops_at_newline
    cold = ColdStop(cfg.cold_stop_tau, cfg.cold_stop_steps, B)
    E = lm.embedding  # (V_rows, d)

    outs = [ThinkOutput() for _ in range(B)]
    phase = [_ANSWER if cfg.method == Method.direct else _THINK] * B
    queue: list[list[int]] = [[] for _ in range(B)]
    state = prefill(lm.model, build_batch(lm, [list(p) for p in prompts]))
    live = list(range(B))  # original index of each batch row of ``state``

    def force_marker(i: int, reason: StopReason) -> None:
        outs[i].stop_reason = reason.value
        queue[i] = marker.forced_ids(outs[i].trace_ids)
        phase[i] = _FORCE

    step = 0
    while live:
        b = len(live)
        if on_step is not None:
            on_step(step, b)
        step += 1
        vec = torch.empty(b, lm.hidden_size, dtype=E.dtype, device=E.device)  # (b, d)
        fed = [False] * b  # row j has its vector for this step
        done = [False] * b

        # Thinking rows: the budget first, then the mixture, eos, Cold Stop and the marker.
        think_rows = [j for j in range(b) if phase[live[j]] == _THINK]
        for j in think_rows:
            if outs[live[j]].think_tokens >= cfg.max_think_tokens:
                force_marker(live[j], StopReason.max_tokens)
        think_rows = [j for j in think_rows if phase[live[j]] == _THINK]
        if think_rows:
            logits = state.logits if len(think_rows) == b else state.logits[torch.tensor(think_rows, device=state.logits.device)]
            mixture = think_rule(logits, cfg.think_sampling, think_rule_cfg, mask, think_gen)
            vectors = mix_embeddings(E, mixture)  # (t, d)
            ent = entropy(mixture.full_probs).cpu()  # (t,) nats
            mix_ent = mixture.entropy().cpu()  # (t,)
            tokens = mixture.token.tolist()
            fired = cold.update(ent, torch.tensor([live[j] for j in think_rows]))
            for k, j in enumerate(think_rows):
                i, y = live[j], int(tokens[k])
                if y in stops:
                    force_marker(i, StopReason.eos)
                    continue
                if bool(fired[k]):
                    force_marker(i, StopReason.cold_stop)
                    continue
                out = outs[i]
                out.trace_ids.append(y)
                out.entropies.append(float(ent[k]))
                if marker.found(out.trace_ids):
                    out.stop_reason = StopReason.marker.value
                    out.mix_entropies.append(0.0)
                    vec[j] = E[y]  # the marker token itself, one-hot (Soft Thinking: </think>)
                    phase[i] = _ANSWER
                else:
                    out.mix_entropies.append(float(mix_ent[k]) + 0.0)
                    vec[j] = vectors[k]
                fed[j] = True

        # Forced marker tokens (including rows that stopped thinking at this step).
        for j in range(b):
            i = live[j]
            if phase[i] == _FORCE:
                tok = queue[i].pop(0)
                outs[i].forced_ids.append(tok)
                vec[j] = E[tok]
                fed[j] = True
                if not queue[i]:
                    phase[i] = _ANSWER

        # Answer rows: discrete decoding. Rows that entered the answer phase at this step already
        # have their vector (the marker token); they answer from the next step on.
        answer_rows = [j for j in range(b) if phase[live[j]] == _ANSWER and not fed[j]]
        if answer_rows:
            logits = state.logits if len(answer_rows) == b else state.logits[torch.tensor(answer_rows, device=state.logits.device)]
            mixture = answer_rule(logits, cfg.answer_sampling, onehot_cfg, mask, answer_gen)
            for k, j in enumerate(answer_rows):
                i, y = live[j], int(mixture.token[k])
                out = outs[i]
                out.answer_ids.append(y)
                if (
                    y in stops
                    or out.answer_tokens >= cfg.max_answer_tokens
                    or (newline_stop and _ends_line(lm.tokenizer, out.answer_ids))
                ):
                    done[j] = True
                else:
                    vec[j] = E[y]

        keep = [j for j in range(b) if not done[j]]
        if not keep:
            break
        if len(keep) < b:
            idx = torch.tensor(keep, device=state.attention_mask.device)
            state = select_rows(state, idx)
            vec = vec[idx.to(vec.device)]
            live = [live[j] for j in keep]
        state = extend(lm.model, state, vec)

    tok = lm.tokenizer
    for out in outs:
        out.trace = tok.decode(out.trace_ids, skip_special_tokens=False)
        out.forced = tok.decode(out.forced_ids, skip_special_tokens=False)
        out.answer = tok.decode(out.answer_ids, skip_special_tokens=True)
    return outs


def _ends_line(tokenizer: Any, answer_ids: list[int]) -> bool:
    """True when the answer text has non-blank content followed by a newline."""
    return "\n" in tokenizer.decode(answer_ids, skip_special_tokens=True).lstrip()
