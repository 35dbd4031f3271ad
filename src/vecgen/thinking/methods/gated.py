"""``gated``: SeLaR-style (ACL 2026): a thinking step feeds its concept token only where the mixture's normalised
entropy is at least ``gate_tau``, its top-1 token elsewhere (:func:`~vecgen.thinking.switching.gate_is_latent`)."""

from __future__ import annotations

from pydantic import Field

from ...decoding.engine import Observation
from ..switching import SAVED_TOGETHER, gate_is_latent, math_token_ids
from .registry import MethodSettings, RowContext, StepRule, ThinkingMethod, register_method
from .switch import MATH_EXPLICIT_HELP

#: SeLaR's entropy threshold (normalised entropy, scripts/run.py default).
DEFAULT_GATE_TAU = 0.5


class GatedSettings(MethodSettings):
    """``gated``'s settings."""

    gate_tau: float = Field(DEFAULT_GATE_TAU, ge=0.0, le=1.0, description=(
        "a step feeds its concept token when the mixture's entropy over log(max_topk) is >= this, in [0, 1] "
        "(default 0.5, SeLaR's)."))
    math_explicit: bool = Field(True, description=MATH_EXPLICIT_HELP)


def _row(settings: GatedSettings, ctx: RowContext) -> StepRule:
    rule = ctx.rule
    support = max(2, min(rule.max_topk, ctx.n_real_vocab) if rule.rule == "soft" else ctx.n_real_vocab)
    math_ids = math_token_ids(ctx.tokenizer) if settings.math_explicit else frozenset()

    def step(obs: Observation) -> bool:
        return gate_is_latent(obs.mix_entropy, support, settings.gate_tau) and obs.token not in math_ids

    return step


GATED = register_method(ThinkingMethod(
    "gated", "SeLaR-style: concept tokens only where the mixture's normalised entropy is >= --gate-tau; "
    "--anti-collapse", settings=GatedSettings, concept_tokens=True, row=_row,
    legacy_keys=tuple(k for k in SAVED_TOGETHER if k not in GatedSettings.model_fields)))
