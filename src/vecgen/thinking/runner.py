"""The three runners — ``direct``, ``cot``, ``soft`` — as one row policy on vecgen's decode engine.

Every method is the engine's loop (:func:`vecgen.decoding.engine.run`) with one :class:`ThinkPolicy` per
prompt, which moves its row through the phases think → forced marker → answer → done:

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
Each step feeds exactly one vector per live row: the mixture (thinking rows; the last hidden state for
the ``hidden`` rule), a forced marker token, or the sampled answer token; finished rows leave the batch
and the KV cache (the backend's ``select_rows``), on every backend.

With greedy thinking sampling every rule's mixture is one-hot, so ``soft`` with the ``onehot`` (or
``soft``) rule produces exactly the ``cot`` greedy output; the tests check this token for token.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

from ..config import SamplingConfig, format_validation_error, validation_params
from ..decoding.engine import Action, Mode, Observation, run
from ..decoding.mixing import MixingConfig, get_rule
from ..errors import ConfigError
from ..models import LoadedModel, decode
from ..reports.chips import chip, chips_block, weights_title
from .coldstop import ColdStop
from .markers import EndMarker
from .methods.registry import MethodSettings, RowContext, ThinkingMethod, get_method, methods_with, reserve_settings

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


class StopReason(str, Enum):
    """Why thinking ended for a row."""

    marker = "marker"
    eos = "eos"
    cold_stop = "cold_stop"
    max_tokens = "max_tokens"
    switch_cap = "switch_cap"  #: ``switch``: its cap of switches to explicit thinking (a method's own reason)
    none = "none"  #: ``direct``: no thinking phase


class ThinkConfig(BaseModel):
    """One method's settings.

    Attributes:
        method: a registered thinking method (:func:`~vecgen.thinking.methods.method_names`: ``direct``, ``cot``,
            ``soft``, ``hidden``, ``switch``, ``gated``, and any registered later).
        think_sampling: the distribution thinking steps come from (``cot``: the discrete sampler,
            default greedy; concept-token methods (``soft``, ...): the concept-token distribution, default
            :data:`SOFT_THINKING_SAMPLING`; greedy here makes ``soft`` equal to ``cot``).
        answer_sampling: the discrete sampler of the answer phase (default greedy).
        mixing: the thinking rule of concept-token methods (``cot``/``direct`` use ``onehot`` whatever is given
            here; ``hidden`` uses the ``hidden`` rule with this config's ``hidden_scale``).
        max_think_tokens: thinking steps before the marker is forced (>= 1).
        max_answer_tokens: answer tokens before the row stops (>= 1).
        cold_stop_tau: Cold Stop τ in nats (>= 0; 0 = off).
        cold_stop_steps: Cold Stop L (>= 0; 0 = off, like ``cold_stop_tau = 0``).
        answer_stops_at_newline: end the answer at the first newline after non-blank text
            (None = yes for text markers like ``"Answer:"``, no for ``</think>``).
        stop_sequences: the answer also ends once its decoded text contains one of these strings (lm-eval's
            ``until``; the text is kept whole, callers cut it: :func:`cut_at_stop`).
        method_settings: the method's own settings (its :class:`~vecgen.thinking.methods.MethodSettings`; given
            flat, e.g. ``ThinkConfig.create(method=..., NAME=value)``, or as a dict / settings object).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: str = "cot"
    think_sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    answer_sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    mixing: MixingConfig = Field(default_factory=lambda: MixingConfig(rule="soft"))
    max_think_tokens: int = Field(DEFAULT_MAX_THINK_TOKENS, ge=1)
    max_answer_tokens: int = Field(DEFAULT_MAX_ANSWER_TOKENS, ge=1)
    cold_stop_tau: float = Field(DEFAULT_COLD_STOP_TAU, ge=0.0)
    cold_stop_steps: int = Field(DEFAULT_COLD_STOP_STEPS, ge=0)
    answer_stops_at_newline: bool | None = None
    stop_sequences: tuple[str, ...] = ()
    method_settings: SerializeAsAny[MethodSettings] = Field(default_factory=MethodSettings)

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """The method's own settings from flat keys (or a dict), and Soft Thinking's concept-token sampling
        (:data:`SOFT_THINKING_SAMPLING`) for a concept-token method without ``think_sampling`` (greedy would make
        every concept token one-hot, i.e. ``cot``)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        method = get_method(str(data.get("method", "cot")))
        values = _settings_dict(data.pop("method_settings", None))
        for key in method.legacy_keys:
            data.pop(key, None)
        for key in [k for k in data if k not in cls.model_fields]:
            values[key] = data.pop(key)
        data["method_settings"] = method.settings(**values)
        if method.concept_tokens and data.get("think_sampling") is None:
            data["think_sampling"] = SamplingConfig(**SOFT_THINKING_SAMPLING)
        return data

    @model_validator(mode="after")
    def _method_sampling(self) -> "ThinkConfig":
        """The method's own change to its thinking sampler (:attr:`~vecgen.thinking.methods.ThinkingMethod.sampling`),
        applied on every validation (so a grid over the method's setting changes it too)."""
        sampling = self.spec.thinking_sampling(self.think_sampling, self.method_settings)
        if sampling != self.think_sampling:
            object.__setattr__(self, "think_sampling", sampling)  # frozen: set once, while validating
        return self

    @classmethod
    def create(cls, **values: Any) -> "ThinkConfig":
        """Validate, raising :class:`ConfigError` (field, value, range); ``None`` values are ignored. The method's
        own settings may be given flat (``NAME=value``).

        Raises:
            ConfigError: an unknown method, a setting of another method or none, a value out of range.
        """
        values = {k: v for k, v in values.items() if v is not None}
        method = get_method(str(values.get("method", "cot")))
        own = set(method.settings.model_fields)
        flat = {k: v for k, v in values.items() if k not in cls.model_fields and k not in method.legacy_keys}
        for key in flat:
            if key not in own:
                owners = methods_with(key)
                where = (f"a setting of {', '.join(owners)}, not of {method.name}" if owners else
                         f"not a thinking setting; {method.name}'s own: {', '.join(own) or 'none'}")
                raise ConfigError(f"{key} is {where}", param=key)
        try:
            method.settings(**{**_settings_dict(values.get("method_settings")), **flat})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, f"{method.name} settings"),
                              param=validation_params(exc)) from None
        try:
            cfg = cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "thinking config"), param=validation_params(exc)) from None
        get_rule(cfg.thinking_rule().rule)
        return cfg

    @property
    def spec(self) -> ThinkingMethod:
        """The registered :class:`~vecgen.thinking.methods.ThinkingMethod` of :attr:`method`."""
        return get_method(self.method)

    def saved_settings(self) -> dict[str, Any]:
        """The config as a run's ``settings.json`` stores it (a resume must match it): the method's own settings flat
        beside the common ones. Fields added after runs were first written are left out where they cannot matter,
        so runs of older versions stay resumable: ``stop_sequences`` (lm-eval's, never set by ``vecgen think``) and
        ``mixing.anti_collapse`` when it is 0 (off)."""
        out = self.model_dump(mode="json", exclude={"stop_sequences", "method_settings"})
        out.update(self.method_settings.model_dump(mode="json"))
        if self.mixing.anti_collapse == 0.0:
            out["mixing"].pop("anti_collapse")
        return out

    def flat(self) -> dict[str, Any]:
        """:meth:`model_dump` with the method's own settings flat (what :meth:`create` takes back)."""
        out = self.model_dump(exclude={"method_settings"})
        out.update(self.method_settings.model_dump())
        return out

    @property
    def steps_record_mixture(self) -> bool:
        """Whether a thinking step's recorded weights (``trace_top_k``) are the fed mixture (a concept-token
        rule) rather than the model's distribution (``cot``, ``hidden``, and ``soft`` with the ``onehot`` or a
        hidden-state rule, whose "mixture" is only the top-1 token)."""
        rule = self.thinking_rule()
        return self.spec.concept_tokens and rule.rule != "onehot" and not rule.feeds_hidden

    def thinking_rule(self) -> MixingConfig:
        """The rule of the thinking phase (the method's :meth:`~vecgen.thinking.methods.ThinkingMethod.thinking_rule`):
        ``onehot`` for ``cot``, the configured rule for concept-token methods, the ``hidden`` rule (with the
        configured ``hidden_scale``) for ``hidden``."""
        return self.spec.thinking_rule(self.mixing)


