"""``switch``: SwiReasoning (Shi et al., ICLR 2026): concept tokens and tokens switched on entropy trends
(:class:`~vecgen.thinking.switching.SwitchState`; the rule and its deviations in :mod:`vecgen.thinking.switching`)."""

from __future__ import annotations

from pydantic import Field

from ...decoding.engine import Observation
from ..switching import SAVED_TOGETHER, SwitchState, math_token_ids
from .registry import MethodSettings, RowContext, StepRule, ThinkingMethod, register_method

#: SwiReasoning's minimum explicit stay (512 steps at ~32k-token budgets) scaled to the 320-token default budget.
DEFAULT_SWITCH_WINDOW = 5

MATH_EXPLICIT_HELP = ("feed math-symbol tokens (digits, letters, operators, LaTeX commands) as tokens, as both papers "
                      "do (default on).")


class SwitchSettings(MethodSettings):
    """``switch``'s settings."""

    switch_window: int = Field(DEFAULT_SWITCH_WINDOW, ge=0, description=(
        "the fewest explicit steps before switching back to concept tokens (default 5: SwiReasoning's 512 at "
        "~32k-token budgets scaled to the 320-token default)."))
    switch_max: int = Field(0, ge=0, description=(
        "the switch to explicit thinking that ends thinking, forcing the marker (0 = no cap, the default; "
        "SwiReasoning's chat default is 2)."))
    math_explicit: bool = Field(True, description=MATH_EXPLICIT_HELP)


def _row(settings: SwitchSettings, ctx: RowContext) -> StepRule:
    state = SwitchState(settings.switch_window, settings.switch_max)
    math_ids = math_token_ids(ctx.tokenizer) if settings.math_explicit else frozenset()

    def step(obs: Observation) -> bool | str:
        if state.step(obs.entropy):
            return "switch_cap"
        return state.latent and obs.token not in math_ids

    return step


SWITCH = register_method(ThinkingMethod(
    "switch", "SwiReasoning: concept tokens and tokens switched on entropy trends; --switch-window, --switch-max",
    settings=SwitchSettings, concept_tokens=True, row=_row, stop_reasons=("switch_cap",),
    legacy_keys=tuple(k for k in SAVED_TOGETHER if k not in SwitchSettings.model_fields)))
