"""``coconut``: a model trained with COCONUT's curriculum (Hao et al. 2024, arXiv 2412.06769; ``vecgen train --method
coconut``) thinks in continuous thoughts: after ``<bot>``, its last hidden state is fed back as the next input
embedding, unscaled, ``n_thoughts`` times (the trained number by default), then ``<eot>`` is forced and it answers.
The thoughts' top-1 tokens are the trace (what the logit lens reads of each thought); they never end thinking early.
"""

from __future__ import annotations

from pydantic import Field

from ...decoding.engine import Observation
from ...decoding.mixing import MixingConfig
from ...errors import ConfigError
from .registry import MethodSettings, RowContext, StepRule, ThinkingMethod, register_method

N_THOUGHTS_HELP = ("continuous thoughts (coconut) or pause tokens (pause) before <eot> is forced; default: the number "
                   "the checkpoint was trained with (vecgen train).")


class ThoughtSettings(MethodSettings):
    """``coconut``'s and ``pause``'s setting."""

    n_thoughts: int | None = Field(None, ge=0, le=4096, description=N_THOUGHTS_HELP)


def thoughts_of(method: str, settings: ThoughtSettings, ctx: RowContext) -> int:
    """The number of thoughts a row of ``method`` feeds: ``n_thoughts``, else the checkpoint's.

    Raises:
        ConfigError: neither is known (the model was not trained by ``vecgen train``).
    """
    if settings.n_thoughts is not None:
        return settings.n_thoughts
    if ctx.reasoning is None:
        raise ConfigError(f"{method} thinks a trained number of thoughts, and this model was not trained by vecgen "
                          "train; give n_thoughts (--n-thoughts) or a checkpoint of vecgen train", param="n_thoughts")
    return int(ctx.reasoning.n_thoughts)


def _row(settings: ThoughtSettings, ctx: RowContext) -> StepRule:
    n = thoughts_of("coconut", settings, ctx)
    fed = 0

    def step(obs: Observation) -> bool | str:
        nonlocal fed
        if fed >= n:
            return "thoughts"
        fed += 1
        return True

    return step


COCONUT = register_method(ThinkingMethod(
    "coconut", "a vecgen train coconut checkpoint's continuous thoughts (last hidden state fed back); --n-thoughts",
    settings=ThoughtSettings, rule=lambda mixing: MixingConfig(rule="hidden", hidden_scale="none"), row=_row,
    stop_reasons=("thoughts",), ends_on_trace=False))

__all__ = ["COCONUT", "ThoughtSettings", "thoughts_of"]