def _settings_dict(given: Any) -> dict[str, Any]:
    """A method's settings given as a settings object, a dict or None, as a dict."""
    return given.model_dump() if isinstance(given, BaseModel) else dict(given or {})


#: The fields every method's config has (a method's own settings may not reuse these names).
COMMON_SETTINGS: tuple[str, ...] = tuple(f for f in ThinkConfig.model_fields if f != "method_settings")
reserve_settings(COMMON_SETTINGS)


def method_configs(
    methods: Sequence[str],
    *,
    discrete: SamplingConfig,
    mixing: MixingConfig,
    concept: Mapping[str, Any] | None = None,
    answer: SamplingConfig | None = None,
    **settings: Any,
) -> dict[str, ThinkConfig]:
    """One :class:`ThinkConfig` per method, built the one way ``vecgen think`` and the lm-eval model build them.

    Concept-token methods (``soft``, ``switch``, ``gated``, ...) think with the concept-token distribution:
    :data:`SOFT_THINKING_SAMPLING` overridden by ``concept``'s non-None entries (``temperature``, ``top_p``,
    ``top_k``, ``min_p``) and seeded like ``discrete``, then changed by the method itself where it says so; every
    other method thinks with ``discrete``. Answers use ``answer`` (default ``discrete``). ``settings`` are further
    :class:`ThinkConfig` fields and methods' own settings (``None`` values ignored); each method gets the common
    fields and its own settings.

    Raises:
        ConfigError: a concept-sampling value or a setting out of range (field, value, range), an unknown method, or
            a method setting that none of ``methods`` has.
    """
    from .methods.registry import check_method_settings, split_settings

    concept_sampling = SamplingConfig.create(defaults=SOFT_THINKING_SAMPLING, seed=discrete.seed, **(concept or {}))
    own, common = split_settings({k: v for k, v in settings.items() if v is not None})
    unknown = sorted(k for k in common if k not in ThinkConfig.model_fields)
    if unknown:
        raise ConfigError(f"{unknown[0]} is not a thinking setting", param=unknown[0])
    check_method_settings(methods, own)
    out = {}
    for m in methods:
        spec = get_method(m)
        mine = {k: v for k, v in own.items() if k in spec.settings.model_fields}
        out[m] = ThinkConfig.create(method=m, think_sampling=concept_sampling if spec.concept_tokens else discrete,
                                    answer_sampling=answer or discrete, mixing=mixing, **common, **mine)
    return out


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
        top_ids, top_weights: per thinking step, the ``trace_top_k`` largest weights of what the step stands
            for (:func:`run_thinking`): the fed mixture for concept-token rules (``soft``), the model's
            distribution for discrete and hidden-state thinking (``cot``: the untruncated ``softmax(logits)``
            when greedy; ``hidden``); empty lists when not recorded.
        trace, forced, answer: decoded ``trace_ids`` / ``forced_ids`` / ``answer_ids`` (filled by
            :func:`run_thinking`).
        trace_tokens, top_tokens: each trace token and each ``top_ids`` entry decoded on its own (filled by
            :func:`run_thinking` when ``top_ids`` are recorded).
        method, question: what was asked and how (filled by :func:`vecgen.thinking.think.think`; else empty).
        modes: per thinking step, what fed it: ``"latent"`` (the concept token, or the hidden state) or
            ``"explicit"`` (its top-1 token; every ``cot`` step, the marker step, and ``switch`` / ``gated``'s
            explicit steps).
    """

    trace_ids: list[int] = field(default_factory=list)
    forced_ids: list[int] = field(default_factory=list)
    answer_ids: list[int] = field(default_factory=list)
    stop_reason: str = StopReason.none.value
    entropies: list[float] = field(default_factory=list)
    mix_entropies: list[float] = field(default_factory=list)
    top_ids: list[list[int]] = field(default_factory=list)
    top_weights: list[list[float]] = field(default_factory=list)
    trace_tokens: list[str] = field(default_factory=list)
    top_tokens: list[list[str]] = field(default_factory=list)
    trace: str = ""
    forced: str = ""
    answer: str = ""
    method: str = ""
    question: str = ""
    modes: list[str] = field(default_factory=list)

    @property
    def latent_steps(self) -> int:
        """Thinking steps fed a concept token (or hidden state) rather than a token."""
        return sum(m == "latent" for m in self.modes)

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

    def __repr__(self) -> str:
        return (f"ThinkOutput(method={self.method!r}, answer={self.answer!r}, stop_reason={self.stop_reason!r}, "
                f"think_tokens={self.think_tokens}, answer_tokens={self.answer_tokens}, trace={self.trace[:60]!r}"
                f"{'…' if len(self.trace) > 60 else ''})")

    def _repr_html_(self) -> str:
        tokens = (self.trace_tokens or [self.trace]) if self.trace_ids else []
        chips = []
        for i, tok in enumerate(tokens):
            h = self.entropies[i] if i < len(self.entropies) else None
            pairs = list(zip(self.top_tokens[i], self.top_weights[i])) if i < len(self.top_tokens) else []
            chips.append(chip(tok, h, weights_title(pairs, h)))
        if self.forced:
            chips.append(chip(self.forced, None, "forced end-of-thinking marker", forced=True))
        caption = (f"{self.method or 'thinking'}: {self.think_tokens} thinking steps, stop {self.stop_reason}; "
                   "colour: entropy (nats), hover: the step's largest weights")
        answer = f"<div><b>answer:</b> <code>{html.escape(self.answer.strip())}</code></div>"
        question = f"<div><b>question:</b> {html.escape(self.question)}</div>" if self.question else ""
        return question + chips_block(chips, caption=caption) + answer


_THINK, _FORCE, _ANSWER, _DONE = 0, 1, 2, 3


def think_budget(cfg: ThinkConfig, marker: EndMarker) -> int:
    """The most inputs one row of ``cfg`` feeds after its prompt: thinking steps, the forced marker (with a
    newline before it), and every answer step but the last (which is sampled, not fed)."""
    think = cfg.max_think_tokens + marker.max_forced if cfg.spec.thinks else 0
    return think + cfg.max_answer_tokens - 1


class ThinkPolicy:
    """One row of :func:`run_thinking`: think → (forced marker) → answer → done.

    Args:
        cfg: the method's settings.
        marker: the end-of-thinking marker.
        stops: end-of-turn / eos token ids.
        newline_stop: the answer ends at its first newline after non-blank text.
        tokenizer: decodes the answer for ``newline_stop``.
        cold: the batch's :class:`ColdStop` counters; ``row`` is this row's index in it.
        step_rule: the method's per-row rule (:meth:`~vecgen.thinking.methods.ThinkingMethod.new_row`): what each
            thinking step feeds, or a stop reason that ends thinking.
        thoughts: token ids the thinking phase feeds by force instead of sampling, then the marker (the method's
            :attr:`~vecgen.thinking.methods.ThinkingMethod.forced_thoughts`; stop reason ``thoughts``).
    """

    def __init__(self, cfg: ThinkConfig, marker: EndMarker, stops: frozenset[int], newline_stop: bool,
                 tokenizer: Any, cold: ColdStop, row: int, seed: int | None = None, *,
                 step_rule: Callable[[Observation], bool | str], stream_id: str | None = None,
                 thoughts: Sequence[int] | None = None):
        self.cfg, self.marker, self.stops, self.newline_stop, self.tokenizer = cfg, marker, stops, newline_stop, tokenizer
        self.cold, self.row = cold, row
        think_sampling, answer_sampling, suffix = cfg.think_sampling, cfg.answer_sampling, ""
        if seed is not None:  # the row's own random streams: its draws do not depend on the other rows
            think_sampling = think_sampling.model_copy(update={"seed": seed})
            answer_sampling = answer_sampling.model_copy(update={"seed": seed})
            suffix = f"-row{row}" if stream_id is None else f"-{stream_id}"
        self.think_mode = Mode("think", think_sampling, cfg.thinking_rule(), stream="think" + suffix)
        self.answer_mode = Mode("answer", answer_sampling, MixingConfig(rule="onehot"), stream="answer" + suffix)
        self.out = ThinkOutput()
        self.phase = _THINK if cfg.spec.thinks else _ANSWER
        self.queue: list[int] = []
        self.step_rule = step_rule
        self.ends_on_trace = cfg.spec.ends_on_trace
        if thoughts is not None and self.phase == _THINK:
            self._force("thoughts")
            self.queue = [int(t) for t in thoughts] + self.queue

    def _force(self, reason: StopReason | str) -> None:
        self.out.stop_reason = reason.value if isinstance(reason, StopReason) else str(reason)
        self.queue = self.marker.forced_ids(self.out.trace_ids)
        self.phase = _FORCE

    def max_inputs(self) -> int:
        return think_budget(self.cfg, self.marker)

    def next_input(self) -> Mode | int | None:
        if self.phase == _THINK and self.out.think_tokens >= self.cfg.max_think_tokens:
            self._force(StopReason.max_tokens)
        if self.phase == _THINK:
            return self.think_mode
        if self.phase == _FORCE:
            tok = self.queue.pop(0)
            self.out.forced_ids.append(tok)
            if not self.queue:
                self.phase = _ANSWER
            return tok
        return self.answer_mode if self.phase == _ANSWER else None

    def observe(self, obs: Observation) -> Action:
        out, y = self.out, obs.token
        if self.phase == _THINK:
            if self.ends_on_trace and y in self.stops:  # end of turn while thinking: not fed; the marker is forced
                self._force(StopReason.eos)
                return Action.retry
            if self.ends_on_trace and self.cold.step(self.row, obs.entropy):
                self._force(StopReason.cold_stop)
                return Action.retry
            latent = self.step_rule(obs)  # concept token (True), top-1 token (False), or a stop reason
            if isinstance(latent, str):
                self._force(latent)
                return Action.retry
            out.trace_ids.append(y)
            out.entropies.append(obs.entropy)
            if self.ends_on_trace and self.marker.found(out.trace_ids):  # the marker token itself is fed, one-hot (Soft Thinking: </think>)
                out.stop_reason = StopReason.marker.value
                out.mix_entropies.append(0.0)
                out.modes.append("explicit")
                self.phase = _ANSWER
                return Action.feed_token
            out.mix_entropies.append(obs.mix_entropy if latent else 0.0)
            out.modes.append("latent" if latent else "explicit")
            return Action.feed if latent else Action.feed_token
        out.answer_ids.append(y)
        if (y in self.stops or out.answer_tokens >= self.cfg.max_answer_tokens
                or (self.newline_stop and _ends_line(self.tokenizer, out.answer_ids))
                or (self.cfg.stop_sequences and cut_at_stop(self.tokenizer.decode(out.answer_ids, skip_special_tokens=True),
                                                            self.cfg.stop_sequences)[1])):
            self.phase = _DONE
            return Action.done
        return Action.feed


def run_thinking(
    lm: LoadedModel,
    prompts: Sequence[Sequence[int]],
    cfg: ThinkConfig,
    marker: EndMarker,
    *,
    allowed: Any = None,
    on_step: Callable[[int, int], None] | None = None,
    trace_top_k: int = 0,
    row_seeds: Sequence[int] | None = None,
    max_batch: int | None = None,
) -> list[ThinkOutput]:
    """Run one method on a batch of prompts (one :class:`ThinkPolicy` per prompt on the decode engine).

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` (any backend).
        prompts: token ids per prompt (from :func:`~vecgen.thinking.prompts.build_prompt`);
            batched with left padding.
        cfg: the method's settings.
        marker: the end-of-thinking marker.
        allowed: optional allowed-token mask ``(V_rows,)`` bool or id tensor for every phase (thinking
            mixtures and answer tokens), as in :func:`~vecgen.decoding.generate`; keep the stop tokens
            and the marker's tokens in it.
        on_step: called before each decode step with ``(step, live rows)`` (progress display).
        trace_top_k: record the ``trace_top_k`` largest weights of every thinking step
            (:attr:`ThinkOutput.top_ids` / ``top_weights``; 0 = none): the fed mixture for ``soft``, the
            model's distribution for ``cot`` and ``hidden`` (:attr:`ThinkConfig.steps_record_mixture`).
        row_seeds: one seed per prompt: each row samples from its own generators (thinking and answer streams)
            seeded with it, so a row's draws do not depend on which rows share its batch (its logits still
            carry the batch's float rounding). None: one generator per stream for the batch, seeded by the
            configs' ``seed``.
        max_batch: continuous batching: at most this many rows decode at once and waiting prompts join as rows
            finish (:func:`~vecgen.decoding.engine.run`); None: every prompt in one static batch.

    Returns:
        One :class:`ThinkOutput` per prompt, in order.

    Raises:
        ConfigError: an empty prompt or bad settings.
        NonFiniteError: NaN/inf logits or vectors (step and prompt named).
    """
    if not prompts:
        return []
    if row_seeds is not None and len(row_seeds) != len(prompts):
        raise ConfigError(f"row_seeds has {len(row_seeds)} seeds for {len(prompts)} prompts")
    cold = ColdStop(cfg.cold_stop_tau if cfg.cold_stop_steps > 0 else 0.0, max(cfg.cold_stop_steps, 1), len(prompts))
    policies = [think_policy(lm, cfg, marker, cold=cold, row=i, seed=None if row_seeds is None else int(row_seeds[i]))
                for i in range(len(prompts))]
    result = run(lm, [list(p) for p in prompts], policies, allowed=allowed, on_step=on_step,
                 record_top_k=max(int(trace_top_k), 0), max_batch=max_batch)
    tok = lm.tokenizer
    outs = [p.out for p in policies]
    if trace_top_k > 0:
        by_mixture = cfg.steps_record_mixture
        for out, rec in zip(outs, result.rows):
            # the thinking steps that entered the trace: fed (a mixture, or the marker one-hot), not retried
            keep = [i for i, (ph, fed) in enumerate(zip(rec.phases, rec.fed)) if ph == "think" and fed != Action.retry.value]
            ids, weights = (rec.mix_ids, rec.mix_weights) if by_mixture else (rec.top_ids, rec.top_probs)
            if len(keep) != len(out.trace_ids):
                raise RuntimeError(f"{len(keep)} recorded thinking steps for a trace of {len(out.trace_ids)} tokens")
            for i in keep:
                pairs = [(t, w) for t, w in zip(ids[i].tolist(), weights[i].tolist()) if w > 0.0]
                out.top_ids.append([t for t, _ in pairs])
                out.top_weights.append([w for _, w in pairs])
            out.trace_tokens = _decode_each(tok, out.trace_ids)
            flat = _decode_each(tok, [t for row in out.top_ids for t in row])
            for row in out.top_ids:
                out.top_tokens.append(flat[: len(row)])
                flat = flat[len(row):]
    for out in outs:
        decode_output(tok, out)
    return outs


def think_policy(lm: LoadedModel, cfg: ThinkConfig, marker: EndMarker, *, cold: ColdStop | None = None, row: int = 0,
                 seed: int | None = None, stream_id: str | None = None) -> ThinkPolicy:
    """The :class:`ThinkPolicy` of one row, as :func:`run_thinking` builds it (stop tokens, newline stop, Cold Stop,
    the method's per-row rule).

    Args:
        cold: the batch's Cold Stop counters (``row`` indexes them); None: the row's own.
        seed: the row's own random streams (named ``-row{row}``, or ``-{stream_id}`` when given); None: the batch's.
    """
    stops = frozenset(lm.stop_token_ids())
    newline_stop = (marker.token_id is None) if cfg.answer_stops_at_newline is None else cfg.answer_stops_at_newline
    if cold is None:
        cold, row = ColdStop(cfg.cold_stop_tau if cfg.cold_stop_steps > 0 else 0.0, max(cfg.cold_stop_steps, 1), 1), 0
    rule = cfg.thinking_rule()
    ctx = RowContext(lm.tokenizer, lm.n_real_vocab, rule, reasoning=lm.reasoning)
    step_rule = cfg.spec.new_row(cfg.method_settings, ctx)
    forced = cfg.spec.forced_thoughts
    thoughts = None if forced is None else forced(cfg.method_settings, ctx)
    return ThinkPolicy(cfg, marker, stops, newline_stop, lm.tokenizer, cold, row, seed, step_rule=step_rule,
                       stream_id=stream_id, thoughts=thoughts)


def decode_output(tokenizer: Any, out: ThinkOutput) -> ThinkOutput:
    """Fill ``out``'s texts: ``trace`` and ``forced`` with special tokens kept, ``answer`` without them."""
    out.trace = decode(tokenizer, out.trace_ids, skip_special_tokens=False)
    out.forced = decode(tokenizer, out.forced_ids, skip_special_tokens=False)
    out.answer = decode(tokenizer, out.answer_ids, skip_special_tokens=True)
    return out


def _decode_each(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token decoded on its own (special tokens kept; a byte of a split character shows as U+FFFD)."""
    return tokenizer.batch_decode([[t] for t in ids], skip_special_tokens=False) if ids else []


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to (without) the earliest of ``stops``, and whether one was found."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def _ends_line(tokenizer: Any, answer_ids: list[int]) -> bool:
    """True when the answer text has non-blank content followed by a newline."""
    return "\n" in tokenizer.decode(answer_ids, skip_special_tokens=True).lstrip()
